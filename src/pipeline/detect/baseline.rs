//! The learned normal: each asset either uses a model trained with `hums
//! train` or learns its own from its first rows of running (auto-baseline),
//! then judges every evaluation's feature vector against it. Assets report
//! "learning" until their model is fitted. Live, the fit runs on a thread of
//! its own so ingestion never waits for it; replays fit inline, so they are
//! deterministic.

use super::Finding;
use crate::common::types::{to_datetime, Evidence, Millis, Severity};
use crate::config::schema::FaultDirection;
use crate::pipeline::features::FeatureTable;
use crate::pipeline::models::{Judgement, Model, ModelError};
use crate::pipeline::plant::{AssetInfo, BaselineRule, Plant};
use crate::pipeline::window::Window;
use std::sync::mpsc;
use std::sync::Arc;

/// Fewest feature vectors a fit is tried on.
const MIN_ROWS: usize = 8;

/// A model judges a stream only while its samples per window stay within
/// this factor of its training's (1.5: no fewer than two thirds; no more
/// than one and a half times, unless its features only get steadier with
/// more samples). Features such as a window's mean are spread by the number
/// of samples in it, so a model trained at one rate judges a sparser stream
/// wrongly.
pub const RATE_TOLERANCE: f64 = 1.5;

/// Full-window evaluations whose sample counts are averaged before a rate
/// is compared with a model's; a model that records its rate judges
/// nothing before (counts barely vary from one window to the next).
const RATE_EVALUATIONS: u64 = 6;

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
    /// Samples per window the inputs have been getting.
    rate: Rate,
    /// Rows the inputs had received when learning (re)started.
    seen_from: u64,
}

/// Samples per window of an asset's inputs, over full windows only.
#[derive(Debug, Default)]
struct Rate {
    /// Moving average of recent evaluations.
    recent: f64,
    /// Evaluations since the average was last reset.
    evaluations: u64,
    /// Sum over the evaluations since learning (re)started.
    sum: f64,
}

impl Rate {
    fn observe(&mut self, count: f64) {
        self.evaluations += 1;
        let alpha = (1.0 / self.evaluations as f64).max(0.05);
        self.recent += alpha * (count - self.recent);
        self.sum += count;
    }

    /// The mean since learning (re)started, if any evaluation was counted.
    fn mean(&self) -> Option<f64> {
        (self.evaluations > 0).then(|| self.sum / self.evaluations as f64)
    }

    /// The recent rate, once enough evaluations were counted, when it is
    /// outside the tolerance of `trained`; a denser stream only counts when
    /// not `denser_ok`.
    fn differs_from(&self, trained: f64, denser_ok: bool) -> Option<f64> {
        let r = self.recent;
        (self.known() && other_rate(r, trained, denser_ok)).then_some(r)
    }

    /// Whether enough full-window evaluations were counted to tell the rate.
    fn known(&self) -> bool {
        self.evaluations >= RATE_EVALUATIONS
    }
}

/// Whether a stream at `rate` samples per window is not one a model trained
/// at `trained` may judge (see [`RATE_TOLERANCE`]).
fn other_rate(rate: f64, trained: f64, denser_ok: bool) -> bool {
    let denser = rate > trained * RATE_TOLERANCE && !denser_ok;
    trained > 0.0 && (denser || rate * RATE_TOLERANCE < trained)
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
                    rate: Rate::default(),
                    seen_from: 0,
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

    /// Mean samples per window of the asset's inputs since it last began
    /// learning (over full windows).
    pub fn samples_per_window(&self, asset: usize) -> Option<f64> {
        self.state.get(asset)?.as_ref()?.rate.mean()
    }

    /// The asset's learned level of one input (`channel.feature`): its
    /// fitted model's mean, once fitted.
    pub fn level(&self, asset: usize, name: &str) -> Option<f64> {
        let Some(Some(AssetState { state: State::Fitted { model, .. }, .. })) =
            self.state.get(asset)
        else {
            return None;
        };
        let k = model.features.iter().position(|f| f == name)?;
        model.scaler.mean.get(k).copied()
    }

    /// Uses a model saved by an earlier run, if it was fitted for the same
    /// features; returns whether it was taken.
    pub fn restore(&mut self, plant: &Plant, asset: usize, model: Model) -> bool {
        let (Some(Some(st)), Some(rule)) =
            (self.state.get_mut(asset), plant.assets[asset].baseline.as_ref())
        else {
            return false;
        };
        // With a model file, only a normal learned because the stream's rate
        // made the file's model refuse it is taken back.
        let learned_for_rate = rule.model.as_ref().is_none_or(|shipped| {
            let (Some(ours), Some(theirs)) =
                (model.training.samples_per_window, shipped.training.samples_per_window)
            else {
                return false;
            };
            other_rate(ours, theirs, denser_is_safe(&shipped.features))
        });
        if model.features != rule.names
            || model.config_hash != rule.config_hash
            || !learned_for_rate
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
            let partial =
                rule.inputs.iter().any(|&(c, _)| !windows[asset.channels[c].slot].full(now));
            if partial {
                // Just started, or the data just resumed after a gap: nothing
                // is learned from or judged on a window that is not full yet,
                // and no drift is followed across the gap.
                st.since = None;
                st.adapted_at = None;
                continue;
            }
            let vector = rule.vector(asset, table);
            if let Some(count) = samples_per_window(rule, asset, windows, now) {
                st.rate.observe(count);
            }
            st.refuse_other_rate(&asset.id, rule, plant, ai, windows, now);
            if matches!(st.state, State::Learning { .. }) {
                let samples = seen_by(rule, plant, ai, windows, now).saturating_sub(st.seen_from);
                if !st.learn(rule, samples, vector.as_deref(), now, self.background) {
                    continue;
                }
                // Inline fits land at once, below.
            }
            if matches!(st.state, State::Fitting { .. }) {
                st.land_fit(&asset.id, now);
                continue; // the evaluation that fits is not judged
            }
            if st.rate_unknown() {
                continue;
            }
            let judged = st.judge(asset, rule, vector, now, &mut scores[ai]);
            if let Some((failure_mode, severity, evidence)) = judged {
                out.push(Finding { asset: ai, failure_mode, severity, evidence });
            }
        }
    }
}

