//! The SAP adapter against a stateful stub of S/4HANA's OData V2 services
//! `API_MAINTNOTIFICATION` and `API_CV_ATTACHMENT_SRV`. The stub checks Basic
//! auth, issues CSRF tokens on `X-CSRF-Token: Fetch` together with a session
//! cookie, refuses any write whose token is unknown or whose session cookie
//! does not match with `403` + `x-csrf-token: Required`, keeps notifications
//! (reference, technical object, processing phase, priority, long text),
//! answers `$filter` look-ups with `$top`/`$skip` pages, stores attachment
//! uploads and records every request. Documented behaviours tested:
//! - auth: Basic on every request; the CSRF round trip, with the session
//!   cookie of the fetch sent back on the write; a token that expires
//!   mid-test (after the create) is fetched anew and the write succeeds;
//! - a `429` with `Retry-After: 1` on the first create: honoured, and the
//!   notification is created exactly once;
//! - dedup: 150 unrelated open notifications of the technical object, then
//!   (past `$skip=100`) an open notification of an earlier episode of the same
//!   fault, recognised by the fault part of its hashed reference: no create,
//!   the comment goes to it;
//! - raise then escalation: one create with the mapped priority, the technical
//!   object, the configured plant and notification type and the 20-character
//!   reference, then one PATCH of the created notification carrying
//!   "hums update (revision 2)" as long text;
//! - attachments (`Slug`, `BusinessObjectTypeName`, `LinkedSAPObjectKey`,
//!   the attachment service's own CSRF token, bytes) and status (phase 4 with
//!   a completion date → done, phase 5 → cancelled).

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hums::config::backend::{Common, Login, SapSettings};
use hums::store::Store;
use hums::workorders::backends::sap::Sap;
use hums::workorders::backends::{Adapter, RemoteStatus};
use hums::workorders::WorkOrder;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SVC: &str = "/sap/opu/odata/sap/API_MAINTNOTIFICATION";
const ATT: &str = "/sap/opu/odata/sap/API_CV_ATTACHMENT_SRV";
const COOKIE: &str = "SAP_SESSIONID_S4H_100";
const KEY: &str = "gw:pump-01:pump.bearing_wear:1790000000000";
const EQUIPMENT: &str = "10000045";
use common::backend::TITLE;
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake chart \xff\xfe\x00";

/// The reference the adapter must write, computed independently: "H", 12 hex
/// digits of SHA-256 of the fault, 7 of SHA-256 of the key.
fn sap_ref(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex = |s: &str| {
        Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let (fault, _) = key.rsplit_once(':').unwrap();
    format!("H{}{}", &hex(fault)[..12], &hex(key)[..7])
}

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
    /// The session cookie the request carried.
    fn session(&self) -> Option<&str> {
        session(&self.headers)
    }
}

fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("cookie")
        .and_then(|v| v.to_str().ok())?
        .split(';')
        .find_map(|c| c.trim().strip_prefix(COOKIE).and_then(|v| v.strip_prefix('=')))
}

#[derive(Debug, Clone, Default)]
struct Notif {
    id: String,
    ext_ref: String,
    object: String,
    phase: String,
    priority: String,
    long_text: String,
    completion: Option<(String, String)>,
    created: Value,
}

fn notif(n: usize, phase: &str, ext_ref: &str) -> Notif {
    Notif {
        id: format!("{}", 10_000_000 + n),
        ext_ref: ext_ref.into(),
        object: EQUIPMENT.into(),
        phase: phase.into(),
        priority: "3".into(),
        ..Notif::default()
    }
}

#[derive(Default)]
struct Stub {
    base: String,
    /// `user:password` of the communication user.
    credentials: String,
    throttle_first_create: bool,
    /// Forget every CSRF token once, after the first notification is created.
    expire_after_create: bool,
    create_attempts: u32,
    /// Token → (service, session) it was issued for.
    tokens: HashMap<String, (String, String)>,
    /// (service, token, session) of every fetch.
    fetches: Vec<(String, String, String)>,
    csrf_refusals: u32,
    notifs: Vec<Notif>,
    /// `$skip` of every open-notification page served.
    skips: Vec<usize>,
    /// Request headers and bytes of every upload.
    attachments: Vec<(HeaderMap, Vec<u8>)>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Stub>>;

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end).unwrap_or(rest.len())])
}

