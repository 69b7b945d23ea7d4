//! Usage-based maintenance over real sockets: run hours and starts counted
//! from motor current published over MQTT, preventive work orders delivered
//! to the HTTP receiver, and meters that survive a restart.

use crate::common;

use common::{publisher, temp_dir, Harness};
use hums::demo::receiver::Receiver;
use rumqttc::{AsyncClient, QoS};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

const CONFIG: &str = r#"
[gateway]
id = "pm-gw"

[[mqtt.subscriptions]]
filter = "plant/+/+/+"
template = "plant/{site}/{asset}/{channel}"

[pipeline]
eval_interval = "10s"
window = "1m"
stale_after = "1h"

[backend]
token_env = "HUMS_E2E_TOKEN"
retry_min = "50ms"
retry_max = "1s"

[classes.motor.channels.motor_current]
unit = "A"
quantity = "current"

[classes.motor.usage]
channel = "motor_current"
running_above = 3.0
stopped_below = 1.5
max_gap = "1h"

[[classes.motor.preventive]]
failure_mode = "lubrication"
every_run_hours = 0.25
due_within = "2d"

[[classes.motor.preventive]]
failure_mode = "starter"
every_starts = 3

[classes.motor.failure_modes.lubrication]
title = "{asset_name}: grease the bearings"
kind = "preventive"
parts = [{ sku = "GREASE-LGHP2", description = "Bearing grease, 400 g", qty = 1 }]

[classes.motor.failure_modes.starter]
title = "{asset_name}: inspect the starter"
kind = "preventive"
priority = 4

[[assets]]
id = "m1"
name = "Motor 1"
class = "motor"
location = ["Site P", "Hall 2"]

[assets.usage]
run_hours = 100.1
"#;

