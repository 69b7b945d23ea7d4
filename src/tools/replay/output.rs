//! Replay outputs: per-file score CSVs, `workorders.jsonl`, `summary.json`
//! and the progress bar.

use super::{FileRun, ReplayError, ANOMALY_THRESHOLD};
use crate::common::types::to_datetime;
use crate::store::outbox::Status;
use std::io::Write;
use std::path::Path;

/// A progress bar over `bytes` of input, drawn only on a terminal.
pub fn progress_bar(bytes: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(bytes);
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {bar:40} {bytes}/{total_bytes} {msg} ({eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>, ReplayError> {
    let f = std::fs::File::create(path).map_err(|e| ReplayError::Output(path.into(), e))?;
    Ok(std::io::BufWriter::new(f))
}

/// Writes `DIR/<stem>.csv`: `timestamp,score,anomaly`, one row per input row,
/// plus `score_<asset>` per asset when the file holds more than one.
pub fn write_scores(dir: &Path, run: &FileRun, scores: &[f64]) -> Result<(), ReplayError> {
    let path = dir.join(format!("{}.csv", run.table.stem()));
    let io = |e| ReplayError::Output(path.clone(), e);
    let mut w = create(&path)?;
    let per_asset = run.assets.len() > 1;
    let mut header = String::from("timestamp,score,anomaly");
    if per_asset {
        for a in &run.assets {
            header.push_str(&format!(",score_{}", a.id));
        }
    }
    writeln!(w, "{header}").map_err(io)?;
    for (i, &ts) in run.table.timestamps.iter().enumerate() {
        let t = to_datetime(ts).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let s = scores[i];
        write!(w, "{t},{s:.6},{}", u8::from(s >= ANOMALY_THRESHOLD)).map_err(io)?;
        if per_asset {
            for a in &run.assets {
                write!(w, ",{:.6}", a.scores[i]).map_err(io)?;
            }
        }
        writeln!(w).map_err(io)?;
    }
    w.flush().map_err(io)
}

/// Writes `DIR/workorders.jsonl`: the work orders that would have been sent,
/// in the live JSON, in input order.
pub fn write_orders(dir: &Path, runs: &[FileRun]) -> Result<(), ReplayError> {
    let path = dir.join("workorders.jsonl");
    let io = |e| ReplayError::Output(path.clone(), e);
    let mut w = create(&path)?;
    for e in runs.iter().flat_map(|r| &r.orders).filter(|e| e.status != Status::Held) {
        serde_json::to_writer(&mut w, &e.order).map_err(|e| io(e.into()))?;
        writeln!(w).map_err(io)?;
    }
    w.flush().map_err(io)
}

/// Writes any serialisable value as pretty JSON.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), ReplayError> {
    let io = |e| ReplayError::Output(path.into(), e);
    let mut w = create(path)?;
    serde_json::to_writer_pretty(&mut w, value).map_err(|e| io(e.into()))?;
    writeln!(w).map_err(io)?;
    w.flush().map_err(io)
}

/// Size of a work order's trend chart.
pub const CHART_SIZE: (u32, u32) = (1000, 460);

/// Writes `dir/charts/<asset>.<failure mode>.r<revision>.png` for every
/// predicted-failure order: its indicator's history, fit, failure level,
/// crossing and due date as they stood when the order was planned.
pub fn write_trend_charts(dir: &Path, runs: &[FileRun]) -> Result<(), ReplayError> {
    let charts = dir.join("charts");
    for run in runs {
        for e in &run.orders {
            let o = &e.order;
            let Some(trend) = run
                .assets
                .iter()
                .filter(|a| a.id == o.asset.id)
                .flat_map(|a| &a.trends)
                .find(|t| t.predicted(o))
            else {
                continue;
            };
            let png =
                crate::pipeline::charts::png(&trend.snapshot(o), CHART_SIZE).map_err(|e| {
                    ReplayError::Output(charts.clone(), std::io::Error::other(e.to_string()))
                })?;
            std::fs::create_dir_all(&charts).map_err(|e| ReplayError::Output(charts.clone(), e))?;
            let path =
                charts.join(format!("{}.{}.r{}.png", o.asset.id, o.failure_mode, o.revision));
            std::fs::write(&path, png).map_err(|e| ReplayError::Output(path, e))?;
        }
    }
    Ok(())
}
