//! The command-line definition (clap): every command, its options and their help.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// The command line.
#[derive(Parser)]
#[command(
    name = "hums",
    version,
    about = "Health and usage monitoring: machine condition to CMMS work orders"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Subcommand)]
pub enum Command {
    /// Run the gateway daemon.
    Run {
        /// Configuration files, merged in order (later files win).
        #[arg(long = "config", short, required = true)]
        config: Vec<PathBuf>,
    },
    /// Run the simulated plant with an embedded broker and work-order receiver.
    #[cfg(feature = "demo")]
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
    #[cfg(feature = "demo")]
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

/// A public benchmark to score.
#[derive(Subcommand)]
pub enum Benchmark {
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

/// An outbox operation.
#[derive(Subcommand)]
pub enum OutboxAction {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
        assert!(Cli::try_parse_from([
            "hums", "outbox", "list", "--config", "a.toml", "--status", "held"
        ])
        .is_ok());
        assert!(Cli::try_parse_from(["hums", "outbox", "--config", "a.toml", "retry", "--dead"])
            .is_ok());
        #[cfg(feature = "demo")]
        assert!(Cli::try_parse_from([
            "hums",
            "demo",
            "--speed",
            "60",
            "--duration",
            "90",
            "--record",
            "w.jsonl"
        ])
        .is_ok());
        assert!(Cli::try_parse_from(["hums", "run"]).is_err(), "run needs --config");
    }
}
