//! Remaining-useful-life model: an ε-SVR with an RBF kernel (linfa-svm)
//! over each evaluation's channel means less the machine's own baseline,
//! plus the machine's age. Trained on run-to-failure histories, it predicts
//! the hours left, capped: early in life all machines look alike, so the
//! target is flat there (the usual piecewise-linear RUL target).

use super::{ModelError, Scaler};
use chrono::{DateTime, Utc};
use linfa::prelude::*;
use linfa_svm::Svm;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the life-model file layout.
pub const LIFE_FORMAT: u32 = 1;

/// Most rows an SVR is fitted on: its kernel matrix grows with their square
/// (3,000 rows: 72 MB). Longer histories are thinned evenly.
const MAX_ROWS: usize = 3000;

/// What a life model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifeTraining {
    /// Run-to-failure histories (one machine each).
    pub machines: usize,
    /// Rows the SVR was fitted on, after thinning.
    pub rows: usize,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// A fitted remaining-life model, as written to `models/*.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifeModel {
    pub format: u32,
    /// `channel.mean` per channel input, then [`crate::config::inputs::AGE`].
    pub features: Vec<String>,
    /// Evaluations that make each machine's own baseline.
    pub baseline: usize,
    /// Remaining life is learned up to this many hours.
    pub cap_hours: f64,
    pub scaler: Scaler,
    /// Predicts the remaining life as a share of `cap_hours`.
    pub svr: Svm<f64, f64>,
    pub training: LifeTraining,
    /// Hash of the configuration the model was trained under.
    pub config_hash: String,
}

impl LifeModel {
    /// Fits on (inputs, hours to failure) rows from `machines` run-to-failure
    /// histories. Inputs are [`LifeModel::features`] long and finite.
    pub fn fit(
        features: Vec<String>,
        baseline: usize,
        cap_hours: f64,
        rows: &[(Vec<f64>, f64)],
        machines: usize,
        span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        config_hash: String,
    ) -> Result<Self, ModelError> {
        let d = features.len();
        let rows: Vec<&(Vec<f64>, f64)> = rows
            .iter()
            .filter(|(x, y)| x.len() == d && x.iter().all(|v| v.is_finite()) && y.is_finite())
            .collect();
        let need = 2 * d + 10;
        if rows.len() < need || d == 0 {
            return Err(ModelError::TooFewRows { need, got: rows.len() });
        }
        let stride = rows.len().div_ceil(MAX_ROWS);
        let rows: Vec<&(Vec<f64>, f64)> = rows.into_iter().step_by(stride).collect();
        let n = rows.len();
        let x = Array2::from_shape_fn((n, d), |(i, j)| rows[i].0[j]);
        let mean = x.mean_axis(ndarray::Axis(0)).unwrap_or_else(|| Array1::zeros(d));
        let std = x.std_axis(ndarray::Axis(0), 1.0).mapv(|s| s.max(1e-9));
        let z = (&x - &mean) / &std;
        let y = Array1::from_iter(rows.iter().map(|(_, h)| h.clamp(0.0, cap_hours) / cap_hours));
        // C = 20 and ε = 5 on a 125-cycle target, as shares of the cap; the
        // RBF width is the number of inputs (each has unit variance).
        let svr = Svm::<f64, f64>::params()
            .c_svr(0.16, Some(0.04))
            .gaussian_kernel(d as f64)
            .eps(1e-3)
            .shrinking(false)
            .fit(&Dataset::new(z, y))
            .map_err(|e| ModelError::Fit(e.to_string()))?;
        Ok(Self {
            format: LIFE_FORMAT,
            features,
            baseline,
            cap_hours,
            scaler: Scaler { mean: mean.to_vec(), std: std.to_vec(), fitted_std: std.to_vec() },
            svr,
            training: LifeTraining { machines, rows: n, from: span.0, to: span.1 },
            config_hash,
        })
    }

    /// Hours of life left for one input vector, in [0, cap]; `None` unless
    /// the vector has the model's length and is finite.
    pub fn predict(&self, x: &[f64]) -> Option<f64> {
        if x.len() != self.features.len() || !x.iter().all(|v| v.is_finite()) {
            return None;
        }
        let z = Array1::from_iter(
            x.iter().zip(&self.scaler.mean).zip(&self.scaler.std).map(|((v, m), s)| (v - m) / s),
        );
        let share = self.svr.predict(z.view());
        share.is_finite().then(|| (share * self.cap_hours).clamp(0.0, self.cap_hours))
    }

