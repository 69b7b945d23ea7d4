//! Exit codes and how failures are printed.

use hums::config::{Config, ConfigErrors};
use std::path::PathBuf;
use std::process::ExitCode;

/// The configuration is wrong: fix it and try again (sysexits' EX_CONFIG).
/// Usage errors (an unknown option, a missing argument) exit 2, as clap does.
pub const CONFIG: u8 = 78;

/// Something `run` needs is not reachable (sysexits' EX_UNAVAILABLE).
pub const UNAVAILABLE: u8 = 69;

/// An input file cannot be read as data (sysexits' EX_DATAERR).
pub const DATA: u8 = 65;

/// A failure writing an output (sysexits' EX_IOERR).
pub const IO: u8 = 74;

/// Prints a failure with its chain of causes; exit code 1.
pub fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once: a cause whose text its
/// predecessor already quotes is left out.
pub fn chain(e: &anyhow::Error) -> String {
    let mut out: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.iter().any(|o| o.contains(&text)) {
            out.push(text);
        }
    }
    out.join(": ")
}

/// A usage error: an option's value that cannot be used (as clap's own, 2).
pub const USAGE: u8 = 2;

/// Prints a problem with the command line's values; exit code [`USAGE`].
pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(USAGE)
}

/// Prints a configuration problem; exit code [`CONFIG`].
pub fn config_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(CONFIG)
}

/// Prints a replay's failure with the exit code of its kind: bad input data
/// 65, an output not written 74, anything about the configuration 78.
pub fn replay_error(e: &hums::tools::replay::ReplayError) -> ExitCode {
    use hums::tools::replay::ReplayError;
    eprintln!("error: {e}");
    ExitCode::from(match e {
        ReplayError::Input(_) => DATA,
        ReplayError::Output(..) => IO,
        _ => CONFIG,
    })
}

/// Prints a training failure with the exit code of its kind (as [`replay_error`];
/// a model that cannot be fitted on the data is a data problem).
pub fn train_error(e: &hums::tools::train::TrainError) -> ExitCode {
    use hums::tools::train::TrainError;
    match e {
        TrainError::Replay(r) => replay_error(r),
        TrainError::Model(_) => {
            eprintln!("error: {e}");
            ExitCode::from(DATA)
        }
        TrainError::Output(..) => {
            eprintln!("error: {e}");
            ExitCode::from(IO)
        }
        TrainError::Config(_) => config_error(format!("error: {e}")),
    }
}

/// Lists the files `args` names (or the defaults) and loads them; exit 78 on a problem.
pub fn load_args(args: &super::args::ConfigArgs) -> Result<Config, ExitCode> {
    let paths = args.paths().map_err(|e| config_error(format!("error: {e}")))?;
    load(&paths)
}

/// Loads and merges configuration files, or prints every problem found.
pub fn load(paths: &[PathBuf]) -> Result<Config, ExitCode> {
    hums::config::load_files(paths).map_err(|e: ConfigErrors| {
        eprint!("{e}");
        ExitCode::from(CONFIG)
    })
}
