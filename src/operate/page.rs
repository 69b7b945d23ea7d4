//! The status pages, rendered on the server (minijinja templates in
//! `templates/`, plots as inline SVG): no JavaScript, no build step, nothing
//! fetched from elsewhere, so they work offline on a plant network. The
//! overview lists every asset with its health, score sparkline, open alarm and
//! latest order; an asset's page plots its channels with their limits and
//! zones; the outbox page lists dead letters with a retry button.

use super::shared::{order_views, OrderView, Shared};
use super::view::{AlarmView, ChannelView, View};
use crate::store::outbox::Status;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Environment, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, OnceLock};

/// Seconds between the pages' automatic refreshes.
const REFRESH_S: u32 = 10;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in [
            ("base.html", include_str!("templates/base.html")),
            ("overview.html", include_str!("templates/overview.html")),
            ("asset.html", include_str!("templates/asset.html")),
            ("outbox.html", include_str!("templates/outbox.html")),
        ] {
            if let Err(e) = env.add_template(name, src) {
                tracing::error!(template = name, error = %e, "status page template broken");
            }
        }
        env.add_filter("when", |ms: Option<i64>| {
            ms.map_or(String::new(), |ms| {
                crate::common::types::to_datetime(ms).format("%Y-%m-%d %H:%M:%S UTC").to_string()
            })
        });
        env.add_filter("fixed", |v: f64, digits: Option<usize>| {
            format!("{v:.*}", digits.unwrap_or(2))
        });
        env.add_filter("sig", |v: f64| significant(v));
        env.add_filter("urlencode", |s: String| crate::workorders::backends::http::urlencode(&s));
        env
    })
}

/// A number with about 3 significant digits.
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    format!("{v:.digits$}")
}

fn render(name: &str, ctx: Value) -> Response {
    match env().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "status page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("page failed to render: {e}"))
                .into_response()
        }
    }
}

async fn latest_orders(s: &Shared, status: Option<Status>, limit: usize) -> Vec<OrderView> {
    s.query(move |store| order_views(store, status, limit)).await.unwrap_or_default()
}

/// `/`: every asset.
pub async fn overview(State(s): State<Shared>) -> Response {
    let view: Arc<View> = s.view.borrow().clone();
    let orders = latest_orders(&s, None, 500).await;
    let mut orders_by_asset: BTreeMap<&str, &OrderView> = BTreeMap::new();
    for o in &orders {
        orders_by_asset.entry(o.asset.as_str()).or_insert(o);
    }
    let mut alarms_by_asset: BTreeMap<&str, Vec<&AlarmView>> =
        view.assets.iter().map(|a| (a.id.as_str(), Vec::new())).collect();
    for al in &view.alarms {
        alarms_by_asset.entry(al.asset.as_str()).or_default().push(al);
    }
    let sparklines: Vec<String> =
        view.assets.iter().map(|a| sparkline(&a.score_history, 160, 28)).collect();
    render(
        "overview.html",
        context! {
            title => "Assets",
            refresh => REFRESH_S,
            view => Value::from(minijinja::value::Serde(&*view)),
            sparklines,
            alarms_by_asset => Value::from(minijinja::value::Serde(&alarms_by_asset)),
            orders_by_asset => Value::from(minijinja::value::Serde(&orders_by_asset)),
        },
    )
}

/// `/assets/{id}`: one asset's channels, alarms and orders.
pub async fn asset(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let view: Arc<View> = s.view.borrow().clone();
    let Some(a) = view.assets.iter().find(|a| a.id == id) else {
        return (StatusCode::NOT_FOUND, format!("no asset {id:?}")).into_response();
    };
    let orders: Vec<OrderView> =
        latest_orders(&s, None, 500).await.into_iter().filter(|o| o.asset == id).take(20).collect();
    let alarms: Vec<&AlarmView> = view.alarms.iter().filter(|al| al.asset == id).collect();
    let plots: Vec<String> = a.channels.iter().map(|c| channel_plot(c, 400, 120)).collect();
    render(
        "asset.html",
        context! {
            title => a.id.clone(),
            // No refresh: it would wipe the shelving form while an operator types.
            refresh => 0,
            view => Value::from(minijinja::value::Serde(&*view)),
            a => Value::from(minijinja::value::Serde(a)),
            alarms => Value::from(minijinja::value::Serde(&alarms)),
            orders => Value::from(minijinja::value::Serde(&orders)),
            plots,
            score_plot => score_plot(&a.score_history, 820, 90),
        },
    )
}

/// `/outbox`: counts, dead letters and the latest orders.
pub async fn outbox(State(s): State<Shared>) -> Response {
    let view: Arc<View> = s.view.borrow().clone();
    let dead = latest_orders(&s, Some(Status::Dead), 200).await;
    let orders = latest_orders(&s, None, 100).await;
    let counts = s.query(|store| store.counts()).await.unwrap_or_default();
    render(
        "outbox.html",
        context! {
            title => "Outbox",
            refresh => REFRESH_S,
            view => Value::from(minijinja::value::Serde(&*view)),
            counts,
            dead => Value::from(minijinja::value::Serde(&dead)),
            orders => Value::from(minijinja::value::Serde(&orders)),
        },
    )
}

/// Text made safe inside an HTML attribute or element.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Maps values onto `[0, h]` pixels for the range `lo..hi`.
fn scale(v: f64, lo: f64, hi: f64, h: f64) -> f64 {
    let span = (hi - lo).max(f64::EPSILON);
    h - (v - lo) / span * h
}

