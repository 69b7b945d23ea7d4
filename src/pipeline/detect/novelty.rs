//! Novelty of a metric stream, reading by reading, for channels whose level
//! moves on its own (service metrics, process values without a model of
//! normal). Each reading's distance from the last `window` readings, in
//! standard deviations, is judged against the stream's own history of such
//! distances (Numenta's anomaly likelihood: how unusual is the recent
//! average surprise); a reading beyond the range seen so far is novel at
//! once; and after a detection the next `hold_off` readings stay quiet, so
//! an episode is reported by its first reading. Optionally the shape of the
//! newest readings is judged too: their distance from the nearest matching
//! stretch of the stream's past (a k-NN subsequence distance, kept up to date
//! in O(1) per compared lag), through a likelihood of its own.

use super::Finding;
use crate::common::types::{to_datetime, Evidence, Millis, Severity};
use crate::config::schema::Pattern;
use crate::pipeline::plant::{NoveltyRule, Plant};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Raw scores averaged into the likelihood's recent surprise.
const SHORT: usize = 10;
/// Recent surprises the likelihood's distribution is estimated from.
const LONG: usize = 8640;
/// The distribution is estimated again every this many readings.
const REESTIMATE: u64 = 100;

/// Numenta's anomaly likelihood, streaming: the tail probability of the
/// recent average raw score under the distribution of earlier averages,
/// as a score in [0, 1] (log-scaled).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Likelihood {
    /// Readings before the first estimate (the probation).
    probation: u64,
    short: VecDeque<f64>,
    averages: VecDeque<f64>,
    values: VecDeque<f64>,
    seen: u64,
    /// (mean, std) of the averages.
    estimate: Option<(f64, f64)>,
    previous_tail: f64,
}

impl Likelihood {
    fn new(probation: u64) -> Self {
        Self {
            probation,
            short: VecDeque::with_capacity(SHORT),
            averages: VecDeque::new(),
            values: VecDeque::new(),
            seen: 0,
            estimate: None,
            previous_tail: 1.0,
        }
    }

    fn update(&mut self, x: f64, raw: f64) -> f64 {
        if self.short.len() == SHORT {
            self.short.pop_front();
        }
        self.short.push_back(raw);
        let average = self.short.iter().sum::<f64>() / self.short.len() as f64;
        let likelihood = if self.seen < self.probation {
            0.5
        } else {
            if self.estimate.is_none() || self.seen.is_multiple_of(REESTIMATE) {
                self.estimate = Some(self.estimate());
            }
            let (mean, std) = self.estimate.unwrap_or((0.5, 1e6));
            let y = if average >= mean { average } else { 2.0 * mean - average };
            let tail = 0.5 * libm::erfc((y - mean) / (std * std::f64::consts::SQRT_2));
            // One isolated extreme counts as very unlikely, a run of them less so.
            let filtered = if tail <= 1e-5 && self.previous_tail <= 1e-5 { 1e-3 } else { tail };
            self.previous_tail = tail;
            1.0 - filtered
        };
        for (q, v) in [(&mut self.averages, average), (&mut self.values, x)] {
            if q.len() == LONG {
                q.pop_front();
            }
            q.push_back(v);
        }
        self.seen += 1;
        (1.000_000_000_1 - likelihood).ln() / -23.025_850_847_200_09
    }

    /// Mean and spread of the stored averages, skipping the first half of
    /// the probation while it is still stored (the window was filling).
    fn estimate(&self) -> (f64, f64) {
        let learning = self.probation / 2;
        let skip =
            self.seen.min(learning.saturating_sub(self.seen.saturating_sub(LONG as u64))) as usize;
        let (mean, var) = moments(self.averages.iter().skip(skip));
        let (_, value_var) = moments(self.values.iter().skip(skip));
        if value_var < 1.5e-5 {
            // A flat signal: any change at all is news.
            return (0.5, 1e6);
        }
        (mean.max(0.03), var.max(0.0003).sqrt())
    }
}

/// Population mean and variance.
fn moments<'a>(it: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (mut n, mut sum, mut sq) = (0.0, 0.0, 0.0);
    for v in it {
        n += 1.0;
        sum += v;
        sq += v * v;
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = sum / n;
    (mean, (sq / n - mean * mean).max(0.0))
}

