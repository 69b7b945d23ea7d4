//! The Dynamics 365 Field Service adapter against a stateful stub of an Entra
//! ID token endpoint and the Dataverse Web API (`/api/data/v9.2`). The token
//! endpoint checks the client-credentials form and issues bearer tokens with
//! `expires_in`; the Web API checks the bearer token and the OData version
//! headers, keeps work orders (summary, system status, customer asset,
//! priority) and notes (annotations), answers look-ups with
//! `Prefer: odata.maxpagesize` pages linked by `@odata.nextLink`, creates with
//! `204` + `OData-EntityId`, and records every request. Documented behaviours
//! tested:
//! - auth: the client-credentials grant (grant type, client id and secret,
//!   the default `<origin>/.default` scope); a token rejected once with `401`
//!   (simulated expiry after the create) is fetched anew and the request
//!   succeeds;
//! - a `429` with `Retry-After: 1` on the first create: honoured, and the
//!   order is created exactly once;
//! - dedup: 150 unrelated open orders of the customer asset, then on page 2
//!   an open order of an earlier episode of the same fault (`hums:<key>` first
//!   summary line): no create, the comment goes to it as a note;
//! - raise then escalation: one create with the summary reference, status
//!   Unscheduled, the bound customer asset, mapped priority, functional
//!   location and configured fields, then a PATCH of the priority and one
//!   note "hums update (revision 2)" on the created order;
//! - attachments (a note with filename, mimetype and base64 body) and status
//!   (690970004 Posted with `msdyn_timeclosed` → done, 690970005 → cancelled).

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hums::config::backend::{Common, DynamicsSettings};
use hums::store::Store;
use hums::workorders::backends::dynamics::Dynamics;
use hums::workorders::backends::{Adapter, RemoteStatus};
use hums::workorders::WorkOrder;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const API: &str = "/api/data/v9.2";
const TOKEN_PATH: &str = "/5f1c0000-tenant/oauth2/v2.0/token";
const CLIENT_ID: &str = "3c1f0a9e-hums-app";
const KEY: &str = "gw:pump-01:pump.bearing_wear:1790000000000";
const ASSET: &str = "a1b2c3d4-0000-4000-8000-000000000045";
const P1: &str = "11111111-0000-4000-8000-000000000001";
const P2: &str = "22222222-0000-4000-8000-000000000002";
const HALL: &str = "f0f0f0f0-0000-4000-8000-000000000300";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake chart \xff\xfe\x00";

/// One request as the stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: String,
    uri: String,
    headers: HeaderMap,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug, Clone)]
struct Wo {
    id: String,
    summary: String,
    status: i64,
    asset: String,
    priority: Option<String>,
    timeclosed: Option<String>,
    created: Value,
}

fn wo(n: usize, status: i64, summary: &str) -> Wo {
    Wo {
        id: format!("6f1c2a10-0000-4000-8000-{n:012}"),
        summary: summary.into(),
        status,
        asset: ASSET.into(),
        priority: None,
        timeclosed: None,
        created: Value::Null,
    }
}

#[derive(Default)]
struct Stub {
    base: String,
    secret: String,
    throttle_first_create: bool,
    /// Invalidate every bearer token once, after the first order is created.
    expire_after_create: bool,
    create_attempts: u32,
    /// The form of every token request.
    token_forms: Vec<std::collections::BTreeMap<String, String>>,
    valid_tokens: Vec<String>,
    unauthorized: u32,
    wos: Vec<Wo>,
    notes: Vec<Value>,
    /// `$skiptoken` of every look-up page served (0 for the first).
    pages: Vec<usize>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Stub>>;

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end).unwrap_or(rest.len())])
}

fn odata_error(code: &str, message: &str) -> Value {
    json!({ "error": { "code": code, "message": message } })
}