/// A polyline of the finite values, spread across the width.
fn polyline(values: &[Option<f32>], lo: f64, hi: f64, w: f64, h: f64, colour: &str) -> String {
    let n = values.len().max(2) - 1;
    let mut points = String::new();
    let mut segments = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v.filter(|v| v.is_finite()) else {
            if !points.is_empty() {
                segments.push(std::mem::take(&mut points));
            }
            continue;
        };
        let x = i as f64 / n as f64 * w;
        let _ = write!(points, "{x:.1},{:.1} ", scale(f64::from(v), lo, hi, h));
    }
    segments.push(points);
    segments
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| {
            format!(
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                p.trim()
            )
        })
        .collect()
}

/// An asset's score over the history, with the control limit at 0.5.
pub fn sparkline(scores: &[Option<f32>], w: u32, h: u32) -> String {
    let (wf, hf) = (f64::from(w), f64::from(h));
    let hi = scores.iter().flatten().copied().filter(|v| v.is_finite()).fold(1.0f32, f32::max);
    let hi = f64::from(hi);
    let limit = scale(0.5, 0.0, hi, hf);
    let worst = scores.last().copied().flatten().unwrap_or(0.0);
    let colour = if worst >= 0.5 { "#d62828" } else { "#2e7dd7" };
    format!(
        r##"<svg class="spark" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="score"><line x1="0" x2="{w}" y1="{limit:.1}" y2="{limit:.1}" stroke="#d62828" stroke-dasharray="3 3" stroke-width="1"/>{}</svg>"##,
        polyline(scores, 0.0, hi, wf, hf, colour)
    )
}

/// A larger score plot for an asset's page.
fn score_plot(scores: &[Option<f32>], w: u32, h: u32) -> String {
    sparkline(scores, w, h)
}

/// A channel's window mean over the history, with its limits as lines and
/// its ISO 10816 zones as bands.
pub fn channel_plot(c: &ChannelView, w: u32, h: u32) -> String {
    let (wf, hf) = (f64::from(w), f64::from(h));
    let data: Vec<f64> = c.history.iter().flatten().map(|v| f64::from(*v)).collect();
    let (mut lo, mut hi) =
        data.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    // Limits and zone boundaries within reach of the data widen the range.
    let reach = (hi - lo).abs().max(hi.abs() * 0.5).max(1e-9) * 3.0;
    let marks: Vec<f64> = (c.limits.iter().map(|l| l.set))
        .chain(c.zones.iter().flatten().copied())
        .filter(|m| *m >= lo - reach && *m <= hi + reach)
        .collect();
    for m in &marks {
        lo = lo.min(*m);
        hi = hi.max(*m);
    }
    let pad = ((hi - lo) * 0.08).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let mut svg = format!(
        r##"<svg class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{}"><rect width="{w}" height="{h}" fill="#fbfcfd" stroke="#e3e7ec"/>"##,
        escape(&c.name)
    );
    if let Some(z) = c.zones {
        let bands = [
            (lo, z[0], "#dff3e4"),
            (z[0], z[1], "#f6f1cf"),
            (z[1], z[2], "#fbe3cc"),
            (z[2], hi, "#f8d3d3"),
        ];
        for (a, b, colour) in bands {
            let (a, b) = (a.max(lo), b.min(hi));
            if b > a {
                let (y1, y2) = (scale(b, lo, hi, hf), scale(a, lo, hi, hf));
                let _ = write!(
                    svg,
                    r#"<rect x="0" y="{y1:.1}" width="{w}" height="{:.1}" fill="{colour}"/>"#,
                    y2 - y1
                );
            }
        }
    }
    for l in &c.limits {
        if l.set < lo || l.set > hi {
            continue;
        }
        let y = scale(l.set, lo, hi, hf);
        let colour = match l.severity {
            crate::common::types::Severity::Warning => "#e6b800",
            crate::common::types::Severity::Alarm => "#e8700a",
            crate::common::types::Severity::Critical => "#d62828",
        };
        let _ = write!(
            svg,
            r#"<line x1="0" x2="{w}" y1="{y:.1}" y2="{y:.1}" stroke="{colour}" stroke-dasharray="5 3"/>"#
        );
    }
    svg.push_str(&polyline(&c.history, lo, hi, wf, hf, "#1d4f91"));
    let _ = write!(
        svg,
        r##"<text x="4" y="12" font-size="10" fill="#6b7684">{}</text><text x="4" y="{}" font-size="10" fill="#6b7684">{}</text></svg>"##,
        significant(hi),
        h - 3,
        significant(lo)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_skip_gaps_and_mark_the_control_limit() {
        let s = sparkline(&[Some(0.1), None, Some(0.2), Some(0.7)], 100, 20);
        assert_eq!(s.matches("<polyline").count(), 2, "{s}");
        assert!(s.contains("#d62828"), "{s}");
        let c = ChannelView {
            name: "vib".into(),
            history: vec![Some(1.0), Some(2.0), Some(3.0)],
            zones: Some([2.3, 4.5, 7.1]),
            ..ChannelView::default()
        };
        let p = channel_plot(&c, 200, 80);
        assert_eq!(p.matches("<rect").count(), 1 + 4, "{p}");
        assert_eq!(significant(0.012345), "0.0123");
        assert_eq!(significant(1234.4), "1234");
    }
}
