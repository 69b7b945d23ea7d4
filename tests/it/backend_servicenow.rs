//! The ServiceNow adapter against a stateful stub of an instance's Table and
//! Attachment APIs on loopback.
//!
//! The stub models: HTTP Basic on every call (401 otherwise); the `incident`
//! table (`POST /api/now/table/incident` → `201 {"result": {sys_id, number, …}}`;
//! `GET` with `sysparm_query` — `field=value`, `correlation_idSTARTSWITH…` and
//! `ORDERBY…` terms joined by `^`, filtered server-side like the instance does —
//! `sysparm_fields`, `sysparm_limit`, `sysparm_offset` and `X-Total-Count`;
//! `GET` and `PATCH /api/now/table/incident/{sys_id}`, `work_notes` going to the
//! journal); `POST /api/now/attachment/file?table_name=&table_sys_id=&file_name=`
//! with a raw body; and a 429 with `Retry-After: 1` on the first create.
//!
//! Tested: the Basic header on every request; one create carrying
//! `short_description`, impact and urgency from the priority, `cmdb_ci`,
//! `location`, the key in `correlation_id` (which the fixed `fields` cannot
//! replace) and the fixed fields; the escalation as work notes with the new
//! impact and urgency on that record; a 429 waited out with the incident created
//! once; the look-up paging (offset 100) through 150 active records the query
//! matches — their `correlation_id` starts with the fault's prefix but is not a
//! hums key of it, which is the only way such a narrow query returns a second
//! page — to an earlier episode of the same fault, which gets the raise as work
//! notes instead of a new incident; the chart uploaded as raw `image/png`; and
//! incident states 6/7 read as done (at `resolved_at`/`closed_at`), 8 as cancelled.

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use hums::config::backend::{Common, Login, ServicenowSettings};
use hums::store::Store;
use hums::workorders::backends::servicenow::ServiceNow;
use hums::workorders::backends::{Adapter, RemoteStatus};
use hums::workorders::WorkOrder;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "gw:pump-01:pump.bearing_wear:1790000000000";
/// An earlier episode of the same fault, still active at the instance.
const EARLIER: &str = "gw:pump-01:pump.bearing_wear:1780000000000";
/// An even earlier episode, resolved (inactive).
const RESOLVED: &str = "gw:pump-01:pump.bearing_wear:1770000000000";
const USER: &str = "hums.integration";
const PASSWORD: &str = "servicenow-test-password";
const USER_ENV: &str = "HUMS_TEST_SERVICENOW_USER";
const PASSWORD_ENV: &str = "HUMS_TEST_SERVICENOW_PASSWORD";
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// One request the stub received, with its answer's status.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    authorization: Option<String>,
    body: Value,
    status: u16,
}

/// An uploaded attachment.
#[derive(Debug, Clone)]
struct Upload {
    query: BTreeMap<String, String>,
    content_type: String,
    bytes: Vec<u8>,
}

