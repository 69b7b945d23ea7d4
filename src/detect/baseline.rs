//! The learned baseline: each asset learns the mean and spread of its window
//! features over its first samples (its healthy running), then scores how
//! many spreads away from that normal each feature is. Assets report
//! "learning" until the baseline is fitted.

use super::{calibrated, Finding};
use crate::config::{BaselineRule, Plant};
use crate::features::FeatureTable;
use crate::model::{to_datetime, Evidence, Millis, Severity};
use crate::window::Window;

/// Running mean and variance (Welford).
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
}

/// A fitted normal for one channel feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normal {
    pub mean: f64,
    pub std: f64,
}

impl Normal {
    /// Spreads are floored so a perfectly flat baseline does not make every
    /// later wiggle infinitely abnormal.
    fn fit(m: &Moments) -> Option<Self> {
        if m.n < 2 {
            return None;
        }
        let std = (m.m2 / (m.n - 1) as f64).sqrt();
        let floor = 1e-3 * m.mean.abs() + 1e-9;
        Some(Normal { mean: m.mean, std: std.max(floor) })
    }
}

/// Where an asset's baseline stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// The asset has no baseline configured.
    Off,
    /// Still learning; `samples` is the most any judged channel had seen at the last evaluation.
    Learning { samples: u64 },
    /// Fitted at this evaluation time, and judging since.
    Fitted { at: Millis },
}

#[derive(Debug, Clone)]
struct AssetState {
    /// Samples to learn from (the rule's, or fewer for a short replay file).
    cap: u64,
    first: Option<Millis>,
    seen: u64,
    learning: Vec<Moments>,
    fitted: Option<(Millis, Vec<Option<Normal>>)>,
    /// When the current departure began.
    since: Option<Millis>,
}

/// Baseline state of every asset.
#[derive(Debug)]
pub struct BaselineDetector {
    state: Vec<Option<AssetState>>,
}

impl BaselineDetector {
    pub fn new(plant: &Plant) -> Self {
        let state = plant
            .assets
            .iter()
            .map(|a| {
                a.baseline.as_ref().map(|r| AssetState {
                    cap: r.samples,
                    first: None,
                    seen: 0,
                    learning: vec![Moments::default(); r.channels.len() * r.features.len()],
                    fitted: None,
                    since: None,
                })
            })
            .collect();
        Self { state }
    }

    /// Learns from at most `samples` samples (e.g. a share of a replay file).
    pub fn limit_samples(&mut self, asset: usize, samples: u64) {
        if let Some(Some(st)) = self.state.get_mut(asset) {
            st.cap = st.cap.min(samples.max(2));
        }
    }

    /// Where an asset's baseline stands.
    pub fn phase(&self, asset: usize) -> Phase {
        match self.state.get(asset) {
            Some(Some(AssetState { fitted: Some((at, _)), .. })) => Phase::Fitted { at: *at },
            Some(Some(st)) => Phase::Learning { samples: st.seen },
            _ => Phase::Off,
        }
    }

    pub fn step(
        &mut self,
        plant: &Plant,
        table: &FeatureTable,
        windows: &[Window],
        now: Millis,
        scores: &mut [f64],
        out: &mut Vec<Finding>,
    ) {
        for (ai, asset) in plant.assets.iter().enumerate() {
            let (Some(st), Some(rule)) = (&mut self.state[ai], &asset.baseline) else { continue };
            let value = |k: usize| {
                let ch = &asset.channels[rule.channels[k / rule.features.len()]];
                table.get(ch.slot, rule.features[k % rule.features.len()])
            };
            let Some((_, normals)) = &st.fitted else {
                let samples = seen(rule, plant, ai, windows, now);
                st.seen = samples;
                if samples == 0 {
                    continue;
                }
                let first = *st.first.get_or_insert(now);
                if samples <= st.cap {
                    for (k, m) in st.learning.iter_mut().enumerate() {
                        if let Some(v) = value(k) {
                            m.add(v);
                        }
                    }
                }
                let long_enough = rule.duration.is_some_and(|d| now - first >= d);
                if samples >= st.cap || long_enough {
                    st.fitted = Some((now, st.learning.iter().map(Normal::fit).collect()));
                }
                continue;
            };
            // The feature furthest from its normal, in units of the threshold.
            let worst = (0..normals.len())
                .filter_map(|k| {
                    let n = normals[k]?;
                    let v = value(k)?;
                    Some((k, v, n, (v - n.mean).abs() / n.std / rule.threshold))
                })
                .max_by(|a, b| a.3.total_cmp(&b.3));
            let Some((k, v, n, x)) = worst else {
                st.since = None;
                continue;
            };
            scores[ai] = scores[ai].max(calibrated(x));
            let severity = match x {
                x if x >= 2.0 => Severity::Critical,
                x if x >= 1.0 => Severity::Alarm,
                _ => {
                    st.since = None;
                    continue;
                }
            };
            let since = *st.since.get_or_insert(now);
            let ch = &asset.channels[rule.channels[k / rule.features.len()]];
            let feature = rule.features[k % rule.features.len()];
            let sign = if v >= n.mean { 1.0 } else { -1.0 };
            out.push(Finding {
                asset: ai,
                failure_mode: rule.failure_mode,
                severity,
                evidence: Evidence {
                    channel: ch.name.to_string(),
                    feature: feature.name().into(),
                    value: v,
                    limit: Some(n.mean + sign * rule.threshold * n.std),
                    unit: ch.unit.clone(),
                    zone: None,
                    since: to_datetime(since),
                    note: format!(
                        "{:.1} standard deviations {} its learned normal {:.4} ± {:.4}",
                        (v - n.mean).abs() / n.std,
                        if sign > 0.0 { "above" } else { "below" },
                        n.mean,
                        n.std
                    ),
                },
            });
        }
    }
}

/// The most samples any judged channel of the asset had seen by `now`.
fn seen(rule: &BaselineRule, plant: &Plant, asset: usize, windows: &[Window], now: Millis) -> u64 {
    let a = &plant.assets[asset];
    rule.channels.iter().map(|&c| windows[a.channels[c].slot].pushed_until(now)).max().unwrap_or(0)
}
