//! MaintainX (REST API v1, `https://api.getmaintainx.com/v1`): bearer API
//! key, `x-organization-id` for multi-organization keys. The order's key
//! goes into `externalData`; open orders of the asset are listed (with
//! cursor pagination) and read one by one for their `externalData`, since
//! list items do not carry it. Updates are comments plus a priority and due
//! date change; charts are uploaded as attachments.

use super::http::{check, http_client, transport, urlencode, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::common::types::WorkKind;
use crate::config::backend::MaintainxSettings;
use crate::workorders::WorkOrder;
use serde_json::{json, Value};
use std::time::Duration;

/// Orders listed per page (the API's maximum is 200).
const PAGE: usize = 100;
/// Pages of open orders read per look-up at most.
const MAX_PAGES: usize = 20;

/// The MaintainX backend.
pub struct MaintainX {
    client: reqwest::Client,
    base: String,
    token: String,
    organization: Option<i64>,
    cfg: MaintainxSettings,
    auth_hold: Duration,
}

impl MaintainX {
    /// Reads the API key from the environment variable or file the config names.
    pub fn new(cfg: &MaintainxSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        Ok(Self {
            client: http_client(cfg.common.timeout, false)?,
            base: cfg.common.url.trim_end_matches('/').to_string(),
            token: super::required(&cfg.token_env, &cfg.token_file, "token")?,
            organization: cfg.organization_id,
            cfg: cfg.clone(),
            auth_hold: cfg.common.retry_max,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req =
            self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        match self.organization {
            Some(org) => req.header("x-organization-id", org.to_string()),
            None => req,
        }
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value, DeliveryError> {
        let resp = check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        resp.json().await.map_err(|e| DeliveryError::Transient {
            reason: format!("MaintainX answer is not JSON: {e}"),
            retry_after: None,
            maybe_delivered: true,
        })
    }

    /// The asset's id in MaintainX, if the asset has one.
    fn asset_id(wo: &WorkOrder) -> Option<i64> {
        wo.asset.backend_id.as_deref().and_then(|id| id.parse().ok())
    }

    fn body(&self, wo: &WorkOrder) -> Value {
        let mut b = json!({
            "title": wo.title,
            "description": super::text(wo),
            "priority":
                super::priority(&self.cfg.common, wo.priority, ["HIGH", "HIGH", "MEDIUM", "LOW"]),
            "type": if wo.kind == WorkKind::Preventive { "PREVENTIVE" } else { "REACTIVE" },
            "externalData": { "hums": super::reference(wo), "failureMode": wo.failure_mode },
        });
        if let Some(id) = Self::asset_id(wo) {
            b["assetId"] = json!(id);
        }
        if let Some(loc) = super::location(&self.cfg.common, wo).and_then(|l| l.parse::<i64>().ok())
        {
            b["locationId"] = json!(loc);
        }
        if let Some(due) = wo.due_by {
            b["dueDate"] = json!(due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        if wo.estimated_hours > 0.0 {
            // Seconds.
            b["estimatedTime"] = json!((wo.estimated_hours * 3600.0).round() as i64);
        }
        b
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

impl Adapter for MaintainX {
    fn name(&self) -> &'static str {
        "maintainx"
    }

    async fn find(&self, wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        let mut query =
            format!("/workorders?limit={PAGE}&statuses=OPEN&statuses=IN_PROGRESS&statuses=ON_HOLD");
        match Self::asset_id(wo) {
            Some(a) => query.push_str(&format!("&assets={a}")),
            // Without an asset id, the title narrows the search.
            None => query.push_str(&format!("&title={}", urlencode(&wo.title))),
        }
        let mut cursor: Option<String> = None;
        let mut open = None;
        for _ in 0..MAX_PAGES {
            let page = match &cursor {
                Some(c) => format!("{query}&cursor={}", urlencode(c)),
                None => query.clone(),
            };
            let list = self.json(self.request(reqwest::Method::GET, &page)).await?;
            for item in list["workOrders"].as_array().into_iter().flatten() {
                let Some(id) = id_of(&item["id"]) else { continue };
                // List items do not carry externalData: read the order.
                let one = self
                    .json(self.request(reqwest::Method::GET, &format!("/workorders/{id}")))
                    .await?;
                let Some(r) = one["workOrder"]["externalData"]["hums"].as_str() else { continue };
                if r == super::reference(wo) {
                    return Ok(Some(Found::Same(id)));
                }
                if open.is_none() && super::same_fault(r, wo) {
                    open = Some(Found::Open(id));
                }
            }
            cursor = list["nextCursor"].as_str().filter(|c| !c.is_empty()).map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok(open)
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        let created = self
            .json(self.request(reqwest::Method::POST, "/workorders").json(&self.body(wo)))
            .await?;
        Ok(id_of(&created["id"]))
    }

    async fn update(&self, wo: &WorkOrder, remote: &str) -> Result<(), DeliveryError> {
        let priority =
            super::priority(&self.cfg.common, wo.priority, ["HIGH", "HIGH", "MEDIUM", "LOW"]);
        let mut patch = json!({ "priority": priority });
        if let Some(due) = wo.due_by {
            patch["dueDate"] = json!(due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        self.json(
            self.request(reqwest::Method::PATCH, &format!("/workorders/{remote}")).json(&patch),
        )
        .await?;
        let comment = json!({ "content": super::comment(wo) });
        self.json(
            self.request(reqwest::Method::POST, &format!("/workorders/{remote}/comments"))
                .json(&comment),
        )
        .await?;
        Ok(())
    }

    async fn landed(&self, wo: &WorkOrder, remote: &str) -> Result<bool, DeliveryError> {
        if remote.is_empty() {
            return Ok(false);
        }
        let list = self
            .json(self.request(reqwest::Method::GET, &format!("/workorders/{remote}/comments")))
            .await?;
        let marker = format!("hums update (revision {}):", wo.revision);
        let comments = list["comments"].as_array().or_else(|| list.as_array());
        Ok(comments
            .into_iter()
            .flatten()
            .any(|c| c["content"].as_str().is_some_and(|t| t.starts_with(&marker))))
    }

    async fn attach(&self, remote: &str, name: &str, png: &[u8]) -> Result<bool, DeliveryError> {
        if !self.cfg.attachments {
            return Ok(false);
        }
        let path = format!("/workorders/{remote}/attachments/{}", urlencode(name));
        let req = self
            .request(reqwest::Method::PUT, &path)
            .header("content-type", "image/png")
            .body(png.to_vec());
        check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        Ok(true)
    }

    async fn status(&self, remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        let one =
            self.json(self.request(reqwest::Method::GET, &format!("/workorders/{remote}"))).await?;
        let wo = &one["workOrder"];
        let done_at =
            wo["completedAt"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        Ok(Some(match wo["status"].as_str().unwrap_or_default() {
            "DONE" => RemoteStatus::Done(done_at.map(|t| t.with_timezone(&chrono::Utc))),
            "CANCELED" | "SKIPPED" => RemoteStatus::Cancelled,
            _ => RemoteStatus::Open,
        }))
    }
}
