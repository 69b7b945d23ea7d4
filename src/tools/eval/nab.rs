//! The Numenta Anomaly Benchmark's scoring: per-row weights from the label
//! windows, and one threshold per profile swept over the whole corpus.

use super::{check_aligned, csv_files, scores_for, EvalError};
use crate::common::types::Millis;
use crate::config::schema::Replay;
use crate::sources::payload::parse_timestamp_text;
use crate::sources::replay as input;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// A cost profile (A_tp, A_fp, A_fn), all positive as NAB writes them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

pub const PROFILES: [Profile; 3] = [
    Profile { name: "standard", tp: 1.0, fp: 0.11, fn_: 1.0 },
    Profile { name: "reward_low_FP_rate", tp: 1.0, fp: 0.22, fn_: 1.0 },
    Profile { name: "reward_low_FN_rate", tp: 1.0, fp: 0.11, fn_: 2.0 },
];

/// NAB's scaled sigmoid: −1 beyond 3, else 2/(1 + e^(5p)) − 1.
pub fn scaled_sigmoid(p: f64) -> f64 {
    if p > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * p).exp()) - 1.0
    }
}

/// Rows that are probationary (never scored) in a file of `n` rows.
pub fn probation(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// Where a row stands relative to the label windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Row {
    /// Not scored.
    Probation,
    /// Inside window `w` (corpus-wide index) with this true-positive weight.
    InWindow { w: usize, weight: f64 },
    /// Outside all windows: this (negative) weight if detected.
    Outside { weight: f64 },
}

/// Classifies every row of one file. `windows` are (first row, last row)
/// index pairs, in order; `first_window` is their corpus-wide index base.
pub fn rows(p: &Profile, n: usize, windows: &[(usize, usize)], first_window: usize) -> Vec<Row> {
    let probation = probation(n);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let inside = windows.iter().position(|&(l, r)| i >= l && i <= r);
        let row = match inside {
            Some(k) => {
                let (l, r) = windows[k];
                let width = (r - l + 1) as f64;
                let pos = -((r as f64 - i as f64 + 1.0) / width);
                Row::InWindow {
                    w: first_window + k,
                    weight: scaled_sigmoid(pos) * p.tp / scaled_sigmoid(-1.0),
                }
            }
            None => {
                // Relative to the last window that ended before this row.
                let unweighted = match windows.iter().rev().find(|&&(_, r)| r < i) {
                    None => -1.0,
                    Some(&(l, r)) if r == l => -1.0, // one-row window: past it at once
                    Some(&(l, r)) => scaled_sigmoid((i - r) as f64 / (r - l) as f64),
                };
                Row::Outside { weight: unweighted * p.fp }
            }
        };
        out.push(if i < probation { Row::Probation } else { row });
    }
    out
}

/// Raw score of a fixed set of detections: the best (earliest) detected
/// weight per window, −A_fn per window without one, plus every detected
/// outside row's weight.
pub fn raw_score(p: &Profile, rows: &[Row], detected: &[bool], n_windows: usize) -> f64 {
    let mut best: BTreeMap<usize, f64> = BTreeMap::new();
    let mut score = 0.0;
    for (r, &d) in rows.iter().zip(detected) {
        if !d {
            continue;
        }
        match *r {
            Row::Probation => {}
            Row::InWindow { w, weight } => {
                let b = best.entry(w).or_insert(f64::NEG_INFINITY);
                *b = b.max(weight);
            }
            Row::Outside { weight } => score += weight,
        }
    }
    score + best.values().sum::<f64>() - (n_windows - best.len()) as f64 * p.fn_
}

