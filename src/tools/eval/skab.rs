//! SKAB's leaderboard metrics over the test parts (rows after the first 400):
//! point-wise F1/FAR/MAR, and the changepoint NAB score under three profiles.

use super::{check_aligned, csv_files, scores_for, EvalError};
use crate::common::types::Millis;
use crate::config::schema::Replay;
use crate::sources::replay as input;
use serde::Serialize;
use std::f64::consts::FRAC_PI_2;
use std::path::Path;

/// Rows of each file that are its training part.
pub const TRAIN_ROWS: usize = 400;
/// Each true changepoint opens a window this long.
pub const WINDOW_MS: Millis = 60_000;

/// A changepoint cost profile (A_tp, A_fp, A_fn), costs negative.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

pub const PROFILES: [Profile; 3] = [
    Profile { name: "standard", tp: 1.0, fp: -0.11, fn_: -1.0 },
    Profile { name: "low_fp", tp: 1.0, fp: -0.22, fn_: -1.0 },
    Profile { name: "low_fn", tp: 1.0, fp: -0.11, fn_: -2.0 },
];

/// The score of the first detection at relative position `pos` ∈ [0, 1] of
/// its window: A_tp at the start, falling to A_fp at the end.
pub fn window_value(p: &Profile, pos: f64) -> f64 {
    let x = -FRAC_PI_2 + pos.clamp(0.0, 1.0) * std::f64::consts::PI;
    let half = (p.tp - p.fp) / 2.0;
    half * (-x.tanh() / FRAC_PI_2.tanh()) + half + p.fp
}

/// Windows `[c, c + 60 s]` for true changepoints; a window that would overlap
/// the previous one starts where that one ends (just after it: timestamps are
/// milliseconds, so a prediction at the boundary belongs to the first window only).
pub fn windows(changepoints: &[Millis]) -> Vec<(Millis, Millis)> {
    let mut out: Vec<(Millis, Millis)> = Vec::new();
    for &c in changepoints {
        let mut start = c;
        if let Some(&(_, prev_end)) = out.last() {
            start = start.max(prev_end + 1);
        }
        out.push((start, c + WINDOW_MS));
    }
    out
}

/// Raw changepoint score of predicted changepoints against windows: the
/// first prediction in a window earns `window_value`, later ones in it are
/// ignored, a prediction outside every window costs A_fp, a window without
/// one costs A_fn.
pub fn changepoint_score(p: &Profile, windows: &[(Millis, Millis)], predicted: &[Millis]) -> f64 {
    let mut score = 0.0;
    for &(start, end) in windows {
        let first = predicted.iter().copied().filter(|&t| t >= start && t <= end).min();
        score += match first {
            Some(t) => window_value(
                p,
                if end > start { (t - start) as f64 / (end - start) as f64 } else { 0.0 },
            ),
            None => p.fn_,
        };
    }
    let outside =
        predicted.iter().filter(|&&t| !windows.iter().any(|&(s, e)| t >= s && t <= e)).count();
    score + outside as f64 * p.fp
}

/// The rising and falling edges of a 0/1 flag; the first row counts as an
/// edge when it is 1.
pub fn edges(times: &[Millis], flags: &[bool]) -> Vec<Millis> {
    (0..flags.len())
        .filter(|&i| if i == 0 { flags[0] } else { flags[i] != flags[i - 1] })
        .map(|i| times[i])
        .collect()
}

/// One profile's pooled changepoint score.
#[derive(Debug, Clone, Serialize)]
pub struct NabScore {
    pub profile: &'static str,
    pub score: f64,
}

/// The leaderboard's figures for a set of files.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub files: usize,
    pub skipped_unlabelled: Vec<String>,
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    pub fn_: u64,
    pub f1: f64,
    pub far: f64,
    pub mar: f64,
    pub windows: usize,
    pub nab: Vec<NabScore>,
}

