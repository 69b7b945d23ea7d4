//! The canonical REST backend: POST the work-order JSON (every revision, the
//! receiver upserts by key) with a bearer token, and look a key up before
//! re-posting after an attempt that may have landed.

use super::http::{check, http_client, transport, urlencode, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::config::backend::RestSettings;
use crate::workorders::WorkOrder;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

/// A REST endpoint that accepts the canonical work-order JSON.
pub struct RestBackend {
    client: reqwest::Client,
    url: String,
    lookup_url: Option<String>,
    token: Option<String>,
    /// How long to hold all deliveries after the backend refused our credentials.
    auth_hold: Duration,
}

impl RestBackend {
    /// Reads the bearer token from the environment variable or file named in the config.
    pub fn new(cfg: &RestSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        Ok(Self {
            client: http_client(cfg.common.timeout, false)?,
            url: cfg.common.url.clone(),
            lookup_url: cfg.lookup_url.clone(),
            token: super::secret(&cfg.token_env, &cfg.token_file, "token")?,
            auth_hold: cfg.common.retry_max,
        })
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// One delivery attempt; returns the backend's id for the order if it gave one.
    pub async fn send(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        // One header value per revision: an escalation is a different request
        // from its raise, though the body's key (the order's identity) is the same.
        let header = format!("{}:r{}", wo.idempotency_key, wo.revision);
        let req = self.client.post(&self.url).json(wo).header("Idempotency-Key", header);
        let resp = self.authed(req).send().await.map_err(transport)?;
        if resp.status() == StatusCode::CONFLICT {
            // The backend already has this order (e.g. an earlier attempt landed).
            return Ok(None);
        }
        let resp = check(resp, self.auth_hold).await?;
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok(remote_id(&body))
    }

    /// Looks for an order with this key at this revision or later; returns its
    /// backend id (or an empty string when the backend gives none) if found.
    pub async fn lookup(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        let Some(template) = &self.lookup_url else {
            return Ok(None);
        };
        let url = template.replace("{key}", &urlencode(&wo.idempotency_key));
        let resp = self.authed(self.client.get(url)).send().await.map_err(transport)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = check(resp, self.auth_hold).await?;
        let body: Value = resp.json().await.map_err(|e| DeliveryError::Transient {
            reason: format!("look-up answer is not JSON: {e}"),
            retry_after: None,
            maybe_delivered: true,
        })?;
        let items = match &body {
            Value::Array(a) => a.as_slice(),
            Value::Object(o) => ["items", "data", "result", "workorders"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_array))
                .map_or(&[][..], Vec::as_slice),
            _ => &[],
        };
        Ok(items
            .iter()
            .find(|item| {
                // An update (revision > 1) only counts as there if the backend
                // says which revision it holds.
                item.get("idempotency_key").and_then(Value::as_str)
                    == Some(wo.idempotency_key.as_str())
                    && match item.get("revision").and_then(Value::as_u64) {
                        Some(r) => r >= u64::from(wo.revision),
                        None => wo.revision == 1,
                    }
            })
            .map(|item| remote_id(item).unwrap_or_default()))
    }
}

impl Adapter for RestBackend {
    fn name(&self) -> &'static str {
        "rest"
    }

    /// The receiver upserts by key: only an attempt that may have landed is looked up.
    fn looks_up_first(&self) -> bool {
        false
    }

    async fn find(&self, wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        Ok(self.lookup(wo).await?.map(Found::Same))
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        self.send(wo).await
    }

    async fn update(&self, wo: &WorkOrder, _remote: &str) -> Result<(), DeliveryError> {
        self.send(wo).await.map(|_| ())
    }

    /// Every revision is its own POST: the look-up says which revision the receiver holds.
    async fn landed(&self, wo: &WorkOrder, _remote: &str) -> Result<bool, DeliveryError> {
        Ok(self.lookup(wo).await?.is_some())
    }

    async fn attach(&self, _remote: &str, _name: &str, _png: &[u8]) -> Result<bool, DeliveryError> {
        Ok(false)
    }

    /// `GET <url>/<id>` when the receiver answers it: `status` "done",
    /// "completed" or "closed" (with `completed_at`), "cancelled", or open.
    async fn status(&self, remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        if remote.is_empty() {
            return Ok(None);
        }
        let url = format!("{}/{}", self.url.trim_end_matches('/'), urlencode(remote));
        let resp = self.authed(self.client.get(url)).send().await.map_err(transport)?;
        if matches!(resp.status(), StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) {
            return Ok(None);
        }
        let body: Value = check(resp, self.auth_hold).await?.json().await.unwrap_or(Value::Null);
        let at = body["completed_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        Ok(Some(match body["status"].as_str().unwrap_or_default() {
            "done" | "completed" | "closed" => RemoteStatus::Done(at),
            "cancelled" | "canceled" => RemoteStatus::Cancelled,
            _ => RemoteStatus::Open,
        }))
    }
}

fn remote_id(body: &Value) -> Option<String> {
    let v = body
        .get("id")
        .or_else(|| body.pointer("/result/id"))
        .or_else(|| body.pointer("/data/id"))?;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
