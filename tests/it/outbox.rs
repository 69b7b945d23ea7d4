//! The durable outbox end to end over real sockets: a dead backend, restarts
//! with active alarms, a site-wide storm, and broken state databases.

use crate::common;

use common::{free_addr, per_key, publish_fleet, publisher, Harness};
use hums::demo::receiver::Receiver;
use hums::store::outbox::Status;
use hums::store::{Store, StoreError};
use std::sync::atomic::Ordering;
use std::time::Duration;

const FLEET: &str = "tests/fixtures/fleet.toml";

fn fleet(n: usize) -> Vec<(String, bool)> {
    (1..=n).map(|i| (format!("pump-{i}"), true)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_for_a_long_stretch_gets_every_order_exactly_once_when_it_returns() {
    let broker = hums::demo::broker::start().unwrap();
    let backend = free_addr(); // nothing listens here yet: connection refused
    let placeholder = Receiver::start(None, false).await.unwrap();
    let hums = Harness::launch(FLEET, broker, 300.0, placeholder, |cfg| {
        cfg.backend.common_mut().url = format!("http://{backend}/workorders");
        common::rest(cfg).lookup_url =
            Some(format!("http://{backend}/workorders?idempotency_key={{key}}"));
    })
    .await;
    assert!(
        hums.wait_for(Duration::from_secs(5), |h| h
            .metrics
            .mqtt_resubscribes
            .load(Ordering::Relaxed)
            > 0)
            .await
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(publish_fleet(
        publisher(broker, "down-plant").await,
        fleet(6),
        Duration::from_millis(20),
        stop_rx,
    ));

    // All six alarms fire while the backend is down, and delivery keeps failing.
    let fired = hums
        .wait_for(Duration::from_secs(20), |h| {
            h.metrics.alarms_raised.load(Ordering::Relaxed) >= 6
                && h.metrics.delivery_retries.load(Ordering::Relaxed) >= 12
        })
        .await;
    assert!(fired, "{:?}", hums.metrics.snapshot());
    tokio::time::sleep(Duration::from_secs(2)).await; // a long stretch: 10 simulated minutes
    assert_eq!(hums.metrics.workorders_delivered.load(Ordering::Relaxed), 0);

    let backend = Receiver::start_at(backend, None, false).await.unwrap();
    let all = hums.wait_for(Duration::from_secs(10), |_| per_key(&backend).len() >= 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    let _ = task.await;
    let report = hums.stop().await;
    let got = per_key(&backend);
    assert!(all, "not every order arrived: {got:?}");
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(got.values().all(|n| *n == 1), "duplicates: {got:?}");
    assert_eq!(report.outbox_count("delivered"), 6);
    assert_eq!(report.outbox_count("pending"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_an_active_alarm_raises_no_second_order() {
    let broker = hums::demo::broker::start().unwrap();
    let receiver = Receiver::start(None, false).await.unwrap();
    let state = common::temp_dir("restart").display().to_string();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(publish_fleet(
        publisher(broker, "restart-plant").await,
        fleet(1),
        Duration::from_millis(20),
        stop_rx,
    ));

    let id = "hums-restart".to_string();
    let (s, i) = (state.clone(), id.clone());
    let first = Harness::launch(FLEET, broker, 300.0, receiver.clone(), move |cfg| {
        cfg.state.dir = s;
        cfg.mqtt.client_id = Some(i);
    })
    .await;
    assert!(first.wait_for(Duration::from_secs(20), |_| per_key(&receiver).len() == 1).await);
    let first = first.stop().await;
    assert_eq!(first.metrics.alarms_raised, 1);

    let second = Harness::launch(FLEET, broker, 300.0, receiver.clone(), move |cfg| {
        cfg.state.dir = state;
        cfg.mqtt.client_id = Some(id);
    })
    .await;
    // Ten simulated minutes with the fault still present, and at least 100
    // readings seen however slow the machine is.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = |h: &Harness| h.metrics.readings_accepted.load(Ordering::Relaxed) > 100;
    assert!(second.wait_for(Duration::from_secs(60), seen).await, "no readings in the second run");
    let _ = stop_tx.send(true);
    let _ = task.await;
    let second = second.stop().await;
    assert!(
        second.metrics.readings_accepted > 100,
        "the second run did see the fault: {:?}",
        second.metrics
    );
    assert_eq!(second.metrics.alarms_raised, 0, "the alarm was resumed, not raised again");
    assert_eq!(per_key(&receiver).len(), 1, "{:?}", per_key(&receiver));
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_500_assets_gives_a_bounded_number_of_orders_and_accounts_for_all() {
    use rumqttc::QoS;
    const N: usize = 500;
    let broker = hums::demo::broker::start().unwrap();
    let receiver = Receiver::start(None, false).await.unwrap();
    let mut text = String::from(
        r#"
[gateway]
id = "storm-gw"
[[mqtt.subscriptions]]
filter = "s/+/+"
template = "s/{asset}/{channel}"
[pipeline]
eval_interval = "10s"
window = "2m"
stale_after = "1h"
[alarms]
on_delay = "20s"
[flood]
storm_assets = 10
storm_window = "1m"
[classes.motor.channels.vib]
unit = "mm/s"
quantity = "vibration_velocity"
[classes.motor.vibration]
channels = ["vib"]
failure_mode = "vibration"
[classes.motor.failure_modes.vibration]
title = "{asset_name}: vibration high"
priority = 2
"#,
    );
    for i in 0..N {
        text.push_str(&format!(
            "[[assets]]\nid = \"m{i}\"\nname = \"Motor {i}\"\nclass = \"motor\"\nlocation = \
                [\"Site S\"]\n"
        ));
    }
    let mut cfg = hums::config::load(
        vec![hums::config::SourceText { origin: "storm".into(), text }],
        &hums::config::FsResolver,
        Vec::new(),
    )
    .unwrap();
    cfg.mqtt.host = broker.ip().to_string();
    cfg.mqtt.port = broker.port();
    cfg.backend.common_mut().url = receiver.url();
    common::rest(&mut cfg).lookup_url = Some(receiver.lookup_url());
    cfg.state.dir = common::temp_dir("storm").display().to_string();
    let metrics = std::sync::Arc::new(hums::common::metrics::Metrics::default());
    let clock: hums::common::clock::SharedClock = std::sync::Arc::new(
        hums::common::clock::ScaledClock::new(hums::common::clock::wall_ms(), 60.0),
    );
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    let engine = tokio::spawn(hums::runtime::run(cfg, clock, metrics.clone(), rx));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A power dip: every motor's vibration jumps to zone D at once.
    let client = publisher(broker, "storm-plant").await;
    // Generous bounds, left as soon as the condition holds: CI is a loaded 2-core machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while metrics.alarms_raised.load(Ordering::Relaxed) < N as u64
        && std::time::Instant::now() < deadline
    {
        for i in 0..N {
            client.publish(format!("s/m{i}/vib"), QoS::AtMostOnce, false, "7.3").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Stop once every raise is accounted for: held, or delivered with the incident.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let got = per_key(&receiver);
        let incident = got.keys().any(|k| k.contains(":site.storm:"));
        let held = metrics.workorders_held.load(Ordering::Relaxed);
        if incident && held + got.len() as u64 > N as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = shutdown.send(true);
    let report = engine.await.unwrap().unwrap();
    let m = report.metrics.clone();
    let got = per_key(&receiver);

    assert_eq!(m.alarms_raised, N as u64, "every motor tripped: {m:?}");
    assert!(
        got.len() <= 10,
        "a storm gives a bounded number of orders, got {}: {got:?}",
        got.len()
    );
    assert_eq!(got.keys().filter(|k| k.contains(":site.storm:")).count(), 1, "one incident order");
    let sent_individual = got.len() as u64 - 1;
    assert_eq!(m.workorders_held + sent_individual, N as u64, "every raise is sent or held: {m:?}");
    assert_eq!(report.outbox_count("held") as u64, m.workorders_held);
    assert_eq!(report.outbox_count("delivered") as usize, got.len());
}

#[test]
fn broken_state_databases_give_clear_errors() {
    let dir = common::temp_dir("corrupt");
    let path = dir.join(hums::store::DB_FILE);
    std::fs::write(&path, b"this is not a database, it is a text file of 64 bytes or more!!")
        .unwrap();
    let e = Store::open(&path).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string())
            && msg.contains("corrupt")
            && msg.contains("move the file aside"),
        "{msg}"
    );

    // A database on a read-only filesystem (works as root too).
    let e = Store::open(std::path::Path::new("/proc/hums-test.db")).unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
    assert!(e.to_string().contains("read-only"), "{e}");
    let e = Store::open_dir(std::path::Path::new("/proc/hums-state")).unwrap_err();
    assert!(e.to_string().contains("cannot create state directory /proc/hums-state"), "{e}");

    // A database from a newer hums is refused, not downgraded.
    let newer = common::temp_dir("newer").join(hums::store::DB_FILE);
    drop(Store::open(&newer).unwrap());
    rusqlite::Connection::open(&newer).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let e = Store::open(&newer).unwrap_err();
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

#[test]
fn hums_run_refuses_a_corrupt_state_database_with_a_clear_message() {
    let dir = common::temp_dir("corrupt-run");
    std::fs::write(dir.join(hums::store::DB_FILE), vec![7u8; 4096]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["run", "--config", "tests/fixtures/fleet.toml"])
        .env("HUMS__STATE__DIR", &dir)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt") && stderr.contains(&dir.display().to_string()), "{stderr}");
}

#[test]
fn outbox_entries_survive_reopening_and_in_flight_ones_become_uncertain() {
    let dir = common::temp_dir("reopen");
    let store = Store::open_dir(&dir).unwrap();
    let wo = hums::workorders::WorkOrder { ..serde_json::from_value(sample_order()).unwrap() };
    store
        .commit(
            &[hums::store::outbox::NewEntry { order: wo, status: Status::Pending, note: None }],
            &[],
            None,
        )
        .unwrap();
    let e = store.next_due(i64::MAX).unwrap().unwrap();
    store.mark_sending(e.id).unwrap();
    drop(store); // a crash mid-send
    let store = Store::open_dir(&dir).unwrap();
    let e = store.next_due(i64::MAX).unwrap().expect("still queued");
    assert!(e.uncertain, "an attempt that was in flight must be looked up before re-posting");
    assert_eq!(e.attempts, 1);
}

fn sample_order() -> serde_json::Value {
    serde_json::json!({
        "idempotency_key": "gw:a:f:1", "event": "raised", "revision": 1, "kind": "condition",
        "failure_mode": "f", "title": "t", "description": "d", "priority": 2,
        "priority_label": "high", "severity": "alarm",
        "asset": {"id": "a", "name": "A", "class": "pump", "backend_id": null, "location": ["S"]},
        "evidence": [], "cause": "", "actions": [], "parts": [], "skills": [], "safety": [],
        "estimated_hours": 1.0,
        "detected_at": "2026-11-25T08:15:30Z", "due_by": null, "gateway_id": "gw"
    })
}

#[test]
fn an_unreadable_entry_is_parked_dead_and_does_not_block_the_queue() {
    let dir = common::temp_dir("unreadable");
    let store = Store::open_dir(&dir).unwrap();
    let mut second: hums::workorders::WorkOrder = serde_json::from_value(sample_order()).unwrap();
    second.idempotency_key = "gw:b:f:2".into();
    let first: hums::workorders::WorkOrder = serde_json::from_value(sample_order()).unwrap();
    let entries = [first, second].map(|order| hums::store::outbox::NewEntry {
        order,
        status: Status::Pending,
        note: None,
    });
    store.commit(&entries, &[], None).unwrap();
    let db = rusqlite::Connection::open(dir.join(hums::store::DB_FILE)).unwrap();
    db.execute("UPDATE outbox SET body = '{not json' WHERE key = 'gw:a:f:1'", []).unwrap();
    let next = store.next_due(i64::MAX).unwrap().expect("the readable entry");
    assert_eq!(next.key, "gw:b:f:2");
    let counts = store.counts().unwrap();
    assert!(counts.contains(&("dead".to_string(), 1)), "{counts:?}");
}