/// Publishes `cycles` duty cycles: 60 readings running (5 A), then 10 stopped (0.5 A).
async fn run_cycles(client: &AsyncClient, cycles: usize) {
    for _ in 0..cycles {
        for v in std::iter::repeat_n(5.0, 60).chain(std::iter::repeat_n(0.5, 10)) {
            client
                .publish("plant/p/m1/motor_current", QoS::AtLeastOnce, false, format!("{v}"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts hums on `state` and waits until it has subscribed.
async fn start(
    broker: std::net::SocketAddr,
    fixture: &str,
    state: &std::path::Path,
    run: u32,
) -> Harness {
    let receiver = Receiver::start(None, false).await.unwrap();
    let state = state.display().to_string();
    let hums = Harness::launch(fixture, broker, 600.0, receiver, |cfg| {
        cfg.state.dir = state;
        cfg.mqtt.client_id = Some(format!("hums-usage-{run}"));
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    hums
}

/// Waits until no new order has arrived for a second, then stops hums.
async fn settle_and_stop(hums: Harness) -> Vec<Value> {
    let mut seen = usize::MAX;
    while hums.receiver.received().len() != seen {
        seen = hums.receiver.received().len();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let orders = hums.orders_for("m1");
    hums.stop().await;
    orders
}

fn meter(state: &std::path::Path) -> hums::pipeline::usage::Meter {
    let store = hums::store::Store::open_dir(state).unwrap();
    let mut meters = store.usage().unwrap();
    assert_eq!(meters.len(), 1, "one meter saved");
    meters.pop().unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_hours_and_starts_raise_preventive_orders_once_each_across_a_restart() {
    let dir = temp_dir("usage");
    let fixture = dir.join("hums.toml");
    std::fs::write(&fixture, CONFIG).unwrap();
    let fixture = fixture.display().to_string();
    let state = dir.join("state");
    let broker = hums::demo::broker::start().expect("embedded broker");

    let hums = start(broker, &fixture, &state, 1).await;
    let client = publisher(broker, "pm-plant-1").await;
    run_cycles(&client, 4).await;
    let mut orders = settle_and_stop(hums).await;
    let first = meter(&state);
    // Four cycles of about 12 simulated minutes running; the first run is not a start.
    assert!(first.run_hours() > 100.1 + 0.6, "{first:?}");
    assert_eq!((first.starts, first.running), (3, Some(false)), "{first:?}");

    let hums = start(broker, &fixture, &state, 2).await;
    let client = publisher(broker, "pm-plant-2").await;
    run_cycles(&client, 2).await;
    orders.extend(settle_and_stop(hums).await);
    let last = meter(&state);
    assert!(
        last.run_hours() > first.run_hours() + 0.3,
        "the meter continued: {first:?} then {last:?}"
    );
    assert_eq!(last.starts, 5, "a start after the restart is counted once: {last:?}");

    let keys: BTreeSet<&str> =
        orders.iter().map(|o| o["idempotency_key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), orders.len(), "no occurrence sent twice: {keys:?}");
    assert!(
        orders.iter().all(|o| o["kind"] == "preventive" && o["event"] == "raised"),
        "{orders:#?}"
    );

    // Grease at every quarter hour of running from the hour meter's 100.1 h: 100.25, 100.5, ...
    let grease: Vec<&Value> =
        orders.iter().filter(|o| o["failure_mode"] == "motor.lubrication").collect();
    let expected = (last.run_hours() / 0.25).floor() as usize - 400;
    assert_eq!(
        grease.len(),
        expected,
        "one order per interval passed, meter {:.3} h",
        last.run_hours()
    );
    let limits: Vec<f64> =
        grease.iter().map(|o| o["evidence"][0]["limit"].as_f64().unwrap()).collect();
    let wanted: Vec<f64> = (1..=expected).map(|k| 100.0 + 0.25 * k as f64).collect();
    assert_eq!(limits, wanted);
    let g = grease[0];
    assert_eq!(g["title"], "Motor 1: grease the bearings");
    assert_eq!(
        (g["priority"].as_u64(), g["parts"][0]["sku"].as_str()),
        (Some(3), Some("GREASE-LGHP2"))
    );
    let e = &g["evidence"][0];
    assert_eq!(
        (e["channel"].as_str(), e["feature"].as_str(), e["unit"].as_str()),
        (Some("motor_current"), Some("run_hours"), Some("h"))
    );
    assert!(e["value"].as_f64().unwrap() >= 100.25 && e["value"].as_f64().unwrap() < 100.3, "{e}");
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(at(&g["due_by"]) - at(&g["detected_at"]), chrono::Duration::days(2));
    assert!(g["description"].as_str().unwrap().contains("run hours"), "{}", g["description"]);

    // Inspect the starter every third start: once in five starts.
    let starter: Vec<&Value> =
        orders.iter().filter(|o| o["failure_mode"] == "motor.starter").collect();
    assert_eq!(starter.len(), 1, "{starter:#?}");
    assert_eq!(
        (starter[0]["evidence"][0]["limit"].as_f64(), starter[0]["priority"].as_u64()),
        (Some(3.0), Some(4))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preventive_order_done_in_the_cmms_restarts_its_interval_from_the_work() {
    let dir = temp_dir("usage-done");
    let fixture = dir.join("hums.toml");
    std::fs::write(&fixture, CONFIG).unwrap();
    let (fixture, state) = (fixture.display().to_string(), dir.join("state"));
    let broker = hums::demo::broker::start().expect("embedded broker");
    let receiver = Receiver::start(None, false).await.unwrap();
    let state_dir = state.display().to_string();
    let hums = Harness::launch(&fixture, broker, 600.0, receiver, |cfg| {
        cfg.state.dir = state_dir;
        cfg.mqtt.client_id = Some("hums-usage-done".into());
        cfg.backend.common_mut().poll = Some(Duration::from_millis(100));
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
    let client = publisher(broker, "pm-plant-done").await;
    let grease = |h: &Harness| -> Vec<Value> {
        h.orders_for("m1")
            .into_iter()
            .filter(|o| o["failure_mode"] == "motor.lubrication")
            .collect()
    };
    // Run until the first greasing falls due (100.25 h), then grease the motor
    // (close the order) a few running minutes later.
    while grease(&hums).is_empty() {
        run_cycles(&client, 1).await;
    }
    let first = grease(&hums)[0].clone();
    assert_eq!(first["evidence"][0]["limit"].as_f64(), Some(100.25));
    run_cycles(&client, 1).await;
    hums.receiver.close(
        first["idempotency_key"].as_str().unwrap(),
        "done",
        hums::common::types::to_datetime(hums.clock.now()),
    );
    let moved = |state: &std::path::Path| {
        let next = meter(state).next_due.get("motor.lubrication").copied().unwrap_or_default();
        next % (15 * 60_000) != 0 // off the quarter-hour grid: counted from the work
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !moved(&state) {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule did not move: {:?}",
            meter(&state)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = meter(&state);
    let next_h = after.next_due["motor.lubrication"] as f64 / 3_600_000.0;
    assert!(
        next_h > 100.5 && next_h - after.run_hours() <= 0.25 + 1e-9,
        "next {next_h:.3} h, meter {after:?}"
    );
    // The next greasing comes one interval after the work, off the old grid.
    let before = grease(&hums).len();
    while grease(&hums).len() == before {
        run_cycles(&client, 1).await;
    }
    let second = grease(&hums)[before]["evidence"][0]["limit"].as_f64().unwrap();
    assert!(
        (second - next_h).abs() < 0.01,
        "second greasing at {second} h, scheduled {next_h:.3} h"
    );
    hums.stop().await;
    let history = hums::store::Store::open_dir(&state).unwrap().history().unwrap();
    assert_eq!(
        history.iter().find(|h| h.asset == "m1").map(|h| h.completed),
        Some(1),
        "{history:?}"
    );
}
