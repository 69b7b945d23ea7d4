//! The demo, accelerated: each faulty machine gets a work order, healthy ones none.

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
        assert_eq!(a.faulty, a.work_orders == 1, "{}: {} work orders ({:?})", a.asset, a.work_orders, a.titles);
    }
    assert!(report.passed());
    let lines = std::fs::read_to_string(&record).unwrap();
    let recorded: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let raised: Vec<&str> =
        recorded.iter().filter(|w| w["event"] == "raised").map(|w| w["failure_mode"].as_str().unwrap()).collect();
    let mut sorted = raised.clone();
    sorted.sort();
    assert_eq!(sorted, ["chiller.condenser_fouling", "fan.imbalance", "pump.bearing_wear"], "{raised:?}");
    assert_eq!(report.engine.metrics.payload_malformed, 0);
    let _ = std::fs::remove_file(record);
}
