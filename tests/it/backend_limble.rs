//! The Limble adapter against a stateful stub of Limble's API v2 on loopback.
//!
//! The stub models, after Limble's V2 Postman collection: HTTP Basic
//! `base64(clientId:clientSecret)` on every call (401 otherwise); tasks
//! (`POST /v2/tasks` requiring `name`, `locationID`, `due` and `type` → `201`
//! with an empty body and the new task in the `Location` header; `GET
//! /v2/tasks` filtered by `tasks`, `assets`, `locations`, `status` and `meta1`,
//! paged by `limit` and `page` from 1; `PATCH /v2/tasks/{id}` → empty 200);
//! comments (`POST` and `GET /v2/tasks/{id}/comments`); and a 429 with
//! `X-RateLimit-TTL: 1` on the first create.
//!
//! Tested: the Basic header on every request; one create carrying the mapped
//! priority, `assetID`, `locationID`, `due`, `type` and the key in `meta1`, its
//! id taken from the `Location` header; the escalation as a PATCH (priority from
//! the `priorities` map) and a comment on that task; a 429 waited out with the
//! task created once; the look-up paging past 150 unrelated open tasks to an
//! open task of an earlier episode of the same fault, which gets the raise as
//! a comment instead of a new task; status read through the `tasks` filter
//! (complete is done); attachments declined (no `multipart` feature); and a
//! configuration without any location refused at start-up.

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine;
use hums::config::backend::{Common, LimbleSettings};
use hums::store::Store;
use hums::workorders::backends::limble::Limble;
use hums::workorders::backends::{Adapter, RemoteStatus};
use hums::workorders::WorkOrder;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "gw:pump-01:pump.bearing_wear:1790000000000";
/// An earlier episode of the same fault, still open at Limble.
const EARLIER: &str = "gw:pump-01:pump.bearing_wear:1780000000000";
/// An even earlier episode, completed.
const COMPLETED: &str = "gw:pump-01:pump.bearing_wear:1770000000000";
const CLIENT_ID: &str = "hums-client-7";
const SECRET: &str = "limble-test-secret";
const SECRET_ENV: &str = "HUMS_TEST_LIMBLE_CLIENT_SECRET";

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

/// The stub's state: Limble's tasks and their comments.
#[derive(Default)]
struct Stub {
    tasks: Vec<Value>,
    /// (taskID, comment)
    comments: Vec<(i64, String)>,
    /// Answer the next create with 429.
    throttle_create: bool,
    next_id: i64,
    seen: Vec<Seen>,
    /// Image uploads: (path, content type, raw multipart body).
    uploads: Vec<(String, String, Vec<u8>)>,
}

type Shared = Arc<Mutex<Stub>>;
type Answer = (u16, Vec<(&'static str, String)>, Value);

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"))
    )
}

/// A query value as Limble's comma-delimited id list.
fn listed(list: Option<&String>, value: &Value) -> bool {
    list.is_none_or(|l| l.split(',').any(|x| x.trim() == text(value)))
}

