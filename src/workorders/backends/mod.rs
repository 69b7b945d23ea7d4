//! Maintenance backends: each adapter turns the canonical work order into
//! its system's native order. All of them share the outbox's delivery
//! semantics (`workorders::delivery`): the order's key is written into the
//! backend's external-reference field, open orders are looked up before one
//! is created (an open order for the same fault gets a comment instead),
//! updates become comments, 429 and 5xx answers back off with the backend's
//! own rate-limit headers, and refusals become dead letters.
//!
//! Each adapter's `new` takes its kind's settings (`config::backend`), refuses
//! to start on the first problem of that kind's `check` (the rules
//! `hums check-config` reports too), and adds what only the environment can
//! tell: whether the secrets it names are there.

pub mod dynamics;
pub mod http;
pub mod limble;
pub mod maintainx;
pub mod maximo;
pub mod rest;
pub mod sap;
pub mod servicenow;
pub mod upkeep;
pub mod webhook;

use crate::config::backend::Common;
use crate::workorders::WorkOrder;
use chrono::{DateTime, Utc};
use http::DeliveryError;
use std::future::Future;

/// What a look-up found at the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// This very order (its key is in the backend's reference field), with its backend id.
    Same(String),
    /// An open order hums raised for the same asset and failure mode in an
    /// earlier episode: the new one becomes a comment on it.
    Open(String),
}

/// Where an order stands at the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteStatus {
    Open,
    /// Work finished, when the backend says.
    Done(Option<DateTime<Utc>>),
    /// Closed without the work (cancelled, rejected, a false alarm).
    Cancelled,
}

/// The adapter of a maintenance backend (a CMMS): what delivery needs of it.
pub trait Adapter: Send + Sync + 'static {
    /// The backend's name, for logs.
    fn name(&self) -> &'static str;

    /// Whether open orders are looked up before every create, or only when
    /// an earlier attempt may have landed (backends that upsert by key).
    fn looks_up_first(&self) -> bool {
        true
    }

    /// This order, or an open order for the same asset and failure mode.
    fn find(
        &self,
        wo: &WorkOrder,
    ) -> impl Future<Output = Result<Option<Found>, DeliveryError>> + Send;

    /// Creates the order; returns its backend id if the backend gives one.
    fn create(
        &self,
        wo: &WorkOrder,
    ) -> impl Future<Output = Result<Option<String>, DeliveryError>> + Send;

    /// Adds a revision (escalation, new evidence or due date, a repeat of the
    /// fault) to the order `remote` as a comment, changing its priority and
    /// due date where the backend allows.
    fn update(
        &self,
        wo: &WorkOrder,
        remote: &str,
    ) -> impl Future<Output = Result<(), DeliveryError>> + Send;

    /// Whether this revision (an update) already reached the order `remote`,
    /// after an attempt that may have landed. Backends that cannot tell say
    /// no, and the update is sent again.
    fn landed(
        &self,
        _wo: &WorkOrder,
        _remote: &str,
    ) -> impl Future<Output = Result<bool, DeliveryError>> + Send {
        async { Ok(false) }
    }

    /// Attaches a PNG to the order `remote`; `Ok(false)` if the backend takes no attachments.
    fn attach(
        &self,
        remote: &str,
        name: &str,
        png: &[u8],
    ) -> impl Future<Output = Result<bool, DeliveryError>> + Send;

    /// Where the order `remote` stands; `Ok(None)` if the backend cannot say.
    fn status(
        &self,
        remote: &str,
    ) -> impl Future<Output = Result<Option<RemoteStatus>, DeliveryError>> + Send;
}

/// Why a backend cannot be set up from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend.{key}: {message}")]
    Config { key: String, message: String },
}

impl From<reqwest::Error> for BackendError {
    fn from(e: reqwest::Error) -> Self {
        BackendError::Config {
            key: "url".into(),
            message: format!("cannot build the HTTP client: {e}"),
        }
    }
}

/// A secret from the environment variable or the file the config names,
/// never from the config itself (nor into any log). `Ok(None)` when neither
/// is set, or the variable is empty or unset; an unreadable file is an error.
pub fn secret(
    env: &Option<String>,
    file: &Option<String>,
    key: &str,
) -> Result<Option<String>, BackendError> {
    let err = |message: String| BackendError::Config { key: format!("{key}_file"), message };
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read {path}: {e}")))?;
        let v = text.trim().to_string();
        return if v.is_empty() { Err(err(format!("{path} is empty"))) } else { Ok(Some(v)) };
    }
    Ok(env
        .as_ref()
        .and_then(|name| std::env::var(name).ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty()))
}

