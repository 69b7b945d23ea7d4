//! Microsoft Dynamics 365 Field Service work orders through the Dataverse
//! Web API (OData 4.0); `url` is the API root, e.g.
//! `https://org.crm.dynamics.com/api/data/v9.2`. Facts from Microsoft Learn
//! (Field Service "create a work order" example, the msdyn_workorder and
//! annotation references, Dataverse Web API) unless marked:
//! - auth: OAuth 2.0 client credentials at `token_url` (Entra ID, e.g.
//!   `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`) with
//!   `scope` (default `<org origin>/.default`) [V/K]; the bearer token is
//!   kept until 60 s before `expires_in` runs out, and a `401` fetches a new
//!   one once; `OData-MaxVersion`/`OData-Version: 4.0` on every request [V];
//!   a token endpoint that refuses the credentials holds deliveries (retried),
//!   it never dead-letters orders;
//! - create: `POST {url}/msdyn_workorders` → `204` with `OData-EntityId:
//!   …/msdyn_workorders(<guid>)` [V]; `msdyn_systemstatus` 690970000
//!   (Unscheduled) [V]; the asset (`backend_id`, a customer-asset GUID) as
//!   `msdyn_customerasset@odata.bind`, the priority as `msdyn_priority@odata.bind`
//!   to an `msdyn_priority` row when `priorities` maps it (no default: the
//!   table is tenant-defined), the location as
//!   `msdyn_functionallocation@odata.bind` when `locations` maps it [V];
//!   `fields` add what the tenant requires (`msdyn_serviceaccount@odata.bind`,
//!   `msdyn_workordertype@odata.bind`, …) and may override anything but the
//!   summary;
//! - the reference: the summary's first line is `hums:<key>` (the summary is
//!   cut to 4000 characters [K]); no alternate key is needed;
//! - look-up: open orders (`msdyn_systemstatus lt 690970003`) of the customer
//!   asset (`_msdyn_customerasset_value eq <guid>`) [K], or without an asset
//!   GUID those whose summary `startswith` `hums:<gateway:asset:failure mode>:`
//!   [K: startswith on a memo column], paged with `Prefer:
//!   odata.maxpagesize=100` and `@odata.nextLink` [V];
//! - update: `PATCH {url}/msdyn_workorders(<id>)` with `If-Match: *` (never an
//!   upsert) when the priority is mapped, then a note (`annotation`) with
//!   subject `hums update (revision N)` bound by
//!   `objectid_msdyn_workorder@odata.bind` [V/K]; `landed` looks that subject up;
//! - attachments: a note with `filename`, `mimetype` and base64 `documentbody` [K];
//! - status: 690970003 Completed and 690970004 Posted are done (at
//!   `msdyn_timeclosed`), 690970005 Canceled [V].

