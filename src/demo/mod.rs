//! `hums demo`: a simulated plant publishing to an embedded MQTT broker, the
//! normal hums pipeline reading it, and an embedded work-order receiver. Beside
//! it, `hums bench` ([`bench`]): MQTT ingest against a real broker.

pub mod bench;
pub mod broker;
pub mod modbus_server;
pub mod receiver;
pub mod sim;

use crate::common::clock::{Clock, ScaledClock, SharedClock, SystemClock};
use crate::common::metrics::Metrics;
use crate::common::types::Millis;
use crate::config::{self, Config, ConfigErrors, EmbeddedResolver, SourceText};
use crate::demo::modbus_server::RegisterBank;
use crate::demo::receiver::{Received, Receiver};
use crate::demo::sim::SimPlant;
use crate::sources::modbus;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::collections::{BTreeMap, HashMap};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::warn;

/// The demo configuration and the class library it includes, compiled in so
/// the demo runs from any directory.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("configs/demo.toml", include_str!("../../configs/demo.toml")),
    ("configs/classes/pump.toml", include_str!("../../configs/classes/pump.toml")),
    ("configs/classes/fan.toml", include_str!("../../configs/classes/fan.toml")),
    ("configs/classes/chiller.toml", include_str!("../../configs/classes/chiller.toml")),
    ("configs/classes/instrument.toml", include_str!("../../configs/classes/instrument.toml")),
    ("configs/modbus/chiller.toml", include_str!("../../configs/modbus/chiller.toml")),
];

/// The shipped models the demo classes use, by class.
const MODELS: &[(&str, &str)] = &[
    ("pump", include_str!("../../models/pump.json")),
    ("fan", include_str!("../../models/fan.json")),
    ("chiller", include_str!("../../models/chiller.json")),
];

/// Demo settings from the command line.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// Wall-clock run time.
    pub duration: Duration,
    /// Where to write every work order the receiver got, one JSON line each.
    pub record: Option<PathBuf>,
    /// Simulated seconds between samples of each channel.
    pub sample_every: Duration,
    pub seed: u64,
    /// Serve the status page and API on this address, with a token made for the run.
    pub status_page: Option<String>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("embedded broker: {0}")]
    Broker(#[from] crate::demo::broker::BrokerError),
    #[error("embedded receiver: {0}")]
    Receiver(#[from] std::io::Error),
    #[error("{0}")]
    Engine(#[from] crate::runtime::EngineError),
}

/// Per-asset outcome.
#[derive(Debug, Clone)]
pub struct AssetOutcome {
    pub asset: String,
    pub faulty: bool,
    /// Distinct work orders (idempotency keys) received.
    pub work_orders: usize,
    /// Updates (escalations) of those work orders.
    pub updates: usize,
    pub titles: Vec<String>,
}

/// What the demo saw.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub assets: Vec<AssetOutcome>,
    pub first_work_order: Option<Duration>,
    pub engine: crate::runtime::RunReport,
}

impl DemoReport {
    /// Every faulty asset got a work order and no healthy one did.
    pub fn passed(&self) -> bool {
        self.assets.iter().all(|a| a.faulty == (a.work_orders > 0))
    }
}

/// The directory this process writes the shipped models to.
fn models_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hums-demo-models-{}", std::process::id()))
}

/// Removes the models [`config`] wrote (at the end of `hums demo`).
pub fn remove_models() {
    let _ = std::fs::remove_dir_all(models_dir());
}

/// Loads the embedded demo configuration (environment overrides apply). The
/// shipped models travel inside the binary too: they are written to a
/// directory of this process and the class files point at them.
pub fn config() -> Result<Config, ConfigErrors> {
    let dir = models_dir();
    // Written under a unique name, then renamed: concurrent loads never read half a file.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let written = std::fs::create_dir_all(&dir).and_then(|_| {
        MODELS.iter().try_for_each(|(class, json)| {
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!("{class}.json.{n}.tmp"));
            std::fs::write(&tmp, json)?;
            std::fs::rename(&tmp, dir.join(format!("{class}.json")))
        })
    });

    if let Err(e) = written {
        warn!(error = %e, dir = %dir.display(), "cannot write the shipped models there");
    }
    let texts: Vec<(&str, String)> = EMBEDDED
        .iter()
        .map(|&(name, text)| {
            let mut text = text.to_string();
            for (class, _) in MODELS {
                let shipped = format!("model_file = \"../models/{class}.json\"");
                let here = format!(
                    "model_file = {:?}",
                    dir.join(format!("{class}.json")).display().to_string()
                );
                text = text.replace(&shipped, &here);
            }
            (name, text)
        })
        .collect();
    let embedded: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let (name, text) = embedded[0];
    let cfg = config::load(
        vec![SourceText { origin: name.into(), text: text.into() }],
        &EmbeddedResolver(&embedded),
        std::env::vars(),
    )?;
    crate::pipeline::models::files::ModelFiles::load(&cfg)?;
    Ok(cfg)
}