/// Why a reading was novel.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Why {
    Surprise {
        z: f64,
    },
    /// The newest readings' shape: `d` standard deviations (RMS) from their
    /// nearest match in the stream's past.
    Shape {
        d: f64,
    },
    Range {
        low: f64,
        high: f64,
    },
}

/// The subsequence-distance state of a stream: the last `history + length`
/// readings and, per compared lag L, the sum of squared differences between
/// the newest `length` readings and the `length` readings L before them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shapes {
    /// The pattern settings the ring was kept under.
    made_for: Option<Pattern>,
    /// Newest last; at most `history + length + 1` readings.
    ring: VecDeque<f64>,
    /// The lags compared (length, length + step, … up to history).
    #[serde(skip)]
    lags: Vec<usize>,
    /// Per lag; rebuilt from the ring after a restore.
    #[serde(skip)]
    sums: Vec<f64>,
    /// The lag whose sum is recomputed exactly at the next reading
    /// (round robin), so rounding never piles up.
    #[serde(skip)]
    exact: usize,
    /// Readings seen.
    seen: u64,
    likelihood: Likelihood,
}

impl Shapes {
    fn new(pattern: Pattern, probation: u64) -> Self {
        Shapes {
            made_for: Some(pattern),
            ring: VecDeque::new(),
            lags: Vec::new(),
            sums: Vec::new(),
            exact: 0,
            seen: 0,
            likelihood: Likelihood::new(probation),
        }
    }

    /// Takes reading `x`; returns the RMS distance of the newest `length`
    /// readings (x included) from their nearest match, once any lag is full.
    fn update(&mut self, p: &Pattern, x: f64) -> Option<f64> {
        let w = p.length.max(1);
        let t = self.seen as usize;
        if self.lags.is_empty() {
            // New, or after a restore: the sums are rebuilt from the ring.
            self.lags = (w..=p.history).step_by(p.step.max(1)).collect();
            self.sums = self.lags.iter().map(|&l| exact_sum(&self.ring, w, l)).collect();
        }
        let ring: &[f64] = self.ring.make_contiguous();
        let n = ring.len();
        let mut best = f64::INFINITY;
        if t >= p.history + w {
            // Every lag is full: no bounds to test (the ring holds history + w + 1).
            let old = ring[n - w];
            for (sum, &lag) in self.sums.iter_mut().zip(&self.lags) {
                let a = x - ring[n - lag];
                let b = old - ring[n - w - lag];
                *sum += a * a - b * b;
                best = best.min(*sum);
            }
        } else {
            let back = |k: usize| if k <= n { ring[n - k] } else { 0.0 };
            for (sum, &lag) in self.sums.iter_mut().zip(&self.lags) {
                if t >= lag {
                    let a = x - back(lag);
                    *sum += a * a;
                }
                if t >= lag + w {
                    let b = back(w) - back(w + lag);
                    *sum -= b * b;
                }
                if t + 1 >= lag + w {
                    best = best.min(*sum);
                }
            }
        }
        self.ring.push_back(x);
        if self.ring.len() > p.history + w + 1 {
            self.ring.pop_front();
        }
        self.seen += 1;
        if let Some(&lag) = self.lags.get(self.exact) {
            if t + 1 >= lag + w {
                self.sums[self.exact] = exact_sum(&self.ring, w, lag);
            }
            self.exact = (self.exact + 1) % self.lags.len();
        }
        best.is_finite().then(|| (best.max(0.0) / w as f64).sqrt())
    }
}

/// The reading `k` back from the newest in the ring (1: the newest).
fn back(ring: &VecDeque<f64>, k: usize) -> f64 {
    ring.get(ring.len().wrapping_sub(k)).copied().unwrap_or(0.0)
}

/// The exact sum of squared differences of one lag over the newest `w` readings.
fn exact_sum(ring: &VecDeque<f64>, w: usize, lag: usize) -> f64 {
    (1..=w)
        .filter(|i| i + lag <= ring.len())
        .map(|i| (back(ring, i) - back(ring, i + lag)).powi(2))
        .sum()
}

/// One stream's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stream {
    recent: VecDeque<f64>,
    /// Sums of the recent readings less `shift`, and of their squares:
    /// kept as readings come and go, recomputed exactly once per window.
    shift: f64,
    sum: f64,
    sq: f64,
    until_exact: usize,
    likelihood: Likelihood,
    range: Option<(f64, f64)>,
    readings: u64,
    last_detection: Option<u64>,
    /// The shape judge, when the rule has a pattern.
    #[serde(default)]
    shapes: Option<Shapes>,
    /// Scored readings not judged yet: (time, value, score, why).
    #[serde(skip)]
    pending: VecDeque<(Millis, f64, f64, Why)>,
}

