//! `hums run` and `hums demo`: the pipeline on a tokio runtime until a signal stops it.

use super::exit;
use anyhow::Context;
use hums::common::clock::{SharedClock, SystemClock};
use hums::common::metrics::Metrics;
use hums::runtime::EngineError;
#[cfg(feature = "demo")]
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// `hums run`: the gateway daemon, reloadable by SIGHUP.
pub fn run(args: super::args::ConfigArgs, log_level: Option<String>) -> ExitCode {
    let cfg = match exit::load_args(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut log = cfg.log.clone();
    if let Some(level) = log_level {
        log.level = level;
    }
    hums::common::telemetry::init(&log);
    let rt = match tokio_runtime() {
        Ok(rt) => rt,
        Err(e) => return exit::report(Err(e)),
    };
    let clock: SharedClock = Arc::new(SystemClock);
    // A reload lists the files again: a conf.d fragment added since is read too.
    let files = hums::operate::reload::ConfigFiles::new(Arc::new(move || args.paths()));
    let result = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        hums::operate::reload::on_sighup(tx);
        let options = hums::runtime::Options { files: Some(files), reload: Some(rx) };
        let metrics = Arc::new(Metrics::default());
        hums::runtime::run_with(cfg, clock, metrics, shutdown_on_signals(), options).await
    });
    match result {
        Ok(report) => {
            hums::common::metrics::log_counters(&report.metrics);
            let outbox: Vec<String> =
                report.outbox.iter().map(|(s, n)| format!("{s} {n}")).collect();
            tracing::info!(outbox = outbox.join(", "), "stopped");
            ExitCode::SUCCESS
        }
        // A port in use may free up: not a config error, so the service manager retries.
        Err(EngineError::Server(e @ hums::operate::server::ServerError::Bind { .. })) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::UNAVAILABLE)
        }
        Err(EngineError::Server(e)) => exit::config_error(format!("error: {e}")),
        Err(EngineError::Config(e)) => exit::config_error(e),
        // A secret not set, a setting the backend refuses: fix the config or environment.
        Err(EngineError::Backend(e)) => exit::config_error(format!("error: {e}")),
        Err(e) => exit::report(Err(e.into())),
    }
}

/// `hums demo`: the simulated plant, embedded broker and receiver.
#[cfg(feature = "demo")]
pub fn demo(
    speed: f64,
    duration: f64,
    record: Option<PathBuf>,
    seed: u64,
    status_page: Option<String>,
) -> ExitCode {
    if !(speed.is_finite() && speed > 0.0 && duration.is_finite() && duration > 0.0) {
        return exit::usage_error("--speed and --duration must be positive numbers");
    }
    let log = hums::config::schema::Log {
        level: "warn,hums=info,rumqttd=off".into(),
        ..Default::default()
    };
    hums::common::telemetry::init(&log);
    let opts = hums::demo::DemoOptions {
        speed,
        duration: std::time::Duration::from_secs_f64(duration),
        record,
        sample_every: std::time::Duration::from_secs(5),
        seed,
        status_page,
    };
    let passed = tokio_runtime().and_then(|rt| {
        rt.block_on(async {
            let report = hums::demo::run(opts.clone(), shutdown_on_signals()).await;
            hums::demo::remove_models();
            let report = report?;
            hums::demo::print_summary(&report, &opts);
            Ok(report.passed())
        })
    });
    match passed {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => exit::report(Err(e)),
    }
}

/// `hums bench`: ingest rounds, or with `--tick` the evaluation cost, or
/// with `--latency` the trip → order latency.
#[cfg(feature = "demo")]
pub fn bench(a: super::args::BenchArgs) -> ExitCode {
    let timeout = std::time::Duration::from_secs_f64(a.timeout.max(1.0));
    if !a.tick.is_empty() {
        return bench_tick(&a.tick);
    }
    if let Some(trips) = a.latency {
        return bench_latency(a.broker, trips.max(1), timeout);
    }
    bench_ingest(&hums::demo::bench::Options {
        broker: a.broker,
        payload: a.payload,
        qos: a.qos,
        messages: a.messages,
        assets: a.assets.max(1),
        rounds: a.rounds.max(1),
        timeout,
    })
}

/// The ingest rounds, then their table; exit 1 if a reading was lost or judged twice.
#[cfg(feature = "demo")]
fn bench_ingest(o: &hums::demo::bench::Options) -> ExitCode {
    let log = hums::config::schema::Log { level: "error".into(), ..Default::default() };
    hums::common::telemetry::init(&log);
    let rounds = match tokio_runtime() {
        Ok(rt) => rt.block_on(hums::demo::bench::run(o)),
        Err(e) => return exit::report(Err(e)),
    };
    print!("{}", hums::demo::bench::report(o, &rounds));
    let clean = rounds.iter().all(|r| r.hums.lost == 0 && r.hums.twice == 0);
    if clean {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: hums lost readings or judged some twice");
        ExitCode::FAILURE
    }
}

/// `hums bench --latency`: trip → order latency quantiles; exit 1 if an order never came.
#[cfg(feature = "demo")]
fn bench_latency(
    broker: std::net::SocketAddr,
    trips: usize,
    timeout: std::time::Duration,
) -> ExitCode {
    let log = hums::config::schema::Log { level: "error".into(), ..Default::default() };
    hums::common::telemetry::init(&log);
    let per_trip = timeout.min(std::time::Duration::from_secs(10));
    let l = match tokio_runtime() {
        Ok(rt) => match rt.block_on(hums::demo::bench::latency(broker, trips, per_trip)) {
            Ok(l) => l,
            Err(e) => return exit::report(Err(e.into())),
        },
        Err(e) => return exit::report(Err(e)),
    };
    use hums::demo::bench::quantile;
    println!("trips  orders  p50 ms  p90 ms  p99 ms  max ms   publish → judged: p50 ms  p99 ms");
    println!(
        "{:>5}  {:>6}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6.1}  {:>24.0}  {:>6.0}",
        trips,
        l.ms.len(),
        quantile(&l.ms, 0.5),
        quantile(&l.ms, 0.9),
        quantile(&l.ms, 0.99),
        quantile(&l.ms, 1.0),
        quantile(&l.judged_ms, 0.5),
        quantile(&l.judged_ms, 0.99),
    );
    if l.missing > 0 {
        eprintln!("error: {} trips raised no order within {:?}", l.missing, per_trip);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `hums bench --tick`: one evaluation's cost at each plant size.
#[cfg(feature = "demo")]
fn bench_tick(sizes: &[usize]) -> ExitCode {
    println!(
        "channels  tick (µs)  per channel (ns)  push (readings/s)  push + tick (readings/s)  \
         window buffers (B/sample)  process RSS (B/sample)"
    );
    for &assets in sizes {
        match hums::demo::bench::tick_cost(assets.max(1), 30) {
            Ok(c) => println!(
                "{:>8}  {:>9.0}  {:>16.0}  {:>17.0}  {:>24.0}  {:>25.1}  {:>22.1}",
                c.channels,
                c.tick_us,
                c.per_channel_ns,
                c.push_per_s,
                c.readings_per_s,
                c.buffer_bytes_per_sample,
                c.bytes_per_sample
            ),
            Err(e) => return exit::config_error(e),
        }
    }
    ExitCode::SUCCESS
}

/// The async runtime for commands that talk to the network.
pub fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Turns SIGINT/SIGTERM into a shutdown signal.
fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    rx
}
