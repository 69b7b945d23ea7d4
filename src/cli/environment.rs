//! `hums check-config --environment`: what `hums run` needs of this machine
//! besides a valid configuration — the backend's secrets, a writable state
//! directory, and a broker and backend that answer on TCP.

use super::exit;
use hums::config::Config;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long a reachability check waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One check's outcome.
enum Outcome {
    Ok(String),
    /// A problem of the configuration or environment (exit 78).
    Config(String),
    /// A peer that does not answer (exit 69).
    Unreachable(String),
}

/// Runs every check, prints one line each, and returns the exit code of the
/// worst: 78 for a secret or state directory problem, 69 for a peer that
/// does not answer, else success.
pub fn check(cfg: &Config) -> ExitCode {
    let outcomes = [
        ("backend secrets", backend(cfg)),
        ("state directory", state_dir(Path::new(&cfg.state.dir))),
        ("MQTT broker", broker(cfg)),
        ("backend", reachable(&cfg.backend.common().url)),
    ];
    let mut code = ExitCode::SUCCESS;
    let (mut config, mut unreachable) = (false, false);
    for (what, outcome) in outcomes {
        match outcome {
            Outcome::Ok(m) => println!("ok: {what}: {m}"),
            Outcome::Config(m) => {
                eprintln!("error: {what}: {m}");
                config = true;
            }
            Outcome::Unreachable(m) => {
                eprintln!("error: {what}: {m}");
                unreachable = true;
            }
        }
    }
    if unreachable {
        code = ExitCode::from(exit::UNAVAILABLE);
    }
    if config {
        code = ExitCode::from(exit::CONFIG);
    }
    code
}

fn backend(cfg: &Config) -> Outcome {
    match hums::workorders::delivery::check(&cfg.backend) {
        Ok(()) => Outcome::Ok("the backend takes its settings and every required secret".into()),
        Err(e) => Outcome::Config(e.to_string()),
    }
}

/// The state directory takes a file, as the user running the check (run it
/// as the user hums runs as); one that does not exist yet is judged by the
/// directory `run` would create it in. Nothing is created.
fn state_dir(dir: &Path) -> Outcome {
    let existing = dir.ancestors().find(|d| d.as_os_str().is_empty() || d.exists());
    let at = match existing {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => Path::new("/"),
    };
    if !at.is_dir() {
        return Outcome::Config(format!("{} is not a directory; set [state] dir", at.display()));
    }
    let probe = at.join(format!(".hums-check-{}", std::process::id()));
    let written = std::fs::write(&probe, b"ok").and_then(|_| std::fs::remove_file(&probe));
    match (written, at == dir) {
        (Ok(()), true) => Outcome::Ok(format!("{} is writable", dir.display())),
        (Ok(()), false) => Outcome::Ok(format!(
            "{} does not exist yet; hums run can create it in {}",
            dir.display(),
            at.display()
        )),
        (Err(e), _) => Outcome::Config(format!(
            "{} is not writable: {e}; create it for the user hums runs as, or set [state] dir",
            at.display()
        )),
    }
}

fn broker(cfg: &Config) -> Outcome {
    if cfg.mqtt.subscriptions.is_empty() {
        return Outcome::Ok("no subscriptions: not needed".into());
    }
    connect(&cfg.mqtt.host, cfg.mqtt.port)
}

/// The host and port of an http(s) URL answer on TCP. Only the host is
/// ever printed: a URL may carry a token.
fn reachable(url: &str) -> Outcome {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(host), Some(port)) => connect(host, port),
            _ => Outcome::Config("backend.url names no host and port".into()),
        },
        Err(e) => Outcome::Config(format!("backend.url is not a URL: {e}")),
    }
}

fn connect(host: &str, port: u16) -> Outcome {
    let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return Outcome::Unreachable(format!("cannot resolve {host}: {e}")),
    };
    let mut last = format!("{host}:{port} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => return Outcome::Ok(format!("{host}:{port} accepts TCP connections")),
            Err(e) => last = format!("{host}:{port} ({addr}): {e}"),
        }
    }
    Outcome::Unreachable(last)
}
