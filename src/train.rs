//! `hums train`: fits an asset class's (or one asset's) learned model on
//! history files, with exactly the features the pipeline computes online (the
//! history is replayed through the same pipeline and each evaluation's input
//! vector is kept), and writes the model file.

use crate::config::Config;
use crate::model::{to_datetime, Millis};
use crate::models::{Model, ModelError};
use crate::replay::{replay_file, ReplayError};
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
    let class = match target {
        Target::Class(c) => c.clone(),
        Target::Asset(id) => cfg
            .assets
            .iter()
            .find(|a| &a.id == id)
            .map(|a| a.class.clone())
            .ok_or_else(|| TrainError::Config(format!("no asset {id:?} in the configuration")))?,
    };
    if cfg.classes.get(&class).and_then(|c| c.baseline.as_ref()).is_none() {
        return Err(TrainError::Config(format!(
            "class {class:?} has no [classes.{class}.baseline] saying which features and model to fit"
        )));
    }
    let mut rows = Vec::new();
    let mut span: (Option<Millis>, Option<Millis>) = (None, None);
    let mut assets = Vec::new();
    let mut rule = None;
    for path in inputs {
        let run = replay_file(cfg, path, true, progress)?;
        for (ai, a) in run.plant.assets.iter().enumerate() {
            let wanted = match target {
                Target::Class(c) => &a.class == c,
                Target::Asset(id) => &*a.id == id,
            };
            let Some(r) = a.baseline.as_ref().filter(|_| wanted) else { continue };
            let vectors = &run.assets[ai].vectors;
            assets.push((a.id.to_string(), vectors.len()));
            for (t, v) in vectors {
                span = (Some(span.0.map_or(*t, |s| s.min(*t))), Some(span.1.map_or(*t, |e| e.max(*t))));
                rows.push(v.clone());
            }
            rule.get_or_insert_with(|| r.clone());
        }
    }
    let Some(rule) = rule else {
        return Err(TrainError::Config(format!("no asset of class {class:?} (or the asset asked for) in the inputs")));
    };
    let model = Model::fit(
        &rule.fit,
        rule.names.clone(),
        &rows,
        (span.0.map(to_datetime), span.1.map(to_datetime)),
        rule.config_hash.clone(),
    )?;
    let json = serde_json::to_string_pretty(&model).map_err(|e| TrainError::Output(out.into(), e.into()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::Output(out.into(), e))?;
    }
    std::fs::write(out, json + "\n").map_err(|e| TrainError::Output(out.into(), e))?;
    Ok(Trained { model, assets })
}
