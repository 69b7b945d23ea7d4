//! `hums history` and `hums outbox`: read (and, for the outbox, manage) the
//! state database while `hums run` runs.

use super::args::OutboxAction;
use super::exit;
use hums::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// `hums history`: per asset, orders raised, completed, verified and cancelled.
pub fn history(config: &[PathBuf], json: bool) -> ExitCode {
    match exit::load(config) {
        Ok(cfg) => exit::report(print_history(&cfg, json)),
        Err(code) => code,
    }
}

/// `hums outbox`: list, retry or drop entries.
pub fn outbox(config: &[PathBuf], action: OutboxAction) -> ExitCode {
    match exit::load_args(&super::args::ConfigArgs { config: config.to_vec() }) {
        Ok(cfg) => exit::report(manage_outbox(&cfg, action)),
        Err(code) => code,
    }
}

fn print_history(cfg: &Config, json: bool) -> anyhow::Result<()> {
    let store = hums::store::Store::inspect_dir(std::path::Path::new(&cfg.state.dir))?;
    let rows = store.history()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no work orders followed yet in {}", cfg.state.dir);
        return Ok(());
    }
    println!(
        "{:<16} {:>6} {:>5} {:>9} {:>6} {:>9} {:>9} {:>14} {:>13}",
        "asset",
        "raised",
        "open",
        "completed",
        "fixed",
        "not fixed",
        "cancelled",
        "trip→order (s)",
        "order→done (h)"
    );
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for h in rows {
        println!(
            "{:<16} {:>6} {:>5} {:>9} {:>6} {:>9} {:>9} {:>14} {:>13}",
            h.asset,
            h.raised,
            h.open,
            h.completed,
            h.verified_fixed,
            h.not_fixed,
            h.cancelled,
            cell(h.median_trip_to_order_s),
            cell(h.median_order_to_done_h)
        );
    }
    Ok(())
}

fn manage_outbox(cfg: &Config, action: OutboxAction) -> anyhow::Result<()> {
    use hums::store::outbox::Status;
    use hums::store::Store;
    let store = Store::inspect_dir(std::path::Path::new(&cfg.state.dir))?;
    let which = |dead: bool, held: bool| -> anyhow::Result<Option<Status>> {
        match (dead, held) {
            (true, true) => anyhow::bail!("give --dead or --held, not both"),
            (true, false) => Ok(Some(Status::Dead)),
            (false, true) => Ok(Some(Status::Held)),
            (false, false) => Ok(None),
        }
    };
    match action {
        OutboxAction::List { status, limit, json } => {
            let entries = store.list(status, limit)?;
            if json {
                for e in &entries {
                    println!("{}", serde_json::to_string(e)?);
                }
                return Ok(());
            }
            let counts: Vec<String> =
                store.counts()?.into_iter().map(|(s, n)| format!("{s}: {n}")).collect();
            println!(
                "outbox {}: {}",
                cfg.state.dir,
                if counts.is_empty() { "empty".into() } else { counts.join(", ") }
            );
            println!(
                "{:>6}  {:<9} {:>3} {:>8}  {:<50}  title / why",
                "id", "status", "rev", "attempts", "key"
            );
            for e in entries {
                let why = e.note.as_deref().or(e.last_error.as_deref()).unwrap_or("");
                println!(
                    "{:>6}  {:<9} {:>3} {:>8}  {:<50}  {}{}{}",
                    e.id,
                    format!("{:?}", e.status).to_lowercase(),
                    e.revision,
                    e.attempts,
                    e.key,
                    e.order.title,
                    if why.is_empty() { "" } else { " | " },
                    why
                );
            }
        }
        OutboxAction::Retry { ids, dead, held } => {
            let n = store.release(&ids, which(dead, held)?)?;
            println!("{n} entr{} queued for delivery", if n == 1 { "y" } else { "ies" });
        }
        OutboxAction::Drop { ids, dead, held } => {
            let n = store.drop_entries(&ids, which(dead, held)?)?;
            println!("{n} entr{} dropped", if n == 1 { "y" } else { "ies" });
        }
    }
    Ok(())
}
