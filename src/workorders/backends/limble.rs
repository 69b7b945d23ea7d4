//! Limble CMMS (API v2, `https://api.limblecmms.com/v2`; also `ca-`, `au-`,
//! `eu-` and `21cfr-api.limblecmms.com`).
//!
//! API facts (Limble's V2 Postman collection, see `shared/backends/README.md`):
//! - HTTP Basic with the API client id and secret on every call [V].
//! - Create `POST /tasks` with `name`, `locationID` (required), `due` (required,
//!   unix seconds), `type` (2 unplanned, 4 planned work order), `description`,
//!   `assetID`, `priority` (a tenant `priorityLevel`, see `GET /priorities`),
//!   `estimatedTime` (minutes) and `meta1` (a hidden integration string: the
//!   order's key) → `201` with a `Location` header naming the new task [V].
//!   Without a due date of its own an order is due 1, 3, 7 or 30 days after
//!   detection by priority (critical … low).
//! - Look-up `GET /tasks?assets=<id>&status=0&limit=100&page=N` (page from 1;
//!   `status` 0 incomplete, 1 complete; paged until a short page), matching
//!   `meta1` [V]. Without an asset id, the task's location narrows it.
//! - Update: `PATCH /tasks/{id}` (priority 0 lowest … 5 highest, `due`) and
//!   `POST /tasks/{id}/comments {comment, showExternalUsers}`; `landed` reads
//!   `GET /tasks/{id}/comments` [V]. Status: `GET /tasks?tasks={id}` (the
//!   documented way to read one task), `status` 1 or a `dateCompleted` is Done.
//! - The default priority map (hums 1 critical … 4 low → 3, 2, 1, 0) assumes
//!   Limble's default levels: set `priorities` to the tenant's levels.
//! - Rate limits (POST 240/min, 1000/h): a 429's `X-RateLimit-TTL` is honoured by `check`.
//! - Attachments: `PUT /tasks/{id}/image`, the PNG as multipart field `image` [V].

