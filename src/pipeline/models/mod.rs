//! Learned models of an asset's normal behaviour over its standardised window
//! features, fitted with linfa: per-feature z-scores, PCA with Hotelling T²
//! and Q (SPE), a Gaussian mixture (negative log-likelihood), k-means
//! (distance to the nearest centroid) and a one-class SVM (RBF kernel).
//! Every model gives a raw score and a calibrated one in [0, 1) where 0.5 is
//! the control limit, which is set from the training data's own scores; and
//! it names the features that contributed most, so a work order can say why.

pub mod files;
pub mod life;

use crate::config::schema::{FitSpec, ModelKind};
use chrono::{DateTime, Utc};
use linfa::prelude::*;
use linfa::DatasetBase;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version of the model file layout.
pub const FORMAT: u32 = 1;

/// Maps a distance from normal, in units of the control limit's distance
/// (`x = 1` at the limit), to an anomaly score in [0, 1): 0.5 at the limit,
/// 2/3 at twice the distance, 0 at or inside normal.
pub fn calibrated(x: f64) -> f64 {
    if x > 0.0 {
        x / (1.0 + x)
    } else {
        0.0
    }
}

/// Why a model could not be fitted or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("need at least {need} complete feature rows to fit, got {got}")]
    TooFewRows { need: usize, got: usize },
    #[error("fitting failed: {0}")]
    Fit(String),
    #[error("{0}: {1}")]
    File(String, String),
}

/// Per-feature standardisation learned from the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// The spread as fitted: drift following never narrows it below this,
    /// since the limits were set on that scale.
    #[serde(default)]
    pub fitted_std: Vec<f64>,
}

/// The fitted parameters, in the standardised feature space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Params {
    Zscore,
    /// `components` are unit row vectors with their `variances`; the raw
    /// score is the larger of T²/`t2_limit` and Q/`q_limit`.
    Pca {
        components: Vec<Vec<f64>>,
        variances: Vec<f64>,
        t2_limit: f64,
        q_limit: f64,
    },
    /// Full-covariance components; `log_norms` are each component's log
    /// weight plus its Gaussian normalising constant.
    Gmm {
        means: Vec<Vec<f64>>,
        precisions: Vec<Vec<Vec<f64>>>,
        log_norms: Vec<f64>,
    },
    Kmeans {
        centroids: Vec<Vec<f64>>,
    },
    /// The raw score is `rho − Σ αᵢ·exp(−|z − sᵢ|² / width)` over the
    /// support vectors `sᵢ`: above 0 outside the learned support.
    Ocsvm {
        support: Vec<Vec<f64>>,
        alpha: Vec<f64>,
        rho: f64,
        width: f64,
    },
}

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub rows: usize,
    /// Share of training rows at or above the control limit.
    pub false_alarm_rate: f64,
    /// Expected false orders a year at the control limit, from the tail of
    /// the training scores and the on-delay (when there were enough rows).
    #[serde(default)]
    pub false_orders_per_year: Option<f64>,
    /// The limit the margin alone gave, when the budget raised it.
    #[serde(default)]
    pub margin_limit: Option<f64>,
    /// Mean samples per window of the inputs while training: a stream at
    /// another rate has features of another spread, and is not judged by
    /// this model (`None` in files from before it was recorded).
    #[serde(default)]
    pub samples_per_window: Option<f64>,
}

/// A fitted model, as written to `models/*.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: u32,
    /// `channel.feature` names, in the order of every vector.
    pub features: Vec<String>,
    pub scaler: Scaler,
    pub params: Params,
    /// Typical raw score on the training data (calibrated 0).
    pub center: f64,
    /// Raw score at the control limit (calibrated 0.5).
    pub limit: f64,
    pub training: Training,
    /// Hash of the configuration the model was trained under.
    pub config_hash: String,
}

/// A model's judgement of one feature vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub raw: f64,
    /// In [0, 1): 0.5 at the control limit.
    pub score: f64,
    /// Distance from normal in units of the control limit's (1.0 at the limit).
    pub x: f64,
    /// Which statistic spoke (e.g. "T²", "Q", "NLL").
    pub statistic: &'static str,
    /// Feature indices with their share of the statistic, largest first.
    pub contributions: Vec<(usize, f64)>,
}

