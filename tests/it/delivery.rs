//! Delivery from the durable outbox against a real HTTP server on loopback
//! with injected faults.

use crate::common;

use hums::common::metrics::Metrics;
use hums::common::types::{to_datetime, Evidence, Severity};
use hums::config::backend::{Common, RestSettings};
use hums::demo::receiver::{Fault, Receiver};
use hums::pipeline::alarms::{AlarmEvent, Transition};
use hums::pipeline::planner::Planner;
use hums::pipeline::plant::Plant;
use hums::store::outbox::{NewEntry, Status};
use hums::store::Store;
use hums::workorders::backends::rest::RestBackend;
use hums::workorders::{delivery, WorkOrder};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A planned work order for pump-02 of the demo plant, episode `episode`.
pub fn work_order(episode: i64) -> WorkOrder {
    let cfg = hums::demo::config().unwrap();
    let plant = Plant::new(&cfg, &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap());
    let asset = plant.asset_index("pump-02").unwrap();
    let fm =
        plant.assets[asset].failure_modes.iter().position(|f| f.id == "pump.bearing_wear").unwrap();
    let ev = AlarmEvent {
        asset,
        failure_mode: fm,
        transition: Transition::Raised { severity: Severity::Alarm, episode },
        at: episode + 60_000,
        evidence: vec![Evidence {
            channel: "vib_de".into(),
            feature: "mean".into(),
            value: 3.1,
            limit: Some(2.8),
            unit: "mm/s".into(),
            zone: Some(hums::common::types::Zone::C),
            since: to_datetime(episode),
            note: String::new(),
            due_by: None,
        }],
    };
    Planner::default().plan(&plant, &ev).unwrap()
}

fn backend(receiver: &Receiver, timeout: Duration) -> RestSettings {
    RestSettings {
        common: Common {
            url: receiver.url(),
            timeout,
            retry_min: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            ..Common::default()
        },
        lookup_url: Some(receiver.lookup_url()),
        ..RestSettings::default()
    }
}

/// Commits `orders` to a fresh outbox and runs delivery until nothing is pending.
async fn deliver(
    receiver: &Receiver,
    orders: Vec<WorkOrder>,
    timeout: Duration,
) -> (Arc<Metrics>, Arc<Store>) {
    let store = Arc::new(Store::open_dir(&common::temp_dir("outbox")).unwrap());
    let entries: Vec<NewEntry> = orders
        .into_iter()
        .map(|order| NewEntry { order, status: Status::Pending, note: None })
        .collect();
    store.commit(&entries, &[], None).unwrap();
    let cfg = backend(receiver, timeout);
    let metrics = Arc::new(Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(delivery::run(
        store.clone(),
        RestBackend::new(&cfg).unwrap(),
        cfg.common,
        metrics.clone(),
        Arc::default(),
        stop_rx,
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let busy = store
            .counts()
            .unwrap()
            .iter()
            .any(|(s, n)| (s == "pending" || s == "sending") && *n > 0);
        if !busy {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    task.await.unwrap();
    (metrics, store)
}

fn received_per_key(receiver: &Receiver) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in receiver.received() {
        *m.entry(r.body["idempotency_key"].as_str().unwrap().to_string()).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn server_error_then_rate_limit_then_created_delivers_exactly_once() {
    let receiver = Receiver::start(None, false).await.unwrap();
    receiver.inject([Fault::Status(500, None), Fault::Status(429, Some(1))]);
    let started = Instant::now();
    let (metrics, store) =
        deliver(&receiver, vec![work_order(1_000)], Duration::from_secs(2)).await;
    let m = metrics.snapshot();
    assert_eq!(received_per_key(&receiver).len(), 1, "exactly one work order stored");
    assert_eq!(receiver.received().len(), 1);
    assert_eq!(m.workorders_delivered, 1);
    assert_eq!(m.delivery_retries, 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    let body = &receiver.received()[0].body;
    assert_eq!(body["idempotency_key"], "demo-gw:pump-02:pump.bearing_wear:1000");
    assert_eq!(body["evidence"][0]["zone"], "C");
    let delivered = store.list(Some(Status::Delivered), 10).unwrap();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].remote_id.as_deref(), Some("WO-1"));
}

#[tokio::test]
async fn a_permanent_refusal_is_parked_and_the_queue_moves_on() {
    let receiver = Receiver::start(None, false).await.unwrap();
    receiver.inject([Fault::Status(400, None)]);
    let (metrics, store) =
        deliver(&receiver, vec![work_order(1), work_order(2)], Duration::from_secs(2)).await;
    assert_eq!(receiver.attempts(), 2, "a 400 is not retried");
    assert_eq!(receiver.received().len(), 1, "the next order still lands");
    let dead = store.list(Some(Status::Dead), 10).unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.as_deref().unwrap().starts_with("400"), "{:?}", dead[0].last_error);
    assert_eq!(metrics.snapshot().workorders_dead_lettered, 1);
    // Fixed the cause: release it, and it is delivered.
    assert_eq!(store.release(&[dead[0].id], None).unwrap(), 1);
    assert_eq!(store.list(Some(Status::Pending), 10).unwrap().len(), 1);
}

#[tokio::test]
async fn random_errors_and_slow_answers_lose_nothing_and_duplicate_nothing() {
    use rand::{RngExt, SeedableRng};
    let receiver = Receiver::start(None, false).await.unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let faults: Vec<Fault> = (0..80)
        .map(|_| match rng.random_range(0..6) {
            0 => Fault::Status(500, None),
            1 => Fault::Status(503, None),
            2 => Fault::Status(429, Some(0)),
            3 => Fault::Delay(Duration::from_millis(400)), // stored, answered after our timeout
            _ => Fault::Delay(Duration::ZERO),
        })
        .collect();
    let slow = faults.iter().filter(|f| matches!(f, Fault::Delay(d) if !d.is_zero())).count();
    receiver.inject(faults);
    let orders: Vec<WorkOrder> = (0..40).map(|i| work_order(1_000 + i)).collect();
    let (metrics, store) = deliver(&receiver, orders.clone(), Duration::from_millis(150)).await;
    let got = received_per_key(&receiver);
    let want: std::collections::BTreeSet<String> =
        orders.iter().map(|o| o.idempotency_key.clone()).collect();
    let lost: Vec<_> = want.iter().filter(|k| !got.contains_key(*k)).collect();
    let dup: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(dup.is_empty(), "duplicated: {dup:?}");
    assert_eq!(got.len(), 40);
    let m = metrics.snapshot();
    assert!(
        slow > 0 && m.workorders_found_by_lookup > 0,
        "timeouts were resolved by look-up: {m:?}"
    );
    assert_eq!(store.list(Some(Status::Delivered), 100).unwrap().len(), 40);
}

#[tokio::test]
async fn expired_credentials_hold_deliveries_and_a_conflict_means_already_there() {
    let receiver = Receiver::start(None, false).await.unwrap();
    // 401: not a dead letter (every order would fail alike); held, then delivered.
    // 409 on the second order: the backend already has it.
    receiver.inject([
        Fault::Status(401, None),
        Fault::Delay(Duration::ZERO),
        Fault::Status(409, None),
    ]);
    let (metrics, store) =
        deliver(&receiver, vec![work_order(1), work_order(2)], Duration::from_secs(2)).await;
    let m = metrics.snapshot();
    assert_eq!(m.workorders_dead_lettered, 0, "{m:?}");
    assert_eq!(store.list(Some(Status::Delivered), 10).unwrap().len(), 2);
    assert_eq!(receiver.received().len(), 1, "the 409'd order is not posted again");
}