/// The stub's state: the incident table, its journal and attachments.
#[derive(Default)]
struct Stub {
    incidents: Vec<Value>,
    /// (sys_id, work note)
    work_notes: Vec<(String, String)>,
    uploads: Vec<Upload>,
    /// Answer the next create with 429.
    throttle_create: bool,
    next: u32,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Stub>>;
type Answer = (u16, Vec<(&'static str, String)>, Value);

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Whether a record matches an encoded query (the terms this stub knows).
fn matches(r: &Value, query: &str) -> Result<bool, String> {
    for term in query.split('^').filter(|t| !t.is_empty()) {
        if term.starts_with("ORDERBY") {
            continue; // records are kept in creation order
        }
        let ok = if let Some(prefix) = term.strip_prefix("correlation_idSTARTSWITH") {
            text(&r["correlation_id"]).starts_with(prefix)
        } else if let Some((field, value)) = term.split_once('=') {
            text(&r[field]) == value
        } else {
            return Err(format!("unsupported query term {term:?}"));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A record cut to `sysparm_fields`.
fn project(r: &Value, fields: Option<&String>) -> Value {
    match fields {
        None => r.clone(),
        Some(f) => {
            Value::Object(f.split(',').map(|k| (k.to_string(), r[k.trim()].clone())).collect())
        }
    }
}

impl Stub {
    /// Adds an incident as if someone had created it; returns its sys_id.
    fn add(&mut self, ci: &str, correlation_id: &str, active: bool, state: &str) -> String {
        self.next += 1;
        let sys_id = format!("{:032x}", 0xa000 + self.next);
        self.incidents.push(json!({ "sys_id": sys_id, "number": format!("INC{:07}", self.next),
            "short_description": "Existing incident", "cmdb_ci": ci,
            "correlation_id": correlation_id,
            "active": active.to_string(), "state": state, "impact": "2", "urgency": "2",
            "resolved_at": "", "closed_at": "" }));
        sys_id
    }

    fn answer(
        &mut self,
        method: &str,
        path: &str,
        q: &BTreeMap<String, String>,
        headers: &HeaderMap,
        raw: &Bytes,
    ) -> Answer {
        let fail = |status: u16, message: &str| {
            (status, vec![], json!({ "error": { "message": message }, "status": "failure" }))
        };
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(basic().as_str()) {
            return fail(401, "User Not Authenticated");
        }
        let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", ["api", "now", "table", "incident"]) => {
                if std::mem::take(&mut self.throttle_create) {
                    return (
                        429,
                        vec![("retry-after", "1".into())],
                        json!({ "error": { "message": "Too many requests" } }),
                    );
                }
                let Some(fields) = body.as_object() else { return fail(400, "Invalid body") };
                if text(&body["short_description"]).chars().count() > 160 {
                    return fail(400, "short_description is longer than 160");
                }
                self.add("", "", true, "1");
                let record = self.incidents.last_mut().unwrap();
                for (k, v) in fields {
                    record[k.as_str()] = json!(text(v));
                }
                (201, vec![], json!({ "result": record.clone() }))
            }
            ("GET", ["api", "now", "table", "incident"]) => {
                let query = q.get("sysparm_query").map_or("", String::as_str);
                let mut found = Vec::new();
                for r in &self.incidents {
                    match matches(r, query) {
                        Ok(true) => found.push(r),
                        Ok(false) => {}
                        Err(e) => return fail(400, e.as_str()),
                    }
                }
                let offset: usize =
                    q.get("sysparm_offset").and_then(|v| v.parse().ok()).unwrap_or(0);
                let limit: usize =
                    q.get("sysparm_limit").and_then(|v| v.parse().ok()).unwrap_or(10_000);
                let page: Vec<Value> = found
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .map(|r| project(r, q.get("sysparm_fields")))
                    .collect();
                (200, vec![("x-total-count", found.len().to_string())], json!({ "result": page }))
            }
            ("GET", ["api", "now", "table", "incident", sys_id]) => {
                match self.incidents.iter().find(|r| r["sys_id"] == *sys_id) {
                    Some(r) => {
                        (200, vec![], json!({ "result": project(r, q.get("sysparm_fields")) }))
                    }
                    None => fail(404, "No Record found"),
                }
            }
            ("PATCH", ["api", "now", "table", "incident", sys_id]) => {
                let Some(record) = self.incidents.iter_mut().find(|r| r["sys_id"] == *sys_id)
                else {
                    return fail(404, "No Record found");
                };
                for (k, v) in body.as_object().into_iter().flatten() {
                    if k == "work_notes" {
                        self.work_notes.push((sys_id.to_string(), text(v)));
                    } else {
                        record[k.as_str()] = json!(text(v));
                    }
                }
                (200, vec![], json!({ "result": record.clone() }))
            }
            ("POST", ["api", "now", "attachment", "file"]) => {
                let (Some(table), Some(sys_id), Some(name)) =
                    (q.get("table_name"), q.get("table_sys_id"), q.get("file_name"))
                else {
                    return fail(400, "table_name, table_sys_id and file_name are required");
                };
                if table != "incident"
                    || !self.incidents.iter().any(|r| r["sys_id"] == sys_id.as_str())
                {
                    return fail(404, "No Record found");
                }
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let result = json!({
                    "sys_id": "f".repeat(32), "file_name": name, "content_type": content_type,
                    "size_bytes": raw.len().to_string(), "table_sys_id": sys_id
                });
                self.uploads.push(Upload { query: q.clone(), content_type, bytes: raw.to_vec() });
                (201, vec![], json!({ "result": result }))
            }
            _ => fail(400, "Requested URI does not represent any resource"),
        }
    }
}

async fn handle(
    State(stub): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let mut s = stub.lock().unwrap();
    let path = uri.path().to_string();
    let query = common::backend::query(uri.query().unwrap_or_default());
    let (status, extra, answer) = s.answer(method.as_str(), &path, &query, &headers, &raw);
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    s.seen.push(Seen { method: method.to_string(), path, query, authorization, body, status });
    common::backend::reply(status, &extra, &answer)
}

async fn start(stub: Stub) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(stub));
    let app = axum::Router::new().fallback(handle).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), shared)
}

