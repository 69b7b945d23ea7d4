//! C-MAPSS (NASA turbofan engines run to failure, `train_FD001.txt`): the
//! remaining-life model's error on engines held out by k-fold over units,
//! and how far ahead of each held-out engine's failure its first work order
//! comes. Each engine is written as one CSV (one row per cycle, one hour
//! per cycle) and goes through exactly the `hums train --life` and
//! `hums replay` code any history does.
//!
//! Error is measured as the published test set is: at cut-offs before the
//! failure (per held-out engine, `CUTOFFS` true lives drawn without
//! replacement from 5 to min(150, life − 30) cycles), against the true,
//! uncapped life left. The RMSE over every cycle against the life capped at
//! the model's cap is reported too, as most papers do.

use super::EvalError;
use crate::common::types::{Millis, WorkKind};
use crate::config::Config;
use crate::pipeline::models::files::ModelFiles;
use crate::store::outbox::Status;
use crate::tools::replay::{replay_file, FileRun};
use crate::tools::train::{train_life, Target};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Cut-offs per held-out engine.
pub const CUTOFFS: usize = 5;
/// Cycle 0 of every engine: 2000-01-01T00:00:00Z, in epoch seconds.
const EPOCH: i64 = 946_684_800;
const HOUR: f64 = 3_600_000.0;

/// The figures of one evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct CmapssResult {
    pub engines: usize,
    pub folds: usize,
    pub seed: u64,
    /// Predictions at cut-offs, and their error against the true life left (cycles).
    pub predictions: usize,
    pub rmse: f64,
    /// PHM08 score: Σ e^(−d/13) − 1 for early predictions (d < 0),
    /// e^(d/10) − 1 for late ones.
    pub phm08: f64,
    pub phm08_mean: f64,
    /// RMSE over every cycle against the life left capped at the model's cap.
    pub rmse_all_cycles: f64,
    pub per_fold: Vec<FoldResult>,
    pub per_engine: Vec<EngineResult>,
    /// Held-out engines whose first work order came before the failure.
    pub engines_with_order: usize,
    /// Median cycles from the first work order to the failure.
    pub median_lead: Option<f64>,
    /// Engines whose first order's due date lies before the failure.
    pub due_before_failure: usize,
}

/// One fold: the engines it held out and the error on them.
#[derive(Debug, Clone, Serialize)]
pub struct FoldResult {
    pub fold: usize,
    pub held_out: Vec<u32>,
    pub rmse: f64,
    pub phm08: f64,
}

/// One held-out engine.
#[derive(Debug, Clone, Serialize)]
pub struct EngineResult {
    pub unit: u32,
    /// Cycles it ran (its last cycle is the failure).
    pub life: u32,
    /// Cycles between its first work order and the failure.
    pub first_order_lead: Option<f64>,
    /// Cycles between that order's due date and the failure.
    pub due_lead: Option<f64>,
}

/// An engine's rows: (cycle, the 24 settings and sensors).
type Engine = Vec<(u32, Vec<f64>)>;

/// Reads `train_FD001.txt` (or the file `data` names) into engines by unit.
pub fn read(data: &Path) -> Result<BTreeMap<u32, Engine>, EvalError> {
    let path = if data.is_dir() { data.join("train_FD001.txt") } else { data.to_path_buf() };
    let text =
        std::fs::read_to_string(&path).map_err(|e| EvalError::Data(path.clone(), e.to_string()))?;
    let mut engines: BTreeMap<u32, Engine> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: String| EvalError::Data(path.clone(), format!("line {}: {what}", i + 1));
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 26 {
            return Err(bad(format!(
                "expected 26 fields (unit, cycle, 3 settings, 21 sensors), found {}",
                fields.len()
            )));
        }
        let unit: u32 = fields[0]
            .parse()
            .map_err(|_| bad(format!("unit {:?} is not a whole number", fields[0])))?;
        let cycle: u32 = fields[1]
            .parse()
            .map_err(|_| bad(format!("cycle {:?} is not a whole number", fields[1])))?;
        let values = fields[2..]
            .iter()
            .map(|f| f.parse::<f64>().map_err(|_| bad(format!("{f:?} is not a number"))))
            .collect::<Result<Vec<f64>, _>>()?;
        engines.entry(unit).or_default().push((cycle, values));
    }
    for e in engines.values_mut() {
        e.sort_by_key(|r| r.0);
    }
    if engines.is_empty() {
        return Err(EvalError::Data(path, "no engines in the file".into()));
    }
    Ok(engines)
}

