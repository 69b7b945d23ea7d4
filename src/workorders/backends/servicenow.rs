//! ServiceNow (Table API on the instance URL, e.g. `https://acme.service-now.com`).
//!
//! API facts (ServiceNow's Table and Attachment API docs, see
//! `shared/backends/README.md`; [V] documented, [K] background knowledge):
//! - HTTP Basic with a user name and password on every call [V].
//! - Orders go to the table `table` (default `incident`; `wm_order` for Field
//!   Service): `POST /api/now/table/{table}` → `201 {"result": {"sys_id", "number", …}}`;
//!   the sys_id is the order's id [V/K].
//! - Fields: `short_description` (the title, at most 160 characters),
//!   `description`, `impact` and `urgency` (1 high … 3 low; ServiceNow derives
//!   `priority` from them) [K], `cmdb_ci` (the asset's backend id), `location`,
//!   `correlation_id` (the order's key; the column holds 100 characters) and
//!   `correlation_display` "hums" [K], plus the config's fixed `fields`.
//! - hums priority → impact,urgency: 1 → 1,1; 2 → 1,2; 3 → 2,2; 4 → 3,3. A
//!   `priorities` entry overrides one as "impact,urgency" (e.g. `"2" = "2,1"`).
//! - Look-up `GET /api/now/table/{table}` with
//!   `sysparm_query=active=true^correlation_idSTARTSWITH<gw:asset:mode:>^ORDERBYsys_created_on`,
//!   `sysparm_fields=sys_id,correlation_id`, `sysparm_limit=100` and
//!   `sysparm_offset`, paged until a short page [V].
//! - Update `PATCH /api/now/table/{table}/{sys_id}` with `work_notes` (the
//!   comment) and the new impact and urgency [V/K]. Whether a revision landed
//!   would need the journal (`sys_journal_field`, often closed by ACLs): `landed`
//!   says no and the update is sent again.
//! - Attach `POST /api/now/attachment/file?table_name=&table_sys_id=&file_name=`,
//!   raw body with the file's Content-Type → 201 [V].
//! - Status: incident `state` 6 Resolved and 7 Closed are Done (at
//!   `resolved_at`, else `closed_at`: "YYYY-MM-DD HH:MM:SS" UTC), 8 Canceled is
//!   Cancelled [K]; other tables: an inactive record is Done at `closed_at`.
//! - Rate limits: 429 with `Retry-After` is honoured by `check`.

