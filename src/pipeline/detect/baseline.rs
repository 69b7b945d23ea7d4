//! The learned normal: each asset either uses a model trained with `hums
//! train` or learns its own from its first rows of running (auto-baseline),
//! then judges every evaluation's feature vector against it. Assets report
//! "learning" until their model is fitted. Live, the fit runs on a thread of
//! its own so ingestion never waits for it; replays fit inline, so they are
//! deterministic.

use super::Finding;
use crate::common::types::{to_datetime, Evidence, Millis, Severity};
use crate::pipeline::features::FeatureTable;
use crate::pipeline::models::{Judgement, Model, ModelError};
use crate::pipeline::plant::{AssetInfo, BaselineRule, Plant};
use crate::pipeline::window::Window;
use std::sync::mpsc;
use std::sync::Arc;

/// Fewest feature vectors a fit is tried on.
const MIN_ROWS: usize = 8;

/// Where an asset's baseline stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// The asset has no baseline configured.
    Off,
    /// Still learning; `samples` is the most rows any judged channel had
    /// received at the last evaluation, `of` how many it learns from.
    Learning { samples: u64, of: u64 },
    /// Judging with a model fitted at this evaluation (which is not judged
    /// itself); for a shipped model `Millis::MIN`, for a restored one the end
    /// of its training span.
    Fitted { at: Millis },
}

#[derive(Debug)]
enum State {
    Learning {
        first: Option<Millis>,
        seen: u64,
        rows: Vec<Vec<f64>>,
        from: Option<Millis>,
    },
    /// A fit is running; `rows` are kept so a failed fit can learn on.
    Fitting {
        seen: u64,
        result: mpsc::Receiver<Result<Model, ModelError>>,
        from: Option<Millis>,
        rows: Vec<Vec<f64>>,
    },
    Fitted {
        at: Millis,
        model: Arc<Model>,
    },
}

#[derive(Debug)]
struct AssetState {
    /// Rows to learn from (the rule's, or fewer for a short replay file).
    cap: u64,
    state: State,
    /// When the current departure began.
    since: Option<Millis>,
    /// Fitted since the last [`BaselineDetector::take_fitted`].
    fresh: bool,
    /// Last evaluation that followed drift (none while departed).
    adapted_at: Option<Millis>,
}

/// Baseline state of every asset.
#[derive(Debug)]
pub struct BaselineDetector {
    state: Vec<Option<AssetState>>,
    background: bool,
}

impl BaselineDetector {
    /// Fits inline until [`BaselineDetector::fit_in_background`] is called.
    pub fn new(plant: &Plant) -> Self {
        let state = plant
            .assets
            .iter()
            .map(|a| {
                a.baseline.as_ref().map(|r| AssetState {
                    cap: r.samples,
                    state: match &r.model {
                        Some(m) => State::Fitted { at: Millis::MIN, model: m.clone() },
                        None => {
                            State::Learning { first: None, seen: 0, rows: Vec::new(), from: None }
                        }
                    },
                    since: None,
                    fresh: false,
                    adapted_at: None,
                })
            })
            .collect();
        Self { state, background: false }
    }

    /// Fits on a thread of its own from now on (live runs), so a slow fit
    /// never holds up an evaluation.
    pub fn fit_in_background(&mut self) {
        self.background = true;
    }

    /// Learns from at most `samples` rows (e.g. a share of a replay file).
    pub fn limit_samples(&mut self, asset: usize, samples: u64) {
        if let Some(Some(st)) = self.state.get_mut(asset) {
            st.cap = st.cap.min(samples.max(2));
        }
    }

    /// Where an asset's baseline stands.
    pub fn phase(&self, asset: usize) -> Phase {
        match self.state.get(asset) {
            Some(Some(AssetState { state: State::Fitted { at, .. }, .. })) => {
                Phase::Fitted { at: *at }
            }
            Some(Some(AssetState {
                state: State::Learning { seen, .. } | State::Fitting { seen, .. },
                cap,
                ..
            })) => Phase::Learning { samples: *seen, of: *cap },
            _ => Phase::Off,
        }
    }

