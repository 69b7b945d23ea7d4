//! End to end over real sockets: embedded MQTT broker → hums → HTTP receiver.

use crate::common;

use common::{publish_pumps, publisher, Harness, TOKEN};
use rumqttc::QoS;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_raises_exactly_one_complete_work_order_and_a_healthy_asset_none() {
    let broker = hums::demo::broker::start().expect("embedded broker");
    let state = common::temp_dir("e2e-state");
    let dir = state.display().to_string();
    let hums = Harness::start_with(broker, 300.0, |cfg| {
        cfg.mqtt.client_id = Some("hums-e2e".into());
        cfg.state.dir = dir;
    })
    .await;
    let client = publisher(broker, "e2e-plant").await;
    // Give hums a moment to subscribe before publishing (QoS 1 without a prior session).
    assert!(
        hums.wait_for(Duration::from_secs(5), |h| h
            .metrics
            .mqtt_resubscribes
            .load(Ordering::Relaxed)
            > 0)
            .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Garbage first: none of it may stop the source.
    let garbage: [(&str, Vec<u8>); 6] = [
        ("plant/t/pump-b/vib_de", b"abc".to_vec()),
        ("plant/t/pump-b/vib_de", b"NaN".to_vec()),
        ("plant/t/pump-b/vib_de", vec![b'1'; 5000]),
        ("plant/t/pump-b/vib_de", vec![0xff, 0xfe, 0x00]),
        ("plant/t/pump-zzz/vib_de", b"1.0".to_vec()),
        ("plant/t/pump-b/no_such_channel", b"1.0".to_vec()),
    ];
    for (topic, payload) in garbage {
        client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let pub_task = tokio::spawn(publish_pumps(client, Duration::from_millis(20), stop_rx));
    let raised =
        hums.wait_for(Duration::from_secs(30), |h| !h.orders_for("pump-a").is_empty()).await;
    assert!(raised, "no work order for the faulty pump; metrics: {:?}", hums.metrics.snapshot());
    // Keep the fault going for a while (≈ 10 simulated minutes): still exactly one order.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    let _ = pub_task.await;

    let orders = hums.orders_for("pump-a");
    let healthy = hums.orders_for("pump-b");
    let auth: Vec<_> = hums.receiver.received().into_iter().map(|r| r.authorization).collect();
    let report = hums.stop().await;
    let m = report.metrics;

    assert_eq!(orders.len(), 1, "one work order per fault, not one per reading: {orders:#?}");
    assert!(healthy.is_empty(), "the healthy pump raised {healthy:#?}");
    assert!(
        auth.iter().all(|a| a.as_deref() == Some(&format!("Bearer {TOKEN}"))),
        "bearer token sent: {auth:?}"
    );

    let wo = &orders[0];
    let s = |p: &str| wo.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    assert_eq!(s("/kind"), "condition");
    assert_eq!(s("/event"), "raised");
    assert_eq!(s("/failure_mode"), "pump.bearing_wear");
    assert_eq!(wo["priority"], 1, "zone D is critical: the class's priority 2 becomes 1");
    assert_eq!(s("/priority_label"), "critical");
    assert_eq!(s("/asset/id"), "pump-a");
    assert_eq!(s("/asset/name"), "Pump A");
    assert_eq!(s("/asset/class"), "pump");
    assert_eq!(s("/asset/backend_id"), "CMMS-A");
    assert_eq!(
        wo["asset"]["location"],
        serde_json::json!(["Site T", "Hall 1", "Pump room", "Line 1"])
    );
    assert!(s("/idempotency_key").starts_with("e2e-gw:pump-a:pump.bearing_wear:"));
    assert_eq!(s("/title"), "Pump A: bearing wear suspected");
    assert!(s("/description").contains("vib_de mean: 7.3"), "{}", s("/description"));
    assert!(wo["safety"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.as_str().unwrap().contains("lockout-tagout")));
    assert!(!wo["actions"].as_array().unwrap().is_empty());
    assert_eq!(wo["parts"][0]["sku"], "SKF-6309-2Z");
    assert_eq!(wo["estimated_hours"], 4.0);
    // Due by its priority's response time (the defaults: Level 1 within the
    // hour, Level 2 within a day), and the text says so in the same words.
    let detected = chrono::DateTime::parse_from_rfc3339(&s("/detected_at")).unwrap();
    let due = chrono::DateTime::parse_from_rfc3339(&s("/due_by")).unwrap();
    let hours = match wo["priority"].as_u64().unwrap() {
        1 => 1,
        2 => 24,
        p => panic!("priority {p} for zone D vibration"),
    };
    assert_eq!(due - detected, chrono::TimeDelta::hours(hours));
    let label = s("/priority_label");
    assert!(s("/description").starts_with(&format!("Priority {} ({label})", wo["priority"])));

    let evidence = wo["evidence"].as_array().unwrap();
    let vib = evidence.iter().find(|e| e["channel"] == "vib_de").expect("vib_de evidence");
    assert_eq!(vib["zone"], "D");
    assert_eq!(vib["limit"], 4.5);
    assert_eq!(vib["unit"], "mm/s");
    assert_eq!(vib["feature"], "mean");
    assert!((vib["value"].as_f64().unwrap() - 7.33).abs() < 0.05, "{vib}");
    assert!(chrono::DateTime::parse_from_rfc3339(vib["since"].as_str().unwrap()).is_ok());
    let temp =
        evidence.iter().find(|e| e["channel"] == "bearing_temp").expect("bearing_temp evidence");
    assert_eq!(temp["limit"], 80.0);
    assert_eq!(temp["unit"], "degC");

    // Every kind of garbage was counted, and the source kept going.
    assert!(m.payload_malformed >= 2, "{m:?}");
    assert!(m.payload_non_finite >= 1, "{m:?}");
    assert!(m.payload_oversized >= 1, "{m:?}");
    assert!(m.topic_unmapped >= 2, "{m:?}");
    assert!(m.readings_accepted > 100, "{m:?}");
    assert_eq!(m.workorders_delivered, 1);
    assert_eq!(m.alarms_raised, 1);

    // Its evidence chart was drawn after the commit and is kept beside the order.
    let store = hums::store::Store::open_dir(&state).unwrap();
    let entries = store.list(None, 10).unwrap();
    let entry = entries.iter().find(|e| e.order.asset.id == "pump-a").expect("the order's entry");
    let chart = entry.order.chart.as_ref().expect("a chart drawn after the commit");
    assert!(chart.0.starts_with(b"\x89PNG"), "a PNG");
    assert!(store.charts_due(10).unwrap().is_empty(), "delivered and done with");
}

/// A reading past a limit raises its order when it arrives, not at the next
/// evaluation (a minute away here), with the limit it crossed as evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_past_a_limit_raises_its_order_on_arrival_not_at_the_next_evaluation() {
    let broker = hums::demo::broker::start().expect("embedded broker");
    let hums = Harness::start_with(broker, 1.0, |cfg| {
        cfg.mqtt.client_id = Some("hums-arrival".into());
        cfg.pipeline.eval_interval = Duration::from_secs(60);
        cfg.pipeline.window = Duration::from_secs(120);
        cfg.alarms.on_delay = Duration::ZERO;
    })
    .await;
    let subscribed = |h: &Harness| h.metrics.mqtt_resubscribes.load(Ordering::Relaxed) > 0;
    assert!(hums.wait_for(Duration::from_secs(5), subscribed).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = publisher(broker, "arrival-plant").await;
    let temp = "plant/t/pump-a/bearing_temp";
    for v in ["50.0", "50.1", "50.2", "50.3"] {
        client.publish(temp, QoS::AtLeastOnce, false, v).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let normal = |h: &Harness| h.metrics.readings_accepted.load(Ordering::Relaxed) >= 4;
    assert!(hums.wait_for(Duration::from_secs(5), normal).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hums.orders_for("pump-a").is_empty(), "normal readings raise nothing");

    // The window's mean goes to (4 × 50 + 300) / 5 = 100 °C: past the critical 95.
    client.publish(temp, QoS::AtLeastOnce, false, "300").await.unwrap();
    let raised =
        hums.wait_for(Duration::from_secs(10), |h| !h.orders_for("pump-a").is_empty()).await;
    let ticks = hums.metrics.eval_ticks.load(Ordering::Relaxed);
    let orders = hums.orders_for("pump-a");
    let report = hums.stop().await;
    assert!(raised, "no order on arrival; metrics: {:?}", report.metrics);
    assert_eq!(ticks, 1, "only the evaluation at start ran: the order came between evaluations");
    assert!(report.metrics.limits_judged_on_arrival >= 1, "{:?}", report.metrics);
    assert_eq!(orders.len(), 1, "{orders:#?}");
    let wo = &orders[0];
    assert_eq!(wo["event"], "raised");
    assert_eq!(wo["failure_mode"], "pump.bearing_wear");
    let temp = wo["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["channel"] == "bearing_temp")
        .expect("the limit crossed is the evidence")
        .clone();
    assert_eq!(temp["feature"], "mean");
    assert_eq!(temp["limit"], 95.0);
    assert!((temp["value"].as_f64().unwrap() - 100.12).abs() < 0.01, "{temp}");
}
