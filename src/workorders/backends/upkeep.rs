//! UpKeep (REST API v2, `https://api.onupkeep.com/api/v2`).
//!
//! API facts (see `shared/backends/README.md`; [V] vendor docs, [S] secondary):
//! - Login `POST /auth {email, password}` → `{success, result: {sessionToken, expiresAt}}`;
//!   every call then carries the header `Session-Token` [V]. The session is
//!   cached, renewed a minute before `expiresAt` when UpKeep gives one, and
//!   renewed once (the request repeated) when UpKeep answers 401.
//! - Create `POST /work-orders` with `title`, `description`, `priority`
//!   (integer 0 lowest … 3 highest [S]), `asset` and `location` ids [S] and
//!   `dueDate` (epoch milliseconds, as UpKeep's Pipedream client sends it [S])
//!   → `{success, result: {id, …}}` [V/S].
//! - UpKeep documents no external-reference field: the order's key rides at
//!   the end of the description (`super::text` ends with "(<key>)."), and the
//!   look-up lists `GET /work-orders?asset=<id>&limit=100&offset=N` (`results`
//!   [S]; unverified filter, paged until a short page, at most 20 pages; all
//!   orders when the asset has no UpKeep id) and reads the key back out of
//!   each open order's description.
//! - No comments endpoint is verified: an update appends `super::comment` to
//!   the description (`GET` then `PATCH /work-orders/{id}`, together with the
//!   new priority and due date). A read-modify-write: an edit made between
//!   the two calls would be lost. `landed` looks for the revision's comment there.
//! - Attachments are not verified ("Files" section of the current docs):
//!   `attach` declines. Status `complete` is Done (`completedDate`), anything
//!   else (`open`, `onHold`, `inProgress`) Open.
//! - Rate limits: 429 with `Retry-After` is honoured by `check`.