/// The extreme tail of a model's training scores, for the false-order
/// budget: a generalised Pareto distribution (fitted by moments) of the
/// excesses over the scores' 90th percentile, and how often a score above
/// it is followed by another (runs above the limit must outlast the on-delay
/// to raise an order). False orders a year at limit `L`: `evaluations a
/// year × P(score > L) × (1 − persistence) × persistence^(on-delay − 1)`,
/// the runs above `L` that start and outlast the on-delay.
#[derive(Debug, Clone, Copy)]
struct Tail {
    threshold: f64,
    /// Share of scores above the threshold.
    above: f64,
    /// GPD shape (clamped to ±0.5) and scale of the excesses.
    shape: f64,
    scale: f64,
    /// `evaluations a year × persistence^(on-delay − 1)`.
    exposure: f64,
}

/// Fewest training scores the tail is estimated from (50 excesses over
/// the 90th percentile).
const TAIL_MIN_ROWS: usize = 500;

impl Tail {
    fn fit(in_order: &[f64], sorted: &[f64], spec: &FitSpec) -> Option<Tail> {
        if sorted.len() < TAIL_MIN_ROWS {
            return None;
        }
        let threshold = quantile(sorted, 0.9);
        let excess: Vec<f64> =
            sorted.iter().filter(|&&r| r > threshold).map(|r| r - threshold).collect();
        let n = excess.len() as f64;
        let mean = excess.iter().sum::<f64>() / n;
        let var = excess.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        if !(mean > 0.0 && var > 0.0 && mean.is_finite() && var.is_finite()) {
            return None;
        }
        let shape = (0.5 * (1.0 - mean * mean / var)).clamp(-0.5, 0.5);
        let scale = mean * (1.0 - shape);
        let up: Vec<bool> = in_order.iter().map(|&r| r > threshold).collect();
        let starts = up.iter().filter(|&&u| u).count().max(1) as f64;
        let stays = up.windows(2).filter(|w| w[0] && w[1]).count() as f64;
        let persistence = (stays / starts).clamp(0.0, 0.999);
        // Runs that start (a score up after one down) and outlast the
        // on-delay; the share that starts is floored, to stay on the safe side.
        let exposure = spec.evaluations_per_year
            * (1.0 - persistence).max(0.05)
            * persistence.powi(spec.on_delay_evaluations.saturating_sub(1) as i32);
        Some(Tail { threshold, above: n / sorted.len() as f64, shape, scale, exposure })
    }

    /// Expected false orders a year with the limit at `limit`.
    fn orders_per_year(&self, limit: f64) -> f64 {
        let x = (limit - self.threshold).max(0.0) / self.scale;
        let survival = if self.shape.abs() < 1e-9 {
            (-x).exp()
        } else {
            (1.0 + self.shape * x).max(0.0).powf(-1.0 / self.shape)
        };
        self.exposure * self.above * survival
    }

    /// The lowest limit whose expected false orders a year are within `budget`.
    fn limit_for(&self, budget: f64) -> f64 {
        let p = budget / (self.exposure * self.above);
        if p.is_nan() || p <= 0.0 || p >= 1.0 {
            return self.threshold;
        }
        let x = if self.shape.abs() < 1e-9 {
            -p.ln()
        } else {
            (p.powf(-self.shape) - 1.0) / self.shape
        };
        self.threshold + self.scale * x
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn rows_to_array(rows: &[Vec<f64>], d: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows.len(), d), |(i, j)| rows[i][j])
}

fn to_vecs(a: &Array2<f64>) -> Vec<Vec<f64>> {
    a.outer_iter().map(|r| r.to_vec()).collect()
}

/// Log-determinant of a symmetric positive-definite matrix (Cholesky).
fn log_det(m: &Array2<f64>) -> Option<f64> {
    let n = m.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum();
            if i == j {
                let v = m[[i, i]] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[[i, j]] = v.sqrt();
            } else {
                l[[i, j]] = (m[[i, j]] - s) / l[[j, j]];
            }
        }
    }
    Some(2.0 * (0..n).map(|i| l[[i, i]].ln()).sum::<f64>())
}