use super::http::{check, rate_limit_delay, transport, urlencode, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::config::backend::DynamicsSettings;
use crate::workorders::WorkOrder;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Orders per look-up page.
const PAGE: usize = 100;
/// Pages of open orders read per look-up at most.
const MAX_PAGES: usize = 20;
/// Characters of the summary sent.
const SUMMARY: usize = 4000;
/// `msdyn_systemstatus` values.
const UNSCHEDULED: i64 = 690_970_000;
const COMPLETED: i64 = 690_970_003;
const POSTED: i64 = 690_970_004;
const CANCELED: i64 = 690_970_005;

/// Work orders in Dynamics 365 Field Service.
pub struct Dynamics {
    client: reqwest::Client,
    base: String,
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: String,
    /// The bearer token and until when it is used.
    token: Mutex<Option<(String, Instant)>>,
    cfg: DynamicsSettings,
    auth_hold: Duration,
}

fn config_error(key: &str, message: impl Into<String>) -> BackendError {
    BackendError::Config { key: key.into(), message: message.into() }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A value inside a single-quoted OData literal.
fn literal(v: &str) -> String {
    v.replace('\'', "''")
}

fn is_guid(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// The id in an `OData-EntityId` (`…/msdyn_workorders(<guid>)`).
fn entity_id(uri: &str) -> Option<String> {
    let (_, rest) = uri.rsplit_once('(')?;
    let id = rest.split(')').next()?.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The order key in a summary whose first line is `hums:<key>`.
fn summary_key(summary: &str) -> Option<&str> {
    summary.lines().next()?.trim().strip_prefix("hums:")
}

fn note_subject(revision: u32) -> String {
    format!("hums update (revision {revision})")
}

impl Dynamics {
    /// Reads the client secret; `token_url` and `client_id` are required.
    pub fn new(cfg: &DynamicsSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        let base = cfg.common.url.trim_end_matches('/').to_string();
        let origin = reqwest::Url::parse(&base)
            .map_err(|e| config_error("url", format!("not a URL: {e}")))?
            .origin()
            .ascii_serialization();
        let token_url =
            cfg.token_url.clone().filter(|u| !u.trim().is_empty()).ok_or_else(|| {
                config_error("token_url", "the OAuth 2.0 token endpoint (Entra ID) is required")
            })?;
        let client_id =
            cfg.client_id.clone().filter(|c| !c.trim().is_empty()).ok_or_else(|| {
                config_error("client_id", "the application (client) id is required")
            })?;
        Ok(Self {
            client: super::http::http_client(cfg.common.timeout, false)?,
            scope: cfg
                .scope
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| format!("{origin}/.default")),
            base,
            token_url,
            client_id,
            client_secret: super::required(
                &cfg.client_secret_env,
                &cfg.client_secret_file,
                "client_secret",
            )?,
            token: Mutex::new(None),
            cfg: cfg.clone(),
            auth_hold: cfg.common.retry_max,
        })
    }

    /// A bearer token: the cached one unless expired or `refused`, else a new one.
    async fn token(&self, refused: Option<&str>) -> Result<String, DeliveryError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = &*cached {
            if Instant::now() < *until && Some(token.as_str()) != refused {
                return Ok(token.clone());
            }
        }
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("scope", self.scope.as_str()),
        ];
        let not_sent = |reason: String, retry_after| DeliveryError::Transient {
            reason,
            retry_after,
            maybe_delivered: false,
        };
        let sent = self
            .client
            .post(&self.token_url)
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Err(match transport(e) {
                    DeliveryError::Transient { reason, retry_after, .. } => {
                        not_sent(format!("token endpoint: {reason}"), retry_after)
                    }
                    other => other,
                })
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let busy = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            let retry_after = if busy {
                rate_limit_delay(resp.headers(), crate::common::clock::wall().into())
            } else {
                Some(self.auth_hold)
            };
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let code = body["error"].as_str().unwrap_or("no error code").to_string();
            if !busy {
                tracing::error!(%status, code, "the token endpoint refused hums's client \
                    credentials; deliveries are held meanwhile");
            }
            return Err(not_sent(
                format!("token endpoint answered {status} ({code})"),
                retry_after,
            ));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| not_sent(format!("token endpoint answer is not JSON: {e}"), None))?;
        let token = body["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| not_sent("token endpoint answer has no access_token".into(), None))?
            .to_string();
        let expires_in = &body["expires_in"];
        let secs = expires_in
            .as_u64()
            .or_else(|| expires_in.as_str().and_then(|s| s.trim().parse().ok()))
            .unwrap_or(300);
        let until = Instant::now() + Duration::from_secs(secs.saturating_sub(60).max(secs / 2));
        *cached = Some((token.clone(), until));
        Ok(token)
    }

    /// A request with a bearer token, fetching a new token once on a 401.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&'static str, &str)],
    ) -> Result<reqwest::Response, DeliveryError> {
        let mut refused: Option<String> = None;
        loop {
            let token = self.token(refused.as_deref()).await?;
            let mut req = self
                .client
                .request(method.clone(), url)
                .bearer_auth(&token)
                .header("odata-maxversion", "4.0")
                .header("odata-version", "4.0")
                .header("accept", "application/json");
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(transport)?;
            if resp.status() == StatusCode::UNAUTHORIZED && refused.is_none() {
                tracing::info!("Dataverse refused the bearer token (expired?); fetching a new one");
                refused = Some(token);
                continue;
            }
            return check(resp, self.auth_hold).await;
        }
    }

    async fn json(
        &self,
        url: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Value, DeliveryError> {
        let resp = self.send(Method::GET, url, None, headers).await?;
        resp.json().await.map_err(|e| DeliveryError::Transient {
            reason: format!("Dataverse answer is not JSON: {e}"),
            retry_after: None,
            maybe_delivered: true,
        })
    }

    fn record(&self, id: &str) -> String {
        format!("{}/msdyn_workorders({id})", self.base)
    }

    fn asset(wo: &WorkOrder) -> Option<&str> {
        wo.asset.backend_id.as_deref().map(str::trim).filter(|a| !a.is_empty())
    }

    /// The bind of the order's priority, if `priorities` maps it.
    fn priority_bind(&self, wo: &WorkOrder) -> Option<String> {
        self.cfg
            .common
            .priorities
            .get(&wo.priority.to_string())
            .map(|p| format!("/msdyn_priorities({})", p.trim()))
    }

    /// A note on the order `remote`.
    async fn note(&self, remote: &str, mut note: Value) -> Result<(), DeliveryError> {
        note["objectid_msdyn_workorder@odata.bind"] = json!(format!("/msdyn_workorders({remote})"));
        self.send(Method::POST, &format!("{}/annotations", self.base), Some(&note), &[]).await?;
        Ok(())
    }
}

impl Adapter for Dynamics {
    fn name(&self) -> &'static str {
        "dynamics"
    }

    async fn find(&self, wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        let key = super::reference(wo);
        let mut filter = match Self::asset(wo).filter(|a| is_guid(a)) {
            Some(asset) => format!("_msdyn_customerasset_value eq {asset}"),
            None => {
                let fault = key.rsplit_once(':').map_or(key, |(p, _)| p);
                format!("startswith(msdyn_workordersummary,'hums:{}:')", literal(fault))
            }
        };
        filter.push_str(&format!(" and msdyn_systemstatus lt {COMPLETED}"));
        let mut next = Some(format!(
            "{}/msdyn_workorders?$select=msdyn_workorderid,msdyn_workordersummary&$filter={}",
            self.base,
            urlencode(&filter)
        ));
        let prefer = format!("odata.maxpagesize={PAGE}");
        let mut open = None;
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let page = self.json(&url, &[("prefer", prefer.as_str())]).await?;
            for item in page["value"].as_array().into_iter().flatten() {
                let Some(id) = item["msdyn_workorderid"].as_str().filter(|i| !i.is_empty()) else {
                    continue;
                };
                let Some(r) = item["msdyn_workordersummary"].as_str().and_then(summary_key) else {
                    continue;
                };
                if r == key {
                    return Ok(Some(Found::Same(id.to_string())));
                }
                if open.is_none() && super::same_fault(r, wo) {
                    open = Some(Found::Open(id.to_string()));
                }
            }
            next = page["@odata.nextLink"].as_str().filter(|n| *n != url).map(str::to_string);
        }
        Ok(open)
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        let mut b = json!({
            "msdyn_systemstatus": UNSCHEDULED,
        });
        if let Some(asset) = Self::asset(wo) {
            b["msdyn_customerasset@odata.bind"] = json!(format!("/msdyn_customerassets({asset})"));
        }
        if let Some(p) = self.priority_bind(wo) {
            b["msdyn_priority@odata.bind"] = json!(p);
        }
        if let Some(fl) = super::location(&self.cfg.common, wo) {
            b["msdyn_functionallocation@odata.bind"] =
                json!(format!("/msdyn_functionallocations({fl})"));
        }
        if let Some(o) = b.as_object_mut() {
            for (k, v) in &self.cfg.fields {
                o.insert(k.clone(), v.clone());
            }
        }
        let summary = format!("hums:{}\n{}", super::reference(wo), super::text(wo));
        b["msdyn_workordersummary"] = json!(truncate(&summary, SUMMARY));
        let resp = self
            .send(Method::POST, &format!("{}/msdyn_workorders", self.base), Some(&b), &[])
            .await?;
        let from_header =
            resp.headers().get("odata-entityid").and_then(|v| v.to_str().ok()).and_then(entity_id);
        if from_header.is_some() {
            return Ok(from_header);
        }
        // `Prefer: return=representation` (e.g. from a proxy) answers 201 with the row.
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok(body["msdyn_workorderid"].as_str().map(str::to_string))
    }

    async fn update(&self, wo: &WorkOrder, remote: &str) -> Result<(), DeliveryError> {
        // The PATCH first: repeating it is harmless, repeating the note is not.
        if let Some(p) = self.priority_bind(wo) {
            let patch = json!({ "msdyn_priority@odata.bind": p });
            self.send(Method::PATCH, &self.record(remote), Some(&patch), &[("if-match", "*")])
                .await?;
        }
        self.note(
            remote,
            json!({ "subject": note_subject(wo.revision), "notetext": super::comment(wo) }),
        )
        .await
    }

    /// Whether the order has this revision's note.
    async fn landed(&self, wo: &WorkOrder, remote: &str) -> Result<bool, DeliveryError> {
        if remote.is_empty() {
            return Ok(false);
        }
        let filter = format!(
            "_objectid_value eq {} and subject eq '{}'",
            remote,
            literal(&note_subject(wo.revision))
        );
        let url = format!(
            "{}/annotations?$select=annotationid&$filter={}&$top=1",
            self.base,
            urlencode(&filter)
        );
        match self.json(&url, &[]).await {
            Ok(v) => Ok(v["value"].as_array().is_some_and(|a| !a.is_empty())),
            Err(DeliveryError::Permanent { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn attach(&self, remote: &str, name: &str, png: &[u8]) -> Result<bool, DeliveryError> {
        if !self.cfg.attachments {
            return Ok(false);
        }
        let note = json!({
            "subject": format!("hums evidence: {name}"),
            "filename": name,
            "mimetype": "image/png",
            "documentbody": base64::engine::general_purpose::STANDARD.encode(png),
        });
        self.note(remote, note).await?;
        Ok(true)
    }

    async fn status(&self, remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        let url = format!("{}?$select=msdyn_systemstatus,msdyn_timeclosed", self.record(remote));
        let v = self.json(&url, &[]).await?;
        let closed = v["msdyn_timeclosed"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        Ok(Some(match v["msdyn_systemstatus"].as_i64() {
            Some(COMPLETED | POSTED) => RemoteStatus::Done(closed),
            Some(CANCELED) => RemoteStatus::Cancelled,
            _ => RemoteStatus::Open,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_keys() {
        assert_eq!(
            entity_id(
                "https://org.crm.dynamics.com/api/data/v9.2/\
                 msdyn_workorders(0f8e7c1a-0000-4000-8000-000000000001)"
            )
            .as_deref(),
            Some("0f8e7c1a-0000-4000-8000-000000000001")
        );
        assert_eq!(entity_id("no id"), None);
        assert_eq!(summary_key("hums:gw:a:m:1\nrest"), Some("gw:a:m:1"));
        assert_eq!(summary_key("a manual order"), None);
        assert!(is_guid("0f8e7c1a-0000-4000-8000-000000000001"));
        assert!(!is_guid("pump-01"));
    }
}