    /// Uses a model saved by an earlier run, if it was fitted for the same
    /// features; returns whether it was taken.
    pub fn restore(&mut self, plant: &Plant, asset: usize, model: Model) -> bool {
        let (Some(Some(st)), Some(rule)) =
            (self.state.get_mut(asset), plant.assets[asset].baseline.as_ref())
        else {
            return false;
        };
        if model.features != rule.names
            || model.config_hash != rule.config_hash
            || rule.model.is_some()
            || model.validate().is_err()
        {
            return false;
        }
        st.state = State::Fitted {
            at: model.training.to.map_or(Millis::MIN, |t| t.timestamp_millis()),
            model: Arc::new(model),
        };
        true
    }

    /// Models fitted since the last call, by asset, for saving.
    pub fn take_fitted(&mut self) -> Vec<(usize, Arc<Model>)> {
        let mut out = Vec::new();
        for (ai, st) in self.state.iter_mut().enumerate() {
            if let Some(st @ AssetState { fresh: true, .. }) = st {
                st.fresh = false;
                if let State::Fitted { model, .. } = &st.state {
                    out.push((ai, model.clone()));
                }
            }
        }
        out
    }

    /// Learns, fits or judges every asset with a baseline at one evaluation,
    /// raising each asset's score and adding a finding per departure.
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
            let vector = rule.vector(asset, table);
            if matches!(st.state, State::Learning { .. }) {
                let samples = seen_by(rule, plant, ai, windows, now);
                if !st.learn(rule, samples, vector.as_deref(), now, self.background) {
                    continue;
                }
                // Inline fits land at once, below.
            }
            if matches!(st.state, State::Fitting { .. }) {
                st.land_fit(&asset.id, now);
                continue; // the evaluation that fits is not judged
            }
            if let Some((severity, evidence)) = st.judge(asset, rule, vector, now, &mut scores[ai])
            {
                let failure_mode = rule.failure_mode;
                out.push(Finding { asset: ai, failure_mode, severity, evidence });
            }
        }
    }
}

impl AssetState {
    /// Keeps one evaluation's row while learning (`samples` rows seen so
    /// far); once done, starts the fit. Returns whether it did.
    fn learn(
        &mut self,
        rule: &BaselineRule,
        samples: u64,
        vector: Option<&[f64]>,
        now: Millis,
        background: bool,
    ) -> bool {
        let cap = self.cap;
        let State::Learning { first, seen, rows, from } = &mut self.state else { return false };
        *seen = samples;
        if samples == 0 {
            return false;
        }
        let first = *first.get_or_insert(now);
        let done = samples >= cap || rule.duration.is_some_and(|d| now - first >= d);
        // Rows up to the cap; past it only while there are too few to fit
        // (a channel that was silent, or features without a value yet).
        if let Some(v) = vector.filter(|_| samples <= cap || rows.len() < MIN_ROWS) {
            from.get_or_insert(now);
            rows.push(v.to_vec());
        }
        if !(done && rows.len() >= MIN_ROWS) {
            return false;
        }
        let kept = rows.clone();
        let result = start_fit(rule, std::mem::take(rows), *from, now, background);
        self.state = State::Fitting { seen: samples, result, from: *from, rows: kept };
        true
    }

