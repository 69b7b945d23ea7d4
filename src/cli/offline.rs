//! The commands that start no daemon: check-config, probe, replay, train and simulate.

use super::exit;
use hums::config::schema::Log;
use hums::pipeline::models::files::ModelFiles;
use hums::tools::train::{self, Target};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `hums check-config`: everything `run` checks before it starts, and nothing
/// started; with `environment`, also what `run` needs of this machine.
pub fn check_config(files: &[PathBuf], environment: bool) -> ExitCode {
    let cfg = match exit::load(files) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = ModelFiles::load(&cfg) {
        return exit::config_error(e);
    }
    println!(
        "ok: {} asset(s), {} asset template(s), {} class(es), {} subscription(s)",
        cfg.assets.len(),
        cfg.asset_templates.len(),
        cfg.classes.len(),
        cfg.mqtt.subscriptions.len()
    );
    if environment {
        return super::environment::check(&cfg);
    }
    ExitCode::SUCCESS
}

/// `hums probe`: reads every configured Modbus field once.
pub fn probe(config: &[PathBuf], device: Option<&str>, all_orders: bool) -> ExitCode {
    let cfg = match exit::load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rows = super::daemon::tokio_runtime().and_then(|rt| {
        rt.block_on(hums::tools::probe::probe(&cfg, device)).map_err(anyhow::Error::msg)
    });
    match rows {
        Ok(rows) => {
            hums::tools::probe::print(&rows, all_orders);
            if rows.iter().any(|r| r.value.is_none()) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => exit::report(Err(e)),
    }
}

/// `hums listen`: the topics on the broker and what hums makes of them.
pub fn listen(config: &[PathBuf], seconds: f64, all: bool) -> ExitCode {
    let cfg = match exit::load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !(seconds.is_finite() && seconds > 0.0 && seconds < 1e7) {
        return exit::usage_error("--seconds must be a positive number");
    }
    let plant = hums::pipeline::plant::Plant::new(&cfg, &ModelFiles::default());
    let duration = std::time::Duration::from_secs_f64(seconds);
    let heard = super::daemon::tokio_runtime().and_then(|rt| {
        rt.block_on(async {
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            hums::tools::listen::listen(&cfg, &plant, duration, all, stop)
                .await
                .map_err(anyhow::Error::msg)
        })
    });
    match heard {
        Ok(topics) => {
            hums::tools::listen::print(&topics);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit::UNAVAILABLE)
        }
    }
}

/// `hums replay`: history through the pipeline; writes what it would have raised.
pub fn replay(
    config: &[PathBuf],
    input: &[PathBuf],
    out: &Path,
    jobs: Option<usize>,
    report: bool,
) -> ExitCode {
    let cfg = match exit::load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    quiet_logs();
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    match hums::tools::replay::run(&cfg, input, out, jobs, report) {
        Ok(s) => {
            println!(
                "replayed {} file(s), {} rows in {:.2} s ({:.0} rows/s): {} work order(s), {} \
                    held; outputs in {}",
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
        Err(e) => exit::replay_error(&e),
    }
}

/// `hums train`: fits a model of normal (or, with `life`, of remaining life) and writes it.
pub fn train(
    config: &[PathBuf],
    input: &[PathBuf],
    asset_class: Option<String>,
    asset: Option<String>,
    out: &Path,
    life: bool,
) -> ExitCode {
    let cfg = match exit::load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    quiet_logs();
    let target = match (asset_class, asset) {
        (Some(c), _) => Target::Class(c),
        (None, Some(a)) => Target::Asset(a),
        (None, None) => return exit::usage_error("give --asset-class or --asset"),
    };
    // Rows of the file being replayed (a bar per file).
    let bar = indicatif::ProgressBar::new(0);
    let progress = |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let printed = if life {
        train::train_life(&cfg, input, &target, out, &progress).map(|t| print_life(&t, out))
    } else {
        train::train(&cfg, input, &target, out, &progress).map(|t| print_model(&t, out))
    };
    bar.finish_and_clear();
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => exit::train_error(&e),
    }
}

fn print_life(t: &train::TrainedLife, out: &Path) {
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
    println!(
        "  life left learned up to {} h; in-sample RMSE {:.1} h (held-out figures: hums eval \
            cmapss)",
        m.cap_hours, t.fit_rmse
    );
    println!("  config hash: {}", m.config_hash);
}

fn print_model(t: &train::Trained, out: &Path) {
    let m = &t.model;
    println!(
        "wrote {}: {:?} model over {} features",
        out.display(),
        m.params_kind(),
        m.features.len()
    );
    println!("  features: {}", m.features.join(", "));
    let per: Vec<String> = t.assets.iter().map(|(a, n)| format!("{a} {n}")).collect();
    println!("  training rows: {} ({})", m.training.rows, per.join(", "));
    if let (Some(a), Some(b)) = (m.training.from, m.training.to) {
        println!("  span: {a} .. {b}");
    }
    println!(
        "  control limit: raw {:.4} (typical {:.4}); expected false-alarm rate on the training \
            data: {:.3} %",
        m.limit,
        m.center,
        100.0 * m.training.false_alarm_rate
    );
    if let Some(before) = m.training.margin_limit {
        println!("  the false-order budget raised the limit from {before:.4}");
    }
    if let Some(f) = m.training.false_orders_per_year {
        println!(
            "  expected false orders per asset-year at this limit, with the on-delay: {f:.3} \
                (from the tail of the training scores)"
        );
    }
    if let Some(n) = m.training.samples_per_window {
        println!("  trained at {n:.1} samples per window; streams at another rate are refused");
    }
    println!("  config hash: {}", m.config_hash);
}

/// `hums simulate`: the demo plant running healthy, as a history CSV.
#[cfg(feature = "demo")]
pub fn simulate(hours: f64, every: f64, seed: u64, start: &str, out: &Path) -> ExitCode {
    let start = match chrono::DateTime::parse_from_rfc3339(start) {
        Ok(t) => t.timestamp_millis(),
        Err(e) => return exit::usage_error(format!("--start {start:?}: {e}")),
    };
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !(positive(hours) && positive(every) && every < 1e9) {
        return exit::usage_error("--hours and --every must be positive numbers");
    }
    let every = std::time::Duration::from_secs_f64(every);
    match hums::demo::write_healthy_history(out, start, hours, every, seed) {
        Ok(rows) => {
            println!("wrote {rows} rows of the healthy demo plant to {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => exit::report(Err(anyhow::anyhow!("writing {}: {e}", out.display()))),
    }
}

/// Offline commands print their own results; only warnings reach the log.
fn quiet_logs() {
    hums::common::telemetry::init(&Log { level: "warn".into(), ..Log::default() });
}
