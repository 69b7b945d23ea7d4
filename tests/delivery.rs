//! Work-order delivery against a real HTTP server on loopback with injected faults.

use hums::alarms::{AlarmEvent, Transition};
use hums::config::schema::Backend;
use hums::config::Plant;
use hums::metrics::Metrics;
use hums::model::{to_datetime, Evidence, Severity};
use hums::receiver::{Fault, Receiver};
use hums::workorders::planner::Planner;
use hums::workorders::rest::{dispatch, DeadLetters, RestBackend};
use hums::workorders::WorkOrder;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn work_order() -> WorkOrder {
    let cfg = hums::demo::config().unwrap();
    let plant = Plant::new(&cfg);
    let asset = plant.asset_index("pump-02").unwrap();
    let fm = plant.assets[asset]
        .failure_modes
        .iter()
        .position(|f| f.id == "pump.bearing_wear")
        .unwrap();
    let ev = AlarmEvent {
        asset,
        failure_mode: fm,
        transition: Transition::Raised {
            severity: Severity::Alarm,
            episode: 1_000,
        },
        at: 61_000,
        evidence: vec![Evidence {
            channel: "vib_de".into(),
            feature: "mean".into(),
            value: 3.1,
            limit: Some(2.8),
            unit: "mm/s".into(),
            zone: Some(hums::model::Zone::C),
            since: to_datetime(1_000),
            note: String::new(),
        }],
    };
    Planner::default().plan(&plant, &ev).unwrap()
}

fn backend(url: String) -> Backend {
    Backend {
        url,
        timeout: Duration::from_secs(2),
        retry_min: Duration::from_millis(50),
        retry_max: Duration::from_secs(2),
        ..Backend::default()
    }
}

async fn deliver(
    receiver: &Receiver,
    orders: Vec<WorkOrder>,
    grace: Duration,
) -> (Arc<Metrics>, DeadLetters) {
    let cfg = backend(receiver.url());
    let metrics = Arc::new(Metrics::default());
    let dead = DeadLetters::default();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for wo in orders {
        tx.send(wo).unwrap();
    }
    drop(tx);
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    dispatch(
        RestBackend::new(&cfg),
        cfg,
        rx,
        metrics.clone(),
        dead.clone(),
        stop_rx,
        grace,
    )
    .await;
    (metrics, dead)
}

#[tokio::test]
async fn server_error_then_rate_limit_then_created_delivers_exactly_once() {
    let receiver = Receiver::start(None, false).await.unwrap();
    receiver.inject([Fault::Status(500, None), Fault::Status(429, Some(1))]);
    let started = Instant::now();
    let (metrics, dead) = deliver(&receiver, vec![work_order()], Duration::from_secs(1)).await;
    let m = metrics.snapshot();
    assert_eq!(receiver.attempts(), 3, "500, 429, then 201");
    assert_eq!(
        receiver.received().len(),
        1,
        "exactly one work order stored"
    );
    assert_eq!(m.workorders_delivered, 1);
    assert_eq!(m.delivery_retries, 2);
    assert!(dead.lock().await.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let body = &receiver.received()[0].body;
    assert_eq!(
        body["idempotency_key"],
        "demo-gw:pump-02:pump.bearing_wear:1000"
    );
    assert_eq!(body["evidence"][0]["zone"], "C");
}

#[tokio::test]
async fn a_permanent_refusal_is_parked_and_the_queue_moves_on() {
    let receiver = Receiver::start(None, false).await.unwrap();
    receiver.inject([Fault::Status(400, None)]);
    let mut second = work_order();
    second.idempotency_key.push_str("-b");
    let (metrics, dead) = deliver(
        &receiver,
        vec![work_order(), second],
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(receiver.attempts(), 2, "a 400 is not retried");
    assert_eq!(receiver.received().len(), 1, "the next order still lands");
    let dead = dead.lock().await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].1.starts_with("400"), "{}", dead[0].1);
    assert_eq!(metrics.snapshot().workorders_dead_lettered, 1);
}

#[tokio::test]
async fn a_backend_that_stays_down_is_retried_not_dropped_until_shutdown() {
    let receiver = Receiver::start(None, false).await.unwrap();
    receiver.inject((0..200).map(|_| Fault::Status(503, None)));
    let cfg = backend(receiver.url());
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(work_order()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(dispatch(
        RestBackend::new(&cfg),
        cfg,
        rx,
        metrics.clone(),
        DeadLetters::default(),
        stop_rx,
        Duration::from_millis(300),
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        receiver.attempts() >= 3,
        "kept retrying: {}",
        receiver.attempts()
    );
    assert_eq!(
        metrics.snapshot().workorders_dead_lettered,
        0,
        "a 503 is never a dead letter"
    );
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("dispatcher stops after the grace period")
        .unwrap();
    assert!(receiver.received().is_empty());
    drop(tx);
}