/// The best corpus-wide threshold for a profile: (threshold, raw score).
/// Lowering the threshold past each distinct score adds that score's rows.
pub fn sweep(p: &Profile, scored: &[(f64, Row)], n_windows: usize) -> (f64, f64) {
    let mut order: Vec<usize> =
        (0..scored.len()).filter(|&i| scored[i].1 != Row::Probation).collect();
    order.sort_by(|&a, &b| scored[b].0.total_cmp(&scored[a].0));
    let mut best_in: Vec<Option<f64>> = vec![None; n_windows];
    let mut raw = -(n_windows as f64) * p.fn_;
    let mut best = (f64::INFINITY, raw);
    let mut k = 0;
    while k < order.len() {
        let theta = scored[order[k]].0;
        while k < order.len() && scored[order[k]].0 == theta {
            match scored[order[k]].1 {
                Row::Outside { weight } => raw += weight,
                Row::InWindow { w, weight } => match best_in[w] {
                    None => {
                        raw += weight + p.fn_;
                        best_in[w] = Some(weight);
                    }
                    Some(b) if weight > b => {
                        raw += weight - b;
                        best_in[w] = Some(weight);
                    }
                    Some(_) => {}
                },
                Row::Probation => {}
            }
            k += 1;
        }
        if raw > best.1 {
            best = (theta, raw);
        }
    }
    best
}

/// Normalised score: 0 for the null detector, 100 for the perfect one.
pub fn normalise(p: &Profile, raw: f64, n_windows: usize) -> f64 {
    let null = -(n_windows as f64) * p.fn_;
    let perfect = n_windows as f64 * p.tp;
    100.0 * (raw - null) / (perfect - null)
}

/// One profile's corpus result.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileScore {
    pub profile: &'static str,
    pub threshold: f64,
    pub raw: f64,
    pub score: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files: usize,
    pub rows: usize,
    pub windows: usize,
    pub profiles: Vec<ProfileScore>,
}

/// Scores the corpus under `root` (`data/**.csv`, `labels/combined_windows.json`).
pub fn evaluate(root: &Path, scores: &Path) -> Result<Report, EvalError> {
    let labels_path = root.join("labels/combined_windows.json");
    let text = std::fs::read_to_string(&labels_path)
        .map_err(|e| EvalError::Data(labels_path.clone(), e.to_string()))?;
    let labels: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(&text)
        .map_err(|e| EvalError::Data(labels_path.clone(), e.to_string()))?;
    let data = root.join("data");
    let cfg = Replay::default();
    let mut per_profile: Vec<Vec<(f64, Row)>> = vec![Vec::new(); PROFILES.len()];
    let (mut n_windows, mut files, mut n_rows) = (0, 0, 0);
    let mut unseen: std::collections::BTreeSet<&String> = labels.keys().collect();
    for path in csv_files(&data)? {
        let key = path.strip_prefix(&data).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let Some(spans) = labels.get(&key) else { continue };
        unseen.remove(&key);
        let t = input::read(&path, &cfg, &[])?;
        let s = scores_for(&data, &path, scores)?;
        check_aligned(&t, &s)?;
        let score = s.column("score").unwrap_or_default();
        let mut win = Vec::new();
        for [a, b] in spans {
            let parse = |x: &str| {
                parse_timestamp_text(x, Default::default())
                    .map_err(|e| EvalError::Data(labels_path.clone(), format!("{key}: {e}")))
            };
            let (a, b): (Millis, Millis) = (parse(a)?, parse(b)?);
            let l = t.timestamps.partition_point(|&x| x < a);
            let r = t.timestamps.partition_point(|&x| x <= b);
            if r > l {
                win.push((l, r - 1));
            }
        }
        for (k, p) in PROFILES.iter().enumerate() {
            let rows = rows(p, t.timestamps.len(), &win, n_windows);
            per_profile[k]
                .extend(score.iter().map(|&x| if x.is_finite() { x } else { 0.0 }).zip(rows));
        }
        n_windows += win.len();
        files += 1;
        n_rows += t.timestamps.len();
    }
    if let Some(missing) = unseen.first() {
        return Err(EvalError::Data(
            data.join(missing),
            format!(
                "labelled in combined_windows.json but missing ({} file(s) in all)",
                unseen.len()
            ),
        ));
    }
    if n_windows == 0 {
        return Err(EvalError::Data(
            labels_path,
            "no label windows: the scores would be undefined".into(),
        ));
    }

    let profiles = PROFILES
        .iter()
        .zip(&per_profile)
        .map(|(p, scored)| {
            let (threshold, raw) = sweep(p, scored, n_windows);
            ProfileScore { profile: p.name, threshold, raw, score: normalise(p, raw, n_windows) }
        })
        .collect();
    Ok(Report { files, rows: n_rows, windows: n_windows, profiles })
}