impl AssetState {
    /// A fitted model that records its training rate judges nothing until
    /// the stream's rate is known.
    fn rate_unknown(&self) -> bool {
        let recorded = matches!(&self.state, State::Fitted { model, .. }
            if model.training.samples_per_window.is_some());
        recorded && !self.rate.known()
    }

    /// A fitted model trained at another sample rate than the stream's is
    /// refused: a warning names both rates, and the asset learns its own
    /// normal at the rate it gets instead of raising orders.
    fn refuse_other_rate(
        &mut self,
        asset: &str,
        rule: &BaselineRule,
        plant: &Plant,
        ai: usize,
        windows: &[Window],
        now: Millis,
    ) {
        let State::Fitted { model, .. } = &self.state else { return };
        let Some(trained) = model.training.samples_per_window else { return };
        let Some(recent) = self.rate.differs_from(trained, denser_is_safe(&model.features)) else {
            return;
        };
        tracing::warn!(
            asset = %asset,
            trained_samples_per_window = trained,
            samples_per_window = recent,
            tolerance = RATE_TOLERANCE,
            "the stream's sample rate is not the one the baseline model was trained at: its \
                windows hold {recent:.1} samples against {trained:.1}, outside a factor of \
                {RATE_TOLERANCE}; learning this asset's own normal at its rate instead (train \
                a model on data at this rate, or set the source's rate to the training's)"
        );
        self.seen_from = seen_by(rule, plant, ai, windows, now);
        self.cap = rule.samples;
        self.rate = Rate::default();
        self.since = None;
        self.state = State::Learning { first: None, seen: 0, rows: Vec::new(), from: None };
    }

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
            Ok(mut model) => {
                model.training.samples_per_window = self.rate.mean();
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
    /// follows drift, and gives the failure mode, severity and evidence of a
    /// departure. Only departures the rule's directions call faults raise
    /// its failure mode; one the other way raises the opposite mode, if any.
    fn judge(
        &mut self,
        asset: &AssetInfo,
        rule: &BaselineRule,
        vector: Option<Vec<f64>>,
        now: Millis,
        score: &mut f64,
    ) -> Option<(usize, Severity, Evidence)> {
        let State::Fitted { model, .. } = &mut self.state else { return None };
        let Some(v) = vector else {
            // Incomplete data: judge nothing, and follow no drift across the gap.
            self.since = None;
            self.adapted_at = None;
            return None;
        };
        let all = model.judge(&v);
        let faults = faults_only(model, rule, &v).map_or_else(|| all.clone(), |m| model.judge(&m));
        let moved = departure(model, rule, &faults, &v);
        let tripped = match moved {
            Some(Move::Fault) => Some((rule.failure_mode, faults.clone())),
            _ => match (departure(model, rule, &all, &v), rule.opposite_failure_mode) {
                (Some(Move::Opposite), Some(fm)) => Some((fm, all.clone())),
                _ => None,
            },
        };
        // A move the rule calls no fault does not count as anomalous; one
        // too small to act on (min_change) still shows in the score.
        *score = score.max(match moved {
            Some(Move::Opposite) => faults.score.min(0.49),
            _ => faults.score,
        });
        if let (Some(tau), true) = (rule.adapt, rule.adapt_in_departures) {
            let dt = self.adapted_at.map_or(0, |t| now - t).max(0);
            Arc::make_mut(model).adapt(&v, dt as f64, tau as f64);
            self.adapted_at = Some(now);
        }
        let Some((failure_mode, j)) = tripped else {
            // Inside normal and no departure under way: follow slow drift. A
            // departure that is no fault is not followed either.
            let follow = (rule.adapt, self.since, rule.adapt_in_departures, all.x < 1.0);
            if let (Some(tau), None, false, true) = follow {
                let dt = self.adapted_at.map_or(0, |t| now - t).max(0);
                Arc::make_mut(model).adapt(&v, dt as f64, tau as f64);
            }
            self.adapted_at = (all.x < 1.0).then_some(now);
            self.since = None;
            return None;
        };
        // A move the other way raises its mode at that mode's own priority.
        let severity = if j.x >= 2.0 && failure_mode == rule.failure_mode {
            Severity::Critical
        } else {
            Severity::Alarm
        };
        if !rule.adapt_in_departures {
            self.adapted_at = None;
        }
        let since = *self.since.get_or_insert(now);
        Some((failure_mode, severity, evidence(asset, rule, model, &j, &v, since)))
    }
}

/// Which way the feature that tripped moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// The way the rule calls a fault.
    Fault,
    /// The other way.
    Opposite,
}

