//! Closing the loop, end to end with the demo's simulator: its pumps publish
//! over the embedded MQTT broker, pump-02's bearing wears, hums raises an
//! order at the embedded receiver, a technician closes the order there,
//! hums sees it closed, checks the machine some time later and says so on
//! the order: back to normal when the simulator's fault was repaired, or
//! "not fixed" with a new order when it was not.

use crate::common;

use hums::common::clock::{Clock, ScaledClock, SharedClock, SystemClock};
use hums::common::metrics::Metrics;
use hums::demo::receiver::Receiver;
use hums::demo::sim::SimPlant;
use rumqttc::QoS;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPEED: f64 = 300.0;

struct Loop {
    receiver: Receiver,
    clock: SharedClock,
    state: std::path::PathBuf,
    repair: tokio::sync::mpsc::UnboundedSender<&'static str>,
    shutdown: tokio::sync::watch::Sender<bool>,
    engine: tokio::task::JoinHandle<Result<hums::runtime::RunReport, hums::runtime::EngineError>>,
}

/// The demo's pumps (the chiller's Modbus link left out), the embedded
/// receiver as the CMMS, status polled every 100 ms, checks 10 simulated
/// minutes after a repair.
async fn start(name: &str) -> Loop {
    // Logs go to stderr when RUST_LOG is set (e.g. RUST_LOG=hums=info).
    hums::common::telemetry::init(&hums::config::schema::Log {
        level: "off".into(),
        ..Default::default()
    });
    let broker = hums::demo::broker::start().unwrap();
    let receiver = Receiver::start(None, false).await.unwrap();
    let mut cfg = hums::demo::config().unwrap();
    cfg.assets.retain(|a| a.class == "pump");
    cfg.modbus.links.clear();
    cfg.mqtt.host = broker.ip().to_string();
    cfg.mqtt.port = broker.port();
    cfg.mqtt.client_id = Some(format!("hums-{name}"));
    common::rest(&mut cfg).lookup_url = Some(receiver.lookup_url());
    cfg.backend.common_mut().url = receiver.url();
    cfg.backend.common_mut().poll = Some(Duration::from_millis(100));
    cfg.backend.common_mut().verify_after = Duration::from_secs(600);
    let state = common::temp_dir(name);
    cfg.state.dir = state.display().to_string();
    let clock: SharedClock = Arc::new(ScaledClock::new(SystemClock.now(), SPEED));
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    let engine = tokio::spawn(hums::runtime::run(
        cfg,
        clock.clone(),
        Arc::new(Metrics::default()),
        rx.clone(),
    ));

    // The simulator publishes every 10 ms (3 simulated seconds, denser than
    // the 5 s the shipped models were trained on) and repairs on request.
    let client = common::publisher(broker, &format!("{name}-plant")).await;
    let (repair, mut repairs) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let sim_clock = clock.clone();
    let mut stop = rx;
    tokio::spawn(async move {
        let mut sim = SimPlant::demo(sim_clock.now(), 7);
        tokio::time::sleep(Duration::from_millis(300)).await;
        loop {
            while let Ok(asset) = repairs.try_recv() {
                assert!(sim.repair(asset), "{asset} had a fault to repair");
            }
            for m in sim
                .sample(sim_clock.now())
                .messages
                .into_iter()
                .filter(|m| m.topic.contains("/pump-"))
            {
                let _ = client.publish(m.topic, QoS::AtLeastOnce, false, m.payload).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = stop.changed() => return,
            }
        }
    });
    Loop { receiver, clock, state, repair, shutdown, engine }
}

impl Loop {
    fn orders(&self) -> Vec<Value> {
        self.receiver.received().into_iter().map(|r| r.body).collect()
    }