impl Model {
    /// Fits a model on training rows (each `features.len()` long, finite).
    pub fn fit(
        spec: &FitSpec,
        features: Vec<String>,
        rows: &[Vec<f64>],
        span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
        config_hash: String,
    ) -> Result<Model, ModelError> {
        let d = features.len();
        let rows: Vec<Vec<f64>> = rows
            .iter()
            .filter(|r| r.len() == d && r.iter().all(|v| v.is_finite()))
            .cloned()
            .collect();
        let need = match spec.kind {
            ModelKind::Zscore => 2,
            _ => (d + 2).max(spec.clusters * 2).max(8),
        };
        if rows.len() < need || d == 0 {
            return Err(ModelError::TooFewRows { need, got: rows.len() });
        }
        let x = rows_to_array(&rows, d);
        let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(d));
        let std: Array1<f64> = x.std_axis(Axis(0), 1.0);
        // A flat feature gets a floor so later wiggles are not infinitely abnormal.
        let std = Array1::from_iter(
            std.iter().zip(mean.iter()).map(|(s, m)| s.max(1e-3 * m.abs() + 1e-9)),
        );
        let z = (&x - &mean) / &std;
        let scaler = Scaler { mean: mean.to_vec(), std: std.to_vec(), fitted_std: std.to_vec() };

