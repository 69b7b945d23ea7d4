//! The replay report: one self-contained HTML page (inline SVG charts drawn
//! with plotters, no scripts, no external files). Per asset: the anomaly
//! score against its control limit, each channel with its limits, the
//! alarms, the work orders and the ground-truth labels, on one time axis.

use super::{AssetTrace, FileRun, ReplayError, Summary, TrendTrace, ANOMALY_THRESHOLD};
use crate::common::types::{to_datetime, Millis};
use crate::config::schema::Direction;
use crate::config::Config;
use crate::pipeline::charts::{self, Marks, SeriesChart};
use crate::pipeline::plant::{AssetInfo, Plant};
use crate::sources::replay::Table;
use crate::store::outbox::{NewEntry, Status};
use crate::workorders::WorkOrder;
use std::fmt::Write;
use std::path::Path;

const WIDTH: u32 = 1100;
/// Points drawn per series at most; longer series are reduced to each pixel
/// column's minimum and maximum, so spikes stay visible.
const MAX_POINTS: usize = 2 * WIDTH as usize;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn time(ms: Millis) -> String {
    to_datetime(ms).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// The series, reduced to at most [`MAX_POINTS`] points.
fn reduce(ts: &[Millis], v: &[f64]) -> Vec<(f64, f64)> {
    let points: Vec<(f64, f64)> =
        ts.iter().zip(v).filter(|(_, y)| y.is_finite()).map(|(&t, &y)| (t as f64, y)).collect();
    if points.len() <= MAX_POINTS {
        return points;
    }
    let per = points.len().div_ceil(MAX_POINTS / 2);
    points
        .chunks(per)
        .flat_map(|c| {
            let lo = c.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
            let hi = c.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
            let (lo, hi) = (lo.unwrap_or(c[0]), hi.unwrap_or(c[0]));
            if lo.0 <= hi.0 {
                [lo, hi]
            } else {
                [hi, lo]
            }
        })
        .collect()
}

/// Contiguous runs of `true` as time spans.
fn spans(ts: &[Millis], flags: &[bool]) -> Vec<(Millis, Millis)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &f) in flags.iter().enumerate() {
        match (f, start) {
            (true, None) => start = Some(ts[i]),
            (false, Some(s)) => {
                out.push((s, ts[i - 1]));
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(&last)) = (start, ts.last()) {
        out.push((s, last));
    }
    out
}

/// One chart as inline SVG, or a note saying why it could not be drawn.
fn chart(
    title: &str,
    unit: &str,
    points: &[(f64, f64)],
    y: (f64, f64),
    m: &Marks,
    height: u32,
) -> String {
    let c = SeriesChart { title: title.into(), unit: unit.into(), points, y, marks: m.clone() };
    charts::svg(&c, (WIDTH, height))
        .unwrap_or_else(|e| format!("<p class=err>{}</p>", escape(&e.to_string())))
}

/// A y range that holds the points and the levels, with a little air.
fn y_range(points: &[(f64, f64)], levels: &[(f64, String)]) -> (f64, f64) {
    let vals =
        points.iter().map(|p| p.1).chain(levels.iter().map(|l| l.0)).filter(|v| v.is_finite());
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs().max(1e-9) * 1e-3);
    (lo - pad, hi + pad)
}

/// Limit levels configured for a channel, at alarm severity and above.
fn channel_levels(plant: &Plant, asset: &str, channel: &str) -> Vec<(f64, String)> {
    let Some(a) = plant.asset_index(asset).map(|i| &plant.assets[i]) else { return Vec::new() };
    let mut out = Vec::new();
    for rule in a.limits.iter().filter(|r| &*a.channels[r.channel].name == channel) {
        for (sev, level) in &rule.levels {
            let side = if rule.direction == Direction::High { "≥" } else { "≤" };
            out.push((level.set, format!("{sev} {side} {} ({})", level.set, rule.feature.name())));
        }
    }
    out
}

