//! Failure prediction: each degradation indicator keeps a down-sampled
//! history (one point per `every`, bounded by `history`) and, at every new
//! point, fits linear and exponential (log-linear) trends over recent spans
//! with linfa. A significant rising trend that will cross the limit within
//! the horizon becomes a `predicted_failure` finding, due `lead` before the
//! early end of the crossing's interval, with the fit and the interval as
//! evidence. A trend
//! that is not significant predicts nothing.

use super::Finding;
use crate::common::types::{to_datetime, Evidence, Millis, Severity};
use crate::pipeline::detect::baseline::{BaselineDetector, Phase};
use crate::pipeline::features::FeatureTable;
use crate::pipeline::plant::{Plant, TrendRule};
use linfa::prelude::*;
use std::collections::VecDeque;

const HOUR: f64 = 3_600_000.0;

/// A down-sampled indicator history: (time, mean value) per period.
pub type Points = Vec<(Millis, f64)>;

/// A fitted trend and where it crosses the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// "linear" or "exponential".
    pub shape: &'static str,
    /// Per hour: units (linear) or the log's rate (exponential).
    pub slope: f64,
    /// The fit's value (linear) or log (exponential) at `from`.
    pub intercept: f64,
    /// The first point of the span it was fitted on.
    pub from: Millis,
    pub r2: f64,
    /// Slope over its standard error.
    pub t: f64,
    pub points: usize,
    pub crossing: Millis,
    /// Crossing times with the slope two standard errors steeper and
    /// shallower (`None`: never, at the shallow end).
    pub earliest: Millis,
    pub latest: Option<Millis>,
}