use super::http::{check, http_client, transport, urlencode, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::config::backend::UpkeepSettings;
use crate::workorders::WorkOrder;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Orders listed per page.
const PAGE: usize = 100;
/// Pages of orders read per look-up at most.
const MAX_PAGES: usize = 20;
/// hums priority 1 (critical) … 4 (low) → UpKeep 3 (high) … 0 (lowest).
const PRIORITIES: [&str; 4] = ["3", "2", "1", "0"];
/// How `super::text` introduces the key at the end of a description.
const RAISED: &str = "Raised by hums gateway ";

/// A logged-in UpKeep session.
struct Session {
    token: String,
    expires: Option<DateTime<Utc>>,
}

/// The UpKeep adapter: a session login with e-mail and password.
pub struct UpKeep {
    client: reqwest::Client,
    base: String,
    email: String,
    password: String,
    cfg: UpkeepSettings,
    auth_hold: Duration,
    /// Held across the login only, so concurrent calls share one session.
    session: tokio::sync::Mutex<Option<Session>>,
}

impl UpKeep {
    /// Reads the login (e-mail and password) from the environment variables or files the config
    /// names.
    /// Integer `priorities` are checked by `UpkeepSettings::check`.
    pub fn new(cfg: &UpkeepSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        Ok(Self {
            client: http_client(cfg.common.timeout, false)?,
            base: cfg.common.url.trim_end_matches('/').to_string(),
            email: super::required(&cfg.login.username_env, &cfg.login.username_file, "username")?,
            password: super::required(
                &cfg.login.password_env,
                &cfg.login.password_file,
                "password",
            )?,
            cfg: cfg.clone(),
            auth_hold: cfg.common.retry_max,
            session: tokio::sync::Mutex::new(None),
        })
    }

    async fn login(&self) -> Result<Session, DeliveryError> {
        let login = json!({ "email": self.email, "password": self.password });
        let resp = self
            .client
            .post(format!("{}/auth", self.base))
            .json(&login)
            .send()
            .await
            .map_err(transport)?;
        let body = read(check(resp, self.auth_hold).await?).await?;
        let result = &body["result"];
        let token = result["sessionToken"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| {
            DeliveryError::Transient {
                reason: "UpKeep's login answer carries no result.sessionToken".into(),
                retry_after: Some(self.auth_hold),
                maybe_delivered: false,
            }
        })?;
        Ok(Session { token: token.to_string(), expires: when(&result["expiresAt"]) })
    }

    /// The session token, logging in when there is none or it is about to expire.
    async fn token(&self) -> Result<String, DeliveryError> {
        let mut session = self.session.lock().await;
        if let Some(s) = session.as_ref() {
            if s.expires
                .is_none_or(|t| t - chrono::Duration::seconds(60) > crate::common::clock::wall())
            {
                return Ok(s.token.clone());
            }
        }
        let fresh = self.login().await?;
        let token = fresh.token.clone();
        *session = Some(fresh);
        Ok(token)
    }

    /// Drops the session UpKeep refused, unless another call already renewed it.
    async fn forget(&self, token: &str) {
        let mut session = self.session.lock().await;
        if session.as_ref().is_some_and(|s| s.token == token) {
            *session = None;
        }
    }

    /// One API call in the session; a refused session is renewed and the call repeated once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, DeliveryError> {
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            let mut value =
                HeaderValue::from_str(&token).map_err(|_| DeliveryError::Transient {
                    reason: "UpKeep gave a session token that is not a valid header value".into(),
                    retry_after: Some(self.auth_hold),
                    maybe_delivered: false,
                })?;
            value.set_sensitive(true);
            let mut req = self
                .client
                .request(method.clone(), format!("{}{path}", self.base))
                .header("Session-Token", value);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(transport)?;
            if resp.status() == StatusCode::UNAUTHORIZED && !renewed {
                tracing::info!("UpKeep refused the session; logging in again");
                self.forget(&token).await;
                renewed = true;
                continue;
            }
            return read(check(resp, self.auth_hold).await?).await;
        }
    }

    fn priority(&self, wo: &WorkOrder) -> Value {
        let p = super::priority(&self.cfg.common, wo.priority, PRIORITIES);
        p.trim().parse::<i64>().map_or(Value::String(p), Value::from)
    }

    fn body(&self, wo: &WorkOrder) -> Value {
        let mut b = json!({
            "title": wo.title,
            "description": super::text(wo),
            "priority": self.priority(wo),
        });
        if let Some(asset) = &wo.asset.backend_id {
            b["asset"] = json!(asset);
        }
        if let Some(loc) = super::location(&self.cfg.common, wo) {
            b["location"] = json!(loc);
        }
        if let Some(due) = wo.due_by {
            b["dueDate"] = json!(due.timestamp_millis());
        }
        // The description carries the key: the fixed fields never replace it.
        merge(&mut b, &self.cfg.fields, &["description"]);
        b
    }

    async fn order(&self, remote: &str) -> Result<Value, DeliveryError> {
        let mut one =
            self.call(Method::GET, &format!("/work-orders/{}", urlencode(remote)), None).await?;
        Ok(one.get_mut("result").map(Value::take).unwrap_or(Value::Null))
    }
}

/// Reads an answer's JSON (an empty body is `null`); `success: false` is a refusal.
async fn read(resp: reqwest::Response) -> Result<Value, DeliveryError> {
    let status = resp.status();
    let text = resp.text().await.map_err(transport)?;
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| DeliveryError::Transient {
        reason: format!("UpKeep answer is not JSON: {e}"),
        retry_after: None,
        maybe_delivered: true,
    })?;
    if v["success"] == Value::Bool(false) {
        return Err(DeliveryError::Permanent { status, body: text.chars().take(2000).collect() });
    }
    Ok(v)
}

