//! The demo, accelerated: each faulty machine gets its diagnosis work order,
//! preceded by the learned model's early warning; healthy ones get nothing.

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
        let expected = if a.faulty { 2 } else { 0 };
        assert_eq!(a.work_orders, expected, "{}: {:?}", a.asset, a.titles);
    }
    assert!(report.passed());
    let lines = std::fs::read_to_string(&record).unwrap();
    let recorded: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let raised: Vec<&str> =
        recorded.iter().filter(|w| w["event"] == "raised").map(|w| w["failure_mode"].as_str().unwrap()).collect();
    let mut sorted = raised.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "chiller.abnormal_behaviour",
            "chiller.condenser_fouling",
            "fan.abnormal_behaviour",
            "fan.imbalance",
            "pump.abnormal_behaviour",
            "pump.bearing_wear"
        ],
        "{raised:?}"
    );
    // The learned normal warns first, the limits and zones diagnose later.
    let detected = |fm: &str| {
        let w = recorded.iter().find(|w| w["event"] == "raised" && w["failure_mode"] == fm).unwrap();
        chrono::DateTime::parse_from_rfc3339(w["detected_at"].as_str().unwrap()).unwrap()
    };
    for class in ["pump", "fan", "chiller"] {
        let early = detected(&format!("{class}.abnormal_behaviour"));
        let specific = raised.iter().find(|f| f.starts_with(class) && !f.ends_with("abnormal_behaviour")).unwrap();
        assert!(early <= detected(specific), "{class}: early warning at {early}, diagnosis at {}", detected(specific));
    }
    let warning = recorded.iter().find(|w| w["failure_mode"] == "pump.abnormal_behaviour").unwrap();
    let note = warning["evidence"][0]["note"].as_str().unwrap();
    assert!(note.contains("largest contributions") && note.contains(".mean "), "explains itself: {note}");

    assert_eq!(report.engine.metrics.payload_malformed, 0);
    let _ = std::fs::remove_file(record);
}
