//! The demo, accelerated: each faulty machine gets one work order, opened by
//! the learned model's early warning and updated with the diagnosis; healthy
//! ones get nothing.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_raises_work_orders_for_exactly_the_faulty_machines() {
    let record = std::env::temp_dir().join(format!("hums-demo-{}.jsonl", std::process::id()));
    let opts = hums::demo::DemoOptions {
        speed: 240.0,
        duration: Duration::from_secs(20), // 80 simulated minutes
        record: Some(record.clone()),
        sample_every: Duration::from_secs(5),
        seed: 3,
    };
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let report = hums::demo::run(opts, stop_rx).await.expect("demo runs");
    for a in &report.assets {
        assert_eq!(
            a.faulty,
            a.work_orders == 1,
            "{}: {} work orders ({:?})",
            a.asset,
            a.work_orders,
            a.titles
        );
    }
    assert!(report.passed());
    let lines = std::fs::read_to_string(&record).unwrap();
    let recorded: Vec<serde_json::Value> =
        lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let raised: Vec<&serde_json::Value> =
        recorded.iter().filter(|w| w["event"] == "raised").collect();
    let mut modes: Vec<&str> = raised.iter().map(|w| w["failure_mode"].as_str().unwrap()).collect();
    modes.sort();
    // The learned normal warns first; the limits and zones then diagnose the
    // fault as an update of the same order, not a second one.
    assert_eq!(
        modes,
        ["chiller.abnormal_behaviour", "fan.abnormal_behaviour", "pump.abnormal_behaviour"],
        "{modes:?}"
    );
    for (class, diagnosis) in [
        ("pump", "pump.bearing_wear"),
        ("fan", "fan.imbalance"),
        ("chiller", "chiller.condenser_fouling"),
    ] {
        let early =
            raised.iter().find(|w| w["failure_mode"].as_str().unwrap().starts_with(class)).unwrap();
        let update = recorded
            .iter()
            .find(|w| w["failure_mode"] == diagnosis)
            .unwrap_or_else(|| panic!("{class}: no diagnosis in {lines}"));
        assert_eq!(update["idempotency_key"], early["idempotency_key"], "{class}: same order");
        assert_eq!(update["event"], "escalated");
        assert!(update["revision"].as_u64().unwrap() >= 2);
        let at = |w: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(w["detected_at"].as_str().unwrap()).unwrap()
        };
        assert!(at(early) <= at(update), "{class}: the warning comes first");
    }
    let note = raised[0]["evidence"][0]["note"].as_str().unwrap();
    assert!(
        note.contains("largest contributions") && note.contains(".mean "),
        "explains itself: {note}"
    );
    assert_eq!(report.engine.metrics.payload_malformed, 0);
    let _ = std::fs::remove_file(record);
}

#[test]
fn the_demo_command_leaves_no_models_in_the_temporary_directory() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["demo", "--speed", "60", "--duration", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("hums-demo-models-{}", child.id()));
    // The models are written at start...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !dir.join("pump.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(dir.join("pump.json").exists(), "the demo writes its models to {}", dir.display());
    // ...and gone when it ends, whatever its verdict.
    child.wait().unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
}
