//! The UpKeep adapter against a stateful stub of UpKeep's API v2 on loopback.
//!
//! The stub models: the session login (`POST /auth {email, password}` →
//! `result.sessionToken`), the `Session-Token` header on every other call (401
//! without a live session, and a session that expires once under the adapter's
//! feet), work orders (`POST /work-orders` → `{success, result: {id}}`, `GET
//! /work-orders?asset=&limit=&offset=` → `{success, results}`, `GET` and `PATCH
//! /work-orders/{id}`), and a 429 with `Retry-After: 1` on the first create.
//!
//! Tested: login before the first call and again after the session expired
//! (the refused request repeated and succeeding); one create carrying the
//! mapped priority, asset, location, due date and the key at the end of the
//! description; the escalation appended to that order's description; a 429
//! waited out with the order created once; the look-up paging past 150
//! unrelated orders to an open order of an earlier episode of the same fault
//! (skipping a completed one), which gets the new raise as a comment instead of
//! a new order; attachments declined; `complete` read as done.

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use hums::config::backend::{Common, Login, UpkeepSettings};
use hums::store::Store;
use hums::workorders::backends::upkeep::UpKeep;
use hums::workorders::backends::{Adapter, RemoteStatus};
use hums::workorders::WorkOrder;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "gw:pump-01:pump.bearing_wear:1790000000000";
/// An earlier episode of the same fault, still open at UpKeep.
const EARLIER: &str = "gw:pump-01:pump.bearing_wear:1780000000000";
/// An even earlier episode, completed.
const COMPLETED: &str = "gw:pump-01:pump.bearing_wear:1770000000000";
const EMAIL: &str = "planner@example.com";
const PASSWORD: &str = "upkeep-test-password";

/// One request the stub received, with its answer's status.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    token: Option<String>,
    body: Value,
    status: u16,
}

/// The stub's state: UpKeep's work orders and sessions.
#[derive(Default)]
struct Stub {
    orders: Vec<Value>,
    /// Live session tokens.
    sessions: Vec<String>,
    logins: usize,
    /// Requests made with a live session so far.
    authed: usize,
    /// The session expires at this authenticated request (answered 401).
    expire_at: Option<usize>,
    /// Answer the next create with 429.
    throttle_create: bool,
    next_id: usize,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Stub>>;
type Answer = (u16, Vec<(&'static str, String)>, Value);

impl Stub {
    /// Adds an order as if someone had created it at UpKeep; returns its id.
    fn add(&mut self, asset: &str, description: &str, status: &str) -> String {
        self.next_id += 1;
        let id = format!("WO{}", self.next_id);
        self.orders.push(json!({ "id": id, "title": "Existing order", "description": description,
                                 "asset": asset, "status": status, "priority": 1 }));
        id
    }

    fn answer(
        &mut self,
        method: &str,
        path: &str,
        q: &BTreeMap<String, String>,
        token: Option<&str>,
        body: &Value,
    ) -> Answer {
        let fail = |status: u16, message: &str| {
            (status, vec![], json!({ "success": false, "message": message }))
        };
        if method == "POST" && path == "/auth" {
            if body["email"] != EMAIL || body["password"] != PASSWORD {
                return fail(400, "Invalid email or password");
            }
            self.logins += 1;
            let token = format!("session-{}", self.logins);
            self.sessions.push(token.clone());
            return (
                200,
                vec![],
                json!({ "success": true,
                "result": { "sessionToken": token, "expiresAt": "2099-01-01T00:00:00.000Z" } }),
            );
        }
        let Some(token) = token.filter(|t| self.sessions.iter().any(|s| s == t)) else {
            return fail(401, "Session token is missing or expired");
        };
        self.authed += 1;
        if self.expire_at == Some(self.authed) {
            self.expire_at = None;
            self.sessions.retain(|s| s != token);
            return fail(401, "Session token is missing or expired");
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", ["work-orders"]) => {
                if std::mem::take(&mut self.throttle_create) {
                    return (
                        429,
                        vec![("retry-after", "1".into())],
                        json!({ "success": false, "message": "Too many requests" }),
                    );
                }
                if body["title"].as_str().unwrap_or_default().is_empty() {
                    return fail(400, "title is required");
                }
                self.next_id += 1;
                let mut order = body.clone();
                order["id"] = json!(format!("WO{}", self.next_id));
                order["status"] = json!("open");
                self.orders.push(order.clone());
                (200, vec![], json!({ "success": true, "result": order }))
            }
            ("GET", ["work-orders"]) => {
                let offset = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
                let limit = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
                let results: Vec<Value> = self
                    .orders
                    .iter()
                    .filter(|o| q.get("asset").is_none_or(|a| o["asset"] == a.as_str()))
                    .skip(offset)
                    .take(limit)
                    .cloned()
                    .collect();
                (200, vec![], json!({ "success": true, "results": results }))
            }
            ("GET", ["work-orders", id]) => match self.orders.iter().find(|o| o["id"] == *id) {
                Some(o) => (200, vec![], json!({ "success": true, "result": o })),
                None => fail(404, "Work order not found"),
            },
            ("PATCH", ["work-orders", id]) => match self.orders.iter_mut().find(|o| o["id"] == *id)
            {
                Some(o) => {
                    for (k, v) in body.as_object().into_iter().flatten() {
                        o[k.as_str()] = v.clone();
                    }
                    (200, vec![], json!({ "success": true, "result": o.clone() }))
                }
                None => fail(404, "Work order not found"),
            },
            _ => fail(404, "No such route"),
        }
    }
}

async fn handle(
    State(stub): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = stub.lock().unwrap();
    let path = uri.path().strip_prefix("/api/v2").unwrap_or(uri.path()).to_string();
    let query = common::backend::query(uri.query().unwrap_or_default());
    let token = headers.get("session-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, extra, answer) = s.answer(method.as_str(), &path, &query, token.as_deref(), &body);
    s.seen.push(Seen { method: method.to_string(), path, query, token, body, status });
    common::backend::reply(status, &extra, &answer)
}

async fn start(stub: Stub) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(stub));
    let app = axum::Router::new().fallback(handle).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/api/v2"), shared)
}

fn config(url: &str) -> UpkeepSettings {
    std::env::set_var("HUMS_TEST_UPKEEP_EMAIL", EMAIL);
    std::env::set_var("HUMS_TEST_UPKEEP_PASSWORD", PASSWORD);
    UpkeepSettings {
        common: Common {
            url: url.into(),
            locations: [("Site T".to_string(), "LOC-42".to_string())].into(),
            timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(1),
            ..Common::default()
        },
        login: Login {
            username_env: Some("HUMS_TEST_UPKEEP_EMAIL".into()),
            password_env: Some("HUMS_TEST_UPKEEP_PASSWORD".into()),
            ..Login::default()
        },
        ..UpkeepSettings::default()
    }
}

/// The description hums writes for an order with this key (its last line names the key).
fn hums_description(key: &str) -> String {
    format!("Boiler feed pump 1 is at alarm severity.\n\nRaised by hums gateway gw ({key}).\n")
}

fn requests<'a>(s: &'a Stub, method: &str, path: &str) -> Vec<&'a Seen> {
    s.seen.iter().filter(|r| r.method == method && r.path == path).collect()
}

