//! What the backend tests share: the work order they deliver, delivery
//! through the real outbox until it is done, and their stub servers' plumbing.

use axum::response::Response;
use hums::common::metrics::Metrics;
use hums::config::backend::Common;
use hums::store::outbox::{NewEntry, Status};
use hums::store::Store;
use hums::workorders::backends::Adapter;
use hums::workorders::WorkOrder;
use serde_json::{json, Value};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The order's title.
pub const TITLE: &str = "Boiler feed pump 1: bearing wear suspected";

/// A bearing-wear order for pump-01, known to the backend as `backend_id`:
/// raised at revision 1, escalated to critical after.
pub fn order(key: &str, revision: u32, kind: &str, backend_id: &str) -> WorkOrder {
    serde_json::from_value(json!({
        "idempotency_key": key,
        "event": if revision == 1 { "raised" } else { "escalated" },
        "revision": revision,
        "kind": kind,
        "failure_mode": "pump.bearing_wear",
        "title": TITLE,
        "description": "Boiler feed pump 1 (Site T › Hall 1) is at alarm severity.\nEvidence:\n- \
            vib_de mean: 7.33 mm/s (limit 4.5 mm/s), ISO 10816-3 zone D\n",
        "priority": if revision == 1 { 2 } else { 1 },
        "priority_label": if revision == 1 { "high" } else { "critical" },
        "severity": if revision == 1 { "alarm" } else { "critical" },
        "asset": { "id": "pump-01", "name": "Boiler feed pump 1", "class": "pump",
                   "backend_id": backend_id, "location": ["Site T", "Hall 1"] },
        "evidence": [{ "channel": "vib_de", "feature": "mean", "value": 7.33, "limit": 4.5,
                       "unit": "mm/s", "zone": "D", "since": "2026-11-26T04:00:00Z",
                       "note": "above alarm limit" }],
        "cause": "Rolling-element bearing wear",
        "actions": ["Check lubrication", "Take a vibration spectrum"],
        "parts": [{ "sku": "SKF-6309-2Z", "description": "Deep groove ball bearing", "qty": 1.0 }],
        "skills": ["mechanical"],
        "safety": ["lockout-tagout"],
        "estimated_hours": 4.0,
        "detected_at": "2026-11-26T04:00:00Z",
        "due_by": "2026-11-28T12:00:00Z",
        "gateway_id": "gw",
    }))
    .unwrap()
}

/// Outbox entries with a status.
pub fn count(store: &Store, status: &str) -> i64 {
    store.counts().unwrap().iter().find(|(s, _)| s == status).map_or(0, |c| c.1)
}

/// Delivers `orders` through the outbox with `backend` until all are
/// delivered (none dead); `seen` tells what the stub saw, for a failure.
pub async fn deliver<B: Adapter>(
    backend: B,
    cfg: &Common,
    orders: Vec<WorkOrder>,
    seen: impl Fn() -> String,
) -> Arc<Store> {
    let store = Arc::new(Store::open_dir(&super::temp_dir(backend.name())).unwrap());
    let n = orders.len() as i64;
    let entries: Vec<NewEntry> = orders
        .into_iter()
        .map(|order| NewEntry { order, status: Status::Pending, note: None })
        .collect();
    store.commit(&entries, &[], None).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(hums::workorders::delivery::run(
        store.clone(),
        backend,
        cfg.clone(),
        Arc::new(Metrics::default()),
        Arc::new(tokio::sync::Notify::new()),
        stopped,
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&store, "delivered") < n {
        assert!(
            Instant::now() < deadline,
            "not delivered: {:#?}\nthe stub saw: {}",
            store.list(None, 10).unwrap(),
            seen()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(count(&store, "dead"), 0);
    store
}

/// The percent-decoded pairs of a query string (or of a path with one).
pub fn query(uri: &str) -> BTreeMap<String, String> {
    let q = uri.split_once('?').map_or(uri, |(_, q)| q);
    reqwest::Url::parse(&format!("http://stub/?{q}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// A stub's answer: a status, extra headers and a JSON body (none when null).
pub fn reply(status: u16, headers: &[(&str, String)], body: impl Borrow<Value>) -> Response {
    let body = body.borrow();
    let mut r = axum::http::Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v.as_str());
    }
    if body.is_null() {
        return r.body(axum::body::Body::empty()).unwrap();
    }
    r.header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap()
}