/// What a restart needs of one asset's stream: its recent readings, range
/// and history of surprises, so it does not serve its probation again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NoveltyState {
    /// The rule's window the stream was kept under.
    window: usize,
    stream: Stream,
}

impl Stream {
    fn new(rule: &NoveltyRule) -> Self {
        let probation = rule.probation;
        Self {
            shapes: rule.pattern.map(|p| Shapes::new(p, probation)),
            recent: VecDeque::new(),
            shift: 0.0,
            sum: 0.0,
            sq: 0.0,
            until_exact: 0,
            likelihood: Likelihood::new(probation),
            range: None,
            readings: 0,
            last_detection: None,
            pending: VecDeque::new(),
        }
    }

    fn score(&mut self, rule: &NoveltyRule, x: f64) -> (f64, Why) {
        // In standard deviations of the recent readings.
        let sd = if self.recent.is_empty() {
            0.0
        } else {
            let n = self.recent.len() as f64;
            (self.sq / n - (self.sum / n).powi(2)).max(0.0).sqrt()
        };
        let in_sd = |e: f64| match (sd > 1e-12, e < 1e-12) {
            (true, _) => e / sd,
            (false, true) => 0.0,
            (false, false) => 10.0,
        };
        let z = if self.recent.is_empty() {
            0.0
        } else {
            let m = self.shift + self.sum / self.recent.len() as f64;
            in_sd((x - m).abs())
        };
        let shape = match (&mut self.shapes, rule.pattern) {
            (Some(s), Some(p)) => {
                let d = s.update(&p, x).map_or(0.0, in_sd);
                Some((s.likelihood.update(x, (d / 3.0).tanh()), d))
            }
            _ => None,
        };
        if self.recent.len() == rule.window {
            if let Some(old) = self.recent.pop_front() {
                self.sum -= old - self.shift;
                self.sq -= (old - self.shift).powi(2);
            }
        }
        self.recent.push_back(x);
        if self.until_exact == 0 {
            // Exact sums about the newest reading keep rounding from piling up.
            self.shift = x;
            self.sum = self.recent.iter().map(|v| v - x).sum();
            self.sq = self.recent.iter().map(|v| (v - x).powi(2)).sum();
            self.until_exact = rule.window;
        } else {
            self.sum += x - self.shift;
            self.sq += (x - self.shift).powi(2);
            self.until_exact -= 1;
        }
        let mut score = self.likelihood.update(x, (z / 3.0).tanh());
        let mut why = Why::Surprise { z };
        if let Some((s, d)) = shape.filter(|(s, _)| *s > score) {
            (score, why) = (s, Why::Shape { d });
        }
        if let Some((low, high)) = self.range {
            let margin = (high - low) * rule.range_tolerance;
            if high > low && (x > high + margin || x < low - margin) {
                score = 1.0;
                why = Why::Range { low, high };
            }
        }
        self.range = Some(self.range.map_or((x, x), |(l, h)| (l.min(x), h.max(x))));
        let i = self.readings;
        self.readings += 1;
        if score >= 0.5 {
            match self.last_detection {
                Some(last) if i - last < rule.hold_off => score = score.min(0.3),
                _ => self.last_detection = Some(i),
            }
        }
        (score, why)
    }
}

/// Every asset's novelty stream.
#[derive(Debug)]
pub struct NoveltyDetector {
    streams: Vec<Option<Stream>>,
    /// Per asset: readings arrived since its state was last taken.
    changed: Vec<bool>,
}

impl NoveltyDetector {
    /// A fresh stream per asset with a novelty rule.
    pub fn new(plant: &Plant) -> Self {
        let streams: Vec<Option<Stream>> =
            plant.assets.iter().map(|a| a.novelty.as_ref().map(Stream::new)).collect();
        Self { changed: vec![false; streams.len()], streams }
    }

    /// The state of each stream that read something since the last call.
    pub fn take_changed(&mut self, plant: &Plant) -> Vec<(usize, NoveltyState)> {
        let mut out = Vec::new();
        for (a, c) in self.changed.iter_mut().enumerate().filter(|(_, c)| **c) {
            *c = false;
            let (Some(rule), Some(Some(s))) =
                (plant.assets[a].novelty.as_ref(), self.streams.get(a))
            else {
                continue;
            };
            let mut stream = s.clone();
            stream.pending.clear();
            out.push((a, NoveltyState { window: rule.window, stream }));
        }
        out
    }

