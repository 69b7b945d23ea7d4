//! What the pipeline keeps across restarts, by asset id: learned baselines,
//! trend histories, remaining-life baselines, novelty streams and usage
//! meters. The store loads and saves it; the pipeline restores it when it
//! starts ([`Pipeline::restore_state`]) and hands over what changed while it
//! runs ([`Pipeline::take_changes`]).

use super::detect::life::LifeState;
use super::detect::novelty::NoveltyState;
use super::detect::trend::Points;
use super::models::Model;
use super::usage::Meter;
use super::Pipeline;
use std::sync::Arc;
use tracing::{info, warn};

/// State saved by an earlier run, by asset id.
#[derive(Debug, Default)]
pub struct SavedState {
    pub baselines: Vec<(String, Model)>,
    /// (asset, indicator name, down-sampled history).
    pub trends: Vec<(String, String, Points)>,
    pub life: Vec<(String, LifeState)>,
    pub novelty: Vec<(String, NoveltyState)>,
    pub usage: Vec<(String, Meter)>,
}

/// State that changed since it was last taken, by asset id.
#[derive(Debug, Default)]
pub struct StateChanges {
    /// Baselines fitted since, to keep.
    pub baselines: Vec<(Arc<str>, Arc<Model>)>,
    pub trends: Vec<(Arc<str>, String, Points)>,
    pub life: Vec<(Arc<str>, LifeState)>,
    /// Taken with [`Take::All`] only.
    pub novelty: Vec<(Arc<str>, NoveltyState)>,
    /// Taken with [`Take::All`] only.
    pub usage: Vec<(Arc<str>, Meter)>,
}

impl StateChanges {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.baselines.is_empty()
            && self.trends.is_empty()
            && self.life.is_empty()
            && self.novelty.is_empty()
            && self.usage.is_empty()
    }
}

/// Which changes to take: trends, life baselines and fitted models change
/// rarely and are taken at every evaluation; novelty streams and usage meters
/// change with every reading and are taken once a minute, after a preventive
/// order, and at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Rare,
    All,
}

impl Pipeline {
    /// The start hook: restores what an earlier run saved. State that no longer
    /// matches the configuration is skipped with a warning, and the assets
    /// whose saved baseline must be forgotten are returned.
    pub fn restore_state(&mut self, saved: SavedState) -> Vec<String> {
        let plant = self.plant.clone();
        let mut dropped = Vec::new();
        for (id, model) in saved.baselines {
            let index = plant.asset_index(&id);
            if index.is_some_and(|a| self.detectors.baseline().restore(&plant, a, model)) {
                info!(asset = %id, "resuming the learned baseline saved by the last run");
                continue;
            }
            let shipped = index
                .and_then(|a| plant.assets[a].baseline.as_ref())
                .is_some_and(|r| r.model.is_some());
            if shipped {
                info!(asset = %id, "the class now has a model file; the learned baseline saved \
                    earlier is dropped");
            } else {
                warn!(asset = %id, "the saved baseline does not match the configuration any more; \
                    dropped, the asset learns again");
            }
            dropped.push(id);
        }
        for (id, indicator, points) in saved.trends {
            let found = plant.asset_index(&id).and_then(|a| {
                let asset = &plant.assets[a];
                asset.trends.iter().position(|t| t.name(asset) == indicator).map(|r| (a, r))
            });
            match found {
                Some((a, r)) => self.detectors.trends().restore(&plant, a, r, points),
                None => {
                    warn!(asset = %id, indicator, "saved trend history no longer matches the \
                        configuration; ignored")
                }
            }
        }
        for (id, state) in saved.life {
            if !plant
                .asset_index(&id)
                .is_some_and(|a| self.detectors.life().restore(&plant, a, state))
            {
                warn!(asset = %id, "saved remaining-life baseline no longer matches the \
                    configuration; the asset learns it again");
            }
        }
        for (id, state) in saved.novelty {
            if !plant
                .asset_index(&id)
                .is_some_and(|a| self.detectors.novelty().restore(&plant, a, state))
            {
                warn!(asset = %id, "saved novelty stream no longer matches the configuration; the \
                    asset learns it again");
            }
        }
        for (id, meter) in saved.usage {
            if !plant.asset_index(&id).is_some_and(|a| self.usage.restore(&plant, a, meter)) {
                warn!(asset = %id,
                      "saved usage meter no longer matches the configuration; ignored");
            }
        }
        dropped
    }

    /// The save hook: what changed since it was last taken (see [`Take`]).
    pub fn take_changes(&mut self, take: Take) -> StateChanges {
        let plant = self.plant.clone();
        let id = |a: usize| plant.assets[a].id.clone();
        let mut changes = StateChanges {
            baselines: self
                .detectors
                .baseline()
                .take_fitted()
                .into_iter()
                .map(|(a, m)| (id(a), m))
                .collect(),
            trends: (self.detectors.trends().take_changed().into_iter())
                .map(|(a, r, points)| {
                    (id(a), plant.assets[a].trends[r].name(&plant.assets[a]), points)
                })
                .collect(),
            life: self
                .detectors
                .life()
                .take_changed()
                .into_iter()
                .map(|(a, s)| (id(a), s))
                .collect(),
            ..StateChanges::default()
        };
        if take == Take::All {
            changes.novelty = self
                .detectors
                .novelty()
                .take_changed(&plant)
                .into_iter()
                .map(|(a, s)| (id(a), s))
                .collect();
            changes.usage =
                self.usage.take_changed().into_iter().map(|(a, m)| (id(a), m)).collect();
        }
        changes
    }
}
