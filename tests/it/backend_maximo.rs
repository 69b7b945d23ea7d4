//! The Maximo adapter against a stateful stub of Maximo's REST/JSON API
//! (object structure MXAPIWO under `/maximo/api/os/mxapiwo`). The stub keeps
//! work orders (site, asset, status, `externalrefid`, priority, work log,
//! attachments), answers `oslc.where` look-ups on site, asset and status with
//! `oslc.pageSize` pages linked by `responseInfo.nextPage.href`, creates with
//! `201` + `Location`, merges `x-method-override: PATCH` updates, stores
//! `doclinks` uploads and records every request. Documented behaviours tested:
//! - auth: the `apikey` header, and native `maxauth: base64(user:password)`;
//! - a `429` with `Retry-After: 1` on the first create: honoured, and the
//!   order is created exactly once;
//! - dedup: 150 unrelated open orders of the asset, then on page 2 an open
//!   order of an earlier episode of the same fault: no create, the comment
//!   goes to that order as a work-log entry;
//! - raise then escalation: one create with the mapped `wopriority`, asset,
//!   site, location and `externalrefid`, then one MERGE update adding the
//!   "hums update (revision 2)" work log to the created record;
//! - attachments (`slug`, `x-document-meta`, Content-Type, bytes) and status
//!   (`COMP` with `actfinish` → done, `CAN` → cancelled).

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hums::config::backend::{Common, Login, MaximoSettings};
use hums::store::Store;
use hums::workorders::backends::maximo::Maximo;
use hums::workorders::backends::{Adapter, Found, RemoteStatus};
use hums::workorders::WorkOrder;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const COLL: &str = "/maximo/api/os/mxapiwo";
const KEY: &str = "gw:pump-01:pump.bearing_wear:1790000000000";
const ASSET: &str = "11430";
const SITE: &str = "BEDFORD";
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
    fn query(&self) -> std::collections::BTreeMap<String, String> {
        common::backend::query(&self.uri)
    }
}

#[derive(Debug, Clone)]
struct Wo {
    id: String,
    wonum: String,
    siteid: String,
    assetnum: String,
    status: String,
    externalrefid: String,
    wopriority: Value,
    actfinish: Option<String>,
    worklog: Vec<Value>,
    created: Value,
}

fn wo(n: usize, status: &str, externalrefid: &str) -> Wo {
    let wonum = format!("{}", 1000 + n);
    Wo {
        id: format!("_QkVERk9SRC8x{wonum}"),
        wonum,
        siteid: SITE.into(),
        assetnum: ASSET.into(),
        status: status.into(),
        externalrefid: externalrefid.into(),
        wopriority: json!(3),
        actfinish: None,
        worklog: Vec::new(),
        created: Value::Null,
    }
}

#[derive(Default)]
struct Stub {
    base: String,
    /// The auth header (name, value) the stub accepts.
    auth: (String, String),
    throttle_first_create: bool,
    create_attempts: u32,
    wos: Vec<Wo>,
    /// `pageno` of every look-up page served.
    pages: Vec<usize>,
    /// Record id, request headers and bytes of every upload.
    attachments: Vec<(String, HeaderMap, Vec<u8>)>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Stub>>;

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end).unwrap_or(rest.len())])
}

impl Stub {
    fn href(&self, id: &str) -> String {
        format!("{}{COLL}/{id}", self.base)
    }

