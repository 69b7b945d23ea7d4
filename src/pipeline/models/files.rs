//! The model files a configuration names, loaded and checked once: each must
//! have been trained on exactly the inputs its class computes now. Separate
//! from config validation so `hums train` can load a configuration whose model
//! it is about to replace.

use super::life::LifeModel;
use super::Model;
use crate::config::inputs::{baseline_hash, baseline_names, life_hash, life_names};
use crate::config::schema::{AssetClass, Baseline, Config, Life};
use crate::config::{ConfigErrors, Issue};
use std::collections::HashMap;
use std::sync::Arc;

/// Loaded model files by the path the configuration gives.
#[derive(Debug, Default, Clone)]
pub struct ModelFiles {
    baseline: HashMap<String, Arc<Model>>,
    life: HashMap<String, Arc<LifeModel>>,
}

impl ModelFiles {
    /// Loads every model file the classes name, or says which key names a
    /// file that is missing, unreadable or trained on other inputs.
    pub fn load(c: &Config) -> Result<Self, ConfigErrors> {
        let mut files = ModelFiles::default();
        let mut issues = Vec::new();
        for (name, class) in &c.classes {
            if let Some(b) = &class.baseline {
                let key = format!("classes.{name}.baseline.model_file");
                match check_baseline(b, class, c) {
                    Ok(Some((path, m))) => {
                        files.baseline.insert(path, Arc::new(m));
                    }
                    Ok(None) => {}
                    Err(message) => issues.push(issue(key, message)),
                }
            }
            if let Some(l) = &class.life {
                let key = format!("classes.{name}.life.model_file");
                match check_life(l, class, c) {
                    Ok((path, m)) => {
                        files.life.insert(path, Arc::new(m));
                    }
                    Err(message) => issues.push(issue(key, message)),
                }
            }
        }
        if issues.is_empty() {
            Ok(files)
        } else {
            Err(ConfigErrors(issues))
        }
    }

    /// The baseline model loaded from `path`.
    pub fn baseline(&self, path: &str) -> Option<Arc<Model>> {
        self.baseline.get(path).cloned()
    }

    /// The remaining-life model loaded from `path`.
    pub fn life(&self, path: &str) -> Option<Arc<LifeModel>> {
        self.life.get(path).cloned()
    }
}

fn issue(path: String, message: String) -> Issue {
    Issue { origin: "model files".into(), path, message }
}

fn check_life(l: &Life, class: &AssetClass, c: &Config) -> Result<(String, LifeModel), String> {
    let Some(file) = &l.model_file else {
        return Err(
            "set the model trained for this class: hums train --life --asset-class ... --out \
                models/NAME.json"
                .into(),
        );
    };
    let model = LifeModel::load(file.as_ref()).map_err(|e| e.to_string())?;
    let names = life_names(class, l);
    if model.features != names {
        return Err(format!(
            "{file} was trained on [{}] but the class reads [{}]; \
             retrain it with hums train --life",
            model.features.join(", "),
            names.join(", ")
        ));
    }
    if model.config_hash != life_hash(&names, c, l) {
        return Err(format!(
            "{file} was trained under other settings (pipeline window or sample \
            counts, or the life baseline or cap); retrain it with hums train --life"
        ));
    }
    Ok((file.clone(), model))
}

fn check_baseline(
    b: &Baseline,
    class: &AssetClass,
    c: &Config,
) -> Result<Option<(String, Model)>, String> {
    let Some(file) = &b.model_file else { return Ok(None) };
    let model = Model::load(file.as_ref()).map_err(|e| e.to_string())?;
    let names = baseline_names(class, b);
    if model.features != names {
        return Err(format!(
            "{file} was trained on [{}] but the class computes [{}]; retrain it with hums train",
            model.features.join(", "),
            names.join(", ")
        ));
    }
    if model.config_hash
        != baseline_hash(&names, c, &b.fit_spec(c.pipeline.eval_interval, c.alarms.on_delay))
    {
        return Err(format!(
            "{file} was trained under other settings (pipeline window, eval_interval or sample \
                counts, alarms.on_delay, or the baseline's model, margin, false_alarm_rate, \
                false_orders_per_year, clusters or pca_variance); retrain it with hums train"
        ));
    }
    Ok(Some((file.clone(), model)))
}