use super::http::{check, http_client, transport, urlencode, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::common::types::WorkKind;
use crate::config::backend::LimbleSettings;
use crate::workorders::WorkOrder;
use chrono::DateTime;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Tasks listed per page (Limble's default page size).
const PAGE: usize = 100;
/// Pages of tasks read per look-up at most.
const MAX_PAGES: usize = 20;
/// hums priority 1 (critical) … 4 (low) → Limble priority level.
const PRIORITIES: [&str; 4] = ["3", "2", "1", "0"];
/// Days until an order without a due date is due, by hums priority.
const DUE_DAYS: [i64; 4] = [1, 3, 7, 30];

/// The Limble adapter: HTTP Basic with the API client id and secret.
pub struct Limble {
    client: reqwest::Client,
    base: String,
    client_id: String,
    secret: String,
    cfg: LimbleSettings,
    auth_hold: Duration,
}

impl Limble {
    /// Needs `client_id`, the client secret (environment variable or file), and
    /// a location for every task: `locations`, or `fields.locationID` as the default;
    /// integer `priorities` (the rules of `LimbleSettings::check`).
    pub fn new(cfg: &LimbleSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        let client_id =
            cfg.client_id.clone().filter(|c| !c.trim().is_empty()).ok_or_else(|| {
                BackendError::Config {
                    key: "client_id".into(),
                    message: "Limble needs the API client id \
                              (Settings › Configuration › API Settings)"
                        .into(),
                }
            })?;
        Ok(Self {
            client: http_client(cfg.common.timeout, false)?,
            base: cfg.common.url.trim_end_matches('/').to_string(),
            client_id: client_id.trim().to_string(),
            secret: super::required(
                &cfg.client_secret_env,
                &cfg.client_secret_file,
                "client_secret",
            )?,
            cfg: cfg.clone(),
            auth_hold: cfg.common.retry_max,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.client_id, Some(&self.secret))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, DeliveryError> {
        read(check(req.send().await.map_err(transport)?, self.auth_hold).await?).await
    }

    fn priority(&self, wo: &WorkOrder) -> Value {
        let p = super::priority(&self.cfg.common, wo.priority, PRIORITIES);
        p.trim().parse::<i64>().map_or(Value::String(p), Value::from)
    }

    /// The task's location: the asset's mapped location, else the configured default.
    fn location(&self, wo: &WorkOrder) -> Option<Value> {
        super::location(&self.cfg.common, wo)
            .map(|l| int_or_string(&l))
            .or_else(|| self.cfg.fields.get("locationID").cloned())
    }

    fn body(&self, wo: &WorkOrder) -> Value {
        let due = wo.due_by.unwrap_or_else(|| {
            wo.detected_at
                + chrono::Duration::days(DUE_DAYS[usize::from(wo.priority.clamp(1, 4) - 1)])
        });
        let mut b = json!({
            "name": wo.title,
            "description": super::text(wo),
            "type": if wo.kind == WorkKind::Preventive { 4 } else { 2 },
            "priority": self.priority(wo),
            "due": due.timestamp(),
            "meta1": super::reference(wo),
        });
        if let Some(asset) = &wo.asset.backend_id {
            b["assetID"] = int_or_string(asset);
        }
        if let Some(loc) = super::location(&self.cfg.common, wo) {
            b["locationID"] = int_or_string(&loc);
        }
        if wo.estimated_hours > 0.0 {
            b["estimatedTime"] = json!((wo.estimated_hours * 60.0).round() as i64);
        }
        // The key, and a location mapped from the asset's path, are never replaced by the
        // fixed fields.
        merge(&mut b, &self.cfg.fields, &["meta1", "locationID"]);
        b
    }

    /// One task by id, from the task list (`tasks=` filter).
    async fn task(&self, remote: &str) -> Result<Option<Value>, DeliveryError> {
        let list = self
            .send(self.request(Method::GET, &format!("/tasks?tasks={}", urlencode(remote))))
            .await?;
        Ok(items(&list).iter().find(|t| id_of(&t["taskID"]).as_deref() == Some(remote)).cloned())
    }
}

/// Reads an answer's JSON; Limble answers PATCH and PUT with an empty 200 (`null` here).
async fn read(resp: reqwest::Response) -> Result<Value, DeliveryError> {
    let text = resp.text().await.map_err(transport)?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| DeliveryError::Transient {
        reason: format!("Limble answer is not JSON: {e}"),
        retry_after: None,
        maybe_delivered: true,
    })
}

/// A list answer's items (a bare array, or wrapped).
fn items(list: &Value) -> &[Value] {
    list.as_array()
        .or_else(|| ["tasks", "data", "comments"].iter().find_map(|k| list[*k].as_array()))
        .map_or(&[][..], Vec::as_slice)
}

/// Adds the config's fixed fields to a new task; `keep` are hums's own fields they never replace.
fn merge(body: &mut Value, fields: &BTreeMap<String, Value>, keep: &[&str]) {
    if let Value::Object(b) = body {
        for (k, v) in fields {
            if !(keep.contains(&k.as_str()) && b.contains_key(k)) {
                b.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Limble ids are integers; anything else is passed on as given (and refused by Limble).
fn int_or_string(s: &str) -> Value {
    s.trim().parse::<i64>().map_or_else(|_| json!(s), Value::from)
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A query value for an id.
fn query_id(v: &Value) -> Option<String> {
    id_of(v).map(|s| urlencode(&s))
}

/// Whether a task is complete (`status` 1, or a completion date).
fn complete(task: &Value) -> bool {
    task["status"].as_i64() == Some(1)
        || task["status"].as_str() == Some("1")
        || task["dateCompleted"].as_i64().is_some_and(|t| t > 0)
}

/// The task id in a `Location` header: `/v2/tasks/123` or `/v2/tasks/?tasks=123`.
fn task_id_in(location: &str) -> Option<String> {
    let tail = match location.rsplit_once("tasks=") {
        Some((_, t)) => t,
        None => location.trim_end_matches('/').rsplit('/').next()?,
    };
    let id: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    (!id.is_empty()).then_some(id)
}

impl Adapter for Limble {
    fn name(&self) -> &'static str {
        "limble"
    }

    async fn find(&self, wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        let filter = match &wo.asset.backend_id {
            Some(asset) => format!("assets={}", urlencode(asset)),
            None => match self.location(wo).as_ref().and_then(query_id) {
                Some(loc) => format!("locations={loc}"),
                None => return Ok(None),
            },
        };
        let mut open = None;
        for page in 1..=MAX_PAGES {
            let path = format!("/tasks?{filter}&status=0&limit={PAGE}&page={page}");
            let list = self.send(self.request(Method::GET, &path)).await?;
            let tasks = items(&list);
            for task in tasks.iter().filter(|t| !complete(t)) {
                let (Some(id), Some(key)) = (id_of(&task["taskID"]), task["meta1"].as_str()) else {
                    continue;
                };
                if key == super::reference(wo) {
                    return Ok(Some(Found::Same(id)));
                }
                if open.is_none() && super::same_fault(key, wo) {
                    open = Some(Found::Open(id));
                }
            }
            if tasks.len() < PAGE {
                break;
            }
        }
        Ok(open)
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        let body = self.body(wo);
        if body.get("locationID").is_none_or(Value::is_null) {
            // Limble would refuse it: say why without sending.
            return Err(DeliveryError::Permanent {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                body: format!(
                    "not sent: no Limble locationID for location {:?}; add it to backend.locations \
                     or set backend.fields.locationID",
                    wo.asset.location.join(" › ")
                ),
            });
        }
        let resp = check(
            self.request(Method::POST, "/tasks").json(&body).send().await.map_err(transport)?,
            self.auth_hold,
        )
        .await?;
        let from_header = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(task_id_in);
        // The task exists now: an unreadable body only loses the id, not the delivery.
        let created = read(resp).await.unwrap_or(Value::Null);
        Ok(from_header.or_else(|| id_of(&created["taskID"])))
    }

    async fn update(&self, wo: &WorkOrder, remote: &str) -> Result<(), DeliveryError> {
        let task = format!("/tasks/{}", urlencode(remote));
        let mut patch = json!({ "priority": self.priority(wo) });
        if let Some(due) = wo.due_by {
            patch["due"] = json!(due.timestamp());
        }
        self.send(self.request(Method::PATCH, &task).json(&patch)).await?;
        // The comment last: a retry after a failed comment repeats only the idempotent PATCH
        // before it.
        let comment = json!({ "comment": super::comment(wo), "showExternalUsers": false });
        self.send(self.request(Method::POST, &format!("{task}/comments")).json(&comment)).await?;
        Ok(())
    }

    /// The revision's comment is among the task's comments.
    async fn landed(&self, wo: &WorkOrder, remote: &str) -> Result<bool, DeliveryError> {
        if remote.is_empty() {
            return Ok(false);
        }
        let list = self
            .send(self.request(Method::GET, &format!("/tasks/{}/comments", urlencode(remote))))
            .await?;
        let marker = format!("hums update (revision {}):", wo.revision);
        Ok(items(&list)
            .iter()
            .any(|c| c["comment"].as_str().is_some_and(|t| t.starts_with(&marker))))
    }

    /// `PUT /tasks/{id}/image` with the PNG as the multipart form field `image` (≤ 50 MB).
    async fn attach(&self, remote: &str, name: &str, png: &[u8]) -> Result<bool, DeliveryError> {
        if !self.cfg.attachments {
            return Ok(false);
        }
        let part = reqwest::multipart::Part::bytes(png.to_vec())
            .file_name(name.to_string())
            .mime_str("image/png")
            .map_err(|e| DeliveryError::Permanent {
                status: reqwest::StatusCode::BAD_REQUEST,
                body: e.to_string(),
            })?;
        let form = reqwest::multipart::Form::new().part("image", part);
        let req = self.request(Method::PUT, &format!("/tasks/{remote}/image")).multipart(form);
        check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        Ok(true)
    }

    async fn status(&self, remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        let Some(task) = self.task(remote).await? else { return Ok(None) };
        Ok(Some(if complete(&task) {
            let at = task["dateCompleted"]
                .as_i64()
                .filter(|t| *t > 0)
                .and_then(|t| DateTime::from_timestamp(t, 0));
            RemoteStatus::Done(at)
        } else {
            RemoteStatus::Open
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_come_from_the_location_header() {
        assert_eq!(task_id_in("/v2/tasks/123").as_deref(), Some("123"));
        assert_eq!(
            task_id_in("https://api.limblecmms.com/v2/tasks/?tasks=77").as_deref(),
            Some("77")
        );
        assert_eq!(task_id_in("/v2/tasks/"), None);
        assert!(complete(&json!({ "status": 1 })));
        assert!(complete(&json!({ "status": 0, "dateCompleted": 1_790_000_000 })));
        assert!(!complete(&json!({ "status": 0, "dateCompleted": 0 })));
    }
}