        let params = match spec.kind {
            ModelKind::Zscore => Params::Zscore,
            ModelKind::Pca => fit_pca(&z, spec)?,
            ModelKind::Gmm => fit_gmm(&z, spec)?,
            ModelKind::Kmeans => {
                let data = DatasetBase::from(z.clone());
                let km = linfa_clustering::KMeans::params(spec.clusters.max(1))
                    .fit(&data)
                    .map_err(|e| ModelError::Fit(e.to_string()))?;
                Params::Kmeans { centroids: to_vecs(km.centroids()) }
            }
            ModelKind::Ocsvm => fit_ocsvm(&z)?,
        };
        let mut model = Model {
            format: FORMAT,
            features,
            scaler,
            params,
            center: 0.0,
            limit: 1.0,
            training: Training {
                from: span.0,
                to: span.1,
                rows: rows.len(),
                false_alarm_rate: 0.0,
                false_orders_per_year: None,
                margin_limit: None,
                samples_per_window: None,
            },
            config_hash,
        };
        // Control limit from the training rows' own scores (in row order).
        let in_order: Vec<f64> =
            z.outer_iter().map(|r| model.raw(r.as_slice().unwrap_or(&[])).0).collect();
        let mut raws = in_order.clone();
        raws.sort_by(f64::total_cmp);
        let center = quantile(&raws, 0.5);
        let q = quantile(&raws, 1.0 - spec.false_alarm_rate);
        let spread = (q - center).max(1e-9 * center.abs().max(1.0));
        model.center = center;
        model.limit = center + spec.margin * spread;
        // Raised, if need be, to keep false orders within the budget, but
        // never past three times the margin's distance (a tail fitted on
        // few excesses must not switch the model off).
        if let Some(tail) = Tail::fit(&in_order, &raws, spec) {
            let cap = center + 3.0 * (model.limit - center);
            let budget = tail.limit_for(spec.false_orders_per_year).min(cap);
            if budget > model.limit {
                model.training.margin_limit = Some(model.limit);
                model.limit = budget;
            }
            model.training.false_orders_per_year = Some(tail.orders_per_year(model.limit));
        }
        let over = raws.iter().filter(|&&r| r >= model.limit).count();
        model.training.false_alarm_rate = over as f64 / raws.len() as f64;
        Ok(model)
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::File(p.clone(), e.to_string()))?;
        let m: Model =
            serde_json::from_str(&text).map_err(|e| ModelError::File(p.clone(), e.to_string()))?;
        m.validate().map_err(|e| ModelError::File(p, e))?;
        Ok(m)
    }

    /// The raw score of a standardised vector, with per-feature contributions.
    fn raw(&self, z: &[f64]) -> (f64, &'static str, Vec<f64>) {
        match &self.params {
            Params::Zscore => {
                let c: Vec<f64> = z.iter().map(|v| v.abs()).collect();
                (c.iter().copied().fold(0.0, f64::max), "|z|", c)
            }
            Params::Pca { components, variances, t2_limit, q_limit } => {
                raw_pca(components, variances, (*t2_limit, *q_limit), z)
            }
            Params::Gmm { means, precisions, log_norms } => {
                raw_gmm(means, precisions, log_norms, z)
            }
            Params::Kmeans { centroids } => {
                let nearest = centroids
                    .iter()
                    .map(|c| c.iter().zip(z).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                let Some((k, d2)) = nearest else { return (0.0, "distance²", vec![0.0; z.len()]) };
                (
                    d2,
                    "distance²",
                    centroids[k].iter().zip(z).map(|(a, b)| (a - b) * (a - b)).collect(),
                )
            }
            Params::Ocsvm { support, alpha, rho, width } => {
                raw_ocsvm(support, alpha, *rho, *width, z)
            }
        }
    }

    /// Follows slow drift: after `dt` of normal running with time constant
    /// `tau` (same unit), moves the scaler's mean and spread the share
    /// `1 − e^(−dt/τ)` of the way towards a normal vector. The spread never
    /// narrows below the fitted one.
    pub fn adapt(&mut self, x: &[f64], dt: f64, tau: f64) {
        if !(dt > 0.0 && tau > 0.0) {
            return;
        }
        let alpha = 1.0 - (-dt / tau).exp();
        let floors = self.scaler.fitted_std.iter().copied().chain(std::iter::repeat(0.0));
        for (((v, m), s), floor) in
            x.iter().zip(&mut self.scaler.mean).zip(&mut self.scaler.std).zip(floors)
        {
            let d = v - *m;
            *m += alpha * d;
            let var = (1.0 - alpha) * (*s * *s + alpha * d * d);
            *s = var.sqrt().max(floor).max(1e-3 * m.abs() + 1e-9);
        }
    }

    /// Checks that a model read from a file or the database is whole: every
    /// dimension matches its feature list, and its numbers are usable.
    pub fn validate(&self) -> Result<(), String> {
        let d = self.features.len();
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if self.format != FORMAT {
            return Err(format!("format {} is not {FORMAT}; retrain with hums train", self.format));
        }
        if d == 0 || self.scaler.mean.len() != d || self.scaler.std.len() != d {
            return Err(format!("its scaler does not have one entry per feature ({d})"));
        }
        if !finite(&self.scaler.mean)
            || self.scaler.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(
                "its scaler holds a non-finite mean or a spread that is not positive".into()
            );
        }
        if !(self.center.is_finite() && self.limit.is_finite() && self.limit > self.center) {
            return Err("its control limit must be finite and above its centre".into());
        }
        let square = |m: &[Vec<f64>]| m.iter().all(|r| r.len() == d && finite(r));
        let ok = match &self.params {
            Params::Zscore => true,
            Params::Pca { components, variances, t2_limit, q_limit } => {
                !components.is_empty()
                    && components.len() == variances.len()
                    && square(components)
                    && variances.iter().all(|v| v.is_finite() && *v > 0.0)
                    && *t2_limit > 0.0
                    && *q_limit > 0.0
            }
            Params::Gmm { means, precisions, log_norms } => {
                !means.is_empty()
                    && means.len() == precisions.len()
                    && means.len() == log_norms.len()
                    && square(means)
                    && precisions.iter().all(|p| p.len() == d && square(p))
                    && finite(log_norms)
            }
            Params::Kmeans { centroids } => !centroids.is_empty() && square(centroids),
            Params::Ocsvm { support, alpha, rho, width } => {
                !support.is_empty()
                    && support.len() == alpha.len()
                    && square(support)
                    && finite(alpha)
                    && rho.is_finite()
                    && width.is_finite()
                    && *width > 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("its {:?} parameters do not match its {d} features", self.params_kind()))
        }
    }

    /// The kind of model.
    pub fn params_kind(&self) -> ModelKind {
        match self.params {
            Params::Zscore => ModelKind::Zscore,
            Params::Pca { .. } => ModelKind::Pca,
            Params::Gmm { .. } => ModelKind::Gmm,
            Params::Kmeans { .. } => ModelKind::Kmeans,
            Params::Ocsvm { .. } => ModelKind::Ocsvm,
        }
    }

    /// Judges a feature vector in the model's feature order.
    pub fn judge(&self, x: &[f64]) -> Judgement {
        let z: Vec<f64> = x
            .iter()
            .zip(&self.scaler.mean)
            .zip(&self.scaler.std)
            .map(|((v, m), s)| (v - m) / s)
            .collect();
        let (raw, statistic, c) = self.raw(&z);
        let dist = ((raw - self.center) / (self.limit - self.center)).max(0.0);
        let total: f64 = c.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let mut contributions: Vec<(usize, f64)> =
            c.iter().map(|v| v / total).enumerate().collect();
        contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
        Judgement { raw, score: calibrated(dist), x: dist, statistic, contributions }
    }
}