    fn serve(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
        self.seen.push(Seen {
            at: Instant::now(),
            method: method.to_string(),
            uri: uri.to_string(),
            headers: headers.clone(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        let authed =
            headers.get(&self.auth.0).and_then(|v| v.to_str().ok()) == Some(self.auth.1.as_str());
        if !authed {
            return common::backend::reply(
                401,
                &[],
                json!({ "Error": { "reasonCode": "BMXAA0021E", "statusCode": "401" } }),
            );
        }
        let path = uri.path().to_string();
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (method.as_str(), path.strip_prefix(COLL)) {
            ("POST", Some("")) => self.create(headers, json),
            ("GET", Some("")) => self.list(uri),
            ("POST", Some(rest)) if rest.ends_with("/doclinks") => {
                let id = rest.trim_start_matches('/').trim_end_matches("/doclinks").to_string();
                let location = format!("{}/doclinks/75", self.href(&id));
                self.attachments.push((id, headers.clone(), body.to_vec()));
                common::backend::reply(201, &[("location", location)], Value::Null)
            }
            ("POST", Some(rest)) => {
                let id = rest.trim_start_matches('/');
                let h = |n: &str| {
                    headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
                };
                if h("x-method-override") != "PATCH" || h("patchtype") != "MERGE" {
                    return common::backend::reply(
                        400,
                        &[],
                        json!({ "Error": { "message": "not a MERGE update" } }),
                    );
                }
                let Some(w) = self.wos.iter_mut().find(|w| w.id == id) else {
                    return common::backend::reply(
                        404,
                        &[],
                        json!({ "Error": { "message": "no such record" } }),
                    );
                };
                if let Some(p) = json.get("wopriority") {
                    w.wopriority = p.clone();
                }
                w.worklog.extend(json["worklog"].as_array().into_iter().flatten().cloned());
                common::backend::reply(204, &[], Value::Null)
            }
            ("GET", Some(rest)) => {
                let id = rest.trim_start_matches('/');
                let Some(w) = self.wos.iter().find(|w| w.id == id) else {
                    return common::backend::reply(
                        404,
                        &[],
                        json!({ "Error": { "message": "no such record" } }),
                    );
                };
                common::backend::reply(
                    200,
                    &[],
                    json!({
                        "href": self.href(id), "status": w.status, "actfinish": w.actfinish,
                        "worklog": w.worklog
                    }),
                )
            }
            _ => common::backend::reply(
                404,
                &[],
                json!({ "Error": { "message": "no such resource" } }),
            ),
        }
    }

    fn create(&mut self, headers: &HeaderMap, body: Value) -> Response {
        self.create_attempts += 1;
        if self.throttle_first_create && self.create_attempts == 1 {
            return common::backend::reply(
                429,
                &[("retry-after", "1".into())],
                json!({ "Error": { "message": "rate limited" } }),
            );
        }
        if body["siteid"].as_str().is_none() {
            return common::backend::reply(
                400,
                &[],
                json!({ "Error": { "message": "BMXAA4195E siteid is required" } }),
            );
        }
        let mut w =
            wo(self.wos.len() + 500, "WAPPR", body["externalrefid"].as_str().unwrap_or_default());
        w.assetnum = body["assetnum"].as_str().unwrap_or_default().into();
        w.siteid = body["siteid"].as_str().unwrap_or_default().into();
        w.wopriority = body["wopriority"].clone();
        w.created = body;
        let href = self.href(&w.id);
        let answer = if headers.contains_key("properties") {
            json!({ "href": href, "wonum": w.wonum, "status": w.status })
        } else {
            Value::Null
        };
        self.wos.push(w);
        common::backend::reply(201, &[("location", href)], answer)
    }

    fn list(&mut self, uri: &Uri) -> Response {
        let q = common::backend::query(&uri.to_string());
        let filter = q.get("oslc.where").cloned().unwrap_or_default();
        let size: usize = q.get("oslc.pageSize").and_then(|p| p.parse().ok()).unwrap_or(1000);
        let page: usize = q.get("pageno").and_then(|p| p.parse().ok()).unwrap_or(1);
        self.pages.push(page);
        let site = between(&filter, "siteid=\"", "\"");
        let asset = between(&filter, "assetnum=\"", "\"");
        let statuses: Vec<String> = between(&filter, "status in [", "]")
            .map(|l| l.split(',').map(|s| s.trim().trim_matches('"').to_string()).collect())
            .unwrap_or_default();
        let matching: Vec<&Wo> = self
            .wos
            .iter()
            .filter(|w| {
                site == Some(w.siteid.as_str())
                    && asset == Some(w.assetnum.as_str())
                    && statuses.contains(&w.status)
            })
            .collect();
        let members: Vec<Value> = matching
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|w| {
                // Lean JSON leaves empty attributes out.
                let mut m =
                    json!({ "href": self.href(&w.id), "wonum": w.wonum, "status": w.status });
                if !w.externalrefid.is_empty() {
                    m["externalrefid"] = json!(w.externalrefid);
                }
                m
            })
            .collect();
        let mut info = json!({ "pagenum": page, "totalCount": matching.len() });
        if page * size < matching.len() {
            let rest: Vec<&str> = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|p| !p.starts_with("pageno="))
                .collect();
            info["nextPage"] = json!({
                "href": format!("{}{COLL}?{}&pageno={}", self.base, rest.join("&"), page + 1)
            });
        }
        common::backend::reply(200, &[], json!({ "member": members, "responseInfo": info }))
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

fn fast() -> Common {
    Common {
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        ..Common::default()
    }
}

fn order(key: &str, revision: u32, kind: &str) -> WorkOrder {
    common::backend::order(key, revision, kind, ASSET)
}

/// Delivers `orders` through the outbox with `backend` until all are delivered.
async fn deliver<B: Adapter>(
    backend: B,
    cfg: &MaximoSettings,
    orders: Vec<WorkOrder>,
    stub: &Shared,
) -> Arc<Store> {
    common::backend::deliver(backend, &cfg.common, orders, || {
        format!("{:#?}", stub.lock().unwrap().seen)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_then_escalation_with_an_api_key_through_a_429() {
    std::env::set_var("HUMS_TEST_MAXIMO_APIKEY", "mx-api-key-1");
    let (base, stub) = start(Stub {
        auth: ("apikey".into(), "mx-api-key-1".into()),
        throttle_first_create: true,
        ..Stub::default()
    })
    .await;
    let cfg = MaximoSettings {
        common: Common {
            url: format!("{base}/maximo"),
            priorities: [("1".to_string(), "1".to_string()), ("2".to_string(), "3".to_string())]
                .into(),
            locations: [("Site T › Hall 1".to_string(), "BR300".to_string())].into(),
            ..fast()
        },
        token_env: Some("HUMS_TEST_MAXIMO_APIKEY".into()),
        site_id: Some(SITE.into()),
        fields: [("orgid".to_string(), json!("EAGLENA"))].into(),
        ..MaximoSettings::default()
    };
    let store = deliver(
        Maximo::new(&cfg).unwrap(),
        &cfg,
        vec![order(KEY, 1, "condition"), order(KEY, 2, "condition")],
        &stub,
    )
    .await;
    let remote = store.remote_id(KEY).unwrap().expect("the record's rest id");
    {
        let s = stub.lock().unwrap();
        assert!(
            s.seen.iter().all(
                |r| r.header("apikey") == Some("mx-api-key-1") && r.header("maxauth").is_none()
            ),
            "{:#?}",
            s.seen
        );
        // The 429 was honoured (Retry-After: 1) and the order created once.
        let creates: Vec<&Seen> =
            s.seen.iter().filter(|r| r.method == "POST" && r.path() == COLL).collect();
        assert_eq!(creates.len(), 2, "{:#?}", s.seen);
        assert!(creates[1].at.duration_since(creates[0].at) >= Duration::from_millis(900));
        assert_eq!(s.wos.len(), 1);
        assert_eq!(creates[1].query()["lean"], "1");
        assert_eq!(creates[1].header("properties"), Some("*"));
        let w = &s.wos[0];
        assert_eq!(remote, w.id);
        let b = &w.created;
        assert_eq!(b["externalrefid"], KEY);
        assert_eq!(b["assetnum"], ASSET);
        assert_eq!(b["siteid"], SITE);
        assert_eq!(b["location"], "BR300");
        assert_eq!(b["wopriority"], 3, "hums priority 2 mapped to 3");
        assert_eq!(b["worktype"], "CM");
        assert_eq!(b["orgid"], "EAGLENA");
        assert_eq!(b["description"], "Boiler feed pump 1: bearing wear suspected");
        assert!(b["description_longdescription"].as_str().unwrap().contains(&format!("({KEY})")));

        // The escalation: one MERGE update of the created record.
        let updates: Vec<&Seen> = s
            .seen
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path().starts_with(&format!("{COLL}/"))
                    && !r.path().ends_with("/doclinks")
            })
            .collect();
        assert_eq!(updates.len(), 1, "{:#?}", s.seen);
        assert_eq!(updates[0].path(), format!("{COLL}/{remote}"));
        assert_eq!(updates[0].header("x-method-override"), Some("PATCH"));
        assert_eq!(updates[0].header("patchtype"), Some("MERGE"));
        let sent: Value = serde_json::from_str(&updates[0].body).unwrap();
        assert_eq!(sent["wopriority"], 1, "hums priority 1 mapped to 1");
        assert_eq!(w.wopriority, 1);
        assert_eq!(w.worklog.len(), 1);
        let log = &w.worklog[0];
        let first = log["description"].as_str().unwrap();
        assert!(first.starts_with("hums update (revision 2):"), "{first}");
        assert!(first.chars().count() <= 100);
        assert!(log["description_longdescription"].as_str().unwrap().contains("vib_de mean"));
        assert_eq!(log["logtype"], "WORK");
    }

    // The rest of the adapter, called directly.
    let mx = Maximo::new(&cfg).unwrap();
    assert!(mx.landed(&order(KEY, 2, "condition"), &remote).await.unwrap());
    assert!(!mx.landed(&order(KEY, 3, "condition"), &remote).await.unwrap());
    assert!(mx.attach(&remote, "hums evidence r1.png", PNG).await.unwrap());
    {
        let s = stub.lock().unwrap();
        assert_eq!(s.attachments.len(), 1);
        let (id, headers, bytes) = &s.attachments[0];
        assert_eq!(id, &remote);
        assert_eq!(bytes.as_slice(), PNG);
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(h("slug"), Some("hums evidence r1.png"));
        assert_eq!(h("x-document-meta"), Some("FILE/Attachments"));
        assert_eq!(h("content-type"), Some("image/png"));
    }
    assert!(!Maximo::new(&MaximoSettings { attachments: false, ..cfg.clone() })
        .unwrap()
        .attach(&remote, "x.png", PNG)
        .await
        .unwrap());

    assert_eq!(mx.status(&remote).await.unwrap(), Some(RemoteStatus::Open));
    {
        let mut s = stub.lock().unwrap();
        s.wos[0].status = "COMP".into();
        s.wos[0].actfinish = Some("2026-11-27T11:30:00+01:00".into());
    }
    let finished: DateTime<Utc> = "2026-11-27T10:30:00Z".parse().unwrap();
    assert_eq!(mx.status(&remote).await.unwrap(), Some(RemoteStatus::Done(Some(finished))));
    stub.lock().unwrap().wos[0].status = "CAN".into();
    assert_eq!(mx.status(&remote).await.unwrap(), Some(RemoteStatus::Cancelled));
    let status = stub.lock().unwrap().seen.last().map(Seen::query).unwrap_or_default();
    assert_eq!(status["oslc.select"], "status,actfinish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_order_of_an_earlier_episode_on_page_two_gets_the_comment() {
    std::env::set_var("HUMS_TEST_MAXIMO_APIKEY_DEDUP", "mx-api-key-2");
    const EARLIER: &str = "gw:pump-01:pump.bearing_wear:1780000000000";
    const NEW: &str = "gw:pump-01:pump.bearing_wear:1790000999999";
    let mut wos: Vec<Wo> = (0..150)
        .map(|n| {
            let reference = match n % 3 {
                0 => String::new(),
                1 => format!("gw:pump-01:pump.cavitation:17{n:011}"),
                _ => format!("other-gw:pump-01:pump.bearing_wear:{n}"),
            };
            wo(n, ["APPR", "WAPPR", "INPRG", "WMATL", "WSCH"][n % 5], &reference)
        })
        .collect();
    // The same fault, but closed: not open, not a candidate.
    wos.insert(10, wo(900, "COMP", "gw:pump-01:pump.bearing_wear:1770000000000"));
    // The earlier episode, still open, on the second page.
    wos.insert(130, wo(901, "INPRG", EARLIER));
    let (base, stub) =
        start(Stub { auth: ("apikey".into(), "mx-api-key-2".into()), wos, ..Stub::default() })
            .await;
    let cfg = MaximoSettings {
        common: Common { url: format!("{base}/maximo/"), ..fast() },
        token_env: Some("HUMS_TEST_MAXIMO_APIKEY_DEDUP".into()),
        site_id: Some(SITE.into()),
        ..MaximoSettings::default()
    };
    let store =
        deliver(Maximo::new(&cfg).unwrap(), &cfg, vec![order(NEW, 1, "condition")], &stub).await;

    let s = stub.lock().unwrap();
    assert_eq!(s.create_attempts, 0, "no new order: {:#?}", s.seen);
    assert_eq!(s.pages, vec![1, 2], "both look-up pages read");
    let earlier = s.wos.iter().find(|w| w.externalrefid == EARLIER).unwrap();
    assert_eq!(store.remote_id(NEW).unwrap().as_deref(), Some(earlier.id.as_str()));
    assert_eq!(earlier.worklog.len(), 1);
    assert!(earlier.worklog[0]["description"]
        .as_str()
        .unwrap()
        .starts_with("hums update (revision 1):"));
    assert!(earlier.worklog[0]["description_longdescription"]
        .as_str()
        .unwrap()
        .contains("vib_de mean"));
    assert_eq!(s.wos.iter().filter(|w| !w.worklog.is_empty()).count(), 1, "no other order touched");
    let lookup = s.seen.iter().find(|r| r.method == "GET").unwrap().query();
    let open = r#"["WAPPR","APPR","INPRG","WMATL","WSCH"]"#;
    assert_eq!(
        lookup["oslc.where"],
        format!(r#"siteid="{SITE}" and assetnum="{ASSET}" and status in {open}"#)
    );
    assert_eq!(lookup["oslc.pageSize"], "100");
    assert_eq!(lookup["oslc.select"], "wonum,externalrefid,status,href");
    assert_eq!(lookup["lean"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_authentication_sends_maxauth() {
    std::env::set_var("HUMS_TEST_MAXIMO_USER", "maxadmin");
    std::env::set_var("HUMS_TEST_MAXIMO_PASSWORD", "s3cret:pw");
    let maxauth = base64::engine::general_purpose::STANDARD.encode("maxadmin:s3cret:pw");
    let mut earlier = wo(7, "APPR", "gw:pump-01:pump.bearing_wear:1780000000000");
    earlier.id = "_earlier".into();
    let mut same = wo(8, "WAPPR", KEY);
    same.id = "_same".into();
    let (base, stub) = start(Stub {
        auth: ("maxauth".into(), maxauth.clone()),
        wos: vec![earlier, same],
        ..Stub::default()
    })
    .await;
    let cfg = MaximoSettings {
        common: Common { url: format!("{base}/maximo"), ..fast() },
        login: Login {
            username_env: Some("HUMS_TEST_MAXIMO_USER".into()),
            password_env: Some("HUMS_TEST_MAXIMO_PASSWORD".into()),
            ..Login::default()
        },
        site_id: Some(SITE.into()),
        ..MaximoSettings::default()
    };
    let mx = Maximo::new(&cfg).unwrap();
    // This very order beats an earlier episode's.
    assert_eq!(
        mx.find(&order(KEY, 1, "condition")).await.unwrap(),
        Some(Found::Same("_same".into()))
    );
    {
        let s = stub.lock().unwrap();
        assert_eq!(s.seen.len(), 1);
        assert_eq!(s.seen[0].header("maxauth"), Some(maxauth.as_str()));
        assert!(s.seen[0].header("apikey").is_none());
    }

    // No credentials, no site or a non-integer priority: no adapter.
    let err = Maximo::new(&MaximoSettings {
        login: Login { username_env: None, ..cfg.login.clone() },
        ..cfg.clone()
    })
    .err()
    .expect("no credentials");
    assert!(err.to_string().contains("token_env"), "{err}");
    assert!(Maximo::new(&MaximoSettings { site_id: None, ..cfg.clone() }).is_err());
    let mut words = cfg.clone();
    words.common.priorities = [("1".to_string(), "urgent".to_string())].into();
    assert!(Maximo::new(&words).is_err());
}