fn odata_error(message: &str) -> Value {
    json!({
        "error": {
            "code": "/IWBEP/CM_MGW_RT/000", "message": { "lang": "en", "value": message }
        }
    })
}

impl Stub {
    fn entity(&self, n: &Notif) -> Value {
        json!({
            "__metadata": {
                "uri": format!("{}{SVC}/MaintenanceNotification('{}')", self.base, n.id)
            },
            "MaintenanceNotification": n.id,
            "MaintNotifExtReferenceNumber": n.ext_ref,
            "TechnicalObject": n.object,
            "NotifProcessingPhase": n.phase,
            "MaintPriority": n.priority,
            "MaintNotificationLongText": n.long_text,
            "NotificationCompletionDate": n.completion.as_ref().map(|c| c.0.clone()),
            "CompletionTime":
                n.completion.as_ref().map_or("PT00H00M00S".to_string(), |c| c.1.clone()),
            "MaintNotifRejectionReasonCode": "",
        })
    }

    fn serve(&mut self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
        self.seen.push(Seen {
            at: Instant::now(),
            method: method.to_string(),
            uri: uri.to_string(),
            headers: headers.clone(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(&self.credentials)
        );
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
            return common::backend::reply(
                401,
                &[("www-authenticate", "Basic realm=\"SAP NetWeaver\"".into())],
                Value::Null,
            );
        }
        let path = uri.path().to_string();
        let (service, rest) = match (path.strip_prefix(SVC), path.strip_prefix(ATT)) {
            (Some(rest), _) => (SVC, rest),
            (_, Some(rest)) => (ATT, rest),
            _ => return common::backend::reply(404, &[], odata_error("no such service")),
        };
        let fetch = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.eq_ignore_ascii_case("fetch"));
        if method == Method::GET && fetch {
            let n = self.fetches.len() + 1;
            let (token, session) = (format!("tok-{n}"), format!("sess-{n}"));
            self.tokens.insert(token.clone(), (service.to_string(), session.clone()));
            self.fetches.push((service.to_string(), token.clone(), session.clone()));
            let cookie = format!("{COOKIE}={session}; path=/; HttpOnly");
            return common::backend::reply(
                200,
                &[("x-csrf-token", token), ("set-cookie", cookie)],
                json!({ "d": { "EntitySets": [] } }),
            );
        }
        if method != Method::GET {
            let token =
                headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let valid = self.tokens.get(token).is_some_and(|(svc, sess)| {
                svc == service && session(headers) == Some(sess.as_str())
            });
            if !valid {
                self.csrf_refusals += 1;
                return common::backend::reply(
                    403,
                    &[("x-csrf-token", "Required".into())],
                    Value::Null,
                );
            }
        }
        let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        match (method.as_str(), service, rest) {
            ("POST", SVC, "/MaintenanceNotification") => self.create(json),
            ("GET", SVC, "/MaintenanceNotification") => self.list(uri),
            ("PATCH", SVC, r) if r.starts_with("/MaintenanceNotification('") => {
                let id = between(r, "('", "')").unwrap_or_default().to_string();
                let Some(n) = self.notifs.iter_mut().find(|n| n.id == id) else {
                    return common::backend::reply(404, &[], odata_error("Resource not found"));
                };
                if let Some(p) = json["MaintPriority"].as_str() {
                    n.priority = p.into();
                }
                if let Some(t) = json["MaintNotifLongTextForEdit"].as_str() {
                    n.long_text.push_str(&format!("\n* {t}"));
                }
                common::backend::reply(204, &[], Value::Null)
            }
            ("GET", SVC, r) if r.starts_with("/MaintenanceNotification('") => {
                let id = between(r, "('", "')").unwrap_or_default();
                match self.notifs.iter().find(|n| n.id == id) {
                    Some(n) => common::backend::reply(200, &[], json!({ "d": self.entity(n) })),
                    None => common::backend::reply(404, &[], odata_error("Resource not found")),
                }
            }
            ("POST", ATT, "/AttachmentContentSet") => {
                self.attachments.push((headers.clone(), body.to_vec()));
                let h = |n: &str| {
                    headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
                };
                common::backend::reply(
                    201,
                    &[],
                    json!({ "d": {
                        "FileName": h("slug"),
                        "LinkedSAPObjectKey": h("linkedsapobjectkey"),
                        "BusinessObjectTypeName": h("businessobjecttypename")
                    } }),
                )
            }
            _ => common::backend::reply(404, &[], odata_error("Resource not found for segment")),
        }
    }

