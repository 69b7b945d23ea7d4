//! The `hums` command line: `run`, `demo` and `check-config`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use hums::clock::{SharedClock, SystemClock};
use hums::config::schema::Log;
use hums::metrics::Metrics;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "hums",
    version,
    about = "Health and usage monitoring: machine condition to CMMS work orders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway daemon.
    Run {
        /// Configuration files, merged in order (later files win).
        #[arg(long = "config", short, required = true)]
        config: Vec<PathBuf>,
    },
    /// Run the simulated plant with an embedded broker and work-order receiver.
    Demo {
        /// Simulated seconds per wall-clock second.
        #[arg(long, default_value_t = 60.0)]
        speed: f64,
        /// Wall-clock seconds to run.
        #[arg(long, default_value_t = 90.0)]
        duration: f64,
        /// Write every work order received as a JSON line to this file.
        #[arg(long)]
        record: Option<PathBuf>,
        /// Seed of the simulated plant's noise.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Validate configuration files without starting anything.
    CheckConfig {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { files } => match hums::config::load_files(&files) {
            Ok(cfg) => {
                println!(
                    "ok: {} asset(s), {} class(es), {} subscription(s)",
                    cfg.assets.len(),
                    cfg.classes.len(),
                    cfg.mqtt.subscriptions.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let cfg = match hums::config::load_files(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::from(2);
                }
            };
            hums::telemetry::init(&cfg.log);
            report(runtime().and_then(|rt| rt.block_on(run(cfg))))
        }
        Command::Demo {
            speed,
            duration,
            record,
            seed,
        } => {
            if !(speed.is_finite() && speed > 0.0 && duration.is_finite() && duration > 0.0) {
                eprintln!("--speed and --duration must be positive numbers");
                return ExitCode::from(2);
            }
            hums::telemetry::init(&Log {
                level: "warn,hums=info,rumqttd=off".into(),
                ..Log::default()
            });
            let opts = hums::demo::DemoOptions {
                speed,
                duration: Duration::from_secs_f64(duration),
                record,
                sample_every: Duration::from_secs(5),
                seed,
            };
            match runtime().and_then(|rt| rt.block_on(demo(opts))) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => report(Err(e)),
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Turns SIGINT/SIGTERM into a shutdown signal.
fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    let _ = tx.send(true);
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested");
        let _ = tx.send(true);
    });
    rx
}

async fn run(cfg: hums::config::Config) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    let report = hums::engine::run(
        cfg,
        clock,
        Arc::new(Metrics::default()),
        shutdown_on_signals(),
    )
    .await?;
    tracing::info!(metrics = ?report.metrics, dead_letters = report.dead_letters, "stopped");
    Ok(())
}

async fn demo(opts: hums::demo::DemoOptions) -> anyhow::Result<bool> {
    let report = hums::demo::run(opts.clone(), shutdown_on_signals()).await?;
    hums::demo::print_summary(&report, &opts);
    Ok(report.passed())
}