/// Writes each engine as `dir/engine_NNN.csv`: a timestamp per cycle (one
/// hour apart), `setting1..3` and `s1..s21`. Returns the files by unit.
pub fn write_engines(
    engines: &BTreeMap<u32, Engine>,
    dir: &Path,
) -> Result<BTreeMap<u32, PathBuf>, EvalError> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::Data(dir.into(), e.to_string()))?;
    let mut files = BTreeMap::new();
    for (unit, rows) in engines {
        let path = dir.join(format!("engine_{unit:03}.csv"));
        let io = |e: std::io::Error| EvalError::Data(path.clone(), e.to_string());
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
        let sensors: Vec<String> = (1..=21).map(|i| format!("s{i}")).collect();
        writeln!(w, "timestamp,setting1,setting2,setting3,{}", sensors.join(",")).map_err(io)?;
        for (cycle, values) in rows {
            let v: Vec<String> = values.iter().map(f64::to_string).collect();
            writeln!(w, "{},{}", EPOCH + i64::from(*cycle) * 3600, v.join(",")).map_err(io)?;
        }
        w.flush().map_err(io)?;
        files.insert(*unit, path);
    }
    Ok(files)
}

/// A small deterministic generator (xorshift64*), so folds and cut-offs are
/// the same on every machine for a seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// The PHM08 score of one prediction error (predicted − true, cycles).
pub fn phm08(d: f64) -> f64 {
    if d < 0.0 {
        (-d / 13.0).exp() - 1.0
    } else {
        (d / 10.0).exp() - 1.0
    }
}

/// Trains on all but one fold and judges the held-out engines, fold by fold.
/// `cfg` is the C-MAPSS benchmark config (one asset template whose class has
/// a `life` section); engine files and fold models are written under `work`.
pub fn evaluate(
    cfg: &Config,
    data: &Path,
    work: &Path,
    folds: usize,
    seed: u64,
    progress: &dyn Fn(&str),
) -> Result<CmapssResult, EvalError> {
    let class = life_class(cfg, data)?;
    let engines = read(data)?;
    let files = write_engines(&engines, &work.join("engines"))?;
    let mut units: Vec<u32> = engines.keys().copied().collect();
    let folds = folds.clamp(2, units.len().max(2));
    Rng::new(seed).shuffle(&mut units);

    let bench = Bench { cfg, class, engines, files, work, seed };
    let mut tally = Tally::default();
    for fold in 0..folds {
        bench.run_fold(&units, fold, folds, &mut tally, progress)?;
    }
    Ok(tally.finish(bench.engines.len(), folds, seed))
}

/// The config's class with a `[life]` section (the one trained per fold).
fn life_class(cfg: &Config, data: &Path) -> Result<String, EvalError> {
    let found = cfg.classes.iter().find(|(_, c)| c.life.is_some()).map(|(n, _)| n.clone());
    let missing = "the config has no class with a [life] section";
    found.ok_or_else(|| EvalError::Data(data.into(), missing.into()))
}

/// The timestamp (ms) of an engine's `cycle`: one hour per cycle from [`EPOCH`].
fn cycle_at(cycle: u32) -> Millis {
    (EPOCH + i64::from(cycle) * 3600) * 1000
}

/// What every fold shares: the config, the engines and their files.
struct Bench<'a> {
    cfg: &'a Config,
    /// The class whose life model is trained.
    class: String,
    engines: BTreeMap<u32, Engine>,
    files: BTreeMap<u32, PathBuf>,
    work: &'a Path,
    seed: u64,
}

/// One fold's trained life model and the config that uses it.
struct FoldModel {
    cfg: Config,
    models: ModelFiles,
    /// The model's cap on the life left (hours).
    cap: f64,
}

/// The errors and engine results gathered over the folds.
#[derive(Default)]
struct Tally {
    /// Errors at the cut-offs (cycles).
    errors: Vec<f64>,
    /// Errors over every cycle against the capped life left.
    all_cycles: Vec<f64>,
    per_fold: Vec<FoldResult>,
    per_engine: Vec<EngineResult>,
}

