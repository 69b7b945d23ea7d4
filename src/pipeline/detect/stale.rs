//! Stale data: a channel that has said nothing for too long raises the
//! instrument failure mode, never a machine one.

use super::Finding;
use crate::common::types::{to_datetime, Evidence, Millis, Severity};
use crate::pipeline::plant::Plant;
use crate::pipeline::window::Window;

/// Tracks since when each measured channel has been silent.
#[derive(Debug)]
pub struct StaleDetector {
    start: Millis,
}

impl StaleDetector {
    /// Channels that never reported count as silent since `start`.
    pub fn new(start: Millis) -> Self {
        Self { start }
    }

    pub fn step(&mut self, plant: &Plant, windows: &[Window], now: Millis, out: &mut Vec<Finding>) {
        for (ai, asset) in plant.assets.iter().enumerate() {
            for ch in asset.channels.iter().filter(|c| c.derived.is_none()) {
                let last = windows[ch.slot].seen_at(now).unwrap_or(self.start);
                let age = now - last;
                if age <= ch.stale_after {
                    continue;
                }
                out.push(Finding {
                    asset: ai,
                    failure_mode: asset.stale_failure_mode,
                    severity: Severity::Alarm,
                    evidence: Evidence {
                        channel: ch.name.to_string(),
                        feature: "seconds_since_last_reading".into(),
                        value: (age / 1000) as f64,
                        limit: Some((ch.stale_after / 1000) as f64),
                        unit: "s".into(),
                        zone: None,
                        since: to_datetime(last + ch.stale_after),
                        note: format!("no reading since {}", to_datetime(last).to_rfc3339()),
                        due_by: None,
                    },
                });
            }
        }
    }
}