fn order_row(o: &WorkOrder, held: bool) -> String {
    let ev = o.evidence.first();
    format!(
        "<tr><td>{}</td><td>{:?}{}</td><td>P{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        time(o.detected_at.timestamp_millis()),
        o.event,
        if held { " (held)" } else { "" },
        o.priority,
        o.priority_label,
        escape(&o.title),
        escape(&o.failure_mode),
        escape(
            &ev.map(|e| format!(
                "{} {} = {:.4} {}: {}",
                e.channel, e.feature, e.value, e.unit, e.note
            ))
            .unwrap_or_default()
        )
    )
}

/// One asset's section: a summary line, its work orders, then its charts.
fn asset_section(html: &mut String, plant: &Plant, run: &FileRun, a: &AssetTrace) {
    let t = &run.table;
    let first = t.timestamps.first().copied().unwrap_or(0);
    let span = (first, t.timestamps.last().copied().unwrap_or(0));
    let labels = label_spans(t);
    let alarms: Vec<(Millis, Millis)> =
        a.alarms.iter().map(|(_, s, e)| (*s, e.unwrap_or(span.1))).collect();
    let last_row = t.timestamps.len().saturating_sub(1);
    let learning = a.baseline_fitted_at.map(|row| (span.0, t.timestamps[row.min(last_row)]));
    let orders: Vec<&NewEntry> = run.orders.iter().filter(|e| e.order.asset.id == a.id).collect();
    let marks = order_marks(&orders);
    let info = plant.asset_index(&a.id).map(|i| &plant.assets[i]);
    section_header(html, a, info, t.timestamps.len(), orders.len(), learning);
    orders_table(html, &orders);
    let score = reduce(&t.timestamps, &a.scores);
    let m = Marks {
        span,
        labels: &labels,
        alarms: &alarms,
        learning,
        levels: vec![(ANOMALY_THRESHOLD, "control limit 0.5".into())],
        orders: &marks,
    };
    let title = format!("{}: anomaly score", a.id);
    html.push_str(&chart(&title, "score", &score, (0.0, 1.0), &m, 220));
    channel_charts(html, plant, t, a, &orders, &m);
    life_chart(html, a, info, &m);
    for trend in &a.trends {
        trend_charts(html, trend, &orders, &m);
    }
    html.push_str("</section>");
}

/// The ground-truth spans to shade: the `anomaly` label's, or else every label's.
fn label_spans(t: &Table) -> Vec<(Millis, Millis)> {
    let anomaly = t.labels.iter().filter(|(n, _)| n == "anomaly");
    let labels: Vec<(Millis, Millis)> =
        anomaly.flat_map(|(_, v)| spans(&t.timestamps, v)).collect();
    if labels.is_empty() {
        t.labels.iter().flat_map(|(_, v)| spans(&t.timestamps, v)).collect()
    } else {
        labels
    }
}

/// A vertical line per work order, captioned with its number and event.
fn order_marks(orders: &[&NewEntry]) -> Vec<(Millis, String)> {
    orders
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let caption = format!(" WO{} {:?}", i + 1, e.order.event).to_lowercase();
            (e.order.detected_at.timestamp_millis(), caption)
        })
        .collect()
}

/// The section's heading and its summary line.
fn section_header(
    html: &mut String,
    a: &AssetTrace,
    info: Option<&AssetInfo>,
    rows: usize,
    orders: usize,
    learning: Option<(Millis, Millis)>,
) {
    let anomaly_rows = a.scores.iter().filter(|&&s| s >= ANOMALY_THRESHOLD).count();
    let _ = write!(
        html,
        "<section><h3>{}</h3><p class=meta>{} · class {} · {} · {} rows, \
         {} at or above the control limit · {} alarm(s) · {} work order(s){}</p>",
        escape(&a.id),
        escape(&info.map(|i| i.name.clone()).unwrap_or_default()),
        escape(&info.map(|i| i.class.clone()).unwrap_or_default()),
        escape(&info.map(|i| i.location.join(" › ")).unwrap_or_default()),
        rows,
        anomaly_rows,
        a.alarms.len(),
        orders,
        learning.map(|l| format!(" · baseline learned until {}", time(l.1))).unwrap_or_default(),
    );
}

