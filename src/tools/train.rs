//! `hums train`: fits an asset class's (or one asset's) learned model on
//! history files, with exactly the features the pipeline computes online (the
//! history is replayed through the same pipeline and each evaluation's input
//! vector is kept), and writes the model file. With `--life`, it fits the
//! class's remaining-life model on run-to-failure histories instead.

use crate::common::types::{to_datetime, Millis};
use crate::config::Config;
use crate::pipeline::models::files::ModelFiles;
use crate::pipeline::models::life::LifeModel;
use crate::pipeline::models::{Model, ModelError};
use crate::tools::replay::{replay_file, ReplayError};
use std::path::{Path, PathBuf};

/// Which assets' history trains the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Class(String),
    Asset(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Replay(#[from] ReplayError),
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("{0}")]
    Config(String),
    #[error("writing {0}: {1}")]
    Output(PathBuf, std::io::Error),
}

/// What a training run did.
#[derive(Debug, Clone)]
pub struct Trained {
    pub model: Model,
    /// Assets whose history was used, with the vectors each gave.
    pub assets: Vec<(String, usize)>,
}

/// Fits the model and writes it to `out` as JSON.
pub fn train(
    cfg: &Config,
    inputs: &[PathBuf],
    target: &Target,
    out: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<Trained, TrainError> {
    let class = class_of(cfg, target)?;
    if cfg.classes.get(&class).and_then(|c| c.baseline.as_ref()).is_none() {
        return Err(TrainError::Config(format!(
            "class {class:?} has no [classes.{class}.baseline] saying which features and model to \
                fit"
        )));
    }
    let mut rows = Vec::new();
    let mut span: (Option<Millis>, Option<Millis>) = (None, None);
    let mut assets = Vec::new();
    let mut rule = None;
    let mut rates = (0.0, 0usize);
    for path in inputs {
        let run = replay_file(cfg, &ModelFiles::default(), path, true, progress)?;
        for (ai, a) in run.plant.assets.iter().enumerate() {
            let wanted = match target {
                Target::Class(c) => &a.class == c,
                Target::Asset(id) => &*a.id == id,
            };
            let Some(r) = a.baseline.as_ref().filter(|_| wanted) else { continue };
            let vectors = &run.assets[ai].vectors;
            assets.push((a.id.to_string(), vectors.len()));
            if let Some(r) = run.assets[ai].samples_per_window {
                rates = (rates.0 + r * vectors.len() as f64, rates.1 + vectors.len());
            }
            for (t, v) in vectors {
                span = (
                    Some(span.0.map_or(*t, |s| s.min(*t))),
                    Some(span.1.map_or(*t, |e| e.max(*t))),
                );
                rows.push(v.clone());
            }
            rule.get_or_insert_with(|| r.clone());
        }
    }
    let Some(rule) = rule else {
        return Err(TrainError::Config(format!(
            "no asset of class {class:?} (or the asset asked for) in the inputs"
        )));
    };
    let mut model = Model::fit(
        &rule.fit,
        rule.names.clone(),
        &rows,
        (span.0.map(to_datetime), span.1.map(to_datetime)),
        rule.config_hash.clone(),
    )?;
    model.training.samples_per_window = (rates.1 > 0).then(|| rates.0 / rates.1 as f64);
    write_json(out, &model)?;
    Ok(Trained { model, assets })
}

/// What a remaining-life training run did.
#[derive(Debug, Clone)]
pub struct TrainedLife {
    pub model: LifeModel,
    /// Machines whose history was used, with their life in hours.
    pub machines: Vec<(String, f64)>,
    /// RMSE in hours on the training rows against the capped life left
    /// (in-sample: `hums eval cmapss` measures held-out machines).
    pub fit_rmse: f64,
}

/// Fits a class's remaining-life model on run-to-failure histories: each
/// input file ends when its assets failed, so every evaluation's label is
/// the time from it to the file's last row. Writes the model to `out`.
pub fn train_life(
    cfg: &Config,
    inputs: &[PathBuf],
    target: &Target,
    out: &Path,
    progress: &dyn Fn(u64, u64),
) -> Result<TrainedLife, TrainError> {
    let class = class_of(cfg, target)?;
    let Some(life) = cfg.classes.get(&class).and_then(|c| c.life.as_ref()) else {
        return Err(TrainError::Config(format!(
            "class {class:?} has no [classes.{class}.life] saying which channels the model reads"
        )));
    };
    // The model being trained is not read while its inputs are recorded.
    let mut cfg = cfg.clone();
    if let Some(l) = cfg.classes.get_mut(&class).and_then(|c| c.life.as_mut()) {
        l.model_file = None;
    }
    let mut rows = Vec::new();
    let mut span: (Option<Millis>, Option<Millis>) = (None, None);
    let mut machines = Vec::new();
    let mut rule = None;
    for path in inputs {
        let run = replay_file(&cfg, &ModelFiles::default(), path, false, progress)?;
        let Some(&end) = run.table.timestamps.last() else { continue };
        for (ai, a) in run.plant.assets.iter().enumerate() {
            let wanted = match target {
                Target::Class(c) => &a.class == c,
                Target::Asset(id) => &*a.id == id,
            };
            let Some(r) = a.life.as_ref().filter(|_| wanted) else { continue };
            let records = &run.assets[ai].life;
            let Some(first) = records.first() else { continue };
            machines.push((a.id.to_string(), (end - first.at) as f64 / 3_600_000.0));
            span = (
                Some(span.0.map_or(first.at, |s| s.min(first.at))),
                Some(span.1.map_or(end, |e| e.max(end))),
            );
            for rec in records {
                rows.push((rec.inputs.clone(), (end - rec.at) as f64 / 3_600_000.0));
            }
            rule.get_or_insert_with(|| r.clone());
        }
    }
    let Some(rule) = rule else {
        return Err(TrainError::Config(format!(
            "no asset of class {class:?} (or the asset asked for) in the inputs"
        )));
    };
    let model = LifeModel::fit(
        rule.names.clone(),
        life.baseline,
        life.cap.as_secs_f64() / 3600.0,
        &rows,
        machines.len(),
        (span.0.map(to_datetime), span.1.map(to_datetime)),
        rule.config_hash.clone(),
    )?;
    let cap = model.cap_hours;
    let errors: Vec<f64> = rows
        .iter()
        .filter_map(|(x, left)| Some((model.predict(x)? - left.min(cap)).powi(2)))
        .collect();
    let fit_rmse = (errors.iter().sum::<f64>() / errors.len().max(1) as f64).sqrt();
    write_json(out, &model)?;
    Ok(TrainedLife { model, machines, fit_rmse })
}

/// The class a training target belongs to.
fn class_of(cfg: &Config, target: &Target) -> Result<String, TrainError> {
    match target {
        Target::Class(c) => Ok(c.clone()),
        Target::Asset(id) => cfg
            .assets
            .iter()
            .find(|a| &a.id == id)
            .map(|a| a.class.clone())
            .ok_or_else(|| TrainError::Config(format!("no asset {id:?} in the configuration"))),
    }
}

/// Writes a model file as pretty JSON, creating its directory.
fn write_json(out: &Path, model: &impl serde::Serialize) -> Result<(), TrainError> {
    let json = serde_json::to_string_pretty(model)
        .map_err(|e| TrainError::Output(out.into(), e.into()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Output(out.into(), e))?;
    }
    std::fs::write(out, json + "\n").map_err(|e| TrainError::Output(out.into(), e))
}
