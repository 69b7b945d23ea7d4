//! SAP S/4HANA Plant Maintenance: maintenance notifications through the
//! OData V2 service `API_MAINTNOTIFICATION`; `url` is the service root (e.g.
//! `https://host/sap/opu/odata/sap/API_MAINTNOTIFICATION`). Facts from SAP's
//! API hub (`OP_API_MAINTNOTIFICATION`) and SAP Help unless marked:
//! - auth: Basic (a communication user) [V]; every write first fetches a CSRF
//!   token (`GET {root}/` with `X-CSRF-Token: Fetch`) and sends it back with
//!   the session cookies of that fetch (a cookie store) [V/S]; a write
//!   answered `403` with `x-csrf-token: Required` (session expired) fetches a
//!   new token once and is sent again;
//! - create: `POST {root}/MaintenanceNotification` → `201 {"d":{"MaintenanceNotification":…}}`
//!   [V/S]: `NotificationText` (40 characters [S]), `MaintNotifLongTextForEdit`
//!   (the body as long text, cut to 1333 characters [S: the SAP Cloud SDK's
//!   length]), `MaintPriority` (standard PM priorities `1` very high … `4` low,
//!   customisable [K]), `TechnicalObject` + `TechObjIsEquipOrFuncnlLoc`
//!   (`EAMS_EQUI` for the asset's equipment; an asset without one is raised
//!   against its functional location from `locations`, `EAMS_FL`) [V];
//!   `fields` add the rest (`NotificationType`, `MaintenancePlanningPlant`, …)
//!   and may override anything but the reference;
//! - update: `PATCH {root}/MaintenanceNotification('<id>')` with `If-Match: *`
//!   [K] and the comment in `MaintNotifLongTextForEdit`, which SAP appends to
//!   the long text as a new block [S, SAP Help: notification long texts are
//!   append-only]; the whole long text reads back as `MaintNotificationLongText`
//!   [S], which `landed` searches for the revision's marker;
//! - look-up: `$filter=MaintNotifExtReferenceNumber eq '…'` and open
//!   notifications of the technical object, `$filter=TechnicalObject eq '…' and
//!   (NotifProcessingPhase eq '1' or … '2' or … '3')` (outstanding, postponed,
//!   in process [K]) paged with `$top`/`$skip` [S];
//! - attachments: `POST …/API_CV_ATTACHMENT_SRV/AttachmentContentSet` (the
//!   service next to this one, with its own CSRF token) with `Slug`,
//!   `BusinessObjectTypeName: PMQMEL` and `LinkedSAPObjectKey` (the
//!   notification number, zero-padded to 12 digits [K]) [V/S];
//! - status: `NotifProcessingPhase` `4` completed (with
//!   `NotificationCompletionDate` and `CompletionTime`, else `MalfunctionEndDate`
//!   and `MalfunctionEndTime`, taken as UTC), `5` deleted [K]; a completed
//!   notification with a rejection reason counts as cancelled.
//!
//! The reference: `MaintNotifExtReferenceNumber` is short (20 characters
//! assumed), too short for the key, so it holds a digest of it: `H`, then 12
//! hex digits of SHA-256 of the fault (`gateway:asset:failure mode`, the key
//! without its episode), then 7 hex digits of SHA-256 of the whole key. The
//! whole reference identifies this order (`Found::Same`); its first 13
//! characters identify the fault, so an open notification with the same prefix
//! is an earlier episode (`Found::Open`). The key itself is in the long text.