    fn create(&mut self, body: Value) -> Response {
        self.create_attempts += 1;
        if self.throttle_first_create && self.create_attempts == 1 {
            return common::backend::reply(
                429,
                &[("retry-after", "1".into())],
                odata_error("Too many requests"),
            );
        }
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
        if text("NotificationText").chars().count() > 40
            || text("MaintNotifExtReferenceNumber").len() > 20
        {
            return common::backend::reply(400, &[], odata_error("Value too long"));
        }
        let mut n = notif(self.notifs.len() + 1, "1", &text("MaintNotifExtReferenceNumber"));
        n.object = text("TechnicalObject");
        n.priority = text("MaintPriority");
        n.long_text = text("MaintNotifLongTextForEdit");
        n.created = body;
        let answer = json!({ "d": self.entity(&n) });
        let location = format!("{}{SVC}/MaintenanceNotification('{}')", self.base, n.id);
        self.notifs.push(n);
        if self.expire_after_create {
            // The session times out: every token is void.
            self.expire_after_create = false;
            self.tokens.clear();
        }
        common::backend::reply(201, &[("location", location)], answer)
    }

    fn list(&mut self, uri: &Uri) -> Response {
        let q = common::backend::query(&uri.to_string());
        let filter = q.get("$filter").cloned().unwrap_or_default();
        let top: usize = q.get("$top").and_then(|t| t.parse().ok()).unwrap_or(1000);
        let skip: usize = q.get("$skip").and_then(|t| t.parse().ok()).unwrap_or(0);
        let matching: Vec<&Notif> =
            if let Some(r) = between(&filter, "MaintNotifExtReferenceNumber eq '", "'") {
                self.notifs.iter().filter(|n| n.ext_ref == r).collect()
            } else if let Some(object) = between(&filter, "TechnicalObject eq '", "'") {
                self.skips.push(skip);
                let phases: Vec<&str> = filter
                    .match_indices("NotifProcessingPhase eq '")
                    .filter_map(|(i, m)| filter.get(i + m.len()..i + m.len() + 1))
                    .collect();
                self.notifs
                    .iter()
                    .filter(|n| n.object == object && phases.contains(&n.phase.as_str()))
                    .collect()
            } else {
                return common::backend::reply(400, &[], odata_error("unsupported filter"));
            };
        let results: Vec<Value> =
            matching.iter().skip(skip).take(top).map(|n| self.entity(n)).collect();
        common::backend::reply(200, &[], json!({ "d": { "results": results } }))
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

fn config(base: &str, user_env: &str, password_env: &str) -> SapSettings {
    SapSettings {
        common: Common {
            url: format!("{base}{SVC}"),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            ..Common::default()
        },
        login: Login {
            username_env: Some(user_env.into()),
            password_env: Some(password_env.into()),
            ..Login::default()
        },
        ..SapSettings::default()
    }
}

fn order(key: &str, revision: u32) -> WorkOrder {
    common::backend::order(key, revision, "condition", EQUIPMENT)
}

/// Delivers `orders` through the outbox with `backend` until all are delivered.
async fn deliver<B: Adapter>(
    backend: B,
    cfg: &SapSettings,
    orders: Vec<WorkOrder>,
    stub: &Shared,
) -> Arc<Store> {
    common::backend::deliver(backend, &cfg.common, orders, || {
        format!("{:#?}", stub.lock().unwrap().seen)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raise_then_escalation_through_a_429_and_an_expired_csrf_token() {
    std::env::set_var("HUMS_TEST_SAP_USER", "HUMS_COMM");
    std::env::set_var("HUMS_TEST_SAP_PASSWORD", "sap-pw-1");
    let (base, stub) = start(Stub {
        credentials: "HUMS_COMM:sap-pw-1".into(),
        throttle_first_create: true,
        expire_after_create: true,
        ..Stub::default()
    })
    .await;
    let plain = config(&base, "HUMS_TEST_SAP_USER", "HUMS_TEST_SAP_PASSWORD");
    let cfg = SapSettings {
        common: Common {
            priorities: [("1".to_string(), "1".to_string()), ("2".to_string(), "3".to_string())]
                .into(),
            ..plain.common.clone()
        },
        fields: [
            ("NotificationType".to_string(), json!("M2")),
            ("MaintenancePlanningPlant".to_string(), json!("1010")),
        ]
        .into(),
        ..plain
    };
    let store =
        deliver(Sap::new(&cfg).unwrap(), &cfg, vec![order(KEY, 1), order(KEY, 2)], &stub).await;
    let remote = store.remote_id(KEY).unwrap().expect("a notification number");
    {
        let s = stub.lock().unwrap();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("HUMS_COMM:sap-pw-1")
        );
        assert!(
            s.seen.iter().all(|r| r.header("authorization") == Some(basic.as_str())),
            "{:#?}",
            s.seen
        );

        // The CSRF round trip: a fetch before the first write, and one more
        // after the token expired, whose write then succeeded.
        let fetches: Vec<_> = s.fetches.iter().filter(|f| f.0 == SVC).collect();
        assert_eq!(fetches.len(), 2, "{:#?}", s.seen);
        assert_eq!(s.csrf_refusals, 1);
        let fetch = s.seen.iter().find(|r| r.header("x-csrf-token") == Some("Fetch")).unwrap();
        assert_eq!(fetch.method, "GET");
        assert_eq!(fetch.path(), format!("{SVC}/"));

        // The 429 was honoured (Retry-After: 1) and the notification created once.
        let creates: Vec<&Seen> = s
            .seen
            .iter()
            .filter(|r| r.method == "POST" && r.path() == format!("{SVC}/MaintenanceNotification"))
            .collect();
        assert_eq!(creates.len(), 2, "{:#?}", s.seen);
        assert!(creates[1].at.duration_since(creates[0].at) >= Duration::from_millis(900));
        for c in &creates {
            assert_eq!(c.header("x-csrf-token"), Some("tok-1"));
            assert_eq!(c.session(), Some("sess-1"), "the fetch's session cookie came back");
        }
        assert_eq!(s.create_attempts, 2);
        assert_eq!(s.notifs.len(), 1);
        let n = &s.notifs[0];
        assert_eq!(remote, n.id);
        let b = &n.created;
        let short: String = TITLE.chars().take(40).collect();
        assert_eq!(b["NotificationText"], short.as_str());
        assert_eq!(b["MaintPriority"], "3", "hums priority 2 mapped to 3");
        assert_eq!(b["TechnicalObject"], EQUIPMENT);
        assert_eq!(b["TechObjIsEquipOrFuncnlLoc"], "EAMS_EQUI");
        assert_eq!(b["MaintNotifExtReferenceNumber"], sap_ref(KEY).as_str());
        assert_eq!(sap_ref(KEY).len(), 20);
        assert_eq!(b["NotificationType"], "M2");
        assert_eq!(b["MaintenancePlanningPlant"], "1010");
        assert!(
            b["MaintNotifLongTextForEdit"].as_str().unwrap().contains(KEY),
            "the key is in the long text"
        );
        assert_eq!(creates[1].header("content-type"), Some("application/json"));
        let sent: Value = serde_json::from_str(&creates[0].body).unwrap();
        assert_eq!(
            sent["MaintNotifExtReferenceNumber"],
            sap_ref(KEY).as_str(),
            "the throttled create was the same"
        );

        // The escalation: refused once for the expired token, then sent with the new one.
        let patches: Vec<&Seen> = s.seen.iter().filter(|r| r.method == "PATCH").collect();
        assert_eq!(patches.len(), 2, "{:#?}", s.seen);
        assert_eq!(patches[0].header("x-csrf-token"), Some("tok-1"));
        assert_eq!(patches[1].header("x-csrf-token"), Some("tok-2"));
        assert_eq!(patches[1].session(), Some("sess-2"));
        assert_eq!(patches[1].path(), format!("{SVC}/MaintenanceNotification('{remote}')"));
        assert_eq!(patches[1].header("if-match"), Some("*"));
        assert_eq!(n.priority, "1");
        assert!(n.long_text.contains("hums update (revision 2):"), "{}", n.long_text);
    }

    // The rest of the adapter, called directly.
    let sap = Sap::new(&cfg).unwrap();
    assert!(sap.landed(&order(KEY, 2), &remote).await.unwrap());
    assert!(!sap.landed(&order(KEY, 3), &remote).await.unwrap());
    assert!(sap.attach(&remote, "hums evidence r1.png", PNG).await.unwrap());
    {
        let s = stub.lock().unwrap();
        let att: Vec<_> = s.fetches.iter().filter(|f| f.0 == ATT).collect();
        assert_eq!(att.len(), 1, "the attachment service's own CSRF token");
        assert_eq!(s.attachments.len(), 1);
        let (headers, bytes) = &s.attachments[0];
        assert_eq!(bytes.as_slice(), PNG);
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        assert_eq!(h("slug"), Some("hums evidence r1.png"));
        assert_eq!(h("businessobjecttypename"), Some("PMQMEL"));
        assert_eq!(h("linkedsapobjectkey"), Some(format!("{remote:0>12}").as_str()));
        assert_eq!(h("content-type"), Some("image/png"));
        assert_eq!(h("x-csrf-token"), Some(att[0].1.as_str()));
    }

    assert_eq!(sap.status(&remote).await.unwrap(), Some(RemoteStatus::Open));
    {
        let mut s = stub.lock().unwrap();
        s.notifs[0].phase = "4".into();
        s.notifs[0].completion = Some(("/Date(1795737600000)/".into(), "PT10H30M00S".into()));
    }
    let completed: DateTime<Utc> = "2026-11-27T10:30:00Z".parse().unwrap();
    assert_eq!(sap.status(&remote).await.unwrap(), Some(RemoteStatus::Done(Some(completed))));
    stub.lock().unwrap().notifs[0].phase = "5".into();
    assert_eq!(sap.status(&remote).await.unwrap(), Some(RemoteStatus::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_notification_of_an_earlier_episode_past_the_first_page_gets_the_comment() {
    std::env::set_var("HUMS_TEST_SAP_USER_DEDUP", "HUMS_COMM2");
    std::env::set_var("HUMS_TEST_SAP_PASSWORD_DEDUP", "sap-pw-2");
    const EARLIER: &str = "gw:pump-01:pump.bearing_wear:1780000000000";
    const NEW: &str = "gw:pump-01:pump.bearing_wear:1790000999999";
    let mut notifs: Vec<Notif> = (0..150)
        .map(|n| {
            let reference = match n % 3 {
                0 => String::new(),
                1 => sap_ref(&format!("gw:pump-01:pump.cavitation:17{n:011}")),
                _ => format!("WO-{n}"),
            };
            notif(n, ["1", "2", "3"][n % 3], &reference)
        })
        .collect();
    // The same fault, but completed: not open, not a candidate.
    notifs.insert(10, notif(900, "4", &sap_ref("gw:pump-01:pump.bearing_wear:1770000000000")));
    // The earlier episode, still outstanding, past the first page.
    notifs.insert(130, notif(901, "1", &sap_ref(EARLIER)));
    let (base, stub) =
        start(Stub { credentials: "HUMS_COMM2:sap-pw-2".into(), notifs, ..Stub::default() }).await;
    let cfg = config(&base, "HUMS_TEST_SAP_USER_DEDUP", "HUMS_TEST_SAP_PASSWORD_DEDUP");
    let store = deliver(Sap::new(&cfg).unwrap(), &cfg, vec![order(NEW, 1)], &stub).await;

    let s = stub.lock().unwrap();
    assert_eq!(s.create_attempts, 0, "no new notification: {:#?}", s.seen);
    assert_eq!(s.skips, vec![0, 100], "both pages of open notifications read");
    let earlier = s.notifs.iter().find(|n| n.ext_ref == sap_ref(EARLIER)).unwrap();
    assert_eq!(store.remote_id(NEW).unwrap().as_deref(), Some(earlier.id.as_str()));
    assert!(earlier.long_text.contains("hums update (revision 1):"), "{}", earlier.long_text);
    assert_eq!(earlier.priority, "2");
    assert_eq!(
        s.notifs.iter().filter(|n| !n.long_text.is_empty()).count(),
        1,
        "no other notification touched"
    );
    let filters: Vec<String> = s
        .seen
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| common::backend::query(&r.uri).get("$filter").cloned())
        .collect();
    assert_eq!(filters[0], format!("MaintNotifExtReferenceNumber eq '{}'", sap_ref(NEW)));
    assert!(filters[1].starts_with(&format!(
        "TechnicalObject eq '{EQUIPMENT}' and (NotifProcessingPhase eq '1'"
    )));
    let page =
        common::backend::query(&s.seen.iter().filter(|r| r.method == "GET").nth(1).unwrap().uri);
    assert_eq!(page["$top"], "100");
    assert_eq!(page["$format"], "json");
}
