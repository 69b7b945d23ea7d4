//! The engine's side of shelving and out of service: what is in force comes
//! from the store (where the API and the command line write it), and what the
//! pipeline withheld, expired and released goes back to it.

use super::engine::Engine;
use crate::common::types::Millis;
use crate::pipeline::suppress::Outcome;
use tracing::{info, warn};

impl Engine {
    /// Reads the suppressions not ended from the store into the pipeline.
    pub(super) fn load_suppressions(&mut self) {
        let list = match self.store.open_suppressions() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot read shelved and out-of-service alarms; keeping the last");
                return;
            }
        };
        let before = self.pipeline.suppressor().given().to_vec();
        let ids: Vec<i64> = list.iter().map(|s| s.id).collect();
        if before == ids {
            return;
        }
        for s in list.iter().filter(|s| !before.contains(&s.id)) {
            info!(asset = %s.asset, failure_mode = s.failure_mode.as_deref().unwrap_or("*"),
                  kind = s.kind.as_str(), reason = %s.reason, by = %s.by,
                  until = s.until, "alarm suppression in force");
        }
        for id in before.iter().filter(|id| !ids.contains(id)) {
            info!(id, "alarm suppression ended");
        }
        for s in self.pipeline.set_suppressions(list) {
            warn!(asset = %s.asset, failure_mode = s.failure_mode.as_deref().unwrap_or("*"),
                  "a shelf or out-of-service entry names an asset or failure mode no longer \
                   configured; ignored");
        }
        self.console.refresh(&self.pipeline, &self.metrics);
    }

    /// Records what an evaluation's suppression did.
    pub(super) fn record_suppression(&mut self, outcome: Outcome, now: Millis) {
        if !outcome.withheld.is_empty() {
            for w in &outcome.withheld {
                info!(asset = %w.asset, failure_mode = %w.failure_mode,
                      transition = %w.transition, suppression = w.suppression,
                      "alarm withheld (shelved or out of service)");
            }
            if let Err(e) = self.store.record_withheld(&outcome.withheld) {
                warn!(error = %e, "cannot record withheld alarms; they stay withheld in memory");
            }
        }
        if !outcome.expired.is_empty() {
            let ids: Vec<String> = outcome.expired.iter().map(i64::to_string).collect();
            info!(ids = ids.join(","), "shelves expired");
            if let Err(e) = self.store.expire_suppressions(&outcome.expired, now) {
                warn!(error = %e, "cannot mark expired shelves; they are read as expired anyway");
            }
        }
        for (a, f) in outcome.released {
            let asset = &self.plant.assets[a];
            let fm = asset.failure_modes[f].id.clone();
            info!(asset = %asset.id, failure_mode = %fm, "withheld alarm released");
            self.unreleased.push((asset.id.to_string(), fm));
        }
    }

    /// Marks released withheld alarms in the store, once the orders their
    /// release planned are committed (a crash before replays the release).
    pub(super) fn mark_released(&mut self) {
        for (asset, fm) in std::mem::take(&mut self.unreleased) {
            if let Err(e) = self.store.release_withheld(&asset, &fm) {
                warn!(error = %e, asset, failure_mode = fm, "cannot mark withheld alarms released");
            }
        }
    }
}