impl Stub {
    fn serve(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
        self.seen.push(Seen {
            at: Instant::now(),
            method: method.to_string(),
            uri: uri.to_string(),
            headers: headers.clone(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        if uri.path() == TOKEN_PATH {
            return self.token(method, body);
        }
        let h =
            |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let bearer = h("authorization").strip_prefix("Bearer ").unwrap_or_default().to_string();
        if !self.valid_tokens.contains(&bearer) {
            self.unauthorized += 1;
            return common::backend::reply(
                401,
                &[("www-authenticate", "Bearer error=\"invalid_token\"".into())],
                odata_error("0x80072182", "The access token has expired"),
            );
        }
        if h("odata-version") != "4.0" || h("odata-maxversion") != "4.0" {
            return common::backend::reply(
                400,
                &[],
                odata_error("0x0", "OData-Version 4.0 expected"),
            );
        }
        let path = uri.path().to_string();
        let Some(rest) = path.strip_prefix(API) else {
            return common::backend::reply(404, &[], odata_error("0x0", "no such resource"));
        };
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let guid = |r: &str| between(r, "(", ")").unwrap_or_default().to_string();
        match (method.as_str(), rest) {
            ("POST", "/msdyn_workorders") => self.create(json),
            ("GET", "/msdyn_workorders") => self.list(uri, &h("prefer")),
            ("PATCH", r) if r.starts_with("/msdyn_workorders(") => {
                let id = guid(r);
                let Some(w) = self.wos.iter_mut().find(|w| w.id == id) else {
                    return common::backend::reply(
                        404,
                        &[],
                        odata_error("0x80040217", "msdyn_workorder does not exist"),
                    );
                };
                if let Some(p) = json["msdyn_priority@odata.bind"].as_str() {
                    w.priority = Some(guid(p));
                }
                common::backend::reply(204, &[], Value::Null)
            }
            ("GET", r) if r.starts_with("/msdyn_workorders(") => {
                let id = guid(r);
                match self.wos.iter().find(|w| w.id == id) {
                    Some(w) => common::backend::reply(
                        200,
                        &[],
                        json!({ "msdyn_workorderid": w.id, "msdyn_systemstatus": w.status,
                                "msdyn_timeclosed": w.timeclosed }),
                    ),
                    None => common::backend::reply(
                        404,
                        &[],
                        odata_error("0x80040217", "msdyn_workorder does not exist"),
                    ),
                }
            }
            ("POST", "/annotations") => {
                let target = json["objectid_msdyn_workorder@odata.bind"]
                    .as_str()
                    .map(guid)
                    .unwrap_or_default();
                if !self.wos.iter().any(|w| w.id == target) {
                    return common::backend::reply(
                        400,
                        &[],
                        odata_error("0x80040217", "regarding record does not exist"),
                    );
                }
                self.notes.push(json);
                let id = format!(
                    "{}{API}/annotations(9a9a9a9a-0000-4000-8000-{:012})",
                    self.base,
                    self.notes.len()
                );
                common::backend::reply(204, &[("odata-entityid", id)], Value::Null)
            }
            ("GET", "/annotations") => {
                let filter = common::backend::query(&uri.to_string())
                    .get("$filter")
                    .cloned()
                    .unwrap_or_default();
                let target =
                    between(&filter, "_objectid_value eq ", " ").unwrap_or_default().to_string();
                let subject = between(&filter, "subject eq '", "'").unwrap_or_default().to_string();
                let value: Vec<Value> = self
                    .notes
                    .iter()
                    .filter(|n| {
                        n["objectid_msdyn_workorder@odata.bind"].as_str().map(guid)
                            == Some(target.clone())
                            && n["subject"] == subject.as_str()
                    })
                    .map(|_| json!({ "annotationid": "9a9a9a9a-0000-4000-8000-000000000001" }))
                    .collect();
                common::backend::reply(200, &[], json!({ "value": value }))
            }
            _ => common::backend::reply(
                404,
                &[],
                odata_error("0x0", "Resource not found for the segment"),
            ),
        }
    }

    fn token(&mut self, method: &Method, body: &[u8]) -> Response {
        let form = common::backend::query(&format!("/?{}", String::from_utf8_lossy(body)));
        self.token_forms.push(form.clone());
        let field = |k: &str| form.get(k).map(String::as_str);
        let scope = format!("{}/.default", self.base);
        if method != Method::POST
            || field("grant_type") != Some("client_credentials")
            || field("client_id") != Some(CLIENT_ID)
            || field("client_secret") != Some(self.secret.as_str())
            || field("scope") != Some(scope.as_str())
        {
            return common::backend::reply(
                401,
                &[],
                json!({ "error": "invalid_client", "error_description": "AADSTS7000215" }),
            );
        }
        let token = format!("tok-{}", self.token_forms.len());
        self.valid_tokens.push(token.clone());
        common::backend::reply(
            200,
            &[],
            json!({ "token_type": "Bearer", "expires_in": 3599, "access_token": token }),
        )
    }

    fn create(&mut self, body: Value) -> Response {
        self.create_attempts += 1;
        if self.throttle_first_create && self.create_attempts == 1 {
            return common::backend::reply(
                429,
                &[("retry-after", "1".into())],
                odata_error(
                    "0x80072322",
                    "Number of requests exceeded the limit of 6000 over time window of 300 \
                     seconds.",
                ),
            );
        }
        let mut w = wo(
            self.wos.len() + 500,
            body["msdyn_systemstatus"].as_i64().unwrap_or(690_970_000),
            "",
        );
        w.summary = body["msdyn_workordersummary"].as_str().unwrap_or_default().into();
        w.asset = body["msdyn_customerasset@odata.bind"]
            .as_str()
            .and_then(|b| between(b, "(", ")"))
            .unwrap_or_default()
            .into();
        w.priority = body["msdyn_priority@odata.bind"]
            .as_str()
            .and_then(|b| between(b, "(", ")"))
            .map(str::to_string);
        w.created = body;
        let entity = format!("{}{API}/msdyn_workorders({})", self.base, w.id);
        self.wos.push(w);
        if self.expire_after_create {
            self.expire_after_create = false;
            self.valid_tokens.clear();
        }
        common::backend::reply(204, &[("odata-entityid", entity)], Value::Null)
    }

    fn list(&mut self, uri: &Uri, prefer: &str) -> Response {
        let q = common::backend::query(&uri.to_string());
        let filter = q.get("$filter").cloned().unwrap_or_default();
        if !filter.contains("msdyn_systemstatus lt 690970003") {
            return common::backend::reply(
                400,
                &[],
                odata_error("0x0", "the stub models open-order look-ups only"),
            );
        }
        let asset =
            between(&filter, "_msdyn_customerasset_value eq ", " ").unwrap_or_default().to_string();
        let size: usize = between(prefer, "odata.maxpagesize=", ",")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(5000);
        let skip: usize = q.get("$skiptoken").and_then(|s| s.parse().ok()).unwrap_or(0);
        self.pages.push(skip);
        let matching: Vec<&Wo> =
            self.wos.iter().filter(|w| w.asset == asset && w.status < 690_970_003).collect();
        let value: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(size)
            .map(|w| {
                json!({
                    "@odata.etag": "W/\"1\"", "msdyn_workorderid": w.id,
                    "msdyn_workordersummary": w.summary
                })
            })
            .collect();
        let mut page = json!({
            "@odata.context": format!("{}{API}/$metadata#msdyn_workorders", self.base),
            "value": value
        });
        if skip + size < matching.len() {
            let rest: Vec<&str> = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.starts_with("$skiptoken="))
                .collect();
            page["@odata.nextLink"] = json!(format!(
                "{}{API}/msdyn_workorders?{}&$skiptoken={}",
                self.base,
                rest.join("&"),
                skip + size
            ));
        }
        common::backend::reply(
            200,
            &[("preference-applied", format!("odata.maxpagesize={size}"))],
            page,
        )
    }
}

async fn handle(
    State(stub): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut stub = stub.lock().unwrap();
    stub.serve(&method, &uri, &headers, &body)
}

/// Starts the stub; returns its base URL.
async fn start(stub: Stub) -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shared = Arc::new(Mutex::new(Stub { base: base.clone(), ..stub }));
    let app = axum::Router::new().fallback(handle).with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, shared)
}