/// Scores every labelled CSV under `data` against the replay outputs in `scores`.
pub fn evaluate(data: &Path, scores: &Path) -> Result<Report, EvalError> {
    let cfg =
        Replay { label_columns: vec!["anomaly".into(), "changepoint".into()], ..Replay::default() };
    let (mut tp, mut fp, mut tn, mut fn_) = (0u64, 0u64, 0u64, 0u64);
    let mut raw = [0.0; 3];
    let mut n_windows = 0;
    let mut files = 0;
    let mut skipped = Vec::new();
    for path in csv_files(data)? {
        let t = input::read(&path, &cfg, &[])?;
        let label = |name: &str| t.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let (Some(truth), Some(cps)) = (label("anomaly"), label("changepoint")) else {
            skipped.push(path.display().to_string());
            continue;
        };
        let s = scores_for(data, &path, scores)?;
        check_aligned(&t, &s)?;
        let pred =
            s.labels.iter().find(|(n, _)| n == "anomaly").map(|(_, v)| v.clone()).ok_or_else(
                || {
                    EvalError::Data(
                        s.path.clone(),
                        "no anomaly column (expected timestamp,score,anomaly)".into(),
                    )
                },
            )?;
        files += 1;
        let test = TRAIN_ROWS.min(t.timestamps.len())..t.timestamps.len();
        for i in test.clone() {
            match (truth[i], pred[i]) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
                (true, false) => fn_ += 1,
            }
        }
        let times = &t.timestamps[test.clone()];
        let true_cps: Vec<Millis> =
            test.clone().filter(|&i| cps[i]).map(|i| t.timestamps[i]).collect();
        let w = windows(&true_cps);
        let predicted = edges(times, &pred[test]);
        n_windows += w.len();
        for (k, p) in PROFILES.iter().enumerate() {
            raw[k] += changepoint_score(p, &w, &predicted);
        }
    }
    if files == 0 {
        return Err(EvalError::Data(
            data.into(),
            "no labelled SKAB files (with anomaly and changepoint columns)".into(),
        ));
    }
    let f1 = tp as f64 / (tp as f64 + (fp + fn_) as f64 / 2.0);
    let nab = PROFILES
        .iter()
        .zip(raw)
        .map(|(p, s)| {
            let null = n_windows as f64 * p.fn_;
            let perfect = n_windows as f64 * p.tp;
            NabScore { profile: p.name, score: 100.0 * (s - null) / (perfect - null) }
        })
        .collect();
    Ok(Report {
        files,
        skipped_unlabelled: skipped,
        tp,
        fp,
        tn,
        fn_,
        f1: if f1.is_finite() { f1 } else { 0.0 },
        far: 100.0 * fp as f64 / ((fp + tn) as f64).max(1.0),
        mar: 100.0 * fn_ as f64 / ((fn_ + tp) as f64).max(1.0),
        windows: n_windows,
        nab,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    const STD: Profile = PROFILES[0];

    #[test]
    fn first_detection_at_window_start_scores_exactly_a_tp() {
        let w = windows(&[100_000]);
        assert_eq!(w, [(100_000, 160_000)]);
        assert!((changepoint_score(&STD, &w, &[100_000]) - STD.tp).abs() < 1e-12);
        assert!((window_value(&STD, 1.0) - STD.fp).abs() < 1e-12, "the window's end is worth A_fp");
    }

    #[test]
    fn earlier_detection_scores_higher() {
        let w = windows(&[0]);
        let early = changepoint_score(&STD, &w, &[10_000]);
        let late = changepoint_score(&STD, &w, &[40_000]);
        assert!(early > late && early < STD.tp, "{early} vs {late}");
    }

    #[test]
    fn only_the_first_detection_in_a_window_counts() {
        let w = windows(&[0]);
        let one = changepoint_score(&STD, &w, &[10_000]);
        let three = changepoint_score(&STD, &w, &[10_000, 20_000, 50_000]);
        assert_eq!(one, three);
    }

    #[test]
    fn false_positive_without_windows_costs_a_fp_and_nothing_scores_zero() {
        for p in PROFILES {
            assert_eq!(changepoint_score(&p, &[], &[5_000]), p.fp);
            assert_eq!(changepoint_score(&p, &[], &[]), 0.0);
            assert_eq!(
                changepoint_score(&p, &windows(&[0]), &[]),
                p.fn_,
                "a missed window costs A_fn"
            );
        }
    }

    #[test]
    fn overlapping_windows_are_cut_and_edges_include_falling_ones() {
        assert_eq!(windows(&[0, 30_000]), [(0, 60_000), (60_001, 90_000)]);
        // A prediction on the cut counts once, for the first window.
        let w = windows(&[0, 30_000]);
        assert!((changepoint_score(&STD, &w, &[60_000]) - (STD.fp + STD.fn_)).abs() < 1e-12);

        let t = [0, 1, 2, 3, 4];
        assert_eq!(edges(&t, &[true, true, false, true, true]), [0, 2, 3]);
        assert_eq!(edges(&t, &[false, true, true, false, false]), [1, 3]);
    }
}