/// PCA's raw score: the larger of T² and Q over their limits `(t2, q)`,
/// with each feature's part in the one that spoke.
fn raw_pca(
    components: &[Vec<f64>],
    variances: &[f64],
    (t2_limit, q_limit): (f64, f64),
    z: &[f64],
) -> (f64, &'static str, Vec<f64>) {
    let (t, e) = project(components, z);
    let t2: f64 = t.iter().zip(variances).map(|(t, l)| t * t / l).sum();
    let q: f64 = e.iter().map(|v| v * v).sum();
    let (rt, rq) = (t2 / t2_limit, q / q_limit);
    if rt >= rq {
        let c = (0..z.len())
            .map(|j| {
                let w: f64 = components
                    .iter()
                    .zip(&t)
                    .zip(variances)
                    .map(|((p, ta), l)| p[j] * ta / l)
                    .sum();
                (z[j] * w).abs()
            })
            .collect();
        (rt, "T²", c)
    } else {
        (rq, "Q", e.iter().map(|v| v * v).collect())
    }
}

/// A Gaussian mixture's raw score, the negative log-likelihood, with each
/// feature's part in the most likely component's distance.
fn raw_gmm(
    means: &[Vec<f64>],
    precisions: &[Vec<Vec<f64>>],
    log_norms: &[f64],
    z: &[f64],
) -> (f64, &'static str, Vec<f64>) {
    let mut best = (f64::NEG_INFINITY, 0usize);
    let logs: Vec<f64> = means
        .iter()
        .zip(precisions)
        .zip(log_norms)
        .enumerate()
        .map(|(k, ((m, p), ln))| {
            let dv: Vec<f64> = z.iter().zip(m).map(|(a, b)| a - b).collect();
            let maha: f64 = p
                .iter()
                .zip(&dv)
                .map(|(row, di)| di * row.iter().zip(&dv).map(|(a, b)| a * b).sum::<f64>())
                .sum();
            let l = ln - 0.5 * maha;
            if l > best.0 {
                best = (l, k);
            }
            l
        })
        .collect();
    let max = best.0;
    let nll = -(max + logs.iter().map(|l| (l - max).exp()).sum::<f64>().ln());
    let (m, p) = (&means[best.1], &precisions[best.1]);
    let dv: Vec<f64> = z.iter().zip(m).map(|(a, b)| a - b).collect();
    let c = (0..z.len())
        .map(|j| (dv[j] * p[j].iter().zip(&dv).map(|(a, b)| a * b).sum::<f64>()).abs())
        .collect();
    (nll, "NLL", c)
}

/// A one-class SVM's raw score; the nearest support vector says which
/// features set the vector apart from normal.
fn raw_ocsvm(
    support: &[Vec<f64>],
    alpha: &[f64],
    rho: f64,
    width: f64,
    z: &[f64],
) -> (f64, &'static str, Vec<f64>) {
    let mut nearest = (f64::INFINITY, 0usize);
    let mut sum = 0.0;
    for (i, (s, a)) in support.iter().zip(alpha).enumerate() {
        let d2: f64 = s.iter().zip(z).map(|(a, b)| (a - b) * (a - b)).sum();
        if d2 < nearest.0 {
            nearest = (d2, i);
        }
        sum += a * (-d2 / width).exp();
    }
    let c = match support.get(nearest.1) {
        Some(s) => s.iter().zip(z).map(|(a, b)| (a - b) * (a - b)).collect(),
        None => vec![0.0; z.len()],
    };
    (rho - sum, "SVM", c)
}

/// Scores on the components, and the residual outside them.
fn project(components: &[Vec<f64>], z: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let t: Vec<f64> =
        components.iter().map(|p| p.iter().zip(z).map(|(a, b)| a * b).sum()).collect();
    let mut e = z.to_vec();
    for (p, ta) in components.iter().zip(&t) {
        for (ej, pj) in e.iter_mut().zip(p) {
            *ej -= ta * pj;
        }
    }
    (t, e)
}

