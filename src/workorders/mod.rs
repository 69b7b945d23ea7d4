//! The sink: the [`WorkOrder`] the pipeline plans, flood control that decides
//! whether it is sent or held, and delivery through the configured
//! maintenance backend with retries.

pub mod backends;
pub mod delivery;
pub mod flood;

use crate::common::types::{Evidence, Millis, Severity, WorkKind};
use crate::config::schema::Part;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why this work order is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkEvent {
    /// A new alarm episode: create the order.
    Raised,
    /// The same episode got worse: update the order with the same key.
    Escalated,
    /// A post-repair check of a completed order: its verdict, as an update.
    Verified,
}

/// The asset a work order is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetRef {
    pub id: String,
    pub name: String,
    pub class: String,
    pub backend_id: Option<String>,
    /// Site › building › area › line.
    pub location: Vec<String>,
}

/// The canonical work order, as POSTed to the REST backend (see README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    /// Stable across retries and restarts: gateway, asset, failure mode, episode.
    pub idempotency_key: String,
    pub event: WorkEvent,
    /// 1 when raised, +1 per escalation of the same episode.
    pub revision: u32,
    pub kind: WorkKind,
    pub failure_mode: String,
    pub title: String,
    pub description: String,
    /// 1 critical, 2 high, 3 medium, 4 low.
    pub priority: u8,
    pub priority_label: String,
    pub severity: Severity,
    pub asset: AssetRef,
    pub evidence: Vec<Evidence>,
    pub cause: String,
    pub actions: Vec<String>,
    pub parts: Vec<Part>,
    pub skills: Vec<String>,
    pub safety: Vec<String>,
    pub estimated_hours: f64,
    pub detected_at: DateTime<Utc>,
    pub due_by: Option<DateTime<Utc>>,
    pub gateway_id: String,
    /// The evidence chart, attached where the backend takes attachments
    /// (kept in the outbox beside the order, not in its JSON).
    #[serde(skip)]
    pub chart: Option<crate::pipeline::charts::Png>,
}

/// What the outbox remembers of the orders sent, for resuming open episodes
/// after a restart.
pub trait SentOrders {
    type Error;
    /// The highest revision stored under an order's key.
    fn revision(&self, key: &str) -> Result<Option<u32>, Self::Error>;
    /// The key of the latest order sent for an asset's failure mode.
    fn last_order(&self, asset: &str, failure_mode: &str) -> Result<Option<String>, Self::Error>;
    /// The due date the latest revision of an order carried.
    fn due_by(&self, key: &str) -> Result<Option<Millis>, Self::Error>;
    /// The order a failed repair check raised in the place of `key`.
    fn reraised(&self, key: &str) -> Result<Option<String>, Self::Error>;
}

/// The label of a priority level.
pub fn priority_label(priority: u8) -> &'static str {
    match priority {
        1 => "critical",
        2 => "high",
        3 => "medium",
        _ => "low",
    }
}