/// The asset's work orders as a table (nothing if it has none).
fn orders_table(html: &mut String, orders: &[&NewEntry]) {
    if orders.is_empty() {
        return;
    }
    html.push_str(
        "<table><tr><th>detected</th><th>event</th><th>priority</th>\
         <th>title</th><th>failure mode</th><th>evidence</th></tr>",
    );
    for e in orders {
        html.push_str(&order_row(&e.order, e.status == Status::Held));
    }
    html.push_str("</table>");
}

/// A chart per measured channel with its limits. Channels named in a work
/// order's evidence come first: they are the why.
fn channel_charts(
    html: &mut String,
    plant: &Plant,
    t: &Table,
    a: &AssetTrace,
    orders: &[&NewEntry],
    base: &Marks,
) {
    let cited =
        |name: &str| orders.iter().any(|e| e.order.evidence.iter().any(|ev| ev.channel == name));
    let mut channels: Vec<&(String, String, String)> = a.channels.iter().collect();
    channels.sort_by_key(|(name, _, _)| !cited(name));
    for (name, column, unit) in channels {
        let Some(values) = t.column(column) else { continue };
        let points = reduce(&t.timestamps, values);
        let m = Marks { levels: channel_chart_levels(plant, &a.id, name, orders), ..*base };
        let title = if column == name { name.clone() } else { format!("{name} (column {column})") };
        html.push_str(&chart(&title, unit, &points, y_range(&points, &m.levels), &m, 170));
    }
}

/// The levels on a channel's chart: its configured limits and the limit each
/// work order's evidence on it crossed, one line per level.
fn channel_chart_levels(
    plant: &Plant,
    asset: &str,
    channel: &str,
    orders: &[&NewEntry],
) -> Vec<(f64, String)> {
    let mut levels = channel_levels(plant, asset, channel);
    for e in orders {
        for ev in e.order.evidence.iter().filter(|ev| ev.channel == channel) {
            if let Some(l) = ev.limit {
                levels.push((l, format!("{} limit {l:.4} ({})", e.order.severity, ev.feature)));
            }
        }
    }
    // One line per level: several orders often cite the same limit.
    levels.sort_by(|a, b| a.0.total_cmp(&b.0));
    levels.dedup_by(|a, b| (a.0 - b.0).abs() <= 1e-9 * a.0.abs().max(1.0));
    levels
}

/// Remaining life as the asset's life model saw it, against its horizon
/// (nothing without a life model or a prediction).
fn life_chart(html: &mut String, a: &AssetTrace, info: Option<&AssetInfo>, base: &Marks) {
    let life: Vec<(f64, f64)> =
        a.life.iter().filter_map(|r| Some((r.at as f64, r.hours_left?))).collect();
    if let (false, Some(rule)) = (life.is_empty(), info.and_then(|i| i.life.as_ref())) {
        let horizon = rule.horizon as f64 / 3_600_000.0;
        let levels = vec![(horizon, format!("horizon {horizon} h"))];
        let m = Marks { learning: None, levels, ..*base };
        let title = format!("{}: predicted remaining life", a.id);
        html.push_str(&chart(&title, "hours", &life, y_range(&life, &m.levels), &m, 200));
    }
}