fn task_id(segment: &str) -> Option<i64> {
    segment.parse().ok()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Stub {
    /// Adds a task as if someone had created it at Limble; returns its id.
    fn add(&mut self, asset: i64, meta1: &str, complete: bool) -> i64 {
        self.next_id += 1;
        let id = 1000 + self.next_id;
        self.tasks.push(
            json!({ "taskID": id, "name": "Existing task", "locationID": 42, "assetID": asset,
            "meta1": meta1, "status": if complete { 1 } else { 0 },
            "dateCompleted": if complete { 1_796_026_500 } else { 0 }, "priority": 1, "type": 2 }),
        );
        id
    }

    fn answer(
        &mut self,
        method: &str,
        path: &str,
        q: &BTreeMap<String, String>,
        auth: Option<&str>,
        body: &Value,
    ) -> Answer {
        let fail = |status: u16, message: &str| (status, vec![], json!({ "message": message }));
        if auth != Some(basic().as_str()) {
            return fail(401, "Unauthorized");
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", ["tasks"]) => {
                if std::mem::take(&mut self.throttle_create) {
                    return (
                        429,
                        vec![("x-ratelimit-ttl", "1".into())],
                        json!({ "message": "Too Many Requests" }),
                    );
                }
                let valid = body["name"].as_str().is_some_and(|n| !n.is_empty())
                    && body["locationID"].is_i64()
                    && body["due"].is_i64()
                    && [1, 2, 4, 6].iter().any(|t| body["type"] == *t);
                if !valid {
                    return fail(400, "Data Validation Error");
                }
                self.next_id += 1;
                let id = 1000 + self.next_id;
                let mut task = body.clone();
                task["taskID"] = json!(id);
                task["status"] = json!(0);
                task["dateCompleted"] = json!(0);
                self.tasks.push(task);
                (201, vec![("location", format!("/v2/tasks/{id}"))], Value::Null)
            }
            ("GET", ["tasks"]) => {
                let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(100);
                let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
                let tasks: Vec<Value> = self
                    .tasks
                    .iter()
                    .filter(|t| listed(q.get("tasks"), &t["taskID"]))
                    .filter(|t| listed(q.get("assets"), &t["assetID"]))
                    .filter(|t| listed(q.get("locations"), &t["locationID"]))
                    .filter(|t| listed(q.get("status"), &t["status"]))
                    .filter(|t| q.get("meta1").is_none_or(|m| t["meta1"] == m.as_str()))
                    .skip((page - 1) * limit)
                    .take(limit)
                    .cloned()
                    .collect();
                (200, vec![], Value::Array(tasks))
            }
            ("PATCH", ["tasks", id]) => {
                match self.tasks.iter_mut().find(|t| task_id(id).is_some_and(|n| t["taskID"] == n))
                {
                    Some(t) => {
                        for (k, v) in body.as_object().into_iter().flatten() {
                            t[k.as_str()] = v.clone();
                        }
                        (200, vec![], Value::Null)
                    }
                    None => fail(404, "Resource not found"),
                }
            }
            ("POST", ["tasks", id, "comments"]) => {
                let Some(id) =
                    task_id(id).filter(|id| self.tasks.iter().any(|t| t["taskID"] == *id))
                else {
                    return fail(404, "Resource not found");
                };
                let Some(comment) = body["comment"].as_str().filter(|c| !c.is_empty()) else {
                    return fail(400, "Data Validation Error");
                };
                self.comments.push((id, comment.to_string()));
                (201, vec![], Value::Null)
            }
            ("GET", ["tasks", id, "comments"]) => {
                let id = task_id(id);
                let list: Vec<Value> = self
                    .comments
                    .iter()
                    .enumerate()
                    .filter(|(_, (t, _))| Some(*t) == id)
                    .map(|(n, (_, c))| {
                        json!({
                            "commentID": n + 1, "comment": c, "timestamp": 1_796_000_000,
                            "userID": 0
                        })
                    })
                    .collect();
                (200, vec![], Value::Array(list))
            }
            _ => fail(404, "Resource not found"),
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
    let path = uri.path().strip_prefix("/v2").unwrap_or(uri.path()).to_string();
    let query = common::backend::query(uri.query().unwrap_or_default());
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    if method == Method::PUT && path.ends_with("/image") {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        s.uploads.push((path.clone(), ct, body.to_vec()));
        s.seen.push(Seen {
            method: method.to_string(),
            path,
            query,
            authorization,
            body: Value::Null,
            status: 200,
        });
        return common::backend::reply(200, &[], serde_json::json!({ "success": true }));
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, extra, answer) =
        s.answer(method.as_str(), &path, &query, authorization.as_deref(), &body);
    s.seen.push(Seen { method: method.to_string(), path, query, authorization, body, status });
    common::backend::reply(status, &extra, &answer)
}

async fn start(stub: Stub) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(stub));
    let app = axum::Router::new().fallback(handle).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v2"), shared)
}

fn config(url: &str) -> LimbleSettings {
    std::env::set_var(SECRET_ENV, SECRET);
    LimbleSettings {
        common: Common {
            url: url.into(),
            locations: [("Site T".to_string(), "42".to_string())].into(),
            priorities: [("1".to_string(), "5".to_string())].into(),
            timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(1),
            ..Common::default()
        },
        client_id: Some(CLIENT_ID.into()),
        client_secret_env: Some(SECRET_ENV.into()),
        ..LimbleSettings::default()
    }
}