    /// Reads and checks a life-model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::File(p.clone(), e.to_string()))?;
        let m: Self =
            serde_json::from_str(&text).map_err(|e| ModelError::File(p.clone(), e.to_string()))?;
        m.validate().map_err(|e| ModelError::File(p, e))?;
        Ok(m)
    }

    /// Checks a model read from a file: its layout, and one prediction.
    fn validate(&self) -> Result<(), String> {
        let d = self.features.len();
        if self.format != LIFE_FORMAT {
            return Err(format!(
                "life-model format {} is not {LIFE_FORMAT}; retrain it with hums train --life",
                self.format
            ));
        }
        if d == 0 || self.scaler.mean.len() != d || self.scaler.std.len() != d {
            return Err("the scaler does not match the feature list".into());
        }
        if !(self.cap_hours.is_finite() && self.cap_hours > 0.0) {
            return Err("cap_hours must be a positive number".into());
        }
        // linfa-svm keeps its support vectors private and panics on a length
        // mismatch, so their width is read from the model's serialised form.
        let svr = serde_json::to_value(&self.svr).map_err(|e| e.to_string())?;
        let width = ["WeightedCombination", "Linear"]
            .iter()
            .find_map(|k| svr["sep_hyperplane"][k]["dim"].as_array()?.last()?.as_u64());
        if width != Some(d as u64) {
            return Err(format!(
                "its support vectors are {width:?} wide, not {d} as the feature list"
            ));
        }
        match self.predict(&self.scaler.mean) {
            Some(_) => Ok(()),
            None => Err("its prediction at the training mean is not a number".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Machines whose one input drifts up as they wear, with a little noise.
    fn histories(lives: &[usize]) -> Vec<(Vec<f64>, f64)> {
        let mut rows = Vec::new();
        for (m, &life) in lives.iter().enumerate() {
            for t in 0..life {
                let left = (life - t) as f64;
                let wear = (-(left / 40.0)).exp();
                let noise = ((t * 7919 + m * 104_729) % 13) as f64 / 13.0 - 0.5;
                rows.push((vec![wear + 0.02 * noise, t as f64], left));
            }
        }
        rows
    }

    #[test]
    fn a_fitted_model_tracks_life_left_and_round_trips_through_its_file() {
        let names = vec!["x.mean".to_string(), crate::config::inputs::AGE.to_string()];
        let train = histories(&[150, 180, 210, 240, 170, 200]);
        let m = LifeModel::fit(names, 5, 100.0, &train, 6, (None, None), "h".into()).unwrap();
        // Held out: a machine of 190 cycles.
        let test = histories(&[190]);
        let err: Vec<f64> =
            test.iter().map(|(x, left)| m.predict(x).unwrap() - left.min(100.0)).collect();
        let rmse = (err.iter().map(|e| e * e).sum::<f64>() / err.len() as f64).sqrt();
        // Always guessing the mean capped life left is the baseline to beat.
        let mean = test.iter().map(|(_, l)| l.min(100.0)).sum::<f64>() / test.len() as f64;
        let naive = (test.iter().map(|(_, l)| (l.min(100.0) - mean).powi(2)).sum::<f64>()
            / test.len() as f64)
            .sqrt();
        assert!(rmse < 0.4 * naive, "rmse {rmse:.1} vs naive {naive:.1}");

        let dir = std::env::temp_dir().join(format!("hums-life-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("life.json");
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        let back = LifeModel::load(&path).unwrap();
        assert_eq!(back.predict(&test[50].0), m.predict(&test[50].0));
        assert_eq!(m.predict(&[1.0]), None, "a vector of the wrong length predicts nothing");

        // A file whose features do not match its support vectors is refused, not a panic.
        let mut bad = serde_json::to_value(&m).unwrap();
        bad["features"] = serde_json::json!(["a", "b", "c"]);
        bad["scaler"]["mean"] = serde_json::json!([0.0, 0.0, 0.0]);
        bad["scaler"]["std"] = serde_json::json!([1.0, 1.0, 1.0]);
        std::fs::write(&path, bad.to_string()).unwrap();
        let e = LifeModel::load(&path).unwrap_err().to_string();
        assert!(e.contains("support vectors are Some(2) wide, not 3"), "{e}");
    }
}