    /// Puts back a stream saved by an earlier run; false if the asset has no
    /// novelty rule now or its window changed (it then learns again).
    pub fn restore(&mut self, plant: &Plant, asset: usize, state: NoveltyState) -> bool {
        let Some(rule) = plant.assets.get(asset).and_then(|a| a.novelty.as_ref()) else {
            return false;
        };
        let s = &state.stream;
        let fits = state.window == rule.window
            && s.recent.len() <= rule.window
            && s.recent.iter().chain(&s.likelihood.averages).all(|v| v.is_finite());
        if let (true, Some(slot)) = (fits, self.streams.get_mut(asset)) {
            let mut stream = state.stream;
            stream.likelihood.probation = rule.probation;
            // A pattern turned on or off since: its judge starts afresh or goes.
            match (&mut stream.shapes, rule.pattern) {
                (Some(s), Some(p)) if s.made_for == Some(p) => {
                    s.likelihood.probation = rule.probation;
                }
                (_, Some(p)) => stream.shapes = Some(Shapes::new(p, rule.probation)),
                (_, None) => stream.shapes = None,
            }
            // The running sums are recomputed exactly at the next reading.
            stream.until_exact = 0;
            *slot = Some(stream);
        }
        fits
    }

    /// Shortens an asset's probation (replays of short files: a share of their rows).
    pub fn limit_probation(&mut self, asset: usize, readings: u64) {
        if let Some(Some(s)) = self.streams.get_mut(asset) {
            s.likelihood.probation = s.likelihood.probation.min(readings);
            if let Some(shapes) = &mut s.shapes {
                shapes.likelihood.probation = shapes.likelihood.probation.min(readings);
            }
        }
    }

    /// Scores one reading of an asset's novelty channel.
    pub fn observe(&mut self, plant: &Plant, asset: usize, ts: Millis, x: f64) {
        let (Some(rule), Some(Some(s))) =
            (plant.assets[asset].novelty.as_ref(), self.streams.get_mut(asset))
        else {
            return;
        };
        let (score, why) = s.score(rule, x);
        s.pending.push_back((ts, x, score, why));
        self.changed[asset] = true;
    }

