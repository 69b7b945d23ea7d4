//! The commands behind the command line: each loads what it needs, calls the
//! library and prints the outcome; [`exit`] decides the exit codes.

pub mod args;
mod daemon;
mod environment;
mod eval;
mod exit;
mod offline;
mod operate;
mod state;

use args::Command;
use std::process::ExitCode;

/// Runs one command and returns its exit code.
pub fn dispatch(command: Command) -> ExitCode {
    match run(command) {
        Ok(code) => code,
        Err(message) => exit::config_error(format!("error: {message}")),
    }
}

/// Runs one command; `Err` when its configuration files cannot be listed.
fn run(command: Command) -> Result<ExitCode, String> {
    Ok(match command {
        Command::Run { config, log_level } => daemon::run(config, log_level),
        #[cfg(feature = "demo")]
        Command::Demo { speed, duration, record, seed, status_page } => {
            daemon::demo(speed, duration, record, seed, status_page)
        }
        Command::Health { config, url } => operate::health(&config, url),
        #[cfg(feature = "demo")]
        Command::Bench(args) => daemon::bench(args),
        Command::CheckConfig { files, mut config, environment } => {
            config.config.extend(files);
            offline::check_config(&config.paths()?, environment)
        }
        Command::Probe { config, device, all_orders } => {
            offline::probe(&config.paths()?, device.as_deref(), all_orders)
        }
        Command::Listen { config, seconds, all } => offline::listen(&config.paths()?, seconds, all),
        Command::Replay { config, input, out, jobs, no_report } => {
            offline::replay(&config.paths()?, &input, &out, jobs, !no_report)
        }
        Command::Train { config, input, asset_class, asset, out, life } => {
            offline::train(&config.paths()?, &input, asset_class, asset, &out, life)
        }
        #[cfg(feature = "demo")]
        Command::Simulate { hours, every, seed, start, out } => {
            offline::simulate(hours, every, seed, &start, &out)
        }
        Command::Eval { benchmark } => exit::report(eval::eval(benchmark)),
        Command::History { config, json } => state::history(&config.paths()?, json),
        Command::Status { config, json } => operate::status(&config.paths()?, json),
        Command::Shelve { config, asset, failure_mode, duration, reason } => operate::act(
            &config.paths()?,
            hums::operate::actions::Action::Shelve {
                asset,
                failure_mode,
                duration: duration.into(),
                reason,
            },
        ),
        Command::Unshelve { config, asset, failure_mode, reason } => operate::act(
            &config.paths()?,
            hums::operate::actions::Action::Unshelve { asset, failure_mode, reason },
        ),
        Command::OutOfService { config, asset, reason } => operate::act(
            &config.paths()?,
            hums::operate::actions::Action::OutOfService { asset, reason },
        ),
        Command::ReturnToService { config, asset, reason } => operate::act(
            &config.paths()?,
            hums::operate::actions::Action::ReturnToService { asset, reason },
        ),
        Command::Outbox { config, action } => state::outbox(&config, action),
        Command::Completions { shell } => {
            let mut cmd = <args::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "hums", &mut script);
            exit::report(
                std::io::Write::write_all(&mut std::io::stdout(), &script).map_err(Into::into),
            )
        }
        Command::Man => {
            let cmd = <args::Cli as clap::CommandFactory>::command();
            exit::report(
                clap_mangen::Man::new(cmd).render(&mut std::io::stdout()).map_err(Into::into),
            )
        }
    })
}