/// Ordinary least squares with linfa over (hours, y): (intercept, slope,
/// slope standard error, R²).
fn ols(x: &[f64], y: &[f64]) -> Option<(f64, f64, f64, f64)> {
    let n = x.len();
    if n < 3 {
        return None;
    }
    let records = ndarray::Array2::from_shape_vec((n, 1), x.to_vec()).ok()?;
    let targets = ndarray::Array1::from_vec(y.to_vec());
    let fit =
        linfa_linear::LinearRegression::new().fit(&linfa::Dataset::new(records, targets)).ok()?;
    let (a, b) = (fit.intercept(), *fit.params().first()?);
    let mean_x = x.iter().sum::<f64>() / n as f64;
    let mean_y = y.iter().sum::<f64>() / n as f64;
    let sxx: f64 = x.iter().map(|v| (v - mean_x).powi(2)).sum();
    let sst: f64 = y.iter().map(|v| (v - mean_y).powi(2)).sum();
    let sse: f64 = x.iter().zip(y).map(|(xi, yi)| (yi - a - b * xi).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let se = (sse / (n - 2) as f64 / sxx).sqrt();
    let r2 = if sst > 0.0 { 1.0 - sse / sst } else { 0.0 };
    Some((a, b, se, r2))
}

/// The best significant rising trend over the recent points, if any, and
/// where it crosses `limit`. Spans double from `min_points` to all points;
/// the fit with the best adjusted R² wins.
pub fn predict(
    points: &[(Millis, f64)],
    limit: f64,
    min_points: usize,
    min_t: f64,
) -> Option<Prediction> {
    let mut best: Option<(f64, Prediction)> = None;
    let mut span = min_points.max(3);
    loop {
        let span_now = span.min(points.len());
        if span_now < min_points.max(3) {
            break;
        }
        let recent = &points[points.len() - span_now..];
        let t0 = recent[0].0;
        let x: Vec<f64> = recent.iter().map(|p| (p.0 - t0) as f64 / HOUR).collect();
        for shape in ["linear", "exponential"] {
            let (y, target): (Vec<f64>, f64) = match shape {
                "linear" => (recent.iter().map(|p| p.1).collect(), limit),
                _ if recent.iter().all(|p| p.1 > 0.0) && limit > 0.0 => {
                    (recent.iter().map(|p| p.1.ln()).collect(), limit.ln())
                }
                _ => continue,
            };
            let Some((a, b, se, r2)) = ols(&x, &y) else { continue };
            // A slope that is rounding noise on a flat signal is no trend.
            let scale = y.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
            let t = if se > 0.0 { b / se } else { f64::INFINITY };
            if !(b > 1e-12 * scale && t >= min_t) {
                continue;
            }
            let n = x.len() as f64;
            let adjusted = 1.0 - (1.0 - r2) * (n - 1.0) / (n - 2.0);
            // Slopes pivot at the data's centre, where the fit is surest.
            let (mx, my) = (x.iter().sum::<f64>() / n, a + b * x.iter().sum::<f64>() / n);
            // Crossings more than ten years out are no prediction.
            let at = |slope: f64| -> Option<Millis> {
                let hours = mx + (target - my) / slope;
                (slope > 0.0 && hours.is_finite() && hours.abs() < 24.0 * 3653.0)
                    .then(|| t0.saturating_add((hours * HOUR) as Millis))
            };
            let Some(crossing) = at(b) else { continue };
            let p = Prediction {
                shape,
                slope: b,
                intercept: a,
                from: t0,
                r2,
                t,
                points: recent.len(),
                crossing,
                earliest: at(b + 2.0 * se).unwrap_or(crossing),
                latest: at(b - 2.0 * se),
            };
            if best.as_ref().is_none_or(|(score, _)| adjusted > *score) {
                best = Some((adjusted, p));
            }
        }
        if span_now == points.len() {
            break;
        }
        span *= 2;
    }
    best.map(|(_, p)| p)
}

impl Prediction {
    /// The fitted trend's value at `t`.
    pub fn value_at(&self, t: Millis) -> f64 {
        let v = self.intercept + self.slope * (t - self.from) as f64 / HOUR;
        if self.shape == "exponential" {
            v.exp()
        } else {
            v
        }
    }
}

#[derive(Debug, Default, Clone)]
struct History {
    /// A point was added since the last [`TrendDetector::take_changed`].
    changed: bool,
    /// The open bucket: start, sum, count.
    bucket: Option<(Millis, f64, u32)>,
    points: VecDeque<(Millis, f64)>,
    /// The last prediction, re-reported at every evaluation until the next point.
    last: Option<Prediction>,
    /// Refits in a row that found no trend; a prediction is kept through two,
    /// so one wobble of the fit does not close its order and open another.
    misses: u8,
    /// Every point ever made, when kept (replays draw them).
    log: Points,
    /// Every fit that predicted a crossing, with when it was made, when kept.
    fits: Vec<(Millis, Prediction)>,
    /// The due date in force: kept through refits while the predicted
    /// interval still holds its planned crossing (hysteresis).
    due: Option<Millis>,
    /// The limit `last` was fitted against (it is fitted again when the
    /// limit moves, e.g. once the asset's level is learned).
    fitted_for: Option<f64>,
}

/// Histories of every asset's degradation indicators.
#[derive(Debug)]
pub struct TrendDetector {
    state: Vec<Vec<History>>,
    keep_log: bool,
}

impl TrendDetector {
    pub fn new(plant: &Plant) -> Self {
        Self {
            state: plant.assets.iter().map(|a| vec![History::default(); a.trends.len()]).collect(),
            keep_log: false,
        }
    }

    /// Keeps every point, not only the bounded history (for replay charts).
    pub fn keep_log(&mut self) {
        self.keep_log = true;
    }

    /// Every point of an indicator since [`TrendDetector::keep_log`].
    pub fn log(&self, asset: usize, rule: usize) -> &[(Millis, f64)] {
        self.state.get(asset).and_then(|r| r.get(rule)).map_or(&[], |h| h.log.as_slice())
    }

    /// Every fit of an indicator that predicted a crossing since
    /// [`TrendDetector::keep_log`], with the time it was made.
    pub fn fits(&self, asset: usize, rule: usize) -> &[(Millis, Prediction)] {
        self.state.get(asset).and_then(|r| r.get(rule)).map_or(&[], |h| h.fits.as_slice())
    }

    /// The fit in force for an asset's indicator, if it predicts a crossing.
    pub fn prediction(&self, asset: usize, rule: usize) -> Option<&Prediction> {
        self.state.get(asset).and_then(|r| r.get(rule)).and_then(|h| h.last.as_ref())
    }

    /// The down-sampled history of an asset's indicator.
    pub fn history(&self, asset: usize, rule: usize) -> impl Iterator<Item = &(Millis, f64)> {
        self.state.get(asset).and_then(|r| r.get(rule)).into_iter().flat_map(|h| h.points.iter())
    }

    /// Histories that gained a point since the last call, as (asset, rule, points), for saving.
    pub fn take_changed(&mut self) -> Vec<(usize, usize, Points)> {
        let mut out = Vec::new();
        for (a, rules) in self.state.iter_mut().enumerate() {
            for (r, h) in rules.iter_mut().enumerate().filter(|(_, h)| h.changed) {
                h.changed = false;
                out.push((a, r, h.points.iter().copied().collect()));
            }
        }
        out
    }

    /// Puts back a history saved by an earlier run (the newest points that
    /// fit), and predicts from it at once.
    pub fn restore(&mut self, plant: &Plant, asset: usize, rule: usize, points: Points) {
        let (Some(h), Some(r)) = (
            self.state.get_mut(asset).and_then(|s| s.get_mut(rule)),
            plant.assets[asset].trends.get(rule),
        ) else {
            return;
        };
        let keep = (r.history / r.every).max(3) as usize;
        h.points = points.into_iter().filter(|p| p.1.is_finite()).collect();
        while h.points.len() > keep {
            h.points.pop_front();
        }
        // Fitted at the first evaluation, against the limit in force then.
        (h.last, h.fitted_for) = (None, None);
    }

    /// Extends every indicator's history and reports the predictions in
    /// force. Nothing is predicted for an asset whose baseline is still
    /// learning, and a rule's limit is the higher of its absolute one and
    /// its relative one times the asset's learned level.
    pub fn step(
        &mut self,
        plant: &Plant,
        table: &FeatureTable,
        baseline: &BaselineDetector,
        now: Millis,
        out: &mut Vec<Finding>,
    ) {
        for (ai, asset) in plant.assets.iter().enumerate() {
            let learning = matches!(baseline.phase(ai), Phase::Learning { .. });
            for (ri, rule) in asset.trends.iter().enumerate() {
                let h = &mut self.state[ai][ri];
                let ch = &asset.channels[rule.channel];
                let limit = limit(rule, baseline.level(ai, &rule.name(asset)));
                if h.fitted_for != Some(limit) && !h.points.is_empty() {
                    let points: Vec<(Millis, f64)> = h.points.iter().copied().collect();
                    h.last = predict(&points, limit, rule.min_points, rule.min_t);
                    h.fitted_for = Some(limit);
                }
                if let Some(v) = table.get(ch.slot, rule.feature) {
                    close_bucket(h, rule, now, limit);
                    if self.keep_log && h.changed && h.log.last() != h.points.back() {
                        h.log.extend(h.points.back().copied());
                        if let Some(p) =
                            h.last.as_ref().filter(|p| h.fits.last().is_none_or(|(_, f)| f != *p))
                        {
                            h.fits.push((now, p.clone()));
                        }
                    }
                    let b = h.bucket.get_or_insert((now - now.rem_euclid(rule.every), 0.0, 0));
                    b.1 += v;
                    b.2 += 1;
                }
                let Some(p) = &h.last else { continue };
                if learning || p.crossing <= now || p.crossing - now > rule.horizon {
                    continue;
                }
                let left = p.crossing - now;
                let day = |t: Millis| to_datetime(t).format("%Y-%m-%d %H:%M").to_string();
                let (due, why) = due_date(&mut h.due, p, rule, now);
                // Nearer than the lead, the failure is due now, at critical.
                let severity = if due <= now || left <= 2 * 86_400_000 {
                    Severity::Critical
                } else {
                    Severity::Alarm
                };
                out.push(Finding {
                    asset: ai,
                    failure_mode: rule.failure_mode,
                    severity,
                    evidence: Evidence {
                        channel: ch.name.to_string(),
                        feature: rule.feature.name().into(),
                        value: h.points.back().map_or(f64::NAN, |p| p.1),
                        limit: Some(limit),
                        unit: ch.unit.clone(),
                        zone: None,
                        since: to_datetime(now),
                        note: format!(
                            "{} trend over {} points (R² {:.2}, slope {:.1} standard errors from \
                                zero) crosses {limit:.4} {} on {} (interval {} … {}); {:.1} days \
                                left{why}",
                            p.shape,
                            p.points,
                            p.r2,
                            p.t,
                            ch.unit,
                            day(p.crossing),
                            day(p.earliest),
                            p.latest.map_or("beyond the horizon".into(), day),
                            left as f64 / 86_400_000.0,
                        ),
                        due_by: Some(to_datetime(due.max(now))),
                    },
                });
            }
        }
    }
}

/// The limit a rule's trend is judged against: its absolute limit, or its
/// relative one times the asset's learned `level` if that is higher.
fn limit(rule: &TrendRule, level: Option<f64>) -> f64 {
    match (rule.relative_limit, level) {
        (Some(r), Some(l)) if (r * l).is_finite() => rule.limit.max(r * l),
        _ => rule.limit,
    }
}

/// The due date of a prediction, with why it is what it is: planned for the
/// early end of the interval less the lead; a refit that would put it later
/// keeps it while the interval still holds the crossing it was planned for
/// (`due` is the one in force), one that puts it earlier moves it at once.
fn due_date(
    due: &mut Option<Millis>,
    p: &Prediction,
    rule: &TrendRule,
    now: Millis,
) -> (Millis, String) {
    let day = |t: Millis| to_datetime(t).format("%Y-%m-%d %H:%M").to_string();
    let planned = p.earliest - rule.lead;
    // Earlier is always taken; later only once the interval moved past it.
    let (d, mut why) = match *due {
        Some(d) if d <= planned && holds(p, d + rule.lead) => (d, String::new()),
        Some(d) => {
            (planned, format!("; due date moved from {}, as the predicted interval moved", day(d)))
        }
        None => (planned, String::new()),
    };
    *due = Some(d);
    if d <= now {
        why.push_str("; the failure is nearer than the lead time: due now");
    }
    (d, why)
}

/// Whether a prediction's interval still holds the crossing time `t`.
fn holds(p: &Prediction, t: Millis) -> bool {
    p.earliest <= t && p.latest.is_none_or(|l| t <= l)
}

/// Closes the open bucket once `now` is past it: its mean becomes a history
/// point, and the trend is fitted again against `limit`. A gap of more than
/// three periods starts the history afresh: a trend is never fitted across
/// a stop, where the level may have stepped for reasons other than wear.
fn close_bucket(h: &mut History, rule: &TrendRule, now: Millis, limit: f64) {
    let Some((start, sum, n)) = h.bucket else { return };
    if now < start + rule.every || n == 0 {
        return;
    }
    h.bucket = None;
    h.changed = true;
    let point = (start + rule.every / 2, sum / n as f64);
    if h.points.back().is_some_and(|last| point.0 - last.0 > 3 * rule.every) {
        h.points.clear();
        (h.last, h.misses, h.due) = (None, 0, None);
    }
    h.points.push_back(point);
    let keep = (rule.history / rule.every).max(3) as usize;
    while h.points.len() > keep || h.points.front().is_some_and(|p| p.0 < point.0 - rule.history) {
        h.points.pop_front();
    }
    let points: Vec<(Millis, f64)> = h.points.iter().copied().collect();
    h.fitted_for = Some(limit);
    match predict(&points, limit, rule.min_points, rule.min_t) {
        Some(p) => {
            h.last = Some(p);
            h.misses = 0;
        }
        None => {
            h.misses = h.misses.saturating_add(1);
            if h.misses > 2 {
                (h.last, h.due) = (None, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(f: impl Fn(f64) -> f64, n: usize) -> Vec<(Millis, f64)> {
        (0..n).map(|i| (i as Millis * 3_600_000, f(i as f64))).collect()
    }

    #[test]
    fn a_clean_linear_rise_predicts_its_crossing() {
        // 1.0 + 0.01/h with a little deterministic noise; crosses 2.0 at h = 100.
        let pts = series(|h| 1.0 + 0.01 * h + ((h as i64 * 7919 % 13) as f64 - 6.0) * 0.001, 48);
        let p = predict(&pts, 2.0, 12, 4.0).unwrap();
        let hours = p.crossing as f64 / 3_600_000.0;
        assert!((hours - 100.0).abs() < 5.0, "{hours} {p:?}");
        assert!(p.earliest <= p.crossing && p.latest.is_some_and(|l| l >= p.crossing));
    }

    #[test]
    fn an_exponential_rise_is_fitted_as_one() {
        let pts = series(|h| 0.05 * (0.03 * h).exp(), 60);
        let p = predict(&pts, 0.5, 12, 4.0).unwrap();
        assert_eq!(p.shape, "exponential");
        let hours = p.crossing as f64 / 3_600_000.0;
        let expected = (10.0f64).ln() / 0.03;
        assert!((hours - expected).abs() < 1.0, "{hours} vs {expected}");
    }

    #[test]
    fn noise_and_falling_levels_predict_nothing() {
        let noise = series(|h| 1.0 + ((h as i64 * 7919 % 13) as f64 - 6.0) * 0.05, 72);
        assert!(predict(&noise, 2.0, 12, 4.0).is_none());
        let falling = series(|h| 2.0 - 0.01 * h, 48);
        assert!(predict(&falling, 3.0, 12, 4.0).is_none());
        assert!(predict(&series(|h| h, 5), 10.0, 12, 4.0).is_none(), "too few points");
    }
}