fn requests<'a>(s: &'a Stub, method: &str, path: &str) -> Vec<&'a Seen> {
    s.seen.iter().filter(|r| r.method == method && r.path.trim_end_matches('/') == path).collect()
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
async fn deliver(cfg: &LimbleSettings, orders: Vec<WorkOrder>, stub: &Shared) -> Arc<Store> {
    common::backend::deliver(Limble::new(cfg).unwrap(), &cfg.common, orders, || {
        format!("{:#?}", stub.lock().unwrap().seen)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raise_creates_one_task_and_its_escalation_patches_and_comments_it() {
    let (url, stub) = start(Stub::default()).await;
    let cfg = config(&url);
    let store = deliver(&cfg, vec![order(KEY, 1), order(KEY, 2)], &stub).await;

    let s = stub.lock().unwrap();
    assert_basic_auth(&s);
    let creates = requests(&s, "POST", "/tasks");
    assert_eq!(creates.len(), 1, "{:#?}", s.seen);
    let c = &creates[0].body;
    assert_eq!(c["name"], "Boiler feed pump 1: bearing wear suspected");
    assert_eq!(c["priority"], 2, "hums 2 (high) is level 2 by default");
    assert_eq!(c["assetID"], 123);
    assert_eq!(c["locationID"], 42);
    assert_eq!(c["meta1"], KEY);
    assert_eq!(c["due"], 1_795_867_200_i64, "unix seconds");
    assert_eq!(c["type"], 2, "an unplanned work order");
    assert_eq!(c["estimatedTime"], 240, "minutes");
    assert!(c["description"].as_str().unwrap().contains(KEY));
    let id = s.tasks[0]["taskID"].as_i64().unwrap();
    assert_eq!(
        store.remote_id(KEY).unwrap(),
        Some(id.to_string()),
        "the id from the Location header"
    );

    let patches = requests(&s, "PATCH", &format!("/tasks/{id}"));
    assert_eq!(patches.len(), 1, "{:#?}", s.seen);
    assert_eq!(patches[0].body["priority"], 5, "hums 1 mapped by `priorities`");
    assert_eq!(patches[0].body["due"], 1_795_867_200_i64);
    assert_eq!(s.comments.len(), 1);
    assert_eq!(s.comments[0].0, id);
    assert!(s.comments[0].1.starts_with("hums update (revision 2):"), "{}", s.comments[0].1);
    let posted = requests(&s, "POST", &format!("/tasks/{id}/comments"));
    assert_eq!(posted[0].body["showExternalUsers"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_create_waits_for_the_ttl_and_lands_once() {
    let (url, stub) = start(Stub { throttle_create: true, ..Stub::default() }).await;
    let cfg = config(&url);
    let started = Instant::now();
    let store = deliver(&cfg, vec![order(KEY, 1)], &stub).await;

    let s = stub.lock().unwrap();
    assert_basic_auth(&s);
    let statuses: Vec<u16> = requests(&s, "POST", "/tasks").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 201], "{:#?}", s.seen);
    assert_eq!(s.tasks.len(), 1, "one task at Limble");
    assert!(started.elapsed() >= Duration::from_millis(900), "X-RateLimit-TTL: 1 was waited out");
    assert_eq!(store.remote_id(KEY).unwrap(), s.tasks[0]["taskID"].as_i64().map(|t| t.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_task_of_an_earlier_episode_on_page_two_gets_the_raise_as_a_comment() {
    let mut stub = Stub::default();
    let mut earlier = 0;
    for i in 0..151 {
        match i {
            5 => {
                stub.add(123, COMPLETED, true);
            }
            120 => earlier = stub.add(123, EARLIER, false),
            _ if i % 3 == 0 => {
                stub.add(123, "", false);
            }
            _ if i % 3 == 1 => {
                stub.add(123, &format!("gw:pump-01:pump.cavitation:17800000{i:05}"), false);
            }
            _ => {
                stub.add(123, &format!("gw2:pump-01:pump.bearing_wear:17800000{i:05}"), false);
            }
        }
    }
    stub.add(123, "", false); // the 150th unrelated open task
    stub.add(777, EARLIER, false); // another asset: never listed
    let (url, stub) = start(stub).await;
    let cfg = config(&url);
    let store = deliver(&cfg, vec![order(KEY, 1)], &stub).await;

    let s = stub.lock().unwrap();
    assert_basic_auth(&s);
    assert!(requests(&s, "POST", "/tasks").is_empty(), "no new task: {:#?}", s.seen);
    let pages: Vec<(&str, &str, &str)> = requests(&s, "GET", "/tasks")
        .iter()
        .map(|r| {
            let q = |k: &str| r.query.get(k).map_or("", String::as_str);
            (q("assets"), q("status"), q("page"))
        })
        .collect();
    assert_eq!(
        pages,
        [("123", "0", "1"), ("123", "0", "2")],
        "open tasks of the asset, both pages"
    );
    assert_eq!(requests(&s, "PATCH", &format!("/tasks/{earlier}")).len(), 1, "{:#?}", s.seen);
    assert_eq!(s.comments.len(), 1, "{:#?}", s.seen);
    assert_eq!(s.comments[0].0, earlier);
    assert!(s.comments[0].1.starts_with("hums update (revision 1):"), "{}", s.comments[0].1);
    assert_eq!(store.remote_id(KEY).unwrap(), Some(earlier.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_one_task_and_the_chart_is_uploaded_as_a_form_image() {
    let mut stub = Stub::default();
    let done = stub.add(123, KEY, true);
    let open = stub.add(123, EARLIER, false);
    stub.comments.push((open, "hums update (revision 2): Boiler feed pump 1 …".into()));
    let (url, stub) = start(stub).await;
    let limble = Limble::new(&config(&url)).unwrap();

    let at = chrono::DateTime::from_timestamp(1_796_026_500, 0);
    assert_eq!(limble.status(&done.to_string()).await.unwrap(), Some(RemoteStatus::Done(at)));
    assert_eq!(limble.status(&open.to_string()).await.unwrap(), Some(RemoteStatus::Open));
    assert_eq!(limble.status("999999").await.unwrap(), None, "an unknown task");
    assert!(limble.landed(&order(EARLIER, 2), &open.to_string()).await.unwrap());
    assert!(!limble.landed(&order(EARLIER, 3), &open.to_string()).await.unwrap());
    let png = b"\x89PNG\r\n\x1a\nchart-bytes";
    assert!(limble.attach(&open.to_string(), "hums-pump-01-r1.png", png).await.unwrap());
    let off = Limble::new(&LimbleSettings { attachments: false, ..config(&url) }).unwrap();
    assert!(
        !off.attach(&open.to_string(), "x.png", png).await.unwrap(),
        "attachments off: nothing uploaded"
    );

    let s = stub.lock().unwrap();
    assert_basic_auth(&s);
    let tasks: Vec<&str> = requests(&s, "GET", "/tasks")
        .iter()
        .filter_map(|r| r.query.get("tasks"))
        .map(String::as_str)
        .collect();
    let (done, open) = (done.to_string(), open.to_string());
    assert_eq!(tasks, [done.as_str(), open.as_str(), "999999"]);
    assert_eq!(s.uploads.len(), 1, "one upload");
    let (path, ct, body) = &s.uploads[0];
    assert_eq!(path, &format!("/tasks/{open}/image"));
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let text = String::from_utf8_lossy(body);
    assert!(
        text.contains("name=\"image\"") && text.contains("filename=\"hums-pump-01-r1.png\""),
        "{text}"
    );
    assert!(text.contains("Content-Type: image/png") && text.contains("chart-bytes"), "{text}");
}

#[test]
fn a_limble_backend_without_a_location_or_client_id_is_refused() {
    let mut cfg = config("http://127.0.0.1:9/v2");
    cfg.common.locations = BTreeMap::new();
    let err = Limble::new(&cfg).err().expect("refused without a location");
    assert!(err.to_string().contains("backend.locations"), "{err}");

    let with_default =
        LimbleSettings { fields: [("locationID".to_string(), json!(42))].into(), ..cfg.clone() };
    assert!(Limble::new(&with_default).is_ok(), "fields.locationID is a default location");

    let err = Limble::new(&LimbleSettings { client_id: None, ..with_default })
        .err()
        .expect("refused without a client id");
    assert!(err.to_string().contains("client_id"), "{err}");
}
