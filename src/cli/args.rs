//! The command-line definition (clap): every command, its options and their help.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Where the configuration comes from when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/hums/hums.toml";
/// Fragments merged after the default configuration, in name order.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/hums/conf.d";

/// The configuration files a command reads.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// Configuration file; repeat to merge several in order (later files win).
    /// Default: the paths in $HUMS_CONFIG (separated by ':'), else
    /// /etc/hums/hums.toml followed by /etc/hums/conf.d/*.toml.
    #[arg(long = "config", short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,
}

impl ConfigArgs {
    /// The files to load: `--config`, else `$HUMS_CONFIG`, else the default
    /// file and its `conf.d` fragments (a `conf.d` that exists but cannot be
    /// read is an error, never silently skipped).
    pub fn paths(&self) -> Result<Vec<PathBuf>, String> {
        if !self.config.is_empty() {
            return Ok(self.config.clone());
        }
        if let Some(v) = std::env::var_os("HUMS_CONFIG").filter(|v| !v.is_empty()) {
            return Ok(std::env::split_paths(&v).collect());
        }
        let mut paths = vec![PathBuf::from(DEFAULT_CONFIG)];
        let dir = match std::fs::read_dir(DEFAULT_CONFIG_DIR) {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(paths),
            Err(e) => return Err(format!("cannot read {DEFAULT_CONFIG_DIR}: {e}")),
        };
        let mut fragments = Vec::new();
        for entry in dir {
            let path = entry.map_err(|e| format!("cannot read {DEFAULT_CONFIG_DIR}: {e}"))?.path();
            if path.extension().is_some_and(|x| x == "toml") {
                fragments.push(path);
            }
        }
        fragments.sort();
        paths.extend(fragments);
        Ok(paths)
    }
}

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
        #[command(flatten)]
        config: ConfigArgs,
        /// Log filter overriding `[log] level`, e.g. `debug` or `hums=debug,rumqttc=warn`
        /// (`RUST_LOG` still wins).
        #[arg(long, value_name = "FILTER")]
        log_level: Option<String>,
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
        /// Serve the status page and API while the demo runs (on 127.0.0.1:9890
        /// unless an address is given); the address with its token is printed.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:9890")]
        status_page: Option<String>,
    },
    /// Measure MQTT ingest against a broker (e.g. mosquitto): the reference plant
    /// (200 assets × 8 channels) published flat out to a bare rumqttc subscriber
    /// and to hums in turn, alternating which goes first; prints each side's
    /// messages per second, hums's share of the baseline, readings lost and
    /// judged twice, and hums's peak memory. scripts/bench.sh starts mosquitto
    /// and runs it for every payload form and QoS.
    #[cfg(feature = "demo")]
    Bench(BenchArgs),
    /// Exit 0 if the running daemon answers its health endpoint (`/healthz`), 1 if
    /// not: for container HEALTHCHECKs and monitoring scripts.
    Health {
        #[command(flatten)]
        config: ConfigArgs,
        /// The endpoint to ask, e.g. http://127.0.0.1:9890/healthz (default: from `[http]`).
        #[arg(long)]
        url: Option<String>,
    },
    /// Validate the configuration without starting anything (exit 78 on a problem).
    CheckConfig {
        /// Configuration files (the same as --config; either may be used).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        config: ConfigArgs,
        /// Also check what `run` needs of this machine: secrets set, the state
        /// directory writable, the broker and the backend reachable.
        #[arg(long)]
        environment: bool,
    },
    /// Read every configured Modbus field once and print raw registers and values (read-only).
    Probe {
        #[command(flatten)]
        config: ConfigArgs,
        /// Only this link (by name).
        #[arg(long)]
        device: Option<String>,
        /// Also decode multi-register values under every byte order.
        #[arg(long)]
        all_orders: bool,
    },
    /// Listen to the broker for a while (read-only, a session of its own) and show
    /// each topic heard, the asset and channel it maps to, its decoded values, and
    /// why a topic is not used.
    Listen {
        #[command(flatten)]
        config: ConfigArgs,
        /// Seconds to listen.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Subscribe to every topic (`#`), not only the configured filters, so
        /// topics outside them show as unmapped too.
        #[arg(long)]
        all: bool,
    },
    /// Run history files through the pipeline and write scores, the work orders
    /// that would have been raised, a summary and an HTML report. Sends nothing.
    Replay {
        #[command(flatten)]
        config: ConfigArgs,
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
        #[command(flatten)]
        config: ConfigArgs,
        /// History files (CSV or Parquet) of the machines running healthy (or,
        /// with --life, each running to failure).
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
        /// Seed of the simulated plant's noise.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Start time (RFC 3339); the default is fixed so the file is reproducible.
        #[arg(long, default_value = "2026-01-05T00:00:00Z")]
        start: String,
        /// The CSV file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Score replay outputs the way a public benchmark does.
    Eval {
        #[command(subcommand)]
        benchmark: Benchmark,
    },
    /// What hums sees now: each asset's health, score and zone, open alarms,
    /// shelves and the outbox. Asks the running daemon (its `[http]` API, with
    /// the token in $HUMS_TOKEN or the config's first token), else reads the
    /// state database.
    Status {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Shelve an asset's alarm (or all of them) for a while, with a reason
    /// (ISA-18.2): its transitions are recorded but raise no order; if it is
    /// still active when the shelf expires, its order is raised then.
    Shelve {
        #[command(flatten)]
        config: ConfigArgs,
        /// The asset's id.
        asset: String,
        /// The failure mode's id (e.g. `pump.bearing_wear`); all of the asset's if left out.
        failure_mode: Option<String>,
        /// How long, e.g. `8h` or `2d` (up to 30 days).
        #[arg(long = "for", value_name = "DURATION")]
        duration: humantime::Duration,
        /// Why (required), e.g. "bearing replacement, permit 4711".
        #[arg(long)]
        reason: String,
    },
    /// End an asset's shelves early.
    Unshelve {
        #[command(flatten)]
        config: ConfigArgs,
        /// The asset's id.
        asset: String,
        /// Only the shelf of this failure mode.
        failure_mode: Option<String>,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take an asset out of service: none of its alarms raises an order until
    /// it is returned to service.
    OutOfService {
        #[command(flatten)]
        config: ConfigArgs,
        /// The asset's id.
        asset: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// Return an asset to service; its alarms still active raise their orders.
    ReturnToService {
        #[command(flatten)]
        config: ConfigArgs,
        /// The asset's id.
        asset: String,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Per asset: work orders raised, completed and verified after the repair,
    /// cancelled at the backend, and how long trips took to become orders.
    History {
        #[command(flatten)]
        config: ConfigArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and manage the durable work-order outbox (safe while `hums run` runs).
    Outbox {
        /// Configuration files (for the state directory); default as for `run`.
        #[arg(long = "config", short = 'c', value_name = "FILE", global = true)]
        config: Vec<PathBuf>,
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Print a shell completion script (e.g. `hums completions bash > /etc/bash_completion.d/hums`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `hums man > /usr/share/man/man1/hums.1`.
    Man,
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
        /// Print the result as JSON.
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
        /// Folds of the cross-validation over engines.
        #[arg(long, default_value_t = 5)]
        folds: usize,
        /// Seed of the folds and the cut-offs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where the engine files and fold models are written (default: a temporary folder).
        #[arg(long)]
        work: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// An outbox operation.
#[derive(Subcommand)]
pub enum OutboxAction {
    /// List entries, newest first, with counts per status.
    List {
        /// Only entries with this status.
        #[arg(long, value_enum)]
        status: Option<hums::store::outbox::Status>,
        /// At most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print one JSON object per entry instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Queue dead or held entries for delivery again (after fixing the cause).
    Retry {
        /// Entry ids (from `hums outbox list`).
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
        /// Entry ids (from `hums outbox list`).
        ids: Vec<i64>,
        /// Every dead letter.
        #[arg(long)]
        dead: bool,
        /// Every entry held by flood control.
        #[arg(long)]
        held: bool,
    },
}

/// `hums bench`'s options.
#[cfg(feature = "demo")]
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The broker's address.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: std::net::SocketAddr,
    /// How the stream is published.
    #[arg(long, value_enum, default_value_t = hums::demo::bench::Payload::Number)]
    pub payload: hums::demo::bench::Payload,
    /// QoS of the publisher and the bare subscriber, 0 or 1 (hums subscribes at 1).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// Messages per side and round.
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Assets of the reference plant.
    #[arg(long, default_value_t = 200)]
    pub assets: usize,
    /// Rounds (each runs both sides).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds after which a side that has not received everything gives up.
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Instead: the cost of one evaluation (no MQTT) at each of these plant
    /// sizes in assets of 8 channels, e.g. `--tick 200,1250` (1,600 and 10,000 channels).
    #[arg(long, value_delimiter = ',', value_name = "ASSETS")]
    pub tick: Vec<usize>,
    /// Instead: trip → order latency, over this many trips (one asset
    /// each): publish of a reading past a limit to the order's receipt at
    /// an HTTP receiver on loopback, with no on-delay.
    #[arg(long, value_name = "TRIPS", conflicts_with = "tick")]
    pub latency: Option<usize>,
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
        let run = Cli::try_parse_from(["hums", "run"]).unwrap();
        assert!(matches!(run.command, Command::Run { config, .. } if config.config.is_empty()));
        assert!(Cli::try_parse_from(["hums", "check-config", "--config", "a.toml"]).is_ok());
        assert!(Cli::try_parse_from(["hums", "outbox", "list", "--status", "lost"]).is_err());
    }

    #[test]
    fn every_option_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.get_help().is_none() && id != "help" && id != "version" {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "hums", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }
}
