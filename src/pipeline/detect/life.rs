//! Remaining-life prediction: an asset's trained life model reads its
//! channel means less the asset's own baseline (the mean of its first
//! evaluations), with its age, and a predicted failure is raised when the
//! life left is within the horizon, due `lead` before the predicted failure.

use super::Finding;
use crate::common::types::{to_datetime, Evidence, Millis, Severity};
use crate::config::schema::Feature;
use crate::pipeline::features::FeatureTable;
use crate::pipeline::plant::{AssetInfo, LifeRule, Plant};
use serde::{Deserialize, Serialize};

const HOUR: f64 = 3_600_000.0;

/// An asset's own baseline and age, as saved across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifeState {
    /// The first evaluation with every input: the asset's age counts from here.
    pub first: Option<Millis>,
    /// Evaluations in the baseline so far, and their sums per input.
    pub count: usize,
    pub sums: Vec<f64>,
}

/// One evaluation as the life model saw it (kept by replays, and for training).
#[derive(Debug, Clone, PartialEq)]
pub struct LifeRecord {
    pub at: Millis,
    /// The model's inputs: channel means less the baseline, then the age in hours.
    pub inputs: Vec<f64>,
    /// Predicted hours of life left, once a model is loaded.
    pub hours_left: Option<f64>,
}

/// Every asset's remaining-life state.
#[derive(Debug)]
pub struct LifeDetector {
    state: Vec<LifeState>,
    changed: Vec<bool>,
    log: Option<Vec<Vec<LifeRecord>>>,
}

impl LifeDetector {
    /// No baselines or ages yet.
    pub fn new(plant: &Plant) -> Self {
        let n = plant.assets.len();
        Self { state: vec![LifeState::default(); n], changed: vec![false; n], log: None }
    }

    /// Keeps every evaluation's record (for replays and `hums train --life`).
    pub fn keep_log(&mut self) {
        self.log.get_or_insert_with(|| vec![Vec::new(); self.state.len()]);
    }

    /// An asset's records since [`LifeDetector::keep_log`].
    pub fn log(&self, asset: usize) -> &[LifeRecord] {
        self.log.as_ref().and_then(|l| l.get(asset)).map_or(&[], Vec::as_slice)
    }

    /// States that changed since the last call, as (asset, state), for saving.
    pub fn take_changed(&mut self) -> Vec<(usize, LifeState)> {
        let mut out = Vec::new();
        for (a, c) in self.changed.iter_mut().enumerate().filter(|(_, c)| **c) {
            *c = false;
            out.push((a, self.state[a].clone()));
        }
        out
    }

    /// Puts back a state saved by an earlier run; false if it does not fit
    /// the asset's configured inputs.
    pub fn restore(&mut self, plant: &Plant, asset: usize, state: LifeState) -> bool {
        let fits = plant.assets.get(asset).and_then(|a| a.life.as_ref()).is_some_and(|l| {
            state.sums.len() == l.inputs.len()
                && state.count <= l.baseline
                && state.sums.iter().all(|v| v.is_finite())
        });
        if fits {
            self.state[asset] = state;
        }
        fits
    }

    /// Predicts each asset's life left from this evaluation's channel means.
    pub fn step(
        &mut self,
        plant: &Plant,
        table: &FeatureTable,
        now: Millis,
        out: &mut Vec<Finding>,
    ) {
        for (ai, asset) in plant.assets.iter().enumerate() {
            let Some(rule) = &asset.life else { continue };
            let means: Option<Vec<f64>> = rule
                .inputs
                .iter()
                .map(|&c| table.get(asset.channels[c].slot, Feature::Mean))
                .collect();
            let Some(means) = means else { continue };
            let st = &mut self.state[ai];
            if st.sums.len() != means.len() {
                *st = LifeState { sums: vec![0.0; means.len()], ..LifeState::default() };
            }
            let first = *st.first.get_or_insert(now);
            if st.count < rule.baseline {
                st.sums.iter_mut().zip(&means).for_each(|(s, m)| *s += m);
                st.count += 1;
                self.changed[ai] = true;
            }
            let mut inputs: Vec<f64> =
                means.iter().zip(&st.sums).map(|(m, s)| m - s / st.count as f64).collect();
            inputs.push((now - first) as f64 / HOUR);
            let hours_left = rule.model.as_ref().and_then(|m| m.predict(&inputs));
            let learned = st.count >= rule.baseline;
            if let Some(log) = self.log.as_mut() {
                log[ai].push(LifeRecord { at: now, inputs: inputs.clone(), hours_left });
            }
            let Some(left) = hours_left.filter(|_| learned) else { continue };
            let left_ms = (left * HOUR) as Millis;
            if left_ms > rule.horizon {
                continue;
            }
            out.push(finding(ai, asset, rule, &inputs, left, now));
        }
    }
}

/// The predicted failure, with the inputs that moved most from the
/// asset's own baseline as its evidence.
fn finding(
    ai: usize,
    asset: &AssetInfo,
    rule: &LifeRule,
    inputs: &[f64],
    left: f64,
    now: Millis,
) -> Finding {
    let failure = now + (left * HOUR) as Millis;
    let due = failure - rule.lead;
    let mut moved: Vec<(f64, &str)> = Vec::new();
    if let Some(m) = &rule.model {
        for (j, &c) in rule.inputs.iter().enumerate() {
            let z = (inputs[j] - m.scaler.mean[j]) / m.scaler.std[j];
            moved.push((z, &asset.channels[c].name));
        }
    }
    moved.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    let top: Vec<String> = moved.iter().take(3).map(|(z, n)| format!("{n} {z:+.1}σ")).collect();
    let machines = rule.model.as_ref().map_or(0, |m| m.training.machines);
    let day = |t: Millis| to_datetime(t).format("%Y-%m-%d %H:%M").to_string();
    Finding {
        asset: ai,
        failure_mode: rule.failure_mode,
        // No time left to plan before the lead: do it now.
        severity: if due <= now { Severity::Critical } else { Severity::Alarm },
        evidence: Evidence {
            channel: "life_model".into(),
            feature: "hours_left".into(),
            value: left,
            limit: Some(rule.horizon as f64 / HOUR),
            unit: "h".into(),
            zone: None,
            since: to_datetime(now),
            note: format!(
                "remaining-life model (SVR trained on {machines} run-to-failure histories) \
                    predicts failure in {left:.0} h, around {}; moved most from this machine's \
                    own baseline: {}",
                day(failure),
                top.join(", ")
            ),
            due_by: Some(to_datetime(due)),
        },
    }
}
