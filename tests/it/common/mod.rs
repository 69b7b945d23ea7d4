//! Shared harness for end-to-end tests: hums's engine between a real MQTT
//! broker and the embedded HTTP work-order receiver, all on loopback.

#![allow(dead_code)]

pub mod backend;

use hums::common::clock::{Clock, ScaledClock, SharedClock, SystemClock};
use hums::common::metrics::Metrics;
use hums::config::Config;
use hums::demo::receiver::Receiver;
use hums::runtime::RunReport;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const TOKEN: &str = "e2e-secret-token";

pub struct Harness {
    pub receiver: Receiver,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    shutdown: watch::Sender<bool>,
    engine: tokio::task::JoinHandle<Result<RunReport, hums::runtime::EngineError>>,
}

/// The settings of a test config's `rest` backend
/// (every fixture and the demo deliver to a receiver).
pub fn rest(cfg: &mut Config) -> &mut hums::config::backend::RestSettings {
    match &mut cfg.backend {
        hums::config::backend::Backend::Rest(rest) => rest,
        other => panic!("expected a rest backend, the config has {}", other.name()),
    }
}

pub fn config(broker: SocketAddr, backend_url: &str) -> Config {
    fixture("tests/fixtures/e2e.toml", broker, backend_url)
}

/// Loads a fixture config and points it at the test's broker and backend.
pub fn fixture(path: &str, broker: SocketAddr, backend_url: &str) -> Config {
    let mut cfg = hums::config::load_files(&[path.into()]).expect("fixture config");

    cfg.mqtt.host = broker.ip().to_string();
    cfg.mqtt.port = broker.port();
    cfg.backend.common_mut().url = backend_url.into();
    cfg
}

impl Harness {
    /// Starts hums at `speed`× simulated time against the broker at `broker`.
    pub async fn start(broker: SocketAddr, speed: f64, client_id: &str) -> Self {
        Self::start_with(broker, speed, |cfg| cfg.mqtt.client_id = Some(client_id.into())).await
    }

    /// Like `start`, letting the test adjust the config first.
    pub async fn start_with(
        broker: SocketAddr,
        speed: f64,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let receiver = Receiver::start(None, false).await.unwrap();
        Self::start_full(broker, speed, receiver, adjust).await
    }

    /// Starts hums against an existing receiver, in a fresh state directory
    /// unless `adjust` names one.
    pub async fn start_full(
        broker: SocketAddr,
        speed: f64,
        receiver: Receiver,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        Self::launch("tests/fixtures/e2e.toml", broker, speed, receiver, adjust).await
    }

    /// Starts hums with a fixture config against the test's broker and receiver,
    /// in a fresh state directory unless `adjust` names one.
    pub async fn launch(
        fixture_path: &str,
        broker: SocketAddr,
        speed: f64,
        receiver: Receiver,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        std::env::set_var("HUMS_E2E_TOKEN", TOKEN);
        // Logs go to stderr when RUST_LOG is set (e.g. RUST_LOG=hums=info).
        hums::common::telemetry::init(&hums::config::schema::Log {
            level: "off".into(),
            ..Default::default()
        });
        let mut cfg = fixture(fixture_path, broker, &receiver.url());
        rest(&mut cfg).lookup_url = Some(receiver.lookup_url());
        cfg.state.dir = temp_dir("state").display().to_string();
        adjust(&mut cfg);
        let clock: SharedClock = Arc::new(ScaledClock::new(SystemClock.now(), speed));
        let metrics = Arc::new(Metrics::default());
        let (shutdown, rx) = watch::channel(false);
        let engine = tokio::spawn(hums::runtime::run(cfg, clock.clone(), metrics.clone(), rx));
        Self { receiver, metrics, clock, shutdown, engine }
    }

    /// Work orders received for an asset.
    pub fn orders_for(&self, asset: &str) -> Vec<Value> {
        self.receiver
            .received()
            .into_iter()
            .filter(|r| r.body.pointer("/asset/id").and_then(Value::as_str) == Some(asset))
            .map(|r| r.body)
            .collect()
    }

    /// Waits until `pred` holds or `timeout` passes; returns whether it held.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Self) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(self) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pred(self)
    }

    pub async fn stop(self) -> RunReport {
        self.stop_keeping_receiver().await.0
    }

    /// Stops hums and hands back the receiver, for a restart against it.
    pub async fn stop_keeping_receiver(self) -> (RunReport, Receiver) {
        let _ = self.shutdown.send(true);
        let report = self.engine.await.expect("engine task").expect("engine run");
        (report, self.receiver)
    }
}

/// A new, empty directory for one test.
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("hums-test-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` as `dir/hums.toml` and loads it, panicking with the
/// configuration's own error message if it is invalid.
pub fn load_config(dir: &std::path::Path, text: &str) -> Config {
    let path = dir.join("hums.toml");
    std::fs::write(&path, text).unwrap();
    hums::config::load_files(&[path]).unwrap_or_else(|e| panic!("{e}"))
}

/// A publishing MQTT client with its event loop driven in the background.
pub async fn publisher(broker: SocketAddr, id: &str) -> AsyncClient {
    let mut opts = MqttOptions::new(id, broker.ip().to_string(), broker.port());
    opts.set_keep_alive(Duration::from_secs(30));
    client(opts)
}

/// An MQTT client for `opts` with its event loop driven in the background.
pub fn client(opts: MqttOptions) -> AsyncClient {
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);

    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    client
}