#[cfg(test)]
mod tests {
    use super::*;
    const STD: Profile = PROFILES[0];
    /// 1,000 rows: the first 150 are probationary.
    const N: usize = 1000;

    fn detect(at: &[usize]) -> Vec<bool> {
        (0..N).map(|i| at.contains(&i)).collect()
    }

    #[test]
    fn first_true_positive_at_window_start_scores_exactly_a_tp() {
        let r = rows(&STD, N, &[(400, 499)], 0);
        assert_eq!(r[400], Row::InWindow { w: 0, weight: 1.0 });
        assert!((raw_score(&STD, &r, &detect(&[400]), 1) - STD.tp).abs() < 1e-12);
    }

    #[test]
    fn earlier_detection_scores_higher_and_only_the_first_counts() {
        let r = rows(&STD, N, &[(400, 499)], 0);
        let early = raw_score(&STD, &r, &detect(&[420]), 1);
        let late = raw_score(&STD, &r, &detect(&[480]), 1);
        assert!(early > late, "{early} vs {late}");
        assert_eq!(raw_score(&STD, &r, &detect(&[420, 450, 490]), 1), early);
    }

    #[test]
    fn false_positive_without_windows_costs_a_fp_and_nothing_scores_zero() {
        for p in PROFILES {
            let r = rows(&p, N, &[], 0);
            assert!((raw_score(&p, &r, &detect(&[600]), 0) + p.fp).abs() < 1e-12);
            assert_eq!(raw_score(&p, &r, &detect(&[]), 0), 0.0);
            assert_eq!(
                raw_score(&p, &r, &detect(&[10]), 0),
                0.0,
                "probationary rows are not scored"
            );
        }
    }

    #[test]
    fn false_positives_after_a_window_cost_less_right_after_it() {
        let r = rows(&STD, N, &[(400, 499)], 0);
        let (Row::Outside { weight: near }, Row::Outside { weight: far }) = (r[501], r[900]) else {
            panic!()
        };
        assert!(near > far && far >= -STD.fp, "{near} vs {far}");
        let Row::Outside { weight: before } = r[300] else { panic!() };
        assert_eq!(before, -STD.fp);
    }

    #[test]
    fn sweep_finds_the_threshold_that_separates_window_from_noise() {
        let p = STD;
        let r = rows(&p, N, &[(400, 499)], 0);
        // High scores at the window start, medium noise elsewhere.
        let scored: Vec<(f64, Row)> = (0..N)
            .map(|i| {
                (
                    if i == 400 {
                        0.9
                    } else if i % 50 == 0 {
                        0.6
                    } else {
                        0.1
                    },
                    r[i],
                )
            })
            .collect();
        let (theta, raw) = sweep(&p, &scored, 1);
        assert_eq!(theta, 0.9);
        assert!((raw - 1.0).abs() < 1e-12);
        assert!((normalise(&p, raw, 1) - 100.0).abs() < 1e-9);
        assert_eq!(normalise(&p, -1.0, 1), 0.0);
        let detected: Vec<bool> = scored.iter().map(|(s, _)| *s >= theta).collect();
        assert_eq!(raw_score(&p, &r, &detected, 1), raw, "the sweep agrees with direct scoring");
    }
}