/// Refuses settings their kind's `check` finds wrong, on the first problem
/// (`backend.site_id` → key `site_id`).
pub fn refuse(problems: Vec<(String, String)>) -> Result<(), BackendError> {
    match problems.into_iter().next() {
        None => Ok(()),
        Some((key, message)) => Err(BackendError::Config {
            key: key.strip_prefix("backend.").unwrap_or(key.as_str()).to_string(),
            message,
        }),
    }
}

/// A secret the backend cannot work without.
pub fn required(
    env: &Option<String>,
    file: &Option<String>,
    key: &str,
) -> Result<String, BackendError> {
    secret(env, file, key)?.ok_or_else(|| BackendError::Config {
        key: format!("{key}_env"),
        message: match env {
            Some(name) => format!("the environment variable {name} is not set (or empty)"),
            None => {
                format!("set {key}_env (an environment variable) or {key}_file (a file) holding it")
            }
        },
    })
}

/// The backend's value for a hums priority (1 critical … 4 low): the
/// config's `priorities` map, else the adapter's default.
pub fn priority(cfg: &Common, p: u8, default: [&str; 4]) -> String {
    cfg.priorities
        .get(&p.to_string())
        .cloned()
        .unwrap_or_else(|| default[usize::from(p.clamp(1, 4) - 1)].to_string())
}

/// The backend's location id for an asset: the longest configured prefix of
/// its location path (`Site › Building › …`).
pub fn location(cfg: &Common, wo: &WorkOrder) -> Option<String> {
    let path = &wo.asset.location;
    (1..=path.len()).rev().find_map(|n| cfg.locations.get(&path[..n].join(" › ")).cloned())
}

/// The reference written into the backend's external-reference field: the
/// order's key, which holds gateway, asset, failure mode and episode.
pub fn reference(wo: &WorkOrder) -> &str {
    &wo.idempotency_key
}

/// Whether a reference found at the backend is an earlier episode of the
/// same asset and failure mode from this gateway.
pub fn same_fault(found: &str, wo: &WorkOrder) -> bool {
    let prefix = wo.idempotency_key.rsplit_once(':').map_or("", |(p, _)| p);
    !prefix.is_empty() && found.rsplit_once(':').is_some_and(|(p, _)| p == prefix)
}

/// The body of an order as text: what is wrong and the evidence, what to do,
/// parts, skills and safety, and the reference.
pub fn text(wo: &WorkOrder) -> String {
    let mut t = wo.description.clone();
    let list = |t: &mut String, title: &str, items: &[String]| {
        if !items.is_empty() {
            t.push_str(&format!("\n{title}:\n"));
            for i in items {
                t.push_str(&format!("- {i}\n"));
            }
        }
    };
    list(&mut t, "Actions", &wo.actions);
    let parts: Vec<String> =
        wo.parts.iter().map(|p| format!("{} × {} ({})", p.qty, p.sku, p.description)).collect();
    list(&mut t, "Parts", &parts);
    list(&mut t, "Skills", &wo.skills);
    list(&mut t, "Safety", &wo.safety);
    if let Some(due) = wo.due_by {
        t.push_str(&format!("\nDue by {}.\n", due.format("%Y-%m-%d %H:%M UTC")));
    }
    t.push_str(&format!("\nRaised by hums gateway {} ({}).\n", wo.gateway_id, wo.idempotency_key));
    t
}

/// A revision as a comment: what changed and the latest evidence.
pub fn comment(wo: &WorkOrder) -> String {
    let mut c = format!(
        "hums update (revision {}): {} — {} severity, priority {} ({}).\n",
        wo.revision, wo.title, wo.severity, wo.priority, wo.priority_label
    );
    for e in &wo.evidence {
        c.push_str(&format!("- {} {}: {:.3} {}", e.channel, e.feature, e.value, e.unit));
        if let Some(l) = e.limit {
            c.push_str(&format!(" (limit {l})"));
        }
        if !e.note.is_empty() {
            c.push_str(&format!(": {}", e.note));
        }
        c.push('\n');
    }
    if let Some(due) = wo.due_by {
        c.push_str(&format!("Due by {}.\n", due.format("%Y-%m-%d %H:%M UTC")));
    }
    c
}