use super::http::{check, transport, urlencode, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::config::backend::SapSettings;
use crate::workorders::WorkOrder;
use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::Mutex;

/// Notifications per look-up page.
const PAGE: usize = 100;
/// Pages of open notifications read per look-up at most.
const MAX_PAGES: usize = 20;
/// `NotificationText` holds 40 characters.
const SHORT_TEXT: usize = 40;
/// `MaintNotifLongTextForEdit` holds this many characters.
const LONG_TEXT: usize = 1333;
/// Reference characters that identify the fault: `H` and 12 hex digits.
const FAULT_PREFIX: usize = 13;

/// An OData service and its cached CSRF token.
struct Service {
    root: String,
    csrf: Mutex<Option<String>>,
}

impl Service {
    fn new(root: String) -> Self {
        Self { root, csrf: Mutex::new(None) }
    }
}

/// What a write sends.
enum Payload {
    Json(Value),
    Png(Vec<u8>),
}

/// Maintenance notifications in SAP S/4HANA.
pub struct Sap {
    client: reqwest::Client,
    notifications: Service,
    attachments: Service,
    user: String,
    password: String,
    cfg: SapSettings,
    auth_hold: Duration,
}

fn config_error(key: &str, message: impl Into<String>) -> BackendError {
    BackendError::Config { key: key.into(), message: message.into() }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn sha_hex(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The notification's external reference for an order key (see the module doc).
fn ext_ref(key: &str) -> String {
    let fault = key.rsplit_once(':').map_or(key, |(p, _)| p);
    format!("H{}{}", &sha_hex(fault)[..FAULT_PREFIX - 1], &sha_hex(key)[..7])
}

/// A value inside a single-quoted OData literal.
fn literal(v: &str) -> String {
    v.replace('\'', "''")
}

/// A file name as a header value: printable ASCII only.
fn header_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect()
}

/// A notification number as an object key: 12 digits, zero-padded.
fn object_key(id: &str) -> String {
    if !id.is_empty() && id.len() < 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        format!("{id:0>12}")
    } else {
        id.to_string()
    }
}

/// The technical object an order is raised against, and its kind.
fn technical_object(cfg: &SapSettings, wo: &WorkOrder) -> Option<(String, &'static str)> {
    match wo.asset.backend_id.as_deref().filter(|e| !e.is_empty()) {
        Some(equipment) => Some((equipment.to_string(), "EAMS_EQUI")),
        None => super::location(&cfg.common, wo).map(|fl| (fl, "EAMS_FL")),
    }
}

/// The entities of an OData V2 answer (`d.results`, or `d` as a list).
fn results(v: &Value) -> &[Value] {
    v["d"]["results"].as_array().or_else(|| v["d"].as_array()).map_or(&[][..], Vec::as_slice)
}

/// An OData V2 date (`/Date(ms)/`, `/Date(ms+0000)/` or RFC 3339) plus an
/// `Edm.Time` (`PT10H30M00S`) if given.
fn odata_time(date: &Value, time: &Value) -> Option<DateTime<Utc>> {
    let s = date.as_str()?.trim();
    let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) else {
        return DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc));
    };
    let end = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map_or(inner.len(), |(i, _)| i);
    let at = DateTime::from_timestamp_millis(inner[..end].parse().ok()?)?;
    match time.as_str().and_then(edm_time) {
        Some(t) => at.checked_add_signed(t),
        None => Some(at),
    }
}

/// `PT10H30M00S` as a duration.
fn edm_time(s: &str) -> Option<TimeDelta> {
    let mut seconds = 0i64;
    let mut number = String::new();
    for c in s.strip_prefix("PT")?.chars() {
        match c {
            '0'..='9' => number.push(c),
            'H' | 'M' | 'S' => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                seconds += n * match c {
                    'H' => 3600,
                    'M' => 60,
                    _ => 1,
                };
            }
            _ => return None,
        }
    }
    TimeDelta::try_seconds(seconds)
}

/// Whether SAP refused a write for want of a (valid) CSRF token.
fn csrf_required(resp: &reqwest::Response) -> bool {
    resp.status() == StatusCode::FORBIDDEN
        && resp
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("required"))
}