fn config(url: &str) -> ServicenowSettings {
    std::env::set_var(USER_ENV, USER);
    std::env::set_var(PASSWORD_ENV, PASSWORD);
    ServicenowSettings {
        common: Common {
            url: url.into(),
            locations: [("Site T".to_string(), "loc-site-t".to_string())].into(),
            timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(1),
            ..Common::default()
        },
        login: Login {
            username_env: Some(USER_ENV.into()),
            password_env: Some(PASSWORD_ENV.into()),
            ..Login::default()
        },
        fields: [
            ("assignment_group".to_string(), json!("Maintenance")),
            ("category".to_string(), json!("hardware")),
            ("correlation_id".to_string(), json!("not-the-key")),
        ]
        .into(),
        ..ServicenowSettings::default()
    }
}

fn requests<'a>(s: &'a Stub, method: &str, path: &str) -> Vec<&'a Seen> {
    s.seen.iter().filter(|r| r.method == method && r.path == path).collect()
}

fn assert_basic_auth(s: &Stub) {
    for r in &s.seen {
        assert_eq!(r.authorization.as_deref(), Some(basic().as_str()), "{r:#?}");
    }
}

fn order(key: &str, revision: u32) -> WorkOrder {
    common::backend::order(key, revision, "condition", "123")
}

