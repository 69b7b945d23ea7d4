//! Contract test of the MaintainX adapter against MaintainX's official
//! OpenAPI spec (`tests/fixtures/maintainx-openapi.json`, see
//! `tests/interop/maintainx_spec.py`), mocked by Prism, which `.ci/run`
//! starts and names in `HUMS_TEST_PRISM=http://host:port`. Every request
//! passes through a recording proxy: a request that draws `sl-violations`
//! (Prism's verdict that it breaks the spec) fails the test.

use crate::common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hums::common::metrics::Metrics;
use hums::config::backend::{Common, MaintainxSettings};
use hums::store::outbox::{NewEntry, Status};
use hums::store::Store;
use hums::workorders::backends::maintainx::MaintainX;
use hums::workorders::backends::{Adapter, RemoteStatus};
use hums::workorders::WorkOrder;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy saw: method, path and query, status, violations.
type Seen = Arc<Mutex<Vec<(String, String, u16, Option<String>)>>>;

fn prism() -> String {
    std::env::var("HUMS_TEST_PRISM")
        .expect("HUMS_TEST_PRISM=http://host:port must name a running Prism mock (see .ci/run)")
}

/// A proxy in front of Prism that records every exchange.
async fn recording_proxy(upstream: String) -> (String, Seen) {
    let seen: Seen = Arc::default();
    // The proxy's own client, not one of hums's.
    #[allow(clippy::disallowed_methods)]
    let client = reqwest::Client::new();
    let state = (client, upstream, seen.clone());
    async fn forward(
        State((client, upstream, seen)): State<(reqwest::Client, String, Seen)>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let mut req = client.request(method.clone(), format!("{upstream}{path}")).body(body);
        for (k, v) in &headers {
            if k != "host" && k != "content-length" {
                req = req.header(k, v);
            }
        }
        let resp = req.send().await.expect("Prism answers");
        let status = resp.status();
        let violations =
            resp.headers().get("sl-violations").map(|v| v.to_str().unwrap_or("?").to_string());
        let mut out = HeaderMap::new();
        if let Some(ct) = resp.headers().get("content-type") {
            out.insert("content-type", ct.clone());
        }
        let bytes = resp.bytes().await.unwrap_or_default();
        seen.lock().unwrap().push((method.to_string(), path, status.as_u16(), violations));
        (StatusCode::from_u16(status.as_u16()).unwrap(), out, bytes)
    }
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn order(revision: u32, kind: &str) -> WorkOrder {
    common::backend::order("gw:pump-01:pump.bearing_wear:1790000000000", revision, kind, "123")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maintainx_adapter_keeps_to_the_official_spec() {
    let (url, seen) = recording_proxy(prism()).await;
    std::env::set_var("HUMS_TEST_MAINTAINX_TOKEN", "mx-test-key");
    let cfg = MaintainxSettings {
        common: Common {
            url: url.clone(),
            locations: [("Site T".to_string(), "42".to_string())].into(),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_millis(200),
            ..Common::default()
        },
        token_env: Some("HUMS_TEST_MAINTAINX_TOKEN".into()),
        organization_id: Some(7),
        ..MaintainxSettings::default()
    };

    // The whole delivery path: a raise and its escalation through the outbox.
    let dir = common::temp_dir("maintainx");
    let store = Arc::new(Store::open_dir(&dir).unwrap());
    let entries: Vec<NewEntry> = [order(1, "condition"), order(2, "condition")]
        .into_iter()
        .map(|order| NewEntry { order, status: Status::Pending, note: None })
        .collect();
    store.commit(&entries, &[], None).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn(hums::workorders::delivery::run(
        store.clone(),
        MaintainX::new(&cfg).unwrap(),
        cfg.common.clone(),
        metrics.clone(),
        wake,
        stopped,
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while store.counts().unwrap().iter().find(|(s, _)| s == "delivered").map_or(0, |c| c.1) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered: {:?}, seen {:#?}",
            store.list(None, 10).unwrap(),
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
    let remote = store
        .remote_id("gw:pump-01:pump.bearing_wear:1790000000000")
        .unwrap()
        .expect("a MaintainX id");

    // The rest of the adapter, called directly.
    let mx = MaintainX::new(&cfg).unwrap();
    let png = hums::pipeline::charts::png(
        &hums::pipeline::charts::TrendChart {
            title: "contract".into(),
            unit: "mm/s".into(),
            points: &[(0, 1.0), (3_600_000, 2.0)],
            limit: 4.5,
            prediction: None,
            now: 3_600_000,
            due: None,
        },
        (400, 200),
    )
    .unwrap();
    assert!(mx.attach(&remote, "hums evidence r1.png", &png).await.unwrap());
    assert!(matches!(
        mx.status(&remote).await.unwrap(),
        Some(RemoteStatus::Open | RemoteStatus::Done(_) | RemoteStatus::Cancelled)
    ));
    mx.landed(&order(2, "condition"), &remote).await.unwrap();
    mx.create(&order(1, "preventive")).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    // Prism also checks its own example answers, and some of the spec's
    // examples break the spec: only violations located in our requests count.
    let in_request = |v: &Option<String>| {
        let list: Vec<serde_json::Value> =
            v.as_deref().map_or(Vec::new(), |v| serde_json::from_str(v).unwrap());
        list.into_iter().filter(|x| x["location"][0] == "request").count()
    };
    let refused: Vec<_> = seen.iter().filter(|s| in_request(&s.3) > 0 || s.2 >= 300).collect();
    assert!(refused.is_empty(), "requests the spec refuses: {refused:#?}");
    let example_faults = seen.iter().filter(|s| s.3.is_some()).count();
    let did = |m: &str, p: &str| seen.iter().any(|s| s.0 == m && s.1.starts_with(p));
    assert!(
        did(
            "GET",
            "/workorders?limit=100&statuses=OPEN&statuses=IN_PROGRESS&statuses=ON_HOLD&assets=123"
        ),
        "{seen:#?}"
    );
    assert!(did("POST", "/workorders"));
    assert!(did("PATCH", &format!("/workorders/{remote}")));
    assert!(did("POST", &format!("/workorders/{remote}/comments")));
    assert!(did("PUT", &format!("/workorders/{remote}/attachments/")));
    assert!(did("GET", &format!("/workorders/{remote}/comments")));
    eprintln!(
        "MaintainX contract: {} requests, 0 request violations ({example_faults} answers where \
            Prism faults the spec's own examples)",
        seen.len()
    );
}
