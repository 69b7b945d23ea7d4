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
#[command(name = "hums", version, about = "Health and usage monitoring: machine condition to CMMS work orders")]
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
    /// Read every configured Modbus field once and print raw registers and values (read-only).
    Probe {
        #[arg(long = "config", short, required = true)]
        config: Vec<PathBuf>,
        /// Only this link (by name).
        #[arg(long)]
        device: Option<String>,
        /// Also decode multi-register values under every byte order.
        #[arg(long)]
        all_orders: bool,
    },
    /// Run history files through the pipeline and write scores, the work orders
    /// that would have been raised, a summary and an HTML report. Sends nothing.
    Replay {
        #[arg(long = "config", short, required = true)]
        config: Vec<PathBuf>,
        /// CSV or Parquet files: a timestamp column plus one column per channel.
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Files replayed at once (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Skip report.html.
        #[arg(long)]
        no_report: bool,
    },
    /// Fit a learned model on history with the features the pipeline computes
    /// online, and write the model file.
    Train {
        #[arg(long = "config", short, required = true)]
        config: Vec<PathBuf>,
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Train on every asset of this class in the inputs...
        #[arg(long, conflicts_with = "asset", required_unless_present = "asset")]
        asset_class: Option<String>,
        /// ...or on this one asset.
        #[arg(long)]
        asset: Option<String>,
        /// The model file to write, e.g. models/pump.json.
        #[arg(long)]
        out: PathBuf,
        /// Fit the class's remaining-life model instead: each input is a
        /// history that ends when its machine failed.
        #[arg(long)]
        life: bool,
    },
    /// Write the demo plant running healthy as a history CSV (training data
    /// for the shipped models).
    Simulate {
        /// Simulated hours.
        #[arg(long, default_value_t = 48.0)]
        hours: f64,
        /// One row per this many seconds.
        #[arg(long, default_value_t = 10.0)]
        every: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Start time (RFC 3339); the default is fixed so the file is reproducible.
        #[arg(long, default_value = "2026-01-05T00:00:00Z")]
        start: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Score replay outputs the way a public benchmark does.
    Eval {
        #[command(subcommand)]
        benchmark: Benchmark,
    },
    /// Per asset: work orders raised, completed and verified after the repair,
    /// cancelled at the backend, and how long trips took to become orders.
    History {
        #[arg(long = "config", short, required = true)]
        config: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Inspect and manage the durable work-order outbox (safe while `hums run` runs).
    Outbox {
        /// Configuration files (for the state directory).
        #[arg(long = "config", short, global = true)]
        config: Vec<PathBuf>,
        #[command(subcommand)]
        action: OutboxAction,
    },
}

#[derive(Subcommand)]
enum Benchmark {
    /// SKAB: F1, FAR, MAR and the changepoint NAB scores over the test parts.
    Skab {
        /// Folder of SKAB files (e.g. SKAB/data, or one of its subfolders).
        #[arg(long)]
        data: PathBuf,
        /// `hums replay` output for them, mirroring the data folder's layout.
        #[arg(long)]
        scores: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// NAB v1.1: normalised scores for the three profiles with the corpus-wide threshold sweep.
    Nab {
        /// The NAB folder (holding data/ and labels/combined_windows.json).
        #[arg(long)]
        data: PathBuf,
        /// `hums replay` output, mirroring data/ (one folder per category).
        #[arg(long)]
        scores: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// C-MAPSS FD001: remaining-life RMSE and PHM08 score on engines held out
    /// by k-fold over units, and each held-out engine's first work order.
    Cmapss {
        /// The CMAPSS folder (holding train_FD001.txt) or the file itself.
        #[arg(long)]
        data: PathBuf,
        /// The benchmark config (its class with a [life] section is trained per fold).
        #[arg(long, default_value = "configs/benchmarks/cmapss.toml")]
        config: PathBuf,
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Seed of the folds and the cut-offs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where the engine files and fold models are written (default: a temporary folder).
        #[arg(long)]
        work: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum OutboxAction {
    /// List entries, newest first, with counts per status.
    List {
        /// Only entries with this status: pending, sending, delivered, dead, held, dropped.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print one JSON object per entry instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Queue dead or held entries for delivery again (after fixing the cause).
    Retry {
        ids: Vec<i64>,
        /// Every dead letter.
        #[arg(long)]
        dead: bool,
        /// Every entry held by flood control.
        #[arg(long)]
        held: bool,
    },
    /// Drop undelivered entries so they are never sent.
    Drop {
        ids: Vec<i64>,
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        held: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { files } => match hums::config::load_checked(&files) {
            Ok(cfg) => {
                println!(
                    "ok: {} asset(s), {} asset template(s), {} class(es), {} subscription(s)",
                    cfg.assets.len(),
                    cfg.asset_templates.len(),
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
        Command::Probe { config, device, all_orders } => match hums::config::load_files(&config) {
            Ok(cfg) => {
                let rows = runtime().and_then(|rt| {
                    rt.block_on(hums::probe::probe(&cfg, device.as_deref())).map_err(anyhow::Error::msg)
                });
                match rows {
                    Ok(rows) => {
                        hums::probe::print(&rows, all_orders);
                        if rows.iter().any(|r| r.value.is_none()) {
                            ExitCode::FAILURE
                        } else {
                            ExitCode::SUCCESS
                        }
                    }
                    Err(e) => report(Err(e)),
                }
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::History { config, json } => match hums::config::load_files(&config) {
            Ok(cfg) => report(history(&cfg, json)),
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Outbox { config, .. } if config.is_empty() => {
            eprintln!("hums outbox needs --config FILE (the state directory comes from [state] dir)");
            ExitCode::from(2)
        }
        Command::Outbox { config, action } => match hums::config::load_files(&config) {
            Ok(cfg) => report(outbox(&cfg, action)),
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Replay { config, input, out, jobs, no_report } => {
            let cfg = match loaded(hums::config::load_checked(&config)) {
                Ok(c) => c,
                Err(code) => return code,
            };
            hums::telemetry::init(&Log { level: "warn".into(), ..Log::default() });
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            match hums::replay::run(&cfg, &input, &out, jobs, !no_report) {
                Ok(s) => {
                    println!(
                        "replayed {} file(s), {} rows in {:.2} s ({:.0} rows/s): {} work order(s), {} held; outputs in {}",
                        s.files,
                        s.rows,
                        s.seconds,
                        s.rows_per_second,
                        s.work_orders,
                        s.held,
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Eval { benchmark } => report(eval(benchmark)),
        Command::Train { config, input, asset_class, asset, out, life } => {
            let cfg = match loaded(hums::config::load_files(&config)) {
                Ok(c) => c,
                Err(code) => return code,
            };
            hums::telemetry::init(&Log { level: "warn".into(), ..Log::default() });
            let target = match (asset_class, asset) {
                (Some(c), _) => hums::train::Target::Class(c),
                (None, Some(a)) => hums::train::Target::Asset(a),
                (None, None) => unreachable!("clap requires one of --asset-class and --asset"),
            };
            // Rows of the file being replayed (a bar per file).
            let bar = indicatif::ProgressBar::new(0);
            let progress = |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            };
            if life {
                let r = hums::train::train_life(&cfg, &input, &target, &out, &progress);
                bar.finish_and_clear();
                return match r {
                    Ok(t) => {
                        let m = &t.model;
                        println!("wrote {}: remaining-life SVR over {} inputs", out.display(), m.features.len());
                        println!("  inputs: {}", m.features.join(", "));
                        let lives: Vec<f64> = t.machines.iter().map(|(_, h)| *h).collect();
                        let (lo, hi) = lives.iter().fold((f64::MAX, f64::MIN), |(a, b), &h| (a.min(h), b.max(h)));
                        println!(
                            "  {} run-to-failure histories, lives {lo:.0} .. {hi:.0} h; {} rows fitted",
                            lives.len(),
                            m.training.rows
                        );
                        println!("  life left learned up to {} h; in-sample RMSE {:.1} h (held-out figures: hums eval cmapss)", m.cap_hours, t.fit_rmse);
                        println!("  config hash: {}", m.config_hash);
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            let r = hums::train::train(&cfg, &input, &target, &out, &progress);
            bar.finish_and_clear();
            match r {
                Ok(t) => {
                    let m = &t.model;
                    println!("wrote {}: {:?} model over {} features", out.display(), m.params_kind(), m.features.len());
                    println!("  features: {}", m.features.join(", "));
                    let per: Vec<String> = t.assets.iter().map(|(a, n)| format!("{a} {n}")).collect();
                    println!("  training rows: {} ({})", m.training.rows, per.join(", "));
                    if let (Some(a), Some(b)) = (m.training.from, m.training.to) {
                        println!("  span: {a} .. {b}");
                    }
                    println!(
                        "  control limit: raw {:.4} (typical {:.4}); expected false-alarm rate on the training data: {:.3} %",
                        m.limit,
                        m.center,
                        100.0 * m.training.false_alarm_rate
                    );
                    println!("  config hash: {}", m.config_hash);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Simulate { hours, every, seed, start, out } => {
            let start = match chrono::DateTime::parse_from_rfc3339(&start) {
                Ok(t) => t.timestamp_millis(),
                Err(e) => {
                    eprintln!("--start {start:?}: {e}");
                    return ExitCode::from(2);
                }
            };
            if !(hours > 0.0 && every > 0.0) {
                eprintln!("--hours and --every must be positive");
                return ExitCode::from(2);
            }
            match hums::demo::write_healthy_history(&out, start, hours, Duration::from_secs_f64(every), seed) {
                Ok(rows) => {
                    println!("wrote {rows} rows of the healthy demo plant to {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => report(Err(anyhow::anyhow!("writing {}: {e}", out.display()))),
            }
        }

        Command::Run { config } => {
            let cfg = match loaded(hums::config::load_checked(&config)) {
                Ok(c) => c,
                Err(code) => return code,
            };
            hums::telemetry::init(&cfg.log);
            report(runtime().and_then(|rt| rt.block_on(run(cfg))))
        }
        Command::Demo { speed, duration, record, seed } => {
            if !(speed.is_finite() && speed > 0.0 && duration.is_finite() && duration > 0.0) {
                eprintln!("--speed and --duration must be positive numbers");
                return ExitCode::from(2);
            }
            hums::telemetry::init(&Log { level: "warn,hums=info,rumqttd=off".into(), ..Log::default() });
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

fn eval(b: Benchmark) -> anyhow::Result<()> {
    match b {
        Benchmark::Skab { data, scores, json } => {
            let r = hums::eval::skab::evaluate(&data, &scores)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            println!("SKAB: {} files, test parts (rows after the first 400)", r.files);
            println!("  F1 {:.3}   FAR {:.2} %   MAR {:.2} %", r.f1, r.far, r.mar);
            println!("  TP {}  FP {}  TN {}  FN {}", r.tp, r.fp, r.tn, r.fn_);
            let nab: Vec<String> = r.nab.iter().map(|n| format!("{} {:.2}", n.profile, n.score)).collect();
            println!("  changepoint NAB ({} windows): {}", r.windows, nab.join("   "));
            for s in &r.skipped_unlabelled {
                println!("  skipped (no labels): {s}");
            }
        }
        Benchmark::Nab { data, scores, json } => {
            let r = hums::eval::nab::evaluate(&data, &scores)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            println!("NAB: {} files, {} rows, {} windows", r.files, r.rows, r.windows);
            for p in &r.profiles {
                println!("  {:<20} {:>6.2}   (threshold {:.4}, raw {:.2})", p.profile, p.score, p.threshold, p.raw);
            }
        }
        Benchmark::Cmapss { data, config, folds, seed, work, json } => {
            let cfg = hums::config::load_files(&[config]).map_err(|e| anyhow::anyhow!("{e}"))?;
            let work = work.unwrap_or_else(|| std::env::temp_dir().join(format!("hums-cmapss-{}", std::process::id())));
            let quiet = json;
            let r = hums::eval::cmapss::evaluate(&cfg, &data, &work, folds, seed, &|m| {
                if !quiet {
                    eprintln!("{m}");
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            println!(
                "C-MAPSS FD001: {} engines, {}-fold over units (seed {}); engine files and fold models in {}",
                r.engines,
                r.folds,
                r.seed,
                work.display()
            );
            println!(
                "  held out, {} cut-offs ({} per engine): RMSE {:.2} cycles, PHM08 {:.0} ({:.2} per prediction)",
                r.predictions,
                hums::eval::cmapss::CUTOFFS,
                r.rmse,
                r.phm08,
                r.phm08_mean
            );
            println!("  held out, every cycle against the capped life left: RMSE {:.2}", r.rmse_all_cycles);
            for f in &r.per_fold {
                println!("  fold {}: RMSE {:.2}, PHM08 {:.0}", f.fold + 1, f.rmse, f.phm08);
            }
            let median = r.median_lead.map_or("-".into(), |m| format!("{m:.0}"));
            println!(
                "  first work order before the failure on {} of {} engines (median {median} cycles ahead); due before the failure on {}",
                r.engines_with_order, r.engines, r.due_before_failure
            );
            let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            let rows: Vec<String> = r
                .per_engine
                .iter()
                .map(|e| format!("{}:{}/{}/{}", e.unit, e.life, cell(e.first_order_lead), cell(e.due_lead)))
                .collect();
            println!("  per engine (unit:life/first order cycles ahead/due cycles ahead):");
            for chunk in rows.chunks(8) {
                println!("    {}", chunk.join("  "));
            }
        }
    }
    Ok(())
}

/// A loaded configuration, or its problems printed and exit code 2.
fn loaded(r: Result<hums::config::Config, hums::config::ConfigErrors>) -> Result<hums::config::Config, ExitCode> {
    r.map_err(|e| {
        eprint!("{e}");
        ExitCode::from(2)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
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
    let report = hums::engine::run(cfg, clock, Arc::new(Metrics::default()), shutdown_on_signals()).await?;
    tracing::info!(metrics = ?report.metrics, outbox = ?report.outbox, "stopped");
    Ok(())
}

async fn demo(opts: hums::demo::DemoOptions) -> anyhow::Result<bool> {
    let report = hums::demo::run(opts.clone(), shutdown_on_signals()).await?;
    hums::demo::print_summary(&report, &opts);
    Ok(report.passed())
}

fn history(cfg: &hums::config::Config, json: bool) -> anyhow::Result<()> {
    let store = hums::store::Store::inspect_dir(std::path::Path::new(&cfg.state.dir))?;
    let rows = store.history()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no work orders followed yet in {}", cfg.state.dir);
        return Ok(());
    }
    println!(
        "{:<16} {:>6} {:>5} {:>9} {:>6} {:>9} {:>9} {:>14} {:>13}",
        "asset", "raised", "open", "completed", "fixed", "not fixed", "cancelled", "trip→order (s)", "order→done (h)"
    );
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for h in rows {
        println!(
            "{:<16} {:>6} {:>5} {:>9} {:>6} {:>9} {:>9} {:>14} {:>13}",
            h.asset,
            h.raised,
            h.open,
            h.completed,
            h.verified_fixed,
            h.not_fixed,
            h.cancelled,
            cell(h.median_trip_to_order_s),
            cell(h.median_order_to_done_h)
        );
    }
    Ok(())
}

fn outbox(cfg: &hums::config::Config, action: OutboxAction) -> anyhow::Result<()> {
    use hums::store::{Status, Store};
    let store = Store::inspect_dir(std::path::Path::new(&cfg.state.dir))?;
    let parse = |s: &str| Status::parse(s).with_context(|| format!("unknown status {s:?}"));
    let which = |dead: bool, held: bool| -> anyhow::Result<Option<Status>> {
        match (dead, held) {
            (true, true) => anyhow::bail!("give --dead or --held, not both"),
            (true, false) => Ok(Some(Status::Dead)),
            (false, true) => Ok(Some(Status::Held)),
            (false, false) => Ok(None),
        }
    };
    match action {
        OutboxAction::List { status, limit, json } => {
            let status = status.as_deref().map(parse).transpose()?;
            let entries = store.list(status, limit)?;
            if json {
                for e in &entries {
                    println!("{}", serde_json::to_string(e)?);
                }
                return Ok(());
            }
            let counts: Vec<String> = store.counts()?.into_iter().map(|(s, n)| format!("{s}: {n}")).collect();
            println!(
                "outbox {}: {}",
                cfg.state.dir,
                if counts.is_empty() { "empty".into() } else { counts.join(", ") }
            );
            println!("{:>6}  {:<9} {:>3} {:>8}  {:<50}  title / why", "id", "status", "rev", "attempts", "key");
            for e in entries {
                let why = e.note.as_deref().or(e.last_error.as_deref()).unwrap_or("");
                println!(
                    "{:>6}  {:<9} {:>3} {:>8}  {:<50}  {}{}{}",
                    e.id,
                    format!("{:?}", e.status).to_lowercase(),
                    e.revision,
                    e.attempts,
                    e.key,
                    e.order.title,
                    if why.is_empty() { "" } else { " | " },
                    why
                );
            }
        }
        OutboxAction::Retry { ids, dead, held } => {
            let n = store.release(&ids, which(dead, held)?)?;
            println!("{n} entr{} queued for delivery", if n == 1 { "y" } else { "ies" });
        }
        OutboxAction::Drop { ids, dead, held } => {
            let n = store.drop_entries(&ids, which(dead, held)?)?;
            println!("{n} entr{} dropped", if n == 1 { "y" } else { "ies" });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from(["hums", "outbox", "list", "--config", "a.toml", "--status", "held"]).is_ok());
        assert!(Cli::try_parse_from(["hums", "outbox", "--config", "a.toml", "retry", "--dead"]).is_ok());
        assert!(
            Cli::try_parse_from(["hums", "demo", "--speed", "60", "--duration", "90", "--record", "w.jsonl"]).is_ok()
        );
        assert!(Cli::try_parse_from(["hums", "run"]).is_err(), "run needs --config");
    }
}