    /// Judges the readings up to `now`: the asset's score is the highest of
    /// them, and a novel one after the probation is a finding.
    pub fn step(&mut self, plant: &Plant, now: Millis, scores: &mut [f64], out: &mut Vec<Finding>) {
        for (ai, asset) in plant.assets.iter().enumerate() {
            let (Some(rule), Some(Some(s))) = (asset.novelty.as_ref(), self.streams.get_mut(ai))
            else {
                continue;
            };
            let mut best: Option<(Millis, f64, f64, Why)> = None;
            while let Some(p) = s.pending.front().copied().filter(|p| p.0 <= now) {
                s.pending.pop_front();
                if best.is_none_or(|b| p.2 > b.2) {
                    best = Some(p);
                }
            }
            let Some((ts, x, score, why)) = best else { continue };
            scores[ai] = scores[ai].max(score);
            if score < 0.5 || s.likelihood.seen <= s.likelihood.probation {
                continue;
            }
            let ch = &asset.channels[rule.channel];
            let note = match why {
                Why::Surprise { z } => {
                    format!(
                        "{z:.1} standard deviations from the last {} readings, unlike its history",
                        rule.window
                    )
                }
                Why::Shape { d } => format!(
                    "its last {} readings are {d:.1} standard deviations (RMS) from their \
                        nearest match in the last {} readings: a shape unlike its history",
                    rule.pattern.map_or(0, |p| p.length),
                    rule.pattern.map_or(0, |p| p.history),
                ),
                Why::Range { low, high } => {
                    format!("outside the range seen so far ({low} … {high})")
                }
            };
            out.push(Finding {
                asset: ai,
                failure_mode: rule.failure_mode,
                severity: if score >= 0.9 { Severity::Critical } else { Severity::Alarm },
                evidence: Evidence {
                    channel: ch.name.to_string(),
                    feature: "novelty".into(),
                    value: x,
                    limit: None,
                    unit: ch.unit.clone(),
                    zone: None,
                    since: to_datetime(ts),
                    note,
                    due_by: None,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> NoveltyRule {
        NoveltyRule {
            channel: 0,
            window: 200,
            probation: 300,
            range_tolerance: 0.02,
            hold_off: 30,
            failure_mode: 0,
            pattern: None,
        }
    }

    fn noise(i: u64) -> f64 {
        ((i * 7919 % 101) as f64 / 101.0 - 0.5) * 2.0
    }

    #[test]
    fn a_steady_noisy_stream_stays_quiet_and_a_jump_is_novel_once() {
        let r = rule();
        let mut s = Stream::new(&r);
        let mut loud = 0;
        for i in 0..2000 {
            let (score, _) = s.score(&r, 10.0 + noise(i));
            if i > 300 && score >= 0.5 {
                loud += 1;
            }
        }
        assert_eq!(loud, 0, "noise like the history is no news");
        // A level shift beyond the range: novel at its first reading, quiet for the hold-off.
        let scores: Vec<f64> = (2000..2040).map(|i| s.score(&r, 20.0 + noise(i)).0).collect();
        assert_eq!(scores[0], 1.0);
        assert!(scores[1..30].iter().all(|&v| v <= 0.3), "{scores:?}");
    }

    #[test]
    fn the_shape_distance_finds_repeats_kept_exactly_and_notices_a_missing_cycle() {
        let p = Pattern { length: 8, history: 100, step: 1 };
        let mut s = Shapes::new(p, 0);
        let wave = |i: usize| ((i % 20) as f64 / 20.0 * std::f64::consts::TAU).sin();
        let mut last = None;
        for i in 0..400 {
            last = s.update(&p, wave(i));
        }
        assert!(last.unwrap() < 1e-9, "a repeating cycle matches its past exactly: {last:?}");
        // The incremental sums equal exact ones.
        for (k, &lag) in s.lags.iter().enumerate() {
            let exact = exact_sum(&s.ring, 8, lag);
            assert!((s.sums[k] - exact).abs() < 1e-9, "lag {lag}: {} vs {exact}", s.sums[k]);
        }
        // The cycle stops (flat at zero): a shape never seen in the history.
        let flat: Vec<f64> = (0..8).map(|_| s.update(&p, 0.0).unwrap()).collect();
        assert!(flat[7] > 0.3, "{flat:?}");
        // A restored judge rebuilds its sums from the ring and goes on alike.
        let mut back: Shapes = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        for i in 0..50 {
            let (a, b) = (s.update(&p, wave(i)).unwrap(), back.update(&p, wave(i)).unwrap());
            assert!((a - b).abs() < 1e-6, "{i}: {a} vs {b}");
        }
    }

    #[test]
    fn a_saved_stream_goes_on_as_if_never_stopped() {
        let r = rule();
        let mut s = Stream::new(&r);
        for i in 0..1500 {
            s.score(&r, 10.0 + noise(i));
        }
        let saved =
            serde_json::to_string(&NoveltyState { window: r.window, stream: s.clone() }).unwrap();
        let back: NoveltyState = serde_json::from_str(&saved).unwrap();
        let mut restored = back.stream;
        assert!(restored.likelihood.seen > r.probation, "past its probation");
        for i in 1500..1700 {
            let x = if i == 1650 { 25.0 } else { 10.0 + noise(i) };
            let (a, b) = (s.score(&r, x).0, restored.score(&r, x).0);
            assert!((a - b).abs() < 1e-9, "reading {i}: {a} vs {b}");
            if i == 1650 {
                assert_eq!(b, 1.0, "the restored stream knows its range");
            }
        }
    }

    #[test]
    fn a_step_inside_the_range_is_judged_against_the_streams_own_surprises() {
        let r = rule();
        let mut s = Stream::new(&r);
        // Wide excursions early set the range; then a calm stretch.
        for i in 0..400 {
            let v = if i % 50 == 0 { 30.0 } else { 10.0 + noise(i) * 0.1 };
            s.score(&r, v);
        }
        for i in 400..3000 {
            s.score(&r, 10.0 + noise(i) * 0.1);
        }
        // A step inside the range: not novel by range, but its surprise is
        // unlike anything in the calm history, within a few readings.
        let first = (0..10)
            .map(|_| s.score(&r, 15.0))
            .position(|(score, why)| score >= 0.5 && matches!(why, Why::Surprise { .. }));
        assert!(first.is_some_and(|i| i < 5), "{first:?}");
    }
}