/// Runs the demo until `duration` passes or `stop` turns true.
pub async fn run(
    opts: DemoOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<DemoReport, DemoError> {
    let mut cfg = config()?;
    let broker = crate::demo::broker::start()?;
    let receiver = Receiver::start(opts.record.clone(), true).await?;
    cfg.mqtt.host = broker.ip().to_string();
    cfg.mqtt.port = broker.port();
    cfg.backend.common_mut().url = receiver.url();
    if let crate::config::backend::Backend::Rest(rest) = &mut cfg.backend {
        rest.lookup_url = Some(receiver.lookup_url());
    }
    let bank = RegisterBank::default();
    let modbus_server =
        crate::demo::modbus_server::serve(bank.clone(), ([127, 0, 0, 1], 0).into()).await?;
    for link in &mut cfg.modbus.links {
        link.address = modbus_server.addr.to_string();
    }
    let targets = registers(&cfg, &bank);
    // A fresh state directory per demo run: the demo starts from a clean plant.
    let state = tempdir()?;
    cfg.state.dir = state.display().to_string();
    if let Some(listen) = &opts.status_page {
        serve_status_page(&mut cfg, listen, &state)?;
    }

    let clock: SharedClock = Arc::new(ScaledClock::new(SystemClock.now(), opts.speed));
    let metrics = Arc::new(Metrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let started = Instant::now();
    let engine =
        tokio::spawn(crate::runtime::run(cfg, clock.clone(), metrics, shutdown_rx.clone()));

    let sim = SimPlant::demo(clock.now(), opts.seed);
    let (faulty, healthy) = sim.faulty_and_healthy();
    let publisher = tokio::spawn(publish(
        sim,
        broker,
        bank,
        targets,
        clock.clone(),
        opts.sample_every,
        shutdown_rx,
    ));

    tokio::select! {
        _ = tokio::time::sleep(opts.duration) => {}
        _ = stop.changed() => {}
    }
    // Let the last evaluations and deliveries land before stopping.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = shutdown_tx.send(true);
    let _ = publisher.await;
    let engine = match engine.await {
        Ok(r) => r?,
        Err(e) => {
            warn!(error = %e, "engine task failed");
            crate::runtime::RunReport { metrics: Default::default(), outbox: Vec::new() }
        }
    };

    let _ = std::fs::remove_dir_all(&state);
    let received = receiver.received();
    let first_work_order = received.iter().map(|r| r.at.duration_since(started)).min();
    let assets = outcomes(&received, &faulty, &healthy);
    Ok(DemoReport { assets, first_work_order, engine })
}

/// Each asset's outcome from the orders the receiver got: the faulty assets first, then the
/// healthy ones.
fn outcomes(received: &[Received], faulty: &[&str], healthy: &[&str]) -> Vec<AssetOutcome> {
    let mut by_asset: BTreeMap<String, (BTreeMap<String, usize>, Vec<String>)> = BTreeMap::new();
    for r in received {
        let asset = r.body.pointer("/asset/id").and_then(|v| v.as_str()).unwrap_or("?").to_string();
        let key = r.body.get("idempotency_key").and_then(|v| v.as_str()).unwrap_or("?").to_string();
        let title = r.body.get("title").and_then(|v| v.as_str()).unwrap_or("?").to_string();
        let entry = by_asset.entry(asset).or_default();
        *entry.0.entry(key).or_default() += 1;
        if !entry.1.contains(&title) {
            entry.1.push(title);
        }
    }
    let outcome = |id: &str, faulty: bool| {
        let (keys, titles) = by_asset.get(id).cloned().unwrap_or_default();
        AssetOutcome {
            asset: id.into(),
            faulty,
            work_orders: keys.len(),
            updates: keys.values().map(|n| n - 1).sum(),
            titles,
        }
    };
    faulty
        .iter()
        .map(|a| outcome(a, true))
        .chain(healthy.iter().map(|a| outcome(a, false)))
        .collect()
}

/// Where each (asset, channel) served over Modbus lives: unit id and field.
type Registers = HashMap<(String, String), (u8, modbus::Field)>;

/// Maps the configured Modbus fields for the simulated devices, and zeroes
/// them in the bank so the first poll finds every register.
fn registers(cfg: &Config, bank: &RegisterBank) -> Registers {
    let mut out = Registers::new();
    for link in &cfg.modbus.links {
        for unit in modbus::resolve(link, &cfg.modbus) {
            for f in unit.fields {
                bank.set(unit.id, f.table, f.address, 0.0, f.data_type, f.byte_order);
                out.insert((f.asset.to_string(), f.channel.to_string()), (unit.id, f));
            }
        }
    }
    out
}

/// A new, empty directory under the system temp dir.
/// Turns the status page on for the demo: an operator token made for this
/// run (in the run's state directory), and its address printed.
fn serve_status_page(
    cfg: &mut Config,
    listen: &str,
    state: &std::path::Path,
) -> std::io::Result<()> {
    use rand::RngExt;
    let mut rng = rand::rng();
    let token: String = (0..24).map(|_| format!("{:x}", rng.random_range(0..16u8))).collect();
    let file = state.join("demo.token");
    std::fs::write(&file, &token)?;
    cfg.http.enabled = true;
    cfg.http.listen = listen.to_string();
    cfg.http.tokens = vec![crate::config::operate::Token {
        name: "demo".into(),
        role: crate::config::operate::Role::Operator,
        token_env: None,
        token_file: Some(file.display().to_string()),
    }];
    let shown = listen.replace("0.0.0.0", "127.0.0.1");
    println!("status page: http://{shown}/?token={token}");
    Ok(())
}

fn tempdir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "hums-demo-{}-{}",
        std::process::id(),
        crate::common::clock::wall().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Publishes the simulated plant's samples until shutdown.
#[allow(clippy::too_many_arguments)]
async fn publish(
    mut sim: SimPlant,
    broker: std::net::SocketAddr,
    bank: RegisterBank,
    registers: Registers,
    clock: SharedClock,
    sample_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut opts = MqttOptions::new("hums-demo-plant", broker.ip().to_string(), broker.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let closed = closing.clone();
    let driver = tokio::spawn(async move {
        loop {
            if let Err(e) = eventloop.poll().await {
                if closed.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                warn!(error = %e, "simulated plant lost the broker; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let wall = Duration::from_secs_f64((sample_every.as_secs_f64() / clock.speed()).max(0.001));
    let mut ticker = tokio::time::interval(wall);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = ticker.tick() => {
                let sample = sim.sample(clock.now());
                for (asset, channel, value) in sample.registers {
                    if let Some(t) = registers.get(&(asset.to_string(), channel.to_string())) {
                        bank.set(
                            t.0,
                            t.1.table,
                            t.1.address,
                            (value - t.1.offset) / t.1.scale,
                            t.1.data_type,
                            t.1.byte_order,
                        );
                    }
                }
                for m in sample.messages {
                    if client.publish(m.topic, QoS::AtLeastOnce, false, m.payload).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    closing.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), driver).await;
}

/// Prints the demo summary table.
pub fn print_summary(r: &DemoReport, opts: &DemoOptions) {
    let sim_min = opts.duration.as_secs_f64() * opts.speed / 60.0;
    println!();
    println!(
        "hums demo: {:.0} s at {}x speed ({sim_min:.0} simulated minutes)",
        opts.duration.as_secs_f64(),
        opts.speed
    );
    println!("{:<12} {:<9} {:>11} {:>8}  title", "asset", "expected", "work orders", "updates");
    for a in &r.assets {
        let ok = if a.faulty == (a.work_orders > 0) { "ok" } else { "UNEXPECTED" };
        println!(
            "{:<12} {:<9} {:>11} {:>8}  {} [{ok}]",
            a.asset,
            if a.faulty { "fault" } else { "healthy" },
            a.work_orders,
            a.updates,
            if a.titles.is_empty() { "-".to_string() } else { a.titles.join(" | ") }
        );
    }
    match r.first_work_order {
        Some(d) => println!(
            "time to first work order: {:.1} s wall ({:.1} simulated minutes)",
            d.as_secs_f64(),
            d.as_secs_f64() * opts.speed / 60.0
        ),
        None => println!("time to first work order: none received"),
    }
    let m = &r.engine.metrics;
    println!(
        "readings: {}  skipped payloads: {}  alarms raised: {}  work orders delivered: {}  dead \
            letters: {}",
        m.readings_accepted,
        m.payload_malformed
            + m.payload_oversized
            + m.payload_non_finite
            + m.payload_bad_timestamp
            + m.topic_unmapped,
        m.alarms_raised,
        m.workorders_delivered,
        r.engine.outbox_count("dead")
    );
    if let Some(path) = &opts.record {
        println!("work orders recorded in {}", path.display());
    }
    println!(
        "result: {}",
        if r.passed() {
            "PASS: every faulty machine got a work order and no healthy one did"
        } else {
            "FAIL: see UNEXPECTED rows (a short --duration or low --speed may end before faults \
                develop)"
        }
    );
}

/// Writes the demo plant running healthy (no faults) for `hours` of
/// simulated time, one row per `every`, as a replay/training CSV: a
/// `timestamp` column and one `<asset>.<channel>` column per channel.
pub fn write_healthy_history(
    path: &std::path::Path,
    start: Millis,
    hours: f64,
    every: Duration,
    seed: u64,
) -> std::io::Result<u64> {
    use std::io::Write;
    let mut sim = SimPlant::healthy(start, seed);
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let step = (every.as_millis() as Millis).max(1);
    let end = start + (hours * 3_600_000.0) as Millis;
    let mut rows = 0;
    let mut t = start;
    while t < end {
        let values = sim.values(t);
        if rows == 0 {
            let header: Vec<String> = values.iter().map(|(a, c, _)| format!("{a}.{c}")).collect();
            writeln!(w, "timestamp,{}", header.join(","))?;
        }
        let cells: Vec<String> = values.iter().map(|(_, _, v)| format!("{v:.4}")).collect();
        writeln!(
            w,
            "{},{}",
            crate::common::types::to_datetime(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            cells.join(",")
        )?;
        rows += 1;
        t += step;
    }
    w.flush()?;
    Ok(rows)
}