impl Bench<'_> {
    /// Trains on every engine `fold` does not hold out, judges the ones it
    /// does and adds their figures to `tally`.
    fn run_fold(
        &self,
        units: &[u32],
        fold: usize,
        folds: usize,
        tally: &mut Tally,
        progress: &dyn Fn(&str),
    ) -> Result<(), EvalError> {
        let held: Vec<u32> = units.iter().skip(fold).step_by(folds).copied().collect();
        let train: Vec<PathBuf> =
            units.iter().filter(|u| !held.contains(u)).map(|u| self.files[u].clone()).collect();
        progress(&format!("fold {}/{folds}: training on {} engines", fold + 1, train.len()));
        let model = self.train_fold(fold, &train)?;
        progress(&format!("fold {}/{folds}: judging {} held-out engines", fold + 1, held.len()));
        let mut fold_errors = Vec::new();
        for &unit in &held {
            let engine =
                self.judge_engine(&model, unit, &mut tally.all_cycles, &mut fold_errors)?;
            tally.per_engine.push(engine);
        }
        tally.per_fold.push(FoldResult {
            fold,
            held_out: held,
            rmse: rmse(&fold_errors),
            phm08: fold_errors.iter().map(|&d| phm08(d)).sum(),
        });
        tally.errors.extend(fold_errors);
        Ok(())
    }

    /// Trains fold `fold`'s life model on `train` and loads it.
    fn train_fold(&self, fold: usize, train: &[PathBuf]) -> Result<FoldModel, EvalError> {
        let model_path = self.work.join("models").join(format!("fold{fold}.json"));
        let target = Target::Class(self.class.clone());
        let trained = train_life(self.cfg, train, &target, &model_path, &|_, _| {})
            .map_err(|e| EvalError::Data(model_path.clone(), e.to_string()))?;
        let cap = trained.model.cap_hours;
        let mut cfg = self.cfg.clone();
        if let Some(l) = cfg.classes.get_mut(&self.class).and_then(|c| c.life.as_mut()) {
            l.model_file = Some(model_path.display().to_string());
        }
        let models = ModelFiles::load(&cfg)
            .map_err(|e| EvalError::Data(model_path.clone(), e.to_string()))?;
        Ok(FoldModel { cfg, models, cap })
    }

    /// Replays held-out engine `unit` with the fold's model: pushes its error
    /// on every cycle to `all_cycles` and at its cut-offs to `fold_errors`.
    fn judge_engine(
        &self,
        model: &FoldModel,
        unit: u32,
        all_cycles: &mut Vec<f64>,
        fold_errors: &mut Vec<f64>,
    ) -> Result<EngineResult, EvalError> {
        let file = &self.files[&unit];
        let run = replay_file(&model.cfg, &model.models, file, false, &|_, _| {})
            .map_err(|e| EvalError::Data(file.clone(), e.to_string()))?;
        let life = self.engines[&unit].last().map_or(0, |r| r.0);
        let end = cycle_at(life);
        let predicted: BTreeMap<Millis, f64> = run
            .assets
            .iter()
            .flat_map(|a| a.life.iter())
            .filter_map(|r| Some((r.at, r.hours_left?)))
            .collect();
        for (&t, &p) in &predicted {
            let left = (end - t) as f64 / HOUR;
            all_cycles.push(p - left.min(model.cap));
        }
        fold_errors.extend(self.cutoff_errors(&predicted, unit, life));
        Ok(engine_result(&run, unit, life))
    }

    /// The errors at `unit`'s cut-offs (predicted − true life left, cycles).
    fn cutoff_errors(&self, predicted: &BTreeMap<Millis, f64>, unit: u32, life: u32) -> Vec<f64> {
        let mut errors = Vec::new();
        // Cut-offs as the test set makes them: at least 30 cycles seen.
        let hi = 150.min(life.saturating_sub(30));
        if hi >= 5 {
            let mut lives: Vec<u32> = (5..=hi).collect();
            let seed = self.seed.wrapping_mul(1000).wrapping_add(u64::from(unit));
            Rng::new(seed).shuffle(&mut lives);
            for &r in lives.iter().take(CUTOFFS) {
                if let Some(&p) = predicted.get(&cycle_at(life - r)) {
                    errors.push(p - f64::from(r));
                }
            }
        }
        errors
    }
}

/// A held-out engine's result: how far its first sent predicted-failure
/// order, and that order's due date, came before the failure.
fn engine_result(run: &FileRun, unit: u32, life: u32) -> EngineResult {
    let end = cycle_at(life);
    let first = run
        .orders
        .iter()
        .filter(|e| e.status != Status::Held && e.order.kind == WorkKind::PredictedFailure)
        .min_by_key(|e| e.order.detected_at);
    let lead = |t: chrono::DateTime<chrono::Utc>| (end - t.timestamp_millis()) as f64 / HOUR;
    EngineResult {
        unit,
        life,
        first_order_lead: first.map(|e| lead(e.order.detected_at)),
        due_lead: first.and_then(|e| e.order.due_by).map(lead),
    }
}

impl Tally {
    /// The evaluation's figures from everything gathered.
    fn finish(mut self, engines: usize, folds: usize, seed: u64) -> CmapssResult {
        self.per_engine.sort_by_key(|e| e.unit);
        let leads = self.per_engine.iter().filter_map(|e| e.first_order_lead);
        let mut leads: Vec<f64> = leads.filter(|&l| l > 0.0).collect();
        leads.sort_by(f64::total_cmp);
        let errors = &self.errors;
        let phm: f64 = errors.iter().map(|&d| phm08(d)).sum();
        let due_before_failure =
            self.per_engine.iter().filter(|e| e.due_lead.is_some_and(|d| d > 0.0)).count();
        CmapssResult {
            engines,
            folds,
            seed,
            predictions: errors.len(),
            rmse: rmse(errors),
            phm08: phm,
            phm08_mean: phm / errors.len().max(1) as f64,
            rmse_all_cycles: rmse(&self.all_cycles),
            engines_with_order: leads.len(),
            median_lead: (!leads.is_empty()).then(|| leads[leads.len() / 2]),
            due_before_failure,
            per_fold: self.per_fold,
            per_engine: self.per_engine,
        }
    }
}

fn rmse(errors: &[f64]) -> f64 {
    (errors.iter().map(|e| e * e).sum::<f64>() / errors.len().max(1) as f64).sqrt()
}