/// A degradation indicator: the history against its limit, with each
/// prediction's order and due date; then the chart each prediction's first
/// and latest order carried (also written as PNG under charts/).
fn trend_charts(html: &mut String, trend: &TrendTrace, orders: &[&NewEntry], base: &Marks) {
    if trend.points.is_empty() {
        return;
    }
    let predicted: Vec<&WorkOrder> =
        orders.iter().map(|e| &e.order).filter(|o| trend.predicted(o)).collect();
    let marks = prediction_marks(&predicted, base.span.1);
    let pts: Vec<(f64, f64)> = trend.points.iter().map(|p| (p.0 as f64, p.1)).collect();
    let levels = vec![(trend.limit, format!("failure level {}", trend.limit))];
    let m = Marks {
        span: base.span,
        labels: base.labels,
        alarms: base.alarms,
        learning: None,
        levels,
        orders: &marks,
    };
    html.push_str(&chart(
        &format!("{}: degradation trend (one point per period)", trend.name),
        &trend.unit,
        &pts,
        y_range(&pts, &m.levels),
        &m,
        200,
    ));
    let mut shown: Vec<&WorkOrder> =
        predicted.iter().filter(|o| o.revision == 1).copied().collect();
    shown.extend(predicted.last().filter(|o| o.revision > 1));
    for o in shown {
        let svg = charts::svg(&trend.snapshot(o), (WIDTH, 380))
            .unwrap_or_else(|e| format!("<p class=err>{}</p>", escape(&e.to_string())));
        html.push_str(&svg);
    }
}

/// A vertical line per predicted order and per due date, up to `end`.
fn prediction_marks(predicted: &[&WorkOrder], end: Millis) -> Vec<(Millis, String)> {
    predicted
        .iter()
        .flat_map(|o| {
            let at = (o.detected_at.timestamp_millis(), format!(" r{} {}", o.revision, o.severity));
            let due = o.due_by.map(|d| (d.timestamp_millis(), format!(" due r{}", o.revision)));
            std::iter::once(at).chain(due)
        })
        .filter(|(t, _)| *t <= end)
        .collect()
}

/// Writes the report.
pub fn write(
    path: &Path,
    cfg: &Config,
    runs: &[FileRun],
    summary: &Summary,
) -> Result<(), ReplayError> {
    let mut html = String::from(
        "<!doctype html><html lang=en><head>\
         <meta charset=utf-8><title>hums replay report</title><style>\
         body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1140px}\
         h1{font-size:22px}h2{font-size:18px;margin-top:36px;border-bottom:1px solid #ccc}\
         h3{font-size:16px;margin-bottom:2px}\
         .meta{color:#555;margin-top:0}table{border-collapse:collapse;margin:8px 0}\
         td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
         th{background:#f4f4f4}\
         .key span{display:inline-block;width:14px;height:10px;\
         margin:0 4px 0 14px;vertical-align:middle}\
         svg{display:block;margin:4px 0}.err{color:#b00}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>hums replay: what this configuration would have raised</h1>\
         <p>Gateway <b>{}</b> · {} file(s) · {} rows · \
         {} evaluations in {:.2} s ({:.0} rows/s) · \
         <b>{} work order(s)</b> would have been sent, {} held by flood control.</p>",
        escape(&cfg.gateway.id),
        summary.files,
        summary.rows,
        summary.evaluations,
        summary.seconds,
        summary.rows_per_second,
        summary.work_orders,
        summary.held,
    );
    html.push_str(
        "<table><tr><th>by asset</th><th>by failure mode</th><th>by priority</th></tr><tr>",
    );
    for map in [&summary.by_asset, &summary.by_failure_mode, &summary.by_priority] {
        let cells: Vec<String> = map.iter().map(|(k, v)| format!("{}: {v}", escape(k))).collect();
        let _ = write!(
            html,
            "<td>{}</td>",
            if cells.is_empty() { "none".into() } else { cells.join("<br>") }
        );
    }
    html.push_str("</tr></table>");
    html.push_str(
        "<p class=key>Key:<span style=\"background:#ffc878\"></span>ground-truth anomaly label\
         <span style=\"background:#f5bdb8\"></span>alarm active\
         <span style=\"background:#e6e6e6\"></span>learning the baseline\
         <span style=\"background:#285aa0\"></span>value\
         <span style=\"background:#c82828\"></span>limit (dashed)\
         <span style=\"background:#7828a0\"></span>work order</p>",
    );
    for run in runs {
        let _ = write!(html, "<h2>{}</h2>", escape(&run.table.path.display().to_string()));
        for a in &run.assets {
            asset_section(&mut html, &run.plant, run, a);
        }
    }
    html.push_str("</body></html>\n");
    std::fs::write(path, html).map_err(|e| ReplayError::Output(path.into(), e))
}