fn fit_pca(z: &Array2<f64>, spec: &FitSpec) -> Result<Params, ModelError> {
    let d = z.ncols();
    if d < 2 {
        return Err(ModelError::Fit(
            "PCA needs at least two features; use the zscore model for one".into(),
        ));
    }
    let data = DatasetBase::from(z.clone());
    let pca =
        linfa_reduction::Pca::params(d).fit(&data).map_err(|e| ModelError::Fit(e.to_string()))?;
    let ratio = pca.explained_variance_ratio();
    // Keep the components that explain `pca_variance` of the total, leaving
    // at least one out so Q can see new directions.
    let mut k = 0;
    let mut acc = 0.0;
    while k < ratio.len() && acc < spec.pca_variance {
        acc += ratio[k];
        k += 1;
    }
    let k = k.clamp(1, d - 1);
    let components: Vec<Vec<f64>> =
        pca.components().outer_iter().take(k).map(|r| r.to_vec()).collect();
    // Each component's variance, T² and Q from the training rows themselves.
    let projected: Vec<(Vec<f64>, Vec<f64>)> =
        z.outer_iter().map(|r| project(&components, &r.to_vec())).collect();
    let rows = projected.len().max(2) as f64;
    let variances: Vec<f64> = (0..k)
        .map(|a| (projected.iter().map(|(t, _)| t[a] * t[a]).sum::<f64>() / (rows - 1.0)).max(1e-9))
        .collect();
    let (mut t2s, mut qs): (Vec<f64>, Vec<f64>) = projected
        .iter()
        .map(|(t, e)| {
            (
                t.iter().zip(&variances).map(|(t, l)| t * t / l).sum::<f64>(),
                e.iter().map(|v| v * v).sum::<f64>(),
            )
        })
        .unzip();
    t2s.sort_by(f64::total_cmp);
    qs.sort_by(f64::total_cmp);
    let q_hi = 1.0 - spec.false_alarm_rate;
    Ok(Params::Pca {
        components,
        variances,
        t2_limit: quantile(&t2s, q_hi).max(1e-9),
        q_limit: quantile(&qs, q_hi).max(1e-9),
    })
}

fn fit_gmm(z: &Array2<f64>, spec: &FitSpec) -> Result<Params, ModelError> {
    let d = z.ncols();
    let data = DatasetBase::from(z.clone());
    let gmm = linfa_clustering::GaussianMixtureModel::params(spec.clusters.max(1))
        .reg_covariance(1e-3)
        .fit(&data)
        .map_err(|e| ModelError::Fit(e.to_string()))?;
    let mut means = Vec::new();
    let mut precisions = Vec::new();
    let mut log_norms = Vec::new();
    for k in 0..gmm.weights().len() {
        let p = gmm.precisions().index_axis(Axis(0), k).to_owned();
        let Some(ld) = log_det(&p) else { continue };
        let w = gmm.weights()[k];
        if w <= 0.0 {
            continue;
        }
        means.push(gmm.means().row(k).to_vec());
        precisions.push(to_vecs(&p));
        log_norms.push(w.ln() - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln() + 0.5 * ld);
    }
    if means.is_empty() {
        return Err(ModelError::Fit("no usable mixture component".into()));
    }
    Ok(Params::Gmm { means, precisions, log_norms })
}

/// Most training rows a one-class SVM is fitted on (evenly spaced): its
/// kernel matrix is dense, so this bounds the fit to ~32 MB and seconds.
const OCSVM_MAX_ROWS: usize = 2000;

/// Upper bound on the share of training rows outside the SVM's support (ν).
/// The control limit is set from the training scores afterwards, so ν only
/// shapes the boundary: at 0.1 it rests on enough vectors to be smooth.
const OCSVM_NU: f64 = 0.1;