    async fn wait(&self, what: &str, secs: u64, pred: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !pred(&self.orders()) {
            assert!(Instant::now() < deadline, "no {what}; received {:#?}", self.orders());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first order for pump-02, once hums raised it.
    async fn raised(&self) -> String {
        self.wait("order for pump-02", 60, |o| o.iter().any(|b| b["asset"]["id"] == "pump-02"))
            .await;
        let o = self.orders();
        o.iter().find(|b| b["asset"]["id"] == "pump-02").unwrap()["idempotency_key"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Stops hums and opens its state database.
    async fn stop(self) -> hums::store::Store {
        let _ = self.shutdown.send(true);
        self.engine.await.unwrap().unwrap();
        hums::store::Store::open_dir(&self.state).unwrap()
    }
}

fn verdict<'a>(orders: &'a [Value], key: &str) -> Option<&'a Value> {
    orders.iter().find(|b| b["idempotency_key"] == key && b["event"] == "verified")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repaired_pump_is_verified_back_to_normal_on_its_order() {
    let l = start("loop-fixed").await;
    let key = l.raised().await;
    // The technician replaces the bearing and closes the order.
    l.repair.send("pump-02").unwrap();
    l.receiver.close(&key, "done", hums::common::types::to_datetime(l.clock.now()));
    l.wait("post-repair check", 60, |o| verdict(o, &key).is_some()).await;

    let orders = l.orders();
    let v = verdict(&orders, &key).unwrap().clone();
    let title = v["title"].as_str().unwrap();
    assert!(
        title.starts_with("Post-repair check of ") && title.ends_with(": back to normal"),
        "{v:#}"
    );
    let before =
        orders.iter().filter(|b| b["idempotency_key"] == key && b["event"] != "verified").count()
            as u64;
    assert_eq!(v["revision"].as_u64(), Some(before + 1), "the next revision of the same order");
    let score =
        v["evidence"].as_array().unwrap().iter().find(|e| e["channel"] == "anomaly_score").unwrap();
    assert!(score["value"].as_f64().unwrap() < 0.5, "{v:#}");
    let vib = v["evidence"].as_array().unwrap().iter().find(|e| e["channel"] == "vib_de");
    if let Some(vib) = vib {
        assert_eq!(vib["zone"], "A", "the drive end is back in zone A: {vib}");
    }
    assert!(v["description"].as_str().unwrap().contains("back to normal"));
    assert!(
        !orders.iter().any(|b| b["title"].as_str().unwrap_or_default().contains("not fixed")),
        "no new order for a repaired pump"
    );
    let state = l.state.clone();
    let store = l.stop().await;
    let history = store.history().unwrap();
    let pump = history.iter().find(|h| h.asset == "pump-02").expect("pump-02's history");
    assert_eq!((pump.completed, pump.verified_fixed, pump.not_fixed), (1, 1, 0), "{pump:?}");
    assert!(pump.median_trip_to_order_s.is_some(), "{pump:?}");

    // `hums history` shows the same from the state directory.
    let demo = std::fs::canonicalize("configs/demo.toml").unwrap();
    let cfg = state.join("history.toml");
    std::fs::write(&cfg, format!("include = [{:?}]\n[state]\ndir = {:?}\n", demo, state)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["history", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = rows.iter().find(|r| r["asset"] == "pump-02").unwrap();
    assert_eq!(
        (row["completed"].as_u64(), row["verified_fixed"].as_u64()),
        (Some(1), Some(1)),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_closed_without_the_repair_is_found_not_fixed_and_raised_again() {
    let l = start("loop-not-fixed").await;
    let key = l.raised().await;
    // Closed, but the bearing still wears.
    l.receiver.close(&key, "done", hums::common::types::to_datetime(l.clock.now()));
    l.wait("post-repair check", 60, |o| verdict(o, &key).is_some()).await;
    l.wait("new order", 30, |o| {
        o.iter().any(|b| {
            b["title"].as_str().unwrap_or_default().contains("not fixed by the last repair")
        })
    })
    .await;

    let orders = l.orders();
    let v = verdict(&orders, &key).unwrap();
    assert!(v["title"].as_str().unwrap().ends_with(": not fixed, the anomaly persists"), "{v:#}");
    let again = orders
        .iter()
        .find(|b| b["title"].as_str().unwrap().contains("not fixed by the last repair"))
        .unwrap();
    assert_eq!((again["event"].as_str(), again["revision"].as_u64()), (Some("raised"), Some(1)));
    assert_ne!(again["idempotency_key"], key, "a new order");
    assert_eq!(again["asset"]["id"], "pump-02");
    let new_key = again["idempotency_key"].as_str().unwrap().to_string();
    // The fault goes on: its escalations update the new order, not the completed one.
    l.wait("escalation of the new order", 60, |o| {
        o.iter().any(|b| b["idempotency_key"] == new_key.as_str() && b["event"] == "escalated")
    })
    .await;
    let orders = l.orders();
    let later = orders.iter().skip_while(|b| b["idempotency_key"] != new_key.as_str());
    for o in later.filter(|b| b["asset"]["id"] == "pump-02" && b["event"] == "escalated") {
        assert_eq!(o["idempotency_key"], new_key.as_str(), "{o:#}");
    }
    let store = l.stop().await;
    // A restart finds the new order in the completed one's place.
    use hums::workorders::SentOrders;
    assert_eq!(store.reraised(&key).unwrap(), Some(new_key.clone()));
    assert_eq!(store.reraised(&new_key).unwrap(), None);
    let history = store.history().unwrap();
    let pump = history.iter().find(|h| h.asset == "pump-02").expect("pump-02's history");
    assert_eq!((pump.completed, pump.verified_fixed, pump.not_fixed), (1, 0, 1), "{pump:?}");
}
