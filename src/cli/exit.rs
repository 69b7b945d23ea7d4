//! Exit codes and how failures are printed.

use hums::config::{Config, ConfigErrors};
use std::path::PathBuf;
use std::process::ExitCode;

/// The configuration (or a command-line value) is wrong: fix it and try again.
pub const CONFIG: u8 = 2;

/// Prints a failure with its chain of causes; exit code 1.
pub fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a usage or configuration problem; exit code [`CONFIG`].
pub fn config_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(CONFIG)
}

/// Loads and merges configuration files, or prints every problem found.
pub fn load(paths: &[PathBuf]) -> Result<Config, ExitCode> {
    hums::config::load_files(paths).map_err(|e: ConfigErrors| {
        eprint!("{e}");
        ExitCode::from(CONFIG)
    })
}
