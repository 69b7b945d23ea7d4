//! Detectors judge the feature table: per-feature limits with hysteresis, the
//! ISO 10816-3 vibration zones, and stale data. Each emits [`Finding`]s.

pub mod iso10816;
pub mod limits;
pub mod stale;

use crate::config::Plant;
use crate::features::FeatureTable;
use crate::model::{Evidence, Millis, Severity};
use crate::window::Window;

/// "Something is wrong with this asset": which failure mode, how bad, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub asset: usize,
    /// Index into the asset's `failure_modes`.
    pub failure_mode: usize,
    pub severity: Severity,
    pub evidence: Evidence,
}

/// All detectors with their per-rule state.
#[derive(Debug)]
pub struct Detectors {
    limits: limits::LimitDetector,
    zones: iso10816::ZoneDetector,
    stale: stale::StaleDetector,
}

impl Detectors {
    /// Creates detectors for a plant that starts observing at `start`.
    pub fn new(plant: &Plant, start: Millis) -> Self {
        Self {
            limits: limits::LimitDetector::new(plant),
            zones: iso10816::ZoneDetector::new(plant),
            stale: stale::StaleDetector::new(start),
        }
    }

    /// Runs every detector for one evaluation at `now`.
    pub fn step(&mut self, plant: &Plant, table: &FeatureTable, windows: &[Window], now: Millis) -> Vec<Finding> {
        let mut out = Vec::new();
        self.limits.step(plant, table, now, &mut out);
        self.zones.step(plant, table, now, &mut out);
        self.stale.step(plant, windows, now, &mut out);
        out
    }
}