fn config(base: &str, secret_env: &str) -> DynamicsSettings {
    DynamicsSettings {
        common: Common {
            url: format!("{base}{API}"),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            ..Common::default()
        },
        token_url: Some(format!("{base}{TOKEN_PATH}")),
        client_id: Some(CLIENT_ID.into()),
        client_secret_env: Some(secret_env.into()),
        ..DynamicsSettings::default()
    }
}

fn order(key: &str, revision: u32) -> WorkOrder {
    common::backend::order(key, revision, "condition", ASSET)
}

/// Delivers `orders` through the outbox with `backend` until all are delivered.
async fn deliver<B: Adapter>(
    backend: B,
    cfg: &DynamicsSettings,
    orders: Vec<WorkOrder>,
    stub: &Shared,
) -> Arc<Store> {
    common::backend::deliver(backend, &cfg.common, orders, || {
        format!("{:#?}", stub.lock().unwrap().seen)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_then_escalation_through_a_429_and_an_expired_token() {
    std::env::set_var("HUMS_TEST_DYNAMICS_SECRET", "dyn-secret-1");
    let (base, stub) = start(Stub {
        secret: "dyn-secret-1".into(),
        throttle_first_create: true,
        expire_after_create: true,
        ..Stub::default()
    })
    .await;
    let plain = config(&base, "HUMS_TEST_DYNAMICS_SECRET");
    let cfg = DynamicsSettings {
        common: Common {
            priorities: [("1".to_string(), P1.to_string()), ("2".to_string(), P2.to_string())]
                .into(),
            locations: [("Site T › Hall 1".to_string(), HALL.to_string())].into(),
            ..plain.common.clone()
        },
        fields: [
            (
                "msdyn_serviceaccount@odata.bind".to_string(),
                json!("/accounts(0a0a0a0a-0000-4000-8000-000000000001)"),
            ),
            (
                "msdyn_workordertype@odata.bind".to_string(),
                json!("/msdyn_workordertypes(0b0b0b0b-0000-4000-8000-000000000002)"),
            ),
        ]
        .into(),
        ..plain
    };
    let store =
        deliver(Dynamics::new(&cfg).unwrap(), &cfg, vec![order(KEY, 1), order(KEY, 2)], &stub)
            .await;
    let remote = store.remote_id(KEY).unwrap().expect("the work order's id");
    {
        let s = stub.lock().unwrap();
        // Client credentials: one token, and one more after the simulated expiry.
        assert_eq!(s.token_forms.len(), 2, "{:#?}", s.seen);
        for form in &s.token_forms {
            assert_eq!(form["grant_type"], "client_credentials");
            assert_eq!(form["client_id"], CLIENT_ID);
            assert_eq!(form["client_secret"], "dyn-secret-1");
            assert_eq!(form["scope"], format!("{base}/.default"));
        }
        assert_eq!(s.unauthorized, 1, "exactly one request met the expired token");
        let api: Vec<&Seen> = s.seen.iter().filter(|r| r.path().starts_with(API)).collect();
        for r in &api {
            assert!(
                r.header("authorization").is_some_and(|a| a.starts_with("Bearer tok-")),
                "{r:#?}"
            );
            assert_eq!(r.header("odata-version"), Some("4.0"));
            assert_eq!(r.header("odata-maxversion"), Some("4.0"));
            assert_eq!(r.header("accept"), Some("application/json"));
        }

        // The 429 was honoured (Retry-After: 1) and the order created once.
        let creates: Vec<&&Seen> = api
            .iter()
            .filter(|r| r.method == "POST" && r.path() == format!("{API}/msdyn_workorders"))
            .collect();
        assert_eq!(creates.len(), 2, "{:#?}", s.seen);
        assert!(creates[1].at.duration_since(creates[0].at) >= Duration::from_millis(900));
        assert_eq!(s.create_attempts, 2);
        assert_eq!(s.wos.len(), 1);
        let w = &s.wos[0];
        assert_eq!(remote, w.id);
        let b = &w.created;
        let summary = b["msdyn_workordersummary"].as_str().unwrap();
        assert!(summary.starts_with(&format!("hums:{KEY}\n")), "{summary}");
        assert!(summary.contains("Check lubrication"));
        assert_eq!(b["msdyn_systemstatus"], 690_970_000);
        assert_eq!(
            b["msdyn_customerasset@odata.bind"],
            format!("/msdyn_customerassets({ASSET})").as_str()
        );
        assert_eq!(b["msdyn_priority@odata.bind"], format!("/msdyn_priorities({P2})").as_str());
        assert_eq!(
            b["msdyn_functionallocation@odata.bind"],
            format!("/msdyn_functionallocations({HALL})").as_str()
        );
        assert_eq!(
            b["msdyn_serviceaccount@odata.bind"],
            "/accounts(0a0a0a0a-0000-4000-8000-000000000001)"
        );
        assert_eq!(
            b["msdyn_workordertype@odata.bind"],
            "/msdyn_workordertypes(0b0b0b0b-0000-4000-8000-000000000002)"
        );

        // The escalation: the priority PATCH (401 once, then with the new
        // token) and one note on the created order.
        let patches: Vec<&&Seen> = api.iter().filter(|r| r.method == "PATCH").collect();
        assert_eq!(patches.len(), 2, "{:#?}", s.seen);
        assert_eq!(patches[1].path(), format!("{API}/msdyn_workorders({remote})"));
        assert_eq!(patches[1].header("authorization"), Some("Bearer tok-2"));
        assert_eq!(patches[1].header("if-match"), Some("*"));
        assert_eq!(
            patches[1].json()["msdyn_priority@odata.bind"],
            format!("/msdyn_priorities({P1})").as_str()
        );
        assert_eq!(w.priority.as_deref(), Some(P1));
        assert_eq!(s.notes.len(), 1);
        let note = &s.notes[0];
        assert_eq!(note["subject"], "hums update (revision 2)");
        assert!(note["notetext"].as_str().unwrap().starts_with("hums update (revision 2):"));
        assert_eq!(
            note["objectid_msdyn_workorder@odata.bind"],
            format!("/msdyn_workorders({remote})").as_str()
        );
    }

    // The rest of the adapter, called directly.
    let dynamics = Dynamics::new(&cfg).unwrap();
    assert!(dynamics.landed(&order(KEY, 2), &remote).await.unwrap());
    assert!(!dynamics.landed(&order(KEY, 3), &remote).await.unwrap());
    assert!(dynamics.attach(&remote, "hums evidence r1.png", PNG).await.unwrap());
    {
        let s = stub.lock().unwrap();
        assert_eq!(s.notes.len(), 2);
        let note = &s.notes[1];
        assert_eq!(note["filename"], "hums evidence r1.png");
        assert_eq!(note["mimetype"], "image/png");
        assert_eq!(
            note["objectid_msdyn_workorder@odata.bind"],
            format!("/msdyn_workorders({remote})").as_str()
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(note["documentbody"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes.as_slice(), PNG);
    }

    assert_eq!(dynamics.status(&remote).await.unwrap(), Some(RemoteStatus::Open));
    {
        let mut s = stub.lock().unwrap();
        s.wos[0].status = 690_970_004;
        s.wos[0].timeclosed = Some("2026-11-27T10:30:00Z".into());
    }
    let closed: DateTime<Utc> = "2026-11-27T10:30:00Z".parse().unwrap();
    assert_eq!(dynamics.status(&remote).await.unwrap(), Some(RemoteStatus::Done(Some(closed))));
    stub.lock().unwrap().wos[0].status = 690_970_005;
    assert_eq!(dynamics.status(&remote).await.unwrap(), Some(RemoteStatus::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_order_of_an_earlier_episode_on_page_two_gets_the_note() {
    std::env::set_var("HUMS_TEST_DYNAMICS_SECRET_DEDUP", "dyn-secret-2");
    const EARLIER: &str = "gw:pump-01:pump.bearing_wear:1780000000000";
    const NEW: &str = "gw:pump-01:pump.bearing_wear:1790000999999";
    let mut wos: Vec<Wo> = (0..150)
        .map(|n| {
            let summary = match n % 3 {
                0 => format!("Replace coupling guard ({n})"),
                1 => format!("hums:gw:pump-01:pump.cavitation:17{n:011}\nCavitation suspected"),
                _ => format!("hums:other-gw:pump-01:pump.bearing_wear:{n}\nBearing wear"),
            };
            wo(n, [690_970_000, 690_970_001, 690_970_002][n % 3], &summary)
        })
        .collect();
    // The same fault, but completed: not open, not a candidate.
    wos.insert(
        10,
        wo(900, 690_970_003, "hums:gw:pump-01:pump.bearing_wear:1770000000000\nBearing wear"),
    );
    // The earlier episode, still open, on the second page.
    wos.insert(
        130,
        wo(
            901,
            690_970_001,
            &format!("hums:{EARLIER}\nBoiler feed pump 1: bearing wear suspected"),
        ),
    );
    let (base, stub) = start(Stub { secret: "dyn-secret-2".into(), wos, ..Stub::default() }).await;
    let cfg = config(&base, "HUMS_TEST_DYNAMICS_SECRET_DEDUP");
    let store = deliver(Dynamics::new(&cfg).unwrap(), &cfg, vec![order(NEW, 1)], &stub).await;

    let s = stub.lock().unwrap();
    assert_eq!(s.create_attempts, 0, "no new order: {:#?}", s.seen);
    assert_eq!(s.pages, vec![0, 100], "the next link was followed");
    let earlier =
        s.wos.iter().find(|w| w.summary.starts_with(&format!("hums:{EARLIER}\n"))).unwrap();
    assert_eq!(store.remote_id(NEW).unwrap().as_deref(), Some(earlier.id.as_str()));
    assert_eq!(s.notes.len(), 1);
    assert_eq!(
        s.notes[0]["objectid_msdyn_workorder@odata.bind"],
        format!("/msdyn_workorders({})", earlier.id).as_str()
    );
    assert!(s.notes[0]["notetext"].as_str().unwrap().starts_with("hums update (revision 1):"));
    assert!(s.seen.iter().all(|r| r.method != "PATCH"), "no priority mapped, no PATCH");
    let lookups: Vec<&Seen> = s
        .seen
        .iter()
        .filter(|r| r.method == "GET" && r.path() == format!("{API}/msdyn_workorders"))
        .collect();
    assert_eq!(lookups.len(), 2);
    assert_eq!(
        common::backend::query(&lookups[0].uri)["$filter"],
        format!("_msdyn_customerasset_value eq {ASSET} and msdyn_systemstatus lt 690970003")
    );
    assert!(lookups.iter().all(|r| r.header("prefer") == Some("odata.maxpagesize=100")));
}