impl Sap {
    /// Reads the user name and password; `url` must be the service root.
    pub fn new(cfg: &SapSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        let root = cfg.common.url.trim_end_matches('/').to_string();
        reqwest::Url::parse(&root).map_err(|e| config_error("url", format!("not a URL: {e}")))?;
        let parent = root
            .rsplit_once('/')
            .map(|(parent, _)| parent)
            .filter(|parent| parent.contains("://"))
            .ok_or_else(|| {
                config_error(
                    "url",
                    "give the service root, e.g. \
                    https://host/sap/opu/odata/sap/API_MAINTNOTIFICATION",
                )
            })?;
        let attachments = format!("{parent}/API_CV_ATTACHMENT_SRV");
        // The CSRF token is bound to the session cookies of its fetch.
        let client = super::http::http_client(cfg.common.timeout, true)?;
        Ok(Self {
            client,
            notifications: Service::new(root),
            attachments: Service::new(attachments),
            user: super::required(&cfg.login.username_env, &cfg.login.username_file, "username")?,
            password: super::required(
                &cfg.login.password_env,
                &cfg.login.password_file,
                "password",
            )?,
            cfg: cfg.clone(),
            auth_hold: cfg.common.retry_max,
        })
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client
            .get(url)
            .basic_auth(&self.user, Some(&self.password))
            .header("accept", "application/json")
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value, DeliveryError> {
        let resp = check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        resp.json().await.map_err(|e| DeliveryError::Transient {
            reason: format!("SAP answer is not JSON: {e}"),
            retry_after: None,
            maybe_delivered: true,
        })
    }

    /// The URL of a notification.
    fn entity(&self, id: &str) -> String {
        format!(
            "{}/MaintenanceNotification('{}')",
            self.notifications.root,
            urlencode(&literal(id))
        )
    }

    /// Notifications matching an OData filter, one page.
    fn query(&self, filter: &str, top: usize, skip: usize) -> String {
        format!(
            "{}/MaintenanceNotification?$filter={}\
             &$select=MaintenanceNotification,MaintNotifExtReferenceNumber\
             &$top={top}&$skip={skip}&$format=json",
            self.notifications.root,
            urlencode(filter)
        )
    }

    /// The service's CSRF token: the cached one unless it is `refused`, else a new one.
    async fn csrf(&self, svc: &Service, refused: Option<&str>) -> Result<String, DeliveryError> {
        let mut cached = svc.csrf.lock().await;
        if let Some(token) = cached.as_deref() {
            if Some(token) != refused {
                return Ok(token.to_string());
            }
        }
        let req = self.get(&format!("{}/", svc.root)).header("x-csrf-token", "Fetch");
        let sent = req.send().await.map_err(|e| match transport(e) {
            // Nothing was written yet.
            DeliveryError::Transient { reason, retry_after, .. } => {
                DeliveryError::Transient { reason, retry_after, maybe_delivered: false }
            }
            other => other,
        })?;
        let resp = check(sent, self.auth_hold).await?;
        let token = resp
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("required"))
            .map(str::to_string)
            .ok_or_else(|| DeliveryError::Transient {
                reason: "SAP answered the CSRF token fetch without a token".into(),
                retry_after: None,
                maybe_delivered: false,
            })?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// A write with the service's CSRF token, fetching a new token once if SAP requires one.
    async fn write(
        &self,
        svc: &Service,
        method: Method,
        url: &str,
        headers: &[(&'static str, String)],
        payload: &Payload,
    ) -> Result<reqwest::Response, DeliveryError> {
        let mut refused: Option<String> = None;
        loop {
            let token = self.csrf(svc, refused.as_deref()).await?;
            let mut req = self
                .client
                .request(method.clone(), url)
                .basic_auth(&self.user, Some(&self.password))
                .header("x-csrf-token", token.as_str())
                .header("accept", "application/json");
            for (name, value) in headers {
                req = req.header(*name, value.as_str());
            }
            req = match payload {
                Payload::Json(v) => req.json(v),
                Payload::Png(bytes) => req.header("content-type", "image/png").body(bytes.clone()),
            };
            let resp = req.send().await.map_err(transport)?;
            if refused.is_none() && csrf_required(&resp) {
                tracing::info!(service = %svc.root, "SAP refused the CSRF token (session \
                    expired); fetching a new one");
                refused = Some(token);
                continue;
            }
            return check(resp, self.auth_hold).await;
        }
    }
}

impl Adapter for Sap {
    fn name(&self) -> &'static str {
        "sap"
    }

    async fn find(&self, wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        let reference = ext_ref(super::reference(wo));
        let id = |n: &Value| {
            n["MaintenanceNotification"].as_str().filter(|i| !i.is_empty()).map(str::to_string)
        };
        let exact = format!("MaintNotifExtReferenceNumber eq '{reference}'");
        let found = self.json(self.get(&self.query(&exact, 1, 0))).await?;
        if let Some(same) = results(&found).iter().find_map(id) {
            return Ok(Some(Found::Same(same)));
        }
        // An earlier episode: an open notification of the technical object with the fault's prefix.
        let Some((object, _)) = technical_object(&self.cfg, wo) else {
            return Ok(None);
        };
        let open = format!(
            "TechnicalObject eq '{}' and (NotifProcessingPhase eq '1' \
             or NotifProcessingPhase eq '2' or NotifProcessingPhase eq '3')",
            literal(&object)
        );
        for page in 0..MAX_PAGES {
            let list = self.json(self.get(&self.query(&open, PAGE, page * PAGE))).await?;
            let items = results(&list);
            for n in items {
                let Some(r) = n["MaintNotifExtReferenceNumber"].as_str() else { continue };
                if r.len() == reference.len() && r.starts_with(&reference[..FAULT_PREFIX]) {
                    if let Some(i) = id(n) {
                        return Ok(Some(if r == reference {
                            Found::Same(i)
                        } else {
                            Found::Open(i)
                        }));
                    }
                }
            }
            if items.len() < PAGE {
                break;
            }
        }
        Ok(None)
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        let mut b = json!({
            "NotificationText": truncate(&wo.title, SHORT_TEXT),
            "MaintNotifLongTextForEdit": truncate(&super::text(wo), LONG_TEXT),
            "MaintPriority": super::priority(&self.cfg.common, wo.priority, ["1", "2", "3", "4"]),
        });
        if let Some((object, kind)) = technical_object(&self.cfg, wo) {
            b["TechnicalObject"] = json!(object);
            b["TechObjIsEquipOrFuncnlLoc"] = json!(kind);
        }
        if let Some(o) = b.as_object_mut() {
            for (k, v) in &self.cfg.fields {
                o.insert(k.clone(), v.clone());
            }
        }
        b["MaintNotifExtReferenceNumber"] = json!(ext_ref(super::reference(wo)));
        let url = format!("{}/MaintenanceNotification", self.notifications.root);
        let resp =
            self.write(&self.notifications, Method::POST, &url, &[], &Payload::Json(b)).await?;
        let created: Value = resp.json().await.map_err(|e| DeliveryError::Transient {
            reason: format!("SAP answer is not JSON: {e}"),
            retry_after: None,
            maybe_delivered: true,
        })?;
        Ok(created["d"]["MaintenanceNotification"]
            .as_str()
            .filter(|i| !i.is_empty())
            .map(str::to_string))
    }

    async fn update(&self, wo: &WorkOrder, remote: &str) -> Result<(), DeliveryError> {
        let patch = json!({
            "MaintPriority": super::priority(&self.cfg.common, wo.priority, ["1", "2", "3", "4"]),
            "MaintNotifLongTextForEdit": truncate(&super::comment(wo), LONG_TEXT),
        });
        let headers = [("if-match", "*".to_string())];
        self.write(
            &self.notifications,
            Method::PATCH,
            &self.entity(remote),
            &headers,
            &Payload::Json(patch),
        )
        .await?;
        Ok(())
    }

    /// Whether the notification's long text has this revision's comment.
    async fn landed(&self, wo: &WorkOrder, remote: &str) -> Result<bool, DeliveryError> {
        if remote.is_empty() {
            return Ok(false);
        }
        let url = format!("{}?$select=MaintNotificationLongText&$format=json", self.entity(remote));
        let marker = format!("hums update (revision {}):", wo.revision);
        match self.json(self.get(&url)).await {
            Ok(v) => Ok(v["d"]["MaintNotificationLongText"]
                .as_str()
                .is_some_and(|t| t.contains(&marker))),
            Err(DeliveryError::Permanent { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn attach(&self, remote: &str, name: &str, png: &[u8]) -> Result<bool, DeliveryError> {
        if !self.cfg.attachments {
            return Ok(false);
        }
        let url = format!("{}/AttachmentContentSet", self.attachments.root);
        let headers = [
            ("slug", header_safe(name)),
            ("businessobjecttypename", "PMQMEL".to_string()),
            ("linkedsapobjectkey", object_key(remote)),
        ];
        self.write(&self.attachments, Method::POST, &url, &headers, &Payload::Png(png.to_vec()))
            .await?;
        Ok(true)
    }

    async fn status(&self, remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        let v = self.json(self.get(&format!("{}?$format=json", self.entity(remote)))).await?;
        let d = &v["d"];
        let rejected =
            d["MaintNotifRejectionReasonCode"].as_str().is_some_and(|c| !c.trim().is_empty());
        Ok(Some(match d["NotifProcessingPhase"].as_str().unwrap_or_default() {
            "5" => RemoteStatus::Cancelled,
            "4" if rejected => RemoteStatus::Cancelled,
            "4" => RemoteStatus::Done(
                odata_time(&d["NotificationCompletionDate"], &d["CompletionTime"])
                    .or_else(|| odata_time(&d["MalfunctionEndDate"], &d["MalfunctionEndTime"])),
            ),
            _ => RemoteStatus::Open,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_identify_the_order_and_its_fault() {
        let a = ext_ref("gw:pump-01:pump.bearing_wear:1790000000000");
        let b = ext_ref("gw:pump-01:pump.bearing_wear:1780000000000");
        let c = ext_ref("gw:pump-01:pump.cavitation:1790000000000");
        assert_eq!(a.len(), 20);
        assert!(a.starts_with('H'));
        assert_ne!(a, b);
        assert_eq!(a[..FAULT_PREFIX], b[..FAULT_PREFIX]);
        assert_ne!(a[..FAULT_PREFIX], c[..FAULT_PREFIX]);
    }

    #[test]
    fn odata_dates() {
        let t = odata_time(&json!("/Date(1795737600000)/"), &json!("PT10H30M00S")).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-27T10:30:00+00:00");
        assert!(odata_time(&json!("/Date(1795737600000+0000)/"), &Value::Null).is_some());
        assert!(odata_time(&json!(""), &Value::Null).is_none());
        assert_eq!(object_key("10000123"), "000010000123");
    }
}