fn fit_ocsvm(z: &Array2<f64>) -> Result<Params, ModelError> {
    let d = z.ncols();
    let stride = z.nrows().div_ceil(OCSVM_MAX_ROWS);
    let rows = z.slice(ndarray::s![..;stride, ..]).to_owned();
    // Each feature has unit variance, so a width of d is the usual `1/d` gamma.
    let width = d as f64;
    let n = rows.nrows();
    // Shrinking is off: linfa-svm's shrinking heuristic overflows in debug builds.
    let svm = linfa_svm::Svm::<f64, linfa::dataset::Pr>::params()
        .nu_weight(OCSVM_NU)
        .gaussian_kernel(width)
        .shrinking(false)
        .fit(&DatasetBase::new(rows, Array1::from_elem(n, ())))
        .map_err(|e| ModelError::Fit(e.to_string()))?;
    // linfa-svm keeps its support vectors private; they are read from its
    // serialised form, so the model file holds plain numbers.
    let value = serde_json::to_value(&svm).map_err(|e| ModelError::Fit(e.to_string()))?;
    let sv = &value["sep_hyperplane"]["WeightedCombination"];
    let dims: Vec<usize> = sv["dim"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_u64()).map(|v| v as usize).collect())
        .unwrap_or_default();
    let data: Vec<f64> = sv["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    let alpha: Vec<f64> =
        svm.alpha.iter().copied().filter(|a| a.abs() > 100.0 * f64::EPSILON).collect();
    if dims.len() != 2 || dims[1] != d || dims[0] != alpha.len() || data.len() != dims[0] * d {
        return Err(ModelError::Fit(format!(
            "the one-class SVM came back without usable support vectors ({dims:?})"
        )));
    }
    let support = data.chunks(d).map(<[f64]>::to_vec).collect();
    Ok(Params::Ocsvm { support, alpha, rho: svm.rho, width })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two correlated features (b ≈ 2a) plus an independent one.
    fn training() -> Vec<Vec<f64>> {
        (0..400)
            .map(|i| {
                let a = ((i * 7919) % 101) as f64 / 101.0;
                let n = ((i * 104_729) % 37) as f64 / 370.0;
                let c = ((i * 1_299_709) % 53) as f64 / 53.0;
                vec![10.0 + a, 20.0 + 2.0 * a + n, 5.0 + c]
            })
            .collect()
    }

    #[test]
    fn the_false_order_budget_follows_the_tail_and_the_persistence_of_the_scores() {
        // Exponential-ish scores: slowly varying (runs of 20 equal values) or not.
        let score = |i: usize| -((((i * 7919) % 1000) as f64 + 0.5) / 1000.0).ln();
        let runs: Vec<f64> = (0..20_000).map(|i| score(i / 20)).collect();
        let mixed: Vec<f64> = (0..20_000).map(score).collect();
        let sorted = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(f64::total_cmp);
            s
        };
        let spec = spec(ModelKind::Zscore);
        let slow = Tail::fit(&runs, &sorted(&runs), &spec).unwrap();
        let fast = Tail::fit(&mixed, &sorted(&mixed), &spec).unwrap();
        for tail in [slow, fast] {
            let limit = tail.limit_for(1.0);
            assert!((tail.orders_per_year(limit) - 1.0).abs() < 1e-6, "{tail:?}");
            assert!(tail.orders_per_year(limit * 1.1) < 1.0, "a higher limit, fewer orders");
            assert!(limit > tail.threshold);
        }
        // Scores that stay up outlast the on-delay: the limit must be higher.
        assert!(slow.limit_for(1.0) > fast.limit_for(1.0) + 1.0, "{slow:?} {fast:?}");
        assert!(Tail::fit(&runs[..400], &sorted(&runs[..400]), &spec).is_none(), "too few rows");
    }

    fn spec(kind: ModelKind) -> FitSpec {
        FitSpec {
            kind,
            false_alarm_rate: 0.01,
            margin: 1.0,
            clusters: 2,
            pca_variance: 0.9,
            false_orders_per_year: 1.0,
            evaluations_per_year: 3.0e6,
            on_delay_evaluations: 6,
        }
    }

    fn names() -> Vec<String> {
        vec!["a.mean".into(), "b.mean".into(), "c.mean".into()]
    }

    #[test]
    fn every_model_calibrates_its_limit_to_the_false_alarm_target_and_flags_a_broken_correlation() {
        for kind in
            [ModelKind::Zscore, ModelKind::Pca, ModelKind::Gmm, ModelKind::Kmeans, ModelKind::Ocsvm]
        {
            let m =
                Model::fit(&spec(kind), names(), &training(), (None, None), "h".into()).unwrap();
            assert!(
                m.training.false_alarm_rate <= 0.011,
                "{kind:?}: {}",
                m.training.false_alarm_rate
            );
            let normal = m.judge(&[10.5, 21.0, 5.5]);
            assert!(normal.score < 0.5, "{kind:?} normal: {normal:?}");
            // b far off its usual 2a: every model sees it; PCA sees it in Q.
            let broken = m.judge(&[10.5, 24.0, 5.5]);
            assert!(broken.score > 0.5, "{kind:?} broken: {broken:?}");
            assert_eq!(broken.contributions[0].0, 1, "{kind:?}: b contributes most: {broken:?}");
            if kind == ModelKind::Pca {
                assert_eq!(broken.statistic, "Q");
            }
        }
    }

    #[test]
    fn ocsvm_sees_a_point_off_a_curved_normal_that_pca_calls_normal() {
        // b = a² over a in [-1, 1]: a and b are uncorrelated, so no linear
        // model sees a point between the parabola's arms.
        let rows: Vec<Vec<f64>> = (0..600)
            .map(|i| {
                let a = -1.0 + 2.0 * ((i * 7919) % 600) as f64 / 599.0;
                let n = ((i * 104_729) % 37) as f64 / 37.0 - 0.5;
                vec![a, a * a + 0.04 * n]
            })
            .collect();
        let names = vec!["a.mean".to_string(), "b.mean".to_string()];
        let fit =
            |kind| Model::fit(&spec(kind), names.clone(), &rows, (None, None), "h".into()).unwrap();
        let (svm, pca) = (fit(ModelKind::Ocsvm), fit(ModelKind::Pca));
        let off = [0.0, 0.8];
        assert!(pca.judge(&off).score < 0.5, "PCA: {:?}", pca.judge(&off));
        assert!(svm.judge(&off).score > 0.5, "SVM: {:?}", svm.judge(&off));
        assert_eq!(svm.judge(&off).statistic, "SVM");
        for on in [[0.0, 0.0], [0.5, 0.25], [-0.9, 0.81]] {
            assert!(svm.judge(&on).score < 0.5, "on the curve {on:?}: {:?}", svm.judge(&on));
        }
        // The file holds plain numbers, and a truncated one is refused.
        let mut broken = svm.clone();
        if let Params::Ocsvm { support, .. } = &mut broken.params {
            support[0].pop();
        }
        assert!(broken.validate().is_err());
        svm.validate().unwrap();
    }

    #[test]
    fn pca_sees_a_broken_correlation_that_no_single_feature_shows() {
        let m = Model::fit(&spec(ModelKind::Pca), names(), &training(), (None, None), "h".into())
            .unwrap();
        let z =
            Model::fit(&spec(ModelKind::Zscore), names(), &training(), (None, None), "h".into())
                .unwrap();
        // a high and b low, each within its own range: only the relation is wrong.
        let x = [10.9, 20.2, 5.5];
        assert!(z.judge(&x).score < 0.5, "{:?}", z.judge(&x));
        assert!(m.judge(&x).score > 0.5, "{:?}", m.judge(&x));
    }

    #[test]
    fn broken_model_files_are_refused_and_pca_needs_two_features() {
        let m = Model::fit(&spec(ModelKind::Pca), names(), &training(), (None, None), "h".into())
            .unwrap();
        assert!(m.validate().is_ok());
        let mut short = m.clone();
        if let Params::Pca { components, .. } = &mut short.params {
            components[0].pop();
        }
        assert!(short.validate().unwrap_err().contains("do not match its 3 features"));
        let mut flat = m.clone();
        flat.limit = flat.center;
        assert!(flat.validate().is_err());
        let one: Vec<Vec<f64>> = training().into_iter().map(|r| vec![r[0]]).collect();
        let e = Model::fit(
            &spec(ModelKind::Pca),
            vec!["a.mean".into()],
            &one,
            (None, None),
            "h".into(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least two features"), "{e}");
    }

    #[test]
    fn drift_following_moves_the_centre_but_never_narrows_the_spread() {
        let mut m =
            Model::fit(&spec(ModelKind::Zscore), names(), &training(), (None, None), "h".into())
                .unwrap();
        let fitted = m.scaler.std.clone();
        let centre = m.scaler.mean[0];
        // A long gap (dt ≫ τ) moves all the way but keeps the fitted spread.
        m.adapt(&[centre + 0.3, 21.0, 5.5], 1e9, 1.0);
        assert!((m.scaler.mean[0] - (centre + 0.3)).abs() < 1e-9);
        assert!(m.scaler.std.iter().zip(&fitted).all(|(s, f)| s >= f));
        // A short step moves a little: 1 − e^(−0.1) of the way.
        let before = m.scaler.mean[2];
        m.adapt(&[10.5, 21.0, before + 1.0], 0.1, 1.0);
        assert!((m.scaler.mean[2] - before - (1.0 - (-0.1f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn a_model_survives_its_file_and_too_few_rows_are_refused() {
        let m = Model::fit(&spec(ModelKind::Gmm), names(), &training(), (None, None), "h".into())
            .unwrap();
        let back: Model = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back.judge(&[10.5, 24.0, 5.5]), m.judge(&[10.5, 24.0, 5.5]));
        let few = &training()[..3];
        assert!(matches!(
            Model::fit(&spec(ModelKind::Pca), names(), few, (None, None), "h".into()),
            Err(ModelError::TooFewRows { .. })
        ));
    }
}
