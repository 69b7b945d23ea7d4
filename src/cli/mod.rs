//! The commands behind the command line: each loads what it needs, calls the
//! library and prints the outcome; [`exit`] decides the exit codes.

pub mod args;
mod daemon;
mod eval;
mod exit;
mod offline;
mod state;

use args::Command;
use std::process::ExitCode;

/// Runs one command and returns its exit code.
pub fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run { config } => daemon::run(&config),
        #[cfg(feature = "demo")]
        Command::Demo { speed, duration, record, seed } => {
            daemon::demo(speed, duration, record, seed)
        }
        Command::CheckConfig { files } => offline::check_config(&files),
        Command::Probe { config, device, all_orders } => {
            offline::probe(&config, device.as_deref(), all_orders)
        }
        Command::Replay { config, input, out, jobs, no_report } => {
            offline::replay(&config, &input, &out, jobs, !no_report)
        }
        Command::Train { config, input, asset_class, asset, out, life } => {
            offline::train(&config, &input, asset_class, asset, &out, life)
        }
        #[cfg(feature = "demo")]
        Command::Simulate { hours, every, seed, start, out } => {
            offline::simulate(hours, every, seed, &start, &out)
        }
        Command::Eval { benchmark } => exit::report(eval::eval(benchmark)),
        Command::History { config, json } => state::history(&config, json),
        Command::Outbox { config, action } => state::outbox(&config, action),
    }
}
