//! `hums status`, `hums shelve`, `unshelve`, `out-of-service` and
//! `return-to-service`: what hums sees, and silencing it with a reason.

use super::exit;
use hums::config::Config;
use hums::operate::actions::{self, Action, ActionError};
use hums::operate::view::View;
use hums::store::Store;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `hums health`: asks `/healthz`; exit 0 when it answers 200.
pub fn health(args: &super::args::ConfigArgs, url: Option<String>) -> ExitCode {
    let url = match url {
        Some(u) => u,
        None => {
            let cfg = match exit::load_args(args) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if !cfg.http.enabled {
                return exit::config_error(
                    "error: [http] is not enabled, so there is no health endpoint; give --url",
                );
            }
            format!("{}/healthz", base_url(&cfg))
        }
    };
    let answer = super::daemon::tokio_runtime().and_then(|rt| {
        rt.block_on(async {
            let client = hums::workorders::backends::http::http_client(
                std::time::Duration::from_secs(5),
                false,
            )?;
            let res = client.get(&url).send().await?;
            Ok((res.status(), res.text().await.unwrap_or_default()))
        })
    });
    match answer {
        Ok((status, body)) if status.is_success() => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("unhealthy: {status} {}", body.trim());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {}", exit::chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The daemon's server as this machine reaches it.
fn base_url(cfg: &Config) -> String {
    let scheme = if cfg.http.tls_cert_file.is_some() { "https" } else { "http" };
    let addr = cfg.http.listen.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]");
    format!("{scheme}://{addr}")
}

/// `hums status`: from the running daemon's API, else from the state database.
pub fn status(config: &[PathBuf], json: bool) -> ExitCode {
    let cfg = match exit::load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if cfg.http.enabled {
        match from_daemon(&cfg) {
            Ok(view) => {
                if json {
                    return exit::report(print_json(&view));
                }
                print_view(&view);
                return ExitCode::SUCCESS;
            }
            Err(e) => eprintln!(
                "note: the daemon's API did not answer ({}); reading the state database",
                exit::chain(&e)
            ),
        }
    }
    exit::report(from_store(&cfg, json))
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The token `hums status` presents: `$HUMS_TOKEN`, else the config's first one it can read.
fn token(cfg: &Config) -> Option<String> {
    if let Ok(t) = std::env::var("HUMS_TOKEN") {
        return Some(t.trim().to_string());
    }
    cfg.http.tokens.iter().find_map(|t| match (&t.token_env, &t.token_file) {
        (Some(v), _) => std::env::var(v).ok().map(|s| s.trim().to_string()),
        (None, Some(f)) => std::fs::read_to_string(f).ok().map(|s| s.trim().to_string()),
        _ => None,
    })
}

fn from_daemon(cfg: &Config) -> anyhow::Result<View> {
    let url = format!("{}/api/status", base_url(cfg));
    let token = token(cfg).ok_or_else(|| anyhow::anyhow!("no token: set HUMS_TOKEN"))?;
    let rt = super::daemon::tokio_runtime()?;
    rt.block_on(async {
        let client = hums::workorders::backends::http::http_client(
            std::time::Duration::from_secs(5),
            false,
        )?;
        let res = client.get(&url).bearer_auth(token).send().await?;
        let res = res.error_for_status()?;
        Ok(res.json::<View>().await?)
    })
}

fn print_view(v: &View) {
    println!(
        "hums {} · gateway {} · evaluated {}",
        v.version,
        v.gateway,
        hums::common::types::to_datetime(v.at).format("%Y-%m-%d %H:%M:%S UTC")
    );
    for (source, up) in &v.sources {
        println!("source {source}: {}", if *up { "connected" } else { "DOWN" });
    }
    if let Some(e) = &v.config.reload_error {
        println!("LAST RELOAD FAILED (running on the configuration before): {e}");
    }
    println!();
    println!("{:<18} {:<15} {:>6} {:<4}  open alarms", "asset", "health", "score", "zone");
    for a in &v.assets {
        let alarms: Vec<String> = v
            .alarms
            .iter()
            .filter(|al| al.asset == a.id && al.state != "normal")
            .map(|al| match &al.suppressed {
                Some(s) => format!("{} {} ({})", al.failure_mode, al.state, s.kind.as_str()),
                None => format!("{} {}", al.failure_mode, al.state),
            })
            .collect();
        let health = match a.learning {
            Some((seen, of)) if a.health == "learning" => format!("learning {seen}/{of}"),
            _ => a.health.clone(),
        };
        println!(
            "{:<18} {:<15} {:>6.2} {:<4}  {}",
            a.id,
            health,
            a.score,
            a.zone.map(|z| format!("{z:?}")).unwrap_or_default(),
            if alarms.is_empty() { "-".into() } else { alarms.join("; ") }
        );
    }
    print_suppressions(&v.suppressions);
    let m = &v.metrics;
    println!(
        "\nreadings {} · orders planned {} delivered {} dead {} · held by flood control {}",
        m.readings_accepted,
        m.workorders_planned,
        m.workorders_delivered,
        m.workorders_dead_lettered,
        m.workorders_held
    );
}

fn print_suppressions(list: &[hums::pipeline::suppress::Suppression]) {
    if list.is_empty() {
        return;
    }
    println!("\n{:<18} {:<28} {:<15} {:<22} reason (by)", "asset", "failure mode", "kind", "until");
    for s in list {
        let until = s.until.map_or("returned to service".into(), |u| {
            hums::common::types::to_datetime(u).format("%Y-%m-%d %H:%M UTC").to_string()
        });
        println!(
            "{:<18} {:<28} {:<15} {:<22} {} ({})",
            s.asset,
            s.failure_mode.as_deref().unwrap_or("every alarm"),
            s.kind.as_str(),
            until,
            s.reason,
            s.by
        );
    }
}

/// With the daemon down: the alarm states, shelves and outbox it left.
fn from_store(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let store = Store::inspect_dir(Path::new(&cfg.state.dir))?;
    let now = hums::common::clock::wall_ms();
    let alarms = store.alarms()?;
    let suppressions = store.suppressions(now)?;
    let counts = store.counts()?;
    if json {
        let alarms: Vec<_> = alarms
            .iter()
            .map(|(a, f, s)| serde_json::json!({"asset": a, "failure_mode": f, "state": s}))
            .collect();
        return print_json(&serde_json::json!({
            "source": "state database",
            "alarms": alarms,
            "suppressions": suppressions,
            "outbox": counts.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        }));
    }
    println!("from the state database in {} (scores need the running daemon)", cfg.state.dir);
    println!("\n{:<18} open alarms", "asset");
    for a in &cfg.assets {
        let open: Vec<String> = alarms
            .iter()
            .filter(|(asset, _, _)| *asset == a.id)
            .map(|(_, f, s)| format!("{f} {}", s.name()))
            .collect();
        println!("{:<18} {}", a.id, if open.is_empty() { "-".into() } else { open.join("; ") });
    }
    print_suppressions(&suppressions);
    let counts: Vec<String> = counts.into_iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!("\noutbox: {}", if counts.is_empty() { "empty".into() } else { counts.join(", ") });
    Ok(())
}

/// Shelving and out of service from the command line: recorded in the state
/// database, which the daemon reads within seconds.
pub fn act(config: &[PathBuf], action: Action) -> ExitCode {
    let cfg = match exit::load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let models = match hums::pipeline::models::files::ModelFiles::load(&cfg) {
        Ok(m) => m,
        Err(e) => return exit::config_error(format!("error: {e}")),
    };
    let plant = hums::pipeline::plant::Plant::new(&cfg, &models);
    let store = match Store::inspect_dir(Path::new(&cfg.state.dir)) {
        Ok(s) => s,
        Err(e) => return exit::report(Err(e.into())),
    };
    let by = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "command line".into());
    let now = hums::common::clock::wall_ms();
    match actions::apply(&store, &actions::catalogue(&plant), &action, &by, now) {
        Ok(done) => {
            println!("{}", done.message);
            ExitCode::SUCCESS
        }
        Err(ActionError::Store(e)) => exit::report(Err(e.into())),
        Err(e) => exit::usage_error(e),
    }
}