/// For a per-feature model, the vector with every move that is no fault
/// pulled back to normal, so only faults can trip it; `None` when every
/// input counts both ways or the model is multivariate (its top
/// contributor's direction is judged instead).
fn faults_only(model: &Model, rule: &BaselineRule, v: &[f64]) -> Option<Vec<f64>> {
    let per_feature = model.params_kind() == crate::config::schema::ModelKind::Zscore;
    if !per_feature || rule.directions.iter().all(|d| *d == FaultDirection::Both) {
        return None;
    }
    let mean = &model.scaler.mean;
    Some(
        v.iter()
            .enumerate()
            .map(|(k, &x)| {
                let dir = rule.directions.get(k).copied().unwrap_or(FaultDirection::Both);
                if direction_of(x - mean[k], dir) == Move::Fault {
                    x
                } else {
                    mean[k]
                }
            })
            .collect(),
    )
}

fn direction_of(delta: f64, dir: FaultDirection) -> Move {
    match dir {
        FaultDirection::Both => Move::Fault,
        FaultDirection::Rising if delta >= 0.0 => Move::Fault,
        FaultDirection::Falling if delta <= 0.0 => Move::Fault,
        _ => Move::Opposite,
    }
}

/// Whether a judgement is a departure, and which way its top contributor
/// moved: `None` inside the control limit, or when that move is smaller
/// than the rule's `min_change` share of the learned level.
fn departure(model: &Model, rule: &BaselineRule, j: &Judgement, v: &[f64]) -> Option<Move> {
    if j.x < 1.0 {
        return None;
    }
    let top = j.contributions.first().map_or(0, |c| c.0);
    let (x, mean) = (*v.get(top)?, *model.scaler.mean.get(top)?);
    let delta = x - mean;
    if delta.abs() < rule.min_change * mean.abs() {
        return None;
    }
    Some(direction_of(delta, rule.directions.get(top).copied().unwrap_or(FaultDirection::Both)))
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
    let change = if mean.abs() > 1e-12 {
        format!(", {:+.1} %", (v[top] - mean) / mean.abs() * 100.0)
    } else {
        String::new()
    };
    Evidence {
        channel: ch.name.to_string(),
        feature: f.name().into(),
        value: v[top],
        limit: None,
        unit: ch.unit.clone(),
        zone: None,
        since: to_datetime(since),
        note: format!(
            "{} {:.4} {} against its learned normal {mean:.4} ± {std:.4} ({:+.1} σ{change}); \
                {:?} {} at {:.2}× its control limit; largest contributions: {}",
            rule.names[top],
            v[top],
            ch.unit,
            (v[top] - mean) / std,
            model.params_kind(),
            j.statistic,
            j.x,
            who.join(", "),
        ),
        due_by: None,
    }
}

/// Whether a denser stream than the training's only narrows the spread of
/// these features (`channel.feature` names) without moving them: true of
/// means, RMS, spreads and slopes, whose estimates only get better with more
/// samples; not of extremes (min, max, peak-to-peak, crest factor), which
/// grow with every extra sample, nor of kurtosis. A sparser stream widens
/// every feature's spread and is always refused.
fn denser_is_safe(features: &[String]) -> bool {
    const STEADY: [&str; 5] = ["mean", "rms", "std", "slope", "rate_of_change"];
    features.iter().all(|f| f.rsplit_once('.').is_some_and(|(_, x)| STEADY.contains(&x)))
}

/// The mean number of samples in the asset's input windows at `now`, if
/// every one of them holds a whole span of running.
fn samples_per_window(
    rule: &BaselineRule,
    asset: &AssetInfo,
    windows: &[Window],
    now: Millis,
) -> Option<f64> {
    let mut sum = 0usize;
    for &(c, _) in &rule.inputs {
        let w = &windows[asset.channels[c].slot];
        if !w.full(now) {
            return None;
        }
        sum += w.count_at(now);
    }
    (!rule.inputs.is_empty()).then(|| sum as f64 / rule.inputs.len() as f64)
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