    /// Takes a finished fit: judges with its model from the next evaluation
    /// on, or after a failure learns on. Does nothing while it still runs.
    fn land_fit(&mut self, asset: &str, now: Millis) {
        let State::Fitting { result, seen, from, rows } = &mut self.state else { return };
        let outcome = match result.try_recv() {
            Ok(Ok(model)) => Ok(model),
            Ok(Err(e)) => Err(e.to_string()),
            // Still fitting: judged from the next evaluation on.
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                Err("the fitting thread ended without a result".into())
            }
        };
        let (seen, from, rows) = (*seen, *from, std::mem::take(rows));
        match outcome {
            Ok(model) => {
                self.state = State::Fitted { at: now, model: Arc::new(model) };
                self.fresh = true;
            }
            Err(e) => {
                // Learn on from the rows so far, for twice as long.
                tracing::warn!(asset = %asset, error = %e, "baseline fit failed; still learning");
                self.cap = self.cap.saturating_mul(2);
                self.state = State::Learning { first: Some(now), seen, rows, from };
            }
        }
    }

    /// Judges one evaluation's vector with the fitted model: raises `score`,
    /// follows drift, and gives the severity and evidence of a departure.
    fn judge(
        &mut self,
        asset: &AssetInfo,
        rule: &BaselineRule,
        vector: Option<Vec<f64>>,
        now: Millis,
        score: &mut f64,
    ) -> Option<(Severity, Evidence)> {
        let State::Fitted { model, .. } = &mut self.state else { return None };
        let Some(v) = vector else {
            // Incomplete data: judge nothing, and follow no drift across the gap.
            self.since = None;
            self.adapted_at = None;
            return None;
        };
        let j = model.judge(&v);
        *score = score.max(j.score);
        if let (Some(tau), true) = (rule.adapt, rule.adapt_in_departures) {
            let dt = self.adapted_at.map_or(0, |t| now - t).max(0);
            Arc::make_mut(model).adapt(&v, dt as f64, tau as f64);
            self.adapted_at = Some(now);
        }
        let severity = match j.x {
            x if x >= 2.0 => Severity::Critical,
            x if x >= 1.0 => Severity::Alarm,
            _ => {
                // Inside normal and no departure under way: follow slow drift.
                let follow = (rule.adapt, self.since, rule.adapt_in_departures);
                if let (Some(tau), None, false) = follow {
                    let dt = self.adapted_at.map_or(0, |t| now - t).max(0);
                    Arc::make_mut(model).adapt(&v, dt as f64, tau as f64);
                }
                self.adapted_at = Some(now);
                self.since = None;
                return None;
            }
        };
        if !rule.adapt_in_departures {
            self.adapted_at = None;
        }
        let since = *self.since.get_or_insert(now);
        Some((severity, evidence(asset, rule, model, &j, &v, since)))
    }
}

/// Fits a model on `rows` (gathered from `from` to `now`): on a thread of
/// its own in the background, else inline. The receiver gets the result.
fn start_fit(
    rule: &BaselineRule,
    rows: Vec<Vec<f64>>,
    from: Option<Millis>,
    now: Millis,
    background: bool,
) -> mpsc::Receiver<Result<Model, ModelError>> {
    let span = (from.map(to_datetime), Some(to_datetime(now)));
    let (fit, names, hash) = (rule.fit.clone(), rule.names.clone(), rule.config_hash.clone());
    let job = move || Model::fit(&fit, names, &rows, span, hash);
    let (tx, rx) = mpsc::channel();
    if background {
        std::thread::spawn(move || {
            let _ = tx.send(job());
        });
    } else {
        let _ = tx.send(job());
    }
    rx
}

/// The evidence of a departure from normal: the input that contributed
/// most, and in the note the statistic and the largest contributions.
fn evidence(
    asset: &AssetInfo,
    rule: &BaselineRule,
    model: &Model,
    j: &Judgement,
    v: &[f64],
    since: Millis,
) -> Evidence {
    let top = j.contributions.first().map_or(0, |c| c.0);
    let (c, f) = rule.inputs[top];
    let ch = &asset.channels[c];
    let who: Vec<String> = j
        .contributions
        .iter()
        .take(3)
        .filter(|c| c.1 > 0.05)
        .map(|&(k, share)| format!("{} {:.0} %", rule.names[k], share * 100.0))
        .collect();
    let (mean, std) = (model.scaler.mean[top], model.scaler.std[top]);
    Evidence {
        channel: ch.name.to_string(),
        feature: f.name().into(),
        value: v[top],
        limit: None,
        unit: ch.unit.clone(),
        zone: None,
        since: to_datetime(since),
        note: format!(
            "{:?} {} at {:.2}× its control limit; largest contributions: {}; {} normal {:.4} ± \
                {:.4}",
            model.params_kind(),
            j.statistic,
            j.x,
            who.join(", "),
            rule.names[top],
            mean,
            std,
        ),
        due_by: None,
    }
}

/// The most rows any judged channel of the asset had received by `now`.
fn seen_by(
    rule: &BaselineRule,
    plant: &Plant,
    asset: usize,
    windows: &[Window],
    now: Millis,
) -> u64 {
    let a = &plant.assets[asset];
    rule.inputs
        .iter()
        .map(|&(c, _)| windows[a.channels[c].slot].pushed_until(now))
        .max()
        .unwrap_or(0)
}