/// One sample of every pump channel; `faulty` gives a worn bearing.
pub fn pump_sample(faulty: bool, i: u32) -> [(&'static str, f64); 6] {
    let wobble = f64::from(i % 7) * 0.01;
    if faulty {
        [
            ("vib_de", 7.3 + wobble),
            ("vib_nde", 5.0 + wobble),
            ("bearing_temp", 86.0 + wobble),
            ("motor_current", 40.0),
            ("flow", 120.0),
            ("discharge_pressure", 5.0),
        ]
    } else {
        [
            ("vib_de", 1.5 + wobble),
            ("vib_nde", 1.2 + wobble),
            ("bearing_temp", 50.0 + wobble),
            ("motor_current", 38.0),
            ("flow", 125.0),
            ("discharge_pressure", 5.1),
        ]
    }
}

/// Publishes both pumps' samples every `every` until `stop` turns true.
pub async fn publish_pumps(client: AsyncClient, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut i = 0;
    loop {
        for (asset, faulty) in [("pump-a", true), ("pump-b", false)] {
            for (ch, v) in pump_sample(faulty, i) {
                let _ = client
                    .publish(
                        format!("plant/t/{asset}/{ch}"),
                        QoS::AtLeastOnce,
                        false,
                        format!("{v}"),
                    )
                    .await;
            }
        }
        i += 1;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Publishes pump samples for each `(asset, faulty)` every `every` until `stop` turns true.
pub async fn publish_fleet(
    client: AsyncClient,
    fleet: Vec<(String, bool)>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut i = 0;
    loop {
        for (asset, faulty) in &fleet {
            for (ch, v) in pump_sample(*faulty, i) {
                let _ = client
                    .publish(
                        format!("plant/t/{asset}/{ch}"),
                        QoS::AtLeastOnce,
                        false,
                        format!("{v}"),
                    )
                    .await;
            }
        }
        i += 1;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// A loopback address nothing listens on (yet).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Number of POSTs the receiver stored per idempotency key.
pub fn per_key(receiver: &Receiver) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for r in receiver.received() {
        *m.entry(r.body["idempotency_key"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    m
}

/// Expected engineering values per channel, as written into the bank.
pub const VALUES: [(&str, f64); 11] = [
    ("ch_u16", 65_000.0),
    ("ch_i16", -1234.0),
    ("ch_u32", 4_000_000_000.0),
    ("ch_i32", -2_000_000_000.0),
    ("ch_f32", -273.15f32 as f64),
    ("ch_f64", std::f64::consts::E),
    ("ch_u64", 9_007_199_254_740_992.0),
    ("ch_i64", -9_007_199_254_740_992.0),
    ("ch_bit", 1.0),
    ("ch_scaled", 12.3),
    ("ch_coil", 1.0),
];

/// Fills a unit of a register bank with [`VALUES`] as tests/fixtures/modbus.toml maps them.
pub fn fill(bank: &hums::demo::modbus_server::RegisterBank, unit: u8) {
    use hums::config::modbus::{ByteOrder, DataType::*, Table};
    let h = Table::Holding;
    bank.set(unit, h, 0, 65_000.0, U16, ByteOrder::ABCD);
    bank.set(unit, h, 1, -1234.0, I16, ByteOrder::ABCD);
    bank.set(unit, h, 2, 4_000_000_000.0, U32, ByteOrder::CDAB);
    bank.set(unit, h, 4, -2_000_000_000.0, I32, ByteOrder::BADC);
    bank.set(unit, h, 6, -273.15f32 as f64, F32, ByteOrder::DCBA);
    bank.set(unit, h, 8, std::f64::consts::E, F64, ByteOrder::ABCD);
    bank.set(unit, h, 12, 9_007_199_254_740_992.0, U64, ByteOrder::ABCD);
    bank.set(unit, h, 16, -9_007_199_254_740_992.0, I64, ByteOrder::ABCD);
    bank.set_words(unit, h, 20, &[0b1000]);
    bank.set(unit, Table::Input, 0, 123.0, U16, ByteOrder::ABCD);
    bank.set_bit(unit, Table::Coil, 0, true);
}

/// Polls the first unit of the modbus fixture's link (adjusted by `adjust`)
/// until every field was read once; returns channel → value (good readings only).
pub async fn read_meter_once(
    adjust: impl FnOnce(&mut hums::config::modbus::Link),
) -> std::collections::HashMap<String, f64> {
    let mut cfg =
        hums::config::load_files(&["tests/fixtures/modbus.toml".into()]).expect("modbus fixture");
    let mut link = cfg.modbus.links.remove(0);
    link.units.truncate(1);
    link.units[0].poll_every = Duration::from_secs(60);
    adjust(&mut link);
    let units = hums::sources::modbus::resolve(&link, &cfg.modbus);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
    let (stop, stop_rx) = watch::channel(false);
    let clock: SharedClock = Arc::new(hums::common::clock::ManualClock::new(0));
    let task = tokio::spawn(hums::sources::modbus::link::run(
        link,
        units,
        clock,
        Arc::new(Metrics::default()),
        tx,
        stop_rx,
    ));
    let mut got = std::collections::HashMap::new();
    while got.len() < VALUES.len() {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(batch)) => {
                let batch: hums::sources::Batch = batch;
                for r in batch.readings {
                    if r.quality == hums::common::types::Quality::Good {
                        got.insert(r.channel.to_string(), r.value);
                    }
                }
            }
            _ => break,
        }
    }
    let _ = stop.send(true);
    let _ = task.await;
    got
}

/// Asserts that `got` holds every one of [`VALUES`].
pub fn assert_values(got: &std::collections::HashMap<String, f64>) {
    for (ch, want) in VALUES {
        let v = got.get(ch).unwrap_or_else(|| panic!("no {ch}: {got:?}"));
        assert!((v - want).abs() <= want.abs() * 1e-12, "{ch}: got {v}, want {want}");
    }
}
