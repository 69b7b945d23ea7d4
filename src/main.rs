//! The `hums` binary: parses the command line and hands it to [`cli`].

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::dispatch(cli::args::Cli::parse().command)
}
