//! The webhook backend against a stub receiver on loopback: the body is the
//! user's template over the work order, every revision is posted with its
//! Idempotency-Key, a 429 with Retry-After is waited out, and a template
//! that cannot make JSON is refused at start-up naming the key.

use crate::common;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hums::common::metrics::Metrics;
use hums::config::backend::{Common, WebhookSettings};
use hums::store::outbox::{NewEntry, Status};
use hums::store::Store;
use hums::workorders::backends::webhook::Webhook;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Requests received: (headers, body); the first POST is answered 429.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn stub() -> (String, Seen) {
    let seen: Seen = Arc::default();
    async fn hook(
        State(seen): State<Seen>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, HeaderMap) {
        let mut s = seen.lock().unwrap();
        s.push((headers, body));
        let mut h = HeaderMap::new();
        if s.len() == 1 {
            h.insert("retry-after", "1".parse().unwrap());
            return (StatusCode::TOO_MANY_REQUESTS, h);
        }
        (StatusCode::OK, h)
    }
    let app =
        axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen)
}

const TEMPLATE: &str = r#"{
  "summary": {{ title|tojson }},
  "details": {{ text|tojson }},
  "equipment": {{ asset.backend_id|tojson }},
  "site": {{ location_id|tojson }},
  "urgency": {{ backend_priority|tojson }},
  "reference": {{ idempotency_key|tojson }},
  "update": {{ (revision > 1)|tojson }},
  "reading": {{ evidence[0].value }}
}"#;

fn order(revision: u32) -> hums::workorders::WorkOrder {
    serde_json::from_value(json!({
        "idempotency_key": "gw:pump-01:pump.bearing_wear:1790000000000",
        "event": if revision == 1 { "raised" } else { "escalated" },
        "revision": revision, "kind": "condition", "failure_mode": "pump.bearing_wear",
        "title": "Pump 1: \"bearing\" wear", "description": "Pump 1 is at alarm severity.\n",
        "priority": 3 - revision as u8, "priority_label": "high", "severity": "alarm",
        "asset": { "id": "pump-01", "name": "Pump 1", "class": "pump", "backend_id": "EQ-7",
                   "location": ["Site T", "Hall 1"] },
        "evidence": [{ "channel": "vib_de", "feature": "mean", "value": 7.33, "limit": 4.5,
                       "unit": "mm/s", "zone": "D", "since": "2026-11-26T04:00:00Z", "note": "" }],
        "cause": "", "actions": ["Grease it"], "parts": [], "skills": [],
        "safety": ["lockout-tagout"], "estimated_hours": 1.0,
        "detected_at": "2026-11-26T04:00:00Z", "due_by": null, "gateway_id": "gw"
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_shapes_every_revision_and_a_429_is_waited_out() {
    let (url, seen) = stub().await;
    std::env::set_var("HUMS_TEST_WEBHOOK_TOKEN", "hook-secret");
    let cfg = WebhookSettings {
        common: Common {
            url,
            priorities: [("1".to_string(), "P1".to_string()), ("2".to_string(), "P2".to_string())]
                .into(),
            locations: [("Site T".to_string(), "ST".to_string())].into(),
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(2),
            ..Common::default()
        },
        token_env: Some("HUMS_TEST_WEBHOOK_TOKEN".into()),
        template: Some(TEMPLATE.into()),
        ..WebhookSettings::default()
    };
    let dir = common::temp_dir("webhook");
    let store = Arc::new(Store::open_dir(&dir).unwrap());
    let entries: Vec<NewEntry> = [order(1), order(2)]
        .into_iter()
        .map(|order| NewEntry { order, status: Status::Pending, note: None })
        .collect();
    store.commit(&entries, &[], None).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = std::time::Instant::now();
    let task = tokio::spawn(hums::workorders::delivery::run(
        store.clone(),
        Webhook::new(&cfg).unwrap(),
        cfg.common.clone(),
        Arc::new(Metrics::default()),
        Arc::new(tokio::sync::Notify::new()),
        stopped,
    ));
    while store.counts().unwrap().iter().find(|(s, _)| s == "delivered").map_or(0, |c| c.1) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not delivered: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "the 429's Retry-After was honoured");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "the refused post, then each revision once");
    let bodies: Vec<Value> =
        seen[1..].iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    assert_eq!(bodies[0]["summary"], "Pump 1: \"bearing\" wear");
    assert_eq!(
        (bodies[0]["equipment"].as_str(), bodies[0]["site"].as_str()),
        (Some("EQ-7"), Some("ST"))
    );
    assert_eq!(
        (bodies[0]["urgency"].as_str(), bodies[1]["urgency"].as_str()),
        (Some("P2"), Some("P1"))
    );
    assert_eq!(
        (bodies[0]["update"].as_bool(), bodies[1]["update"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(bodies[0]["reading"], 7.33);
    let details = bodies[0]["details"].as_str().unwrap();
    assert!(
        details.contains("- Grease it")
            && details.contains("gw:pump-01:pump.bearing_wear:1790000000000"),
        "{details}"
    );
    let header = |i: usize, k: &str| seen[i].0.get(k).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(header(1, "authorization").as_deref(), Some("Bearer hook-secret"));
    assert_eq!(
        header(2, "idempotency-key").as_deref(),
        Some("gw:pump-01:pump.bearing_wear:1790000000000:r2")
    );
    assert_eq!(header(1, "content-type").as_deref(), Some("application/json"));
}

#[test]
fn a_template_that_cannot_make_json_is_refused_naming_the_key() {
    let cfg = |t: &str| WebhookSettings { template: Some(t.into()), ..WebhookSettings::default() };
    let unquoted = match Webhook::new(&cfg(r#"{"summary": {{ title }}}"#)) {
        Ok(w) => panic!("accepted; renders {:?}", w.render(&order(1))),
        Err(e) => e.to_string(),
    };
    assert!(
        unquoted.starts_with("backend.template:") && unquoted.contains("|tojson"),
        "{unquoted}"
    );
    let unknown = match Webhook::new(&cfg(r#"{"x": {{ no_such_field|tojson }}}"#)) {
        Ok(w) => panic!("accepted; renders {:?}", w.render(&order(1))),
        Err(e) => e.to_string(),
    };
    assert!(
        unknown.starts_with("backend.template:") && unknown.contains("no_such_field"),
        "{unknown}"
    );
    let nested =
        Webhook::new(&cfg(r#"{"x": {{ asset.serial|tojson }}}"#)).err().unwrap().to_string();
    assert!(nested.contains("asset.serial"), "{nested}");
    let syntax = Webhook::new(&cfg("{{ title ")).err().unwrap().to_string();
    assert!(syntax.starts_with("backend.template:"), "{syntax}");
    assert!(Webhook::new(&WebhookSettings::default()).is_err(), "a webhook needs a template");
}