/// Adds the config's fixed fields to a new order; `keep` are hums's own fields they never replace.
fn merge(body: &mut Value, fields: &BTreeMap<String, Value>, keep: &[&str]) {
    if let Value::Object(b) = body {
        for (k, v) in fields {
            if !(keep.contains(&k.as_str()) && b.contains_key(k)) {
                b.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The key `super::text` wrote at the end of a description: "Raised by hums gateway G (KEY).".
fn key_in(description: &str) -> Option<&str> {
    let at = description.rfind(RAISED)?;
    let line = description[at..].lines().next()?;
    let end = line.rfind(')')?;
    let start = line[..end].rfind('(')?;
    Some(&line[start + 1..end]).filter(|k| !k.is_empty())
}

/// A description with a comment appended.
fn appended(description: &str, comment: &str) -> String {
    format!("{}\n\n{}", description.trim_end(), comment.trim_end())
}

/// A time UpKeep gives: RFC 3339, or epoch milliseconds (seconds when small).
fn when(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc)),
        Value::Number(n) => {
            let n = n.as_i64()?;
            if n > 100_000_000_000 {
                DateTime::from_timestamp_millis(n)
            } else {
                DateTime::from_timestamp(n, 0)
            }
        }
        _ => None,
    }
}

fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

impl Adapter for UpKeep {
    fn name(&self) -> &'static str {
        "upkeep"
    }

    async fn find(&self, wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        let filter = wo
            .asset
            .backend_id
            .as_deref()
            .map_or(String::new(), |a| format!("asset={}&", urlencode(a)));
        let mut open = None;
        for page in 0..MAX_PAGES {
            let path = format!("/work-orders?{filter}limit={PAGE}&offset={}", page * PAGE);
            let list = self.call(Method::GET, &path, None).await?;
            let items = list["results"]
                .as_array()
                .or_else(|| list["result"].as_array())
                .map_or(&[][..], Vec::as_slice);
            for item in items {
                if item["status"].as_str() == Some("complete") {
                    continue;
                }
                let (Some(id), Some(key)) =
                    (id_of(&item["id"]), item["description"].as_str().and_then(key_in))
                else {
                    continue;
                };
                if key == super::reference(wo) {
                    return Ok(Some(Found::Same(id)));
                }
                if open.is_none() && super::same_fault(key, wo) {
                    open = Some(Found::Open(id));
                }
            }
            if items.len() < PAGE {
                break;
            }
        }
        Ok(open)
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        let created = self.call(Method::POST, "/work-orders", Some(&self.body(wo))).await?;
        Ok(id_of(&created["result"]["id"]).or_else(|| id_of(&created["id"])))
    }

    async fn update(&self, wo: &WorkOrder, remote: &str) -> Result<(), DeliveryError> {
        let current = self.order(remote).await?;
        let description =
            appended(current["description"].as_str().unwrap_or_default(), &super::comment(wo));
        let mut patch = json!({ "priority": self.priority(wo), "description": description });
        if let Some(due) = wo.due_by {
            patch["dueDate"] = json!(due.timestamp_millis());
        }
        self.call(Method::PATCH, &format!("/work-orders/{}", urlencode(remote)), Some(&patch))
            .await?;
        Ok(())
    }

    /// The revision's comment is in the order's description.
    async fn landed(&self, wo: &WorkOrder, remote: &str) -> Result<bool, DeliveryError> {
        if remote.is_empty() {
            return Ok(false);
        }
        let marker = format!("hums update (revision {}):", wo.revision);
        Ok(self.order(remote).await?["description"].as_str().is_some_and(|d| d.contains(&marker)))
    }

    /// UpKeep's file upload is not verified: no attachments.
    async fn attach(&self, _remote: &str, _name: &str, _png: &[u8]) -> Result<bool, DeliveryError> {
        Ok(false)
    }

    async fn status(&self, remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        let order = self.order(remote).await?;
        Ok(Some(match order["status"].as_str().unwrap_or_default() {
            "complete" => RemoteStatus::Done(when(&order["completedDate"])),
            _ => RemoteStatus::Open,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_read_back_from_a_description() {
        let d = "Pump (a) is bad.\n\nRaised by hums gateway gw \
            (gw:pump-01:pump.bearing_wear:17).\n\nhums update (revision 2): x";
        assert_eq!(key_in(d), Some("gw:pump-01:pump.bearing_wear:17"));
        assert_eq!(key_in("no key (here)"), None);
        assert_eq!(when(&json!(1_790_000_000_000_i64)).map(|t| t.timestamp()), Some(1_790_000_000));
        assert_eq!(
            when(&json!("2026-11-28T12:00:00.000Z")).map(|t| t.timestamp()),
            Some(1_795_867_200)
        );
    }
}