/// Delivers `orders` through the outbox until all are delivered.
async fn deliver(cfg: &ServicenowSettings, orders: Vec<WorkOrder>, stub: &Shared) -> Arc<Store> {
    common::backend::deliver(ServiceNow::new(cfg).unwrap(), &cfg.common, orders, || {
        format!("{:#?}", stub.lock().unwrap().seen)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raise_creates_one_incident_and_its_escalation_adds_work_notes() {
    let (url, stub) = start(Stub::default()).await;
    let cfg = config(&url);
    let store = deliver(&cfg, vec![order(KEY, 1), order(KEY, 2)], &stub).await;

    let s = stub.lock().unwrap();
    assert_basic_auth(&s);
    let lookups = requests(&s, "GET", "/api/now/table/incident");
    assert_eq!(lookups.len(), 1, "one look-up before the create: {:#?}", s.seen);
    assert_eq!(
        lookups[0].query.get("sysparm_query").map(String::as_str),
        Some(
            "active=true^correlation_idSTARTSWITHgw:pump-01:pump.bearing_wear:\
             ^ORDERBYsys_created_on"
        )
    );
    let creates = requests(&s, "POST", "/api/now/table/incident");
    assert_eq!(creates.len(), 1, "{:#?}", s.seen);
    let c = &creates[0].body;
    assert_eq!(c["short_description"], "Boiler feed pump 1: bearing wear suspected");
    assert_eq!(
        (&c["impact"], &c["urgency"]),
        (&json!("1"), &json!("2")),
        "hums 2 (high) is impact 1, urgency 2"
    );
    assert_eq!(c["cmdb_ci"], "123");
    assert_eq!(c["location"], "loc-site-t");
    assert_eq!(c["correlation_id"], KEY, "the fixed fields never replace the key");
    assert_eq!(c["correlation_display"], "hums");
    assert_eq!(
        (&c["assignment_group"], &c["category"]),
        (&json!("Maintenance"), &json!("hardware"))
    );
    assert!(c["description"].as_str().unwrap().contains(KEY));
    let sys_id = s.incidents[0]["sys_id"].as_str().unwrap().to_string();
    assert_eq!(store.remote_id(KEY).unwrap().as_deref(), Some(sys_id.as_str()));

    let patches = requests(&s, "PATCH", &format!("/api/now/table/incident/{sys_id}"));
    assert_eq!(patches.len(), 1, "{:#?}", s.seen);
    assert_eq!(
        (&patches[0].body["impact"], &patches[0].body["urgency"]),
        (&json!("1"), &json!("1"))
    );
    assert_eq!(s.work_notes.len(), 1);
    assert_eq!(s.work_notes[0].0, sys_id);
    assert!(s.work_notes[0].1.starts_with("hums update (revision 2):"), "{}", s.work_notes[0].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_create_waits_for_retry_after_and_lands_once() {
    let (url, stub) = start(Stub { throttle_create: true, ..Stub::default() }).await;
    let cfg = config(&url);
    let started = Instant::now();
    let store = deliver(&cfg, vec![order(KEY, 1)], &stub).await;

    let s = stub.lock().unwrap();
    assert_basic_auth(&s);
    let statuses: Vec<u16> =
        requests(&s, "POST", "/api/now/table/incident").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 201], "{:#?}", s.seen);
    assert_eq!(s.incidents.len(), 1, "one incident at the instance");
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After: 1 was waited out");
    assert_eq!(store.remote_id(KEY).unwrap().as_deref(), s.incidents[0]["sys_id"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_incident_of_an_earlier_episode_on_page_two_gets_the_raise_as_work_notes() {
    let mut stub = Stub::default();
    let resolved = stub.add("123", RESOLVED, false, "6");
    let mut earlier = String::new();
    for i in 0..150 {
        if i == 120 {
            earlier = stub.add("123", EARLIER, true, "2");
        }
        // Matched by the query, but not a hums key of this fault.
        stub.add("123", &format!("gw:pump-01:pump.bearing_wear:17700000{i:05}:task"), true, "2");
        // Not matched: another failure mode, or no correlation at all.
        if i % 10 == 0 {
            stub.add("123", &format!("gw:pump-01:pump.cavitation:17800000{i:05}"), true, "2");
            stub.add("123", "", true, "1");
        }
    }
    let query = "active=true^correlation_idSTARTSWITHgw:pump-01:pump.bearing_wear:";
    let position = stub
        .incidents
        .iter()
        .filter(|r| matches(r, query).unwrap())
        .position(|r| r["sys_id"] == earlier.as_str());
    assert_eq!(position, Some(120), "the earlier episode is on the second page");
    let (url, stub) = start(stub).await;
    let cfg = config(&url);
    let store = deliver(&cfg, vec![order(KEY, 1)], &stub).await;

    let s = stub.lock().unwrap();
    assert_basic_auth(&s);
    assert!(
        requests(&s, "POST", "/api/now/table/incident").is_empty(),
        "no new incident: {:#?}",
        s.seen
    );
    let offsets: Vec<&str> = requests(&s, "GET", "/api/now/table/incident")
        .iter()
        .filter_map(|r| r.query.get("sysparm_offset").map(String::as_str))
        .collect();
    assert_eq!(offsets, ["0", "100"], "both pages read, stopping at the short one");
    let patches = requests(&s, "PATCH", &format!("/api/now/table/incident/{earlier}"));
    assert_eq!(patches.len(), 1, "{:#?}", s.seen);
    assert_eq!(s.work_notes.len(), 1);
    assert_eq!(s.work_notes[0].0, earlier);
    assert!(s.work_notes[0].1.starts_with("hums update (revision 1):"), "{}", s.work_notes[0].1);
    assert!(requests(&s, "PATCH", &format!("/api/now/table/incident/{resolved}")).is_empty());
    assert_eq!(store.remote_id(KEY).unwrap(), Some(earlier));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_is_uploaded_raw_and_incident_states_are_read() {
    let mut stub = Stub::default();
    let resolved = stub.add("123", KEY, false, "6");
    stub.incidents[0]["resolved_at"] = json!("2026-11-30 08:15:00");
    let closed = stub.add("123", EARLIER, false, "7");
    stub.incidents[1]["closed_at"] = json!("2026-11-30 09:00:00");
    let cancelled = stub.add("123", RESOLVED, false, "8");
    let open = stub.add("123", "", true, "2");
    let (url, stub) = start(stub).await;
    let sn = ServiceNow::new(&config(&url)).unwrap();

    assert!(sn.attach(&open, "hums-pump-01-pump.bearing_wear-r1.png", PNG).await.unwrap());
    let t = |s: i64| chrono::DateTime::from_timestamp(s, 0);
    assert_eq!(sn.status(&resolved).await.unwrap(), Some(RemoteStatus::Done(t(1_796_026_500))));
    assert_eq!(sn.status(&closed).await.unwrap(), Some(RemoteStatus::Done(t(1_796_029_200))));
    assert_eq!(sn.status(&cancelled).await.unwrap(), Some(RemoteStatus::Cancelled));
    assert_eq!(sn.status(&open).await.unwrap(), Some(RemoteStatus::Open));

    let s = stub.lock().unwrap();
    assert_basic_auth(&s);
    assert_eq!(s.uploads.len(), 1, "{:#?}", s.seen);
    let u = &s.uploads[0];
    assert_eq!(u.bytes, PNG);
    assert_eq!(u.content_type, "image/png");
    let q = |k: &str| u.query.get(k).map(String::as_str);
    assert_eq!(q("table_name"), Some("incident"));
    assert_eq!(q("table_sys_id"), Some(open.as_str()));
    assert_eq!(q("file_name"), Some("hums-pump-01-pump.bearing_wear-r1.png"));
}

/// Charts are drawn after their order is committed, so one may come when
/// the order is already delivered: delivery attaches it to the incident the
/// order created, once, and forgets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chart_drawn_after_its_order_was_delivered_is_attached_once() {
    let (url, stub) = start(Stub::default()).await;
    let cfg = config(&url);
    let store = deliver(&cfg, vec![order(KEY, 1)], &stub).await;
    assert!(
        stub.lock().unwrap().uploads.is_empty(),
        "delivered without a chart: nothing to attach"
    );
    assert!(store.charts_due(10).unwrap().is_empty());

    assert!(store.set_chart(KEY, 1, PNG).unwrap());
    assert_eq!(store.charts_due(10).unwrap().len(), 1);
    let wake = Arc::new(tokio::sync::Notify::new());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(hums::workorders::delivery::run(
        store.clone(),
        ServiceNow::new(&cfg).unwrap(),
        cfg.common.clone(),
        Arc::new(hums::common::metrics::Metrics::default()),
        wake.clone(),
        stopped,
    ));
    wake.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stub.lock().unwrap().uploads.is_empty() {
        assert!(Instant::now() < deadline, "{:#?}", stub.lock().unwrap().seen);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(true);
    task.await.unwrap();

    let s = stub.lock().unwrap();
    assert_eq!(s.uploads.len(), 1, "attached once: {:#?}", s.seen);
    let sys_id = s.incidents[0]["sys_id"].as_str().unwrap();
    assert_eq!(s.uploads[0].query.get("table_sys_id").map(String::as_str), Some(sys_id));
    assert_eq!(s.uploads[0].bytes, PNG);
    assert!(store.charts_due(10).unwrap().is_empty(), "attached charts are not due again");
}
