//! Detectors judge the feature table: per-feature limits with hysteresis, the
//! ISO 10816-3 vibration zones, a learned baseline, degradation trends,
//! remaining-life models and stale data. Each emits
//! [`Finding`]s, and each machine-condition detector also scores the asset.

pub mod baseline;
pub mod iso10816;
pub mod life;
pub mod limits;
pub mod novelty;
pub mod stale;
pub mod trend;

use crate::common::types::{Evidence, Millis, Severity};
use crate::pipeline::features::FeatureTable;
use crate::pipeline::plant::Plant;
use crate::pipeline::window::Window;

/// "Something is wrong with this asset": which failure mode, how bad, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub asset: usize,
    /// Index into the asset's `failure_modes`.
    pub failure_mode: usize,
    pub severity: Severity,
    pub evidence: Evidence,
}

/// A rule a reading of one channel can trip: (asset, limit rule) or
/// (asset, index among its vibration channels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleRef {
    Limit(usize, usize),
    Zone(usize, usize),
}

impl RuleRef {
    /// The asset the rule belongs to.
    pub fn asset(self) -> usize {
        match self {
            RuleRef::Limit(a, _) | RuleRef::Zone(a, _) => a,
        }
    }
}

/// All detectors with their per-rule state.
#[derive(Debug)]
pub struct Detectors {
    limits: limits::LimitDetector,
    zones: iso10816::ZoneDetector,
    baseline: baseline::BaselineDetector,
    trends: trend::TrendDetector,
    life: life::LifeDetector,
    novelty: novelty::NoveltyDetector,
    stale: stale::StaleDetector,
    /// Anomaly score per asset from the last step: the highest of its detectors'.
    scores: Vec<f64>,
}

impl Detectors {
    /// Creates detectors for a plant that starts observing at `start`.
    pub fn new(plant: &Plant, start: Millis) -> Self {
        Self {
            limits: limits::LimitDetector::new(plant),
            zones: iso10816::ZoneDetector::new(plant),
            baseline: baseline::BaselineDetector::new(plant),
            trends: trend::TrendDetector::new(plant),
            life: life::LifeDetector::new(plant),
            novelty: novelty::NoveltyDetector::new(plant),
            stale: stale::StaleDetector::new(start),
            scores: vec![0.0; plant.assets.len()],
        }
    }

    /// Runs every detector for one evaluation at `now`.
    pub fn step(
        &mut self,
        plant: &Plant,
        table: &FeatureTable,
        windows: &[Window],
        now: Millis,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        self.scores.fill(0.0);
        let all = 0..plant.assets.len();
        self.limits.step(plant, table, now, all.clone(), &mut self.scores, &mut out);
        self.zones.step(plant, table, now, all, &mut self.scores, &mut out);
        self.baseline.step(plant, table, windows, now, &mut self.scores, &mut out);
        self.trends.step(plant, table, &self.baseline, now, &mut out);
        self.life.step(plant, table, now, &mut out);
        self.novelty.step(plant, now, &mut self.scores, &mut out);
        self.stale.step(plant, windows, now, &mut out);
        out
    }

    /// The limits and vibration zones of `assets` only, for readings judged
    /// on arrival between evaluations; the scores of the last step stay.
    pub fn step_on_arrival(
        &mut self,
        plant: &Plant,
        table: &FeatureTable,
        now: Millis,
        assets: &[usize],
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut scores = vec![0.0; plant.assets.len()];
        let each = || assets.iter().copied();
        self.limits.step(plant, table, now, each(), &mut scores, &mut out);
        self.zones.step(plant, table, now, each(), &mut scores, &mut out);
        out
    }

    /// Whether a reading of `value` could trip `rule` to at least `least`
    /// (see [`limits::LimitDetector::could_trip`]).
    pub fn could_trip(&self, plant: &Plant, rule: RuleRef, value: f64, least: Severity) -> bool {
        match rule {
            RuleRef::Limit(a, r) => self.limits.could_trip(plant, (a, r), value, least),
            RuleRef::Zone(a, k) => self.zones.could_trip(plant, (a, k), value, least),
        }
    }

    /// Anomaly score per asset from the last step, in [0, 1]; 0.5 is the control limit.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// The learned-baseline detector.
    pub fn baseline(&mut self) -> &mut baseline::BaselineDetector {
        &mut self.baseline
    }

    /// The degradation-trend detector (history saving and restoring).
    pub fn trends(&mut self) -> &mut trend::TrendDetector {
        &mut self.trends
    }

    /// The remaining-life detector (baselines and ages, saving and restoring).
    pub fn life(&mut self) -> &mut life::LifeDetector {
        &mut self.life
    }

    /// The novelty detector (readings are scored as they arrive).
    pub fn novelty(&mut self) -> &mut novelty::NoveltyDetector {
        &mut self.novelty
    }

    /// Where an asset's learned baseline stands.
    pub fn baseline_phase(&self, asset: usize) -> baseline::Phase {
        self.baseline.phase(asset)
    }
}