use super::http::{check, http_client, transport, urlencode, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::config::backend::ServicenowSettings;
use crate::workorders::WorkOrder;
use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Records listed per page.
const PAGE: usize = 100;
/// Pages of records read per look-up at most.
const MAX_PAGES: usize = 20;
/// hums priority 1 (critical) … 4 (low) → "impact,urgency".
const PRIORITIES: [&str; 4] = ["1,1", "1,2", "2,2", "3,3"];
/// The most `short_description` holds.
const SHORT: usize = 160;

/// The ServiceNow adapter: the Table API with HTTP Basic.
pub struct ServiceNow {
    client: reqwest::Client,
    base: String,
    user: String,
    password: String,
    table: String,
    cfg: ServicenowSettings,
    auth_hold: Duration,
}

impl ServiceNow {
    /// Reads the user name and password from the environment variables or files the config names.
    /// The table name and "impact,urgency" priorities are checked by `ServicenowSettings::check`.
    pub fn new(cfg: &ServicenowSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        let table = cfg
            .table
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or("incident")
            .to_string();
        Ok(Self {
            client: http_client(cfg.common.timeout, false)?,
            base: cfg.common.url.trim_end_matches('/').to_string(),
            user: super::required(&cfg.login.username_env, &cfg.login.username_file, "username")?,
            password: super::required(
                &cfg.login.password_env,
                &cfg.login.password_file,
                "password",
            )?,
            table,
            cfg: cfg.clone(),
            auth_hold: cfg.common.retry_max,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .header(reqwest::header::ACCEPT, "application/json")
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, DeliveryError> {
        let resp = check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        let text = resp.text().await.map_err(transport)?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| DeliveryError::Transient {
            reason: format!("ServiceNow answer is not JSON: {e}"),
            retry_after: None,
            maybe_delivered: true,
        })
    }

    fn record(&self, sys_id: &str) -> String {
        format!("/api/now/table/{}/{}", self.table, urlencode(sys_id))
    }

    /// Impact and urgency for the order's priority.
    fn impact_urgency(&self, wo: &WorkOrder) -> (u8, u8) {
        parse_impact_urgency(&super::priority(&self.cfg.common, wo.priority, PRIORITIES))
            .unwrap_or((2, 2))
    }

    fn body(&self, wo: &WorkOrder) -> Value {
        let (impact, urgency) = self.impact_urgency(wo);
        let mut b = json!({
            "short_description": short(&wo.title),
            "description": super::text(wo),
            "impact": impact.to_string(),
            "urgency": urgency.to_string(),
            "correlation_id": super::reference(wo),
            "correlation_display": "hums",
        });
        if let Some(ci) = &wo.asset.backend_id {
            b["cmdb_ci"] = json!(ci);
        }
        if let Some(loc) = super::location(&self.cfg.common, wo) {
            b["location"] = json!(loc);
        }
        // The key is never replaced by the fixed fields.
        merge(&mut b, &self.cfg.fields, &["correlation_id"]);
        b
    }
}

/// "impact,urgency", each 1 to 3.
fn parse_impact_urgency(s: &str) -> Option<(u8, u8)> {
    crate::config::backend::impact_urgency(s)
}

/// The title cut to what `short_description` holds.
fn short(title: &str) -> String {
    if title.chars().count() <= SHORT {
        return title.to_string();
    }
    let mut s: String = title.chars().take(SHORT - 1).collect();
    s.push('…');
    s
}

/// Adds the config's fixed fields to a new record; `keep` are hums's own fields they never replace.
fn merge(body: &mut Value, fields: &BTreeMap<String, Value>, keep: &[&str]) {
    if let Value::Object(b) = body {
        for (k, v) in fields {
            if !(keep.contains(&k.as_str()) && b.contains_key(k)) {
                b.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A glide date-time as the Table API gives it ("YYYY-MM-DD HH:MM:SS", UTC).
fn glide_time(v: &Value) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(v.as_str()?.trim(), "%Y-%m-%d %H:%M:%S").ok().map(|t| t.and_utc())
}

/// A field's value as text (the Table API gives strings; numbers and booleans are tolerated).
fn field(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

impl Adapter for ServiceNow {
    fn name(&self) -> &'static str {
        "servicenow"
    }

    async fn find(&self, wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        // Every episode of this fault from this gateway: the key up to its episode.
        let Some((prefix, _)) = wo.idempotency_key.rsplit_once(':') else { return Ok(None) };
        let query = urlencode(&format!(
            "active=true^correlation_idSTARTSWITH{prefix}:^ORDERBYsys_created_on"
        ));
        let mut open = None;
        for page in 0..MAX_PAGES {
            let path = format!(
                "/api/now/table/{}?sysparm_query={query}&sysparm_fields=sys_id,correlation_id\
                 &sysparm_limit={PAGE}&sysparm_offset={}",
                self.table,
                page * PAGE
            );
            let list = self.send(self.request(Method::GET, &path)).await?;
            let records = list["result"].as_array().map_or(&[][..], Vec::as_slice);
            for r in records {
                let (Some(id), Some(key)) =
                    (r["sys_id"].as_str().filter(|s| !s.is_empty()), r["correlation_id"].as_str())
                else {
                    continue;
                };
                if key == super::reference(wo) {
                    return Ok(Some(Found::Same(id.to_string())));
                }
                if open.is_none() && super::same_fault(key, wo) {
                    open = Some(Found::Open(id.to_string()));
                }
            }
            if records.len() < PAGE {
                break;
            }
        }
        Ok(open)
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        let created = self
            .send(
                self.request(Method::POST, &format!("/api/now/table/{}", self.table))
                    .json(&self.body(wo)),
            )
            .await?;
        Ok(created["result"]["sys_id"].as_str().filter(|s| !s.is_empty()).map(str::to_string))
    }

    async fn update(&self, wo: &WorkOrder, remote: &str) -> Result<(), DeliveryError> {
        let (impact, urgency) = self.impact_urgency(wo);
        let patch = json!({
            "work_notes": super::comment(wo),
            "impact": impact.to_string(),
            "urgency": urgency.to_string(),
        });
        self.send(self.request(Method::PATCH, &self.record(remote)).json(&patch)).await?;
        Ok(())
    }

    async fn attach(&self, remote: &str, name: &str, png: &[u8]) -> Result<bool, DeliveryError> {
        if !self.cfg.attachments {
            return Ok(false);
        }
        let path = format!(
            "/api/now/attachment/file?table_name={}&table_sys_id={}&file_name={}",
            self.table,
            urlencode(remote),
            urlencode(name)
        );
        let req = self
            .request(Method::POST, &path)
            .header(reqwest::header::CONTENT_TYPE, "image/png")
            .body(png.to_vec());
        self.send(req).await?;
        Ok(true)
    }

    async fn status(&self, remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        let path =
            format!("{}?sysparm_fields=state,active,resolved_at,closed_at", self.record(remote));
        let one = self.send(self.request(Method::GET, &path)).await?;
        let r = &one["result"];
        let closed_at = || glide_time(&r["resolved_at"]).or_else(|| glide_time(&r["closed_at"]));
        if self.table == "incident" {
            return Ok(Some(match field(&r["state"]).as_str() {
                "6" | "7" => RemoteStatus::Done(closed_at()),
                "8" => RemoteStatus::Cancelled,
                _ => RemoteStatus::Open,
            }));
        }
        Ok(Some(if field(&r["active"]) == "false" {
            RemoteStatus::Done(
                glide_time(&r["closed_at"]).or_else(|| glide_time(&r["resolved_at"])),
            )
        } else {
            RemoteStatus::Open
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_times_and_titles() {
        assert_eq!(parse_impact_urgency("1,2"), Some((1, 2)));
        assert_eq!(parse_impact_urgency(" 3 , 3 "), Some((3, 3)));
        assert_eq!(parse_impact_urgency("4,1"), None);
        assert_eq!(parse_impact_urgency("high"), None);
        assert_eq!(
            glide_time(&json!("2026-11-30 08:15:00")).map(|t| t.timestamp()),
            Some(1_796_026_500)
        );
        assert_eq!(glide_time(&json!("")), None);
        assert_eq!(short(&"x".repeat(200)).chars().count(), SHORT);
        assert_eq!(short("Pump 1"), "Pump 1");
    }
}