fn order(key: &str, revision: u32) -> WorkOrder {
    common::backend::order(key, revision, "condition", "123")
}

/// Delivers `orders` through the outbox until all are delivered.
async fn deliver(cfg: &UpkeepSettings, orders: Vec<WorkOrder>, stub: &Shared) -> Arc<Store> {
    common::backend::deliver(UpKeep::new(cfg).unwrap(), &cfg.common, orders, || {
        format!("{:#?}", stub.lock().unwrap().seen)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raise_creates_one_order_and_its_escalation_is_appended_after_logging_in_again() {
    // The third call made in a session (the escalation's read) finds it expired.
    let (url, stub) = start(Stub { expire_at: Some(3), ..Stub::default() }).await;
    let cfg = config(&url);
    let store = deliver(&cfg, vec![order(KEY, 1), order(KEY, 2)], &stub).await;

    let s = stub.lock().unwrap();
    let creates = requests(&s, "POST", "/work-orders");
    assert_eq!(creates.len(), 1, "{:#?}", s.seen);
    let c = &creates[0].body;
    assert_eq!(c["title"], "Boiler feed pump 1: bearing wear suspected");
    assert_eq!(c["priority"], 2, "hums 2 (high) is UpKeep 2");
    assert_eq!(c["asset"], "123");
    assert_eq!(c["location"], "LOC-42");
    assert_eq!(c["dueDate"], 1_795_867_200_000_i64, "epoch milliseconds");
    assert!(
        c["description"].as_str().unwrap().ends_with(&format!("({KEY}).\n")),
        "the key ends the description"
    );
    let id = s.orders[0]["id"].as_str().unwrap().to_string();
    assert_eq!(store.remote_id(KEY).unwrap().as_deref(), Some(id.as_str()));

    // The escalation: the comment appended, the priority raised, the key kept.
    let patches = requests(&s, "PATCH", &format!("/work-orders/{id}"));
    assert_eq!(patches.len(), 1, "{:#?}", s.seen);
    assert_eq!(patches[0].body["priority"], 3, "hums 1 (critical) is UpKeep 3");
    assert_eq!(patches[0].body["dueDate"], 1_795_867_200_000_i64);
    let d = patches[0].body["description"].as_str().unwrap();
    assert!(d.contains("hums update (revision 2):") && d.contains(&format!("({KEY})")), "{d}");

    // The session: a login first, and one again after the 401, whose request was repeated and
    // succeeded.
    assert_eq!(s.seen[0].path, "/auth");
    assert_eq!(s.seen[0].body, json!({ "email": EMAIL, "password": PASSWORD }));
    assert_eq!(s.logins, 2, "{:#?}", s.seen);
    let refused: Vec<usize> =
        s.seen.iter().enumerate().filter(|(_, r)| r.status == 401).map(|(i, _)| i).collect();
    assert_eq!(refused.len(), 1, "{:#?}", s.seen);
    let (before, login, again) =
        (&s.seen[refused[0]], &s.seen[refused[0] + 1], &s.seen[refused[0] + 2]);
    assert_eq!((login.method.as_str(), login.path.as_str(), login.status), ("POST", "/auth", 200));
    assert_eq!(
        (again.method.as_str(), again.path.as_str(), again.status),
        (before.method.as_str(), before.path.as_str(), 200)
    );
    assert_eq!(before.token.as_deref(), Some("session-1"));
    assert_eq!(again.token.as_deref(), Some("session-2"));
    for r in s.seen.iter().filter(|r| r.path != "/auth") {
        assert!(
            r.token.as_deref().is_some_and(|t| t.starts_with("session-")),
            "no Session-Token: {r:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_create_waits_for_retry_after_and_lands_once() {
    let (url, stub) = start(Stub { throttle_create: true, ..Stub::default() }).await;
    let cfg = config(&url);
    let started = Instant::now();
    let store = deliver(&cfg, vec![order(KEY, 1)], &stub).await;

    let s = stub.lock().unwrap();
    let statuses: Vec<u16> =
        requests(&s, "POST", "/work-orders").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200], "{:#?}", s.seen);
    assert_eq!(s.orders.len(), 1, "one order at UpKeep");
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After: 1 was waited out");
    assert_eq!(store.remote_id(KEY).unwrap().as_deref(), s.orders[0]["id"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_order_of_an_earlier_episode_on_page_two_gets_the_raise_as_a_comment() {
    let mut stub = Stub::default();
    let mut earlier = String::new();
    let mut completed = String::new();
    for i in 0..151 {
        match i {
            5 => completed = stub.add("123", &hums_description(COMPLETED), "complete"),
            120 => earlier = stub.add("123", &hums_description(EARLIER), "inProgress"),
            _ if i % 3 == 0 => {
                stub.add("123", &format!("Routine inspection {i}"), "open");
            }
            _ if i % 3 == 1 => {
                stub.add(
                    "123",
                    &hums_description(&format!("gw:pump-01:pump.cavitation:17800000{i:05}")),
                    "open",
                );
            }
            _ => {
                stub.add(
                    "123",
                    &hums_description(&format!("gw2:pump-01:pump.bearing_wear:17800000{i:05}")),
                    "onHold",
                );
            }
        }
    }
    stub.add("123", "Lubrication round", "open"); // the 150th unrelated order
    stub.add("999", &hums_description(EARLIER), "open"); // another asset: never listed
    let (url, stub) = start(stub).await;
    let cfg = config(&url);
    let store = deliver(&cfg, vec![order(KEY, 1)], &stub).await;

    let s = stub.lock().unwrap();
    assert!(requests(&s, "POST", "/work-orders").is_empty(), "no new order: {:#?}", s.seen);
    let pages: Vec<&str> = requests(&s, "GET", "/work-orders")
        .iter()
        .filter(|r| r.query.get("asset").map(String::as_str) == Some("123"))
        .filter_map(|r| r.query.get("offset").map(String::as_str))
        .collect();
    assert_eq!(pages, ["0", "100"], "both pages read, stopping at the short one");
    let patches = requests(&s, "PATCH", &format!("/work-orders/{earlier}"));
    assert_eq!(patches.len(), 1, "{:#?}", s.seen);
    let d = patches[0].body["description"].as_str().unwrap();
    assert!(d.starts_with(&hums_description(EARLIER).trim_end().to_string()), "{d}");
    assert!(d.contains("hums update (revision 1):"), "{d}");
    assert!(requests(&s, "PATCH", &format!("/work-orders/{completed}")).is_empty());
    assert_eq!(store.remote_id(KEY).unwrap(), Some(earlier));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_declined_and_a_complete_order_is_done() {
    let mut stub = Stub::default();
    let done = stub.add("123", "done", "complete");
    stub.orders[0]["completedDate"] = json!(1_796_026_500_000_i64);
    let open = stub.add("123", "open", "inProgress");
    let (url, stub) = start(stub).await;
    let up = UpKeep::new(&config(&url)).unwrap();

    assert!(!up.attach(&done, "hums-pump-01-r1.png", b"\x89PNG\r\n\x1a\n").await.unwrap());
    let at = chrono::DateTime::from_timestamp(1_796_026_500, 0);
    assert_eq!(up.status(&done).await.unwrap(), Some(RemoteStatus::Done(at)));
    assert_eq!(up.status(&open).await.unwrap(), Some(RemoteStatus::Open));

    let s = stub.lock().unwrap();
    let calls: Vec<(&str, &str)> =
        s.seen.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    let (done_path, open_path) = (format!("/work-orders/{done}"), format!("/work-orders/{open}"));
    assert_eq!(
        calls,
        [("POST", "/auth"), ("GET", done_path.as_str()), ("GET", open_path.as_str())],
        "one session, no upload"
    );
}
