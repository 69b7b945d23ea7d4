//! Window features: per channel, the mean, spread, extremes, shape and
//! trend of its samples in the window, computed in one pass over the ring
//! buffer. Live ticks evaluate one time per call; replays batch thousands of
//! times, with the same code, so the two give identical results.
//!
//! One pass of running sums beats a polars group-by here: the windows are
//! already in memory and sorted, so copying them into a frame (and reading
//! the aggregates back) costs more than the sums themselves
//! (docs/benchmarks.md, "Evaluation cost").

use crate::common::types::Millis;
use crate::config::schema::Feature;
use crate::pipeline::window::Window;

/// Features of one channel window, indexed by [`Feature::index`].
pub type FeatureRow = [f64; Feature::ALL.len()];

/// Features per channel slot; `None` where a window had too few samples.
#[derive(Debug, Clone, Default)]
pub struct FeatureTable {
    rows: Vec<Option<FeatureRow>>,
}

impl FeatureTable {
    /// The features of a slot, if it had enough samples.
    pub fn row(&self, slot: usize) -> Option<&FeatureRow> {
        self.rows.get(slot).and_then(Option::as_ref)
    }

    /// One feature of one slot.
    pub fn get(&self, slot: usize, feature: Feature) -> Option<f64> {
        self.row(slot).map(|r| r[feature.index()]).filter(|v| v.is_finite())
    }
}

/// Hours per millisecond: slopes and rates of change are in units per hour.
const HOURS_PER_MS: f64 = 1.0 / 3_600_000.0;

/// Computes the features of every window as it stood at each of `times`
/// (ascending): its samples in `[t - span, t]`, at most the newest
/// `max_samples`. Windows with fewer than `min_samples` get no row. Time is
/// in hours before `t`, so slopes and rates of change are in units per hour.
pub fn compute(
    windows: &[Window],
    times: &[Millis],
    max_samples: usize,
    min_samples: usize,
) -> Vec<FeatureTable> {
    times
        .iter()
        .map(|&now| FeatureTable {
            rows: windows.iter().map(|w| row(w, now, max_samples, min_samples)).collect(),
        })
        .collect()
}

/// The features of only the windows in `slots` at `now`, as [`compute`]
/// finds them (the other slots get no row).
pub fn compute_slots(
    windows: &[Window],
    slots: &[usize],
    now: Millis,
    max_samples: usize,
    min_samples: usize,
) -> FeatureTable {
    let mut rows = vec![None; windows.len()];
    for &s in slots {
        if let (Some(w), Some(r)) = (windows.get(s), rows.get_mut(s)) {
            *r = row(w, now, max_samples, min_samples);
        }
    }
    FeatureTable { rows }
}

/// One window's features at `now`, if it had at least `min_samples`.
fn row(w: &Window, now: Millis, max_samples: usize, min_samples: usize) -> Option<FeatureRow> {
    let r = w.range_at(now, max_samples);
    (r.len() >= min_samples.max(1)).then(|| Sums::of(w, r, now).row())
}

/// Running sums over one window's samples at one time. Values are taken
/// relative to the first sample's (`origin`): the moments are sums of
/// powers, which stay exact only near zero. Time is in hours before `now`.
struct Sums {
    origin: f64,
    n: f64,
    /// Σs, Σs², Σs³, Σs⁴ of the relative values s.
    s: [f64; 4],
    min: f64,
    max: f64,
    /// Σt, Σt², Σts.
    t: f64,
    tt: f64,
    ts: f64,
    /// First and last (hours, relative value).
    first: (f64, f64),
    last: (f64, f64),
}

impl Sums {
    /// One pass over the window's samples in the index range `r` (at least one).
    fn of(w: &Window, r: std::ops::Range<usize>, now: Millis) -> Self {
        let first = w.sample(r.start).unwrap_or((now, 0.0));
        let last = r.end.checked_sub(1).and_then(|i| w.sample(i)).unwrap_or(first);
        let origin = first.1;
        let mut sums = Sums {
            origin,
            n: r.len() as f64,
            s: [0.0; 4],
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            t: 0.0,
            tt: 0.0,
            ts: 0.0,
            first: ((first.0 - now) as f64 * HOURS_PER_MS, 0.0),
            last: ((last.0 - now) as f64 * HOURS_PER_MS, last.1 - origin),
        };
        w.runs(r, |base, offsets, values| sums.add(base - now, offsets, values));
        sums
    }

    /// Adds one run of samples, whose times are `shift` plus their offsets
    /// in milliseconds relative to now.
    fn add(&mut self, shift: Millis, offsets: &[i32], values: &[f64]) {
        let shift = shift as f64;
        let [mut s1, mut s2, mut s3, mut s4] = self.s;
        let (mut min, mut max) = (self.min, self.max);
        let (mut t, mut tt, mut ts) = (self.t, self.tt, self.ts);
        for (&o, &value) in offsets.iter().zip(values) {
            let (h, v) = ((shift + f64::from(o)) * HOURS_PER_MS, value - self.origin);
            let v2 = v * v;
            s1 += v;
            s2 += v2;
            s3 += v2 * v;
            s4 += v2 * v2;
            min = min.min(v);
            max = max.max(v);
            t += h;
            tt += h * h;
            ts += h * v;
        }
        self.s = [s1, s2, s3, s4];
        (self.min, self.max) = (min, max);
        (self.t, self.tt, self.ts) = (t, tt, ts);
    }

    /// The features these sums give.
    fn row(&self) -> FeatureRow {
        // Raw moments of the shifted values s = v − o give the central ones.
        let (o, n) = (self.origin, self.n);
        let [m1, e2, e3, e4] = self.s.map(|x| x / n);
        let (min, max) = (self.min, self.max);
        let m2 = (e2 - m1 * m1).max(0.0);
        let m4 = (e4 - 4.0 * m1 * e3 + 6.0 * m1 * m1 * e2 - 3.0 * m1.powi(4)).max(0.0);
        let (value_mean, value_min, value_max) = (o + m1, o + min, o + max);
        let rms = (e2 + 2.0 * o * m1 + o * o).max(0.0).sqrt();
        let std = if n > 1.0 { (m2 * n / (n - 1.0)).sqrt() } else { 0.0 };
        let kurtosis = if m2 > 0.0 { m4 / (m2 * m2) } else { f64::NAN };
        let crest = if rms > 0.0 { value_max.abs().max(value_min.abs()) / rms } else { f64::NAN };
        let (mean_t, mean_tt, mean_tv) = (self.t / n, self.tt / n, self.ts / n);
        let var_t = mean_tt - mean_t * mean_t;
        let slope = if var_t > 0.0 { (mean_tv - mean_t * m1) / var_t } else { f64::NAN };
        let ((t_first, v_first), (t_last, v_last)) = (self.first, self.last);
        let span = t_last - t_first;
        let roc = if span > 0.0 { (v_last - v_first) / span } else { f64::NAN };
        let mut r = [f64::NAN; Feature::ALL.len()];
        r[Feature::Mean.index()] = value_mean;
        r[Feature::Rms.index()] = rms;
        r[Feature::Std.index()] = std;
        r[Feature::Min.index()] = value_min;
        r[Feature::Max.index()] = value_max;
        r[Feature::PeakToPeak.index()] = max - min;
        r[Feature::Kurtosis.index()] = kurtosis;
        r[Feature::CrestFactor.index()] = crest;
        r[Feature::Slope.index()] = slope;
        r[Feature::RateOfChange.index()] = roc;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(samples: &[(Millis, f64)]) -> Window {
        let mut w = Window::new(3_600_000, 1000);
        for &(t, v) in samples {
            w.push(t, v).unwrap();
        }
        w
    }

    #[test]
    fn features_match_hand_computation() {
        let now = 3_600_000;
        // 1, 2, 3, 4 at 20-minute spacing over the hour before now: 3 units per hour.
        let a = window(&[(0, 1.0), (1_200_000, 2.0), (2_400_000, 3.0), (3_600_000, 4.0)]);
        let b = window(&[(3_000_000, -2.0), (3_100_000, 2.0)]);
        let empty = window(&[]);
        let windows = [a, empty, b];
        let tables = compute(&windows, &[now], 1000, 2);
        let t = &tables[0];
        let g = |slot, f| t.get(slot, f).unwrap();
        assert!((g(0, Feature::Mean) - 2.5).abs() < 1e-12);
        assert!((g(0, Feature::Rms) - (7.5f64).sqrt()).abs() < 1e-12);
        assert!((g(0, Feature::Std) - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(g(0, Feature::Min), 1.0);
        assert_eq!(g(0, Feature::Max), 4.0);
        assert_eq!(g(0, Feature::PeakToPeak), 3.0);
        // 3 units over 1 hour
        assert!((g(0, Feature::Slope) - 3.0).abs() < 1e-9);
        assert!((g(0, Feature::RateOfChange) - 3.0).abs() < 1e-9);
        // population kurtosis of 1,2,3,4 is 1.64
        assert!((g(0, Feature::Kurtosis) - 1.64).abs() < 1e-9);
        assert!((g(0, Feature::CrestFactor) - 4.0 / (7.5f64).sqrt()).abs() < 1e-12);
        assert!(t.row(1).is_none());
        assert_eq!(g(2, Feature::Mean), 0.0);
        assert_eq!(g(2, Feature::CrestFactor), 1.0);
    }

    #[test]
    fn moments_stay_exact_far_from_zero() {
        // A large offset with a small spread: naive power sums would lose it all.
        let vals: Vec<f64> = (0..50).map(|i| 1.0e9 + ((i * 37) % 11) as f64 * 0.01).collect();
        let w = window(
            &vals.iter().enumerate().map(|(i, &v)| (i as Millis * 1_000, v)).collect::<Vec<_>>(),
        );
        let t = &compute(&[w], &[49_000], 1000, 3)[0];
        let mean = vals.iter().sum::<f64>() / 50.0;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 49.0;
        let m2 = var * 49.0 / 50.0;
        let m4 = vals.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / 50.0;
        assert!((t.get(0, Feature::Std).unwrap() - var.sqrt()).abs() < 1e-9);
        assert!((t.get(0, Feature::Kurtosis).unwrap() - m4 / (m2 * m2)).abs() < 1e-6);
        assert!((t.get(0, Feature::Mean).unwrap() - mean).abs() < 1e-6);
    }

    #[test]
    fn a_batch_of_times_equals_one_call_per_time() {
        let mut w = Window::new(600_000, 1000);
        for i in 0..100 {
            w.push(i * 60_000, ((i * 7) % 11) as f64).unwrap();
        }
        let times: Vec<Millis> = (20..100).step_by(3).map(|i| i * 60_000).collect();
        let windows = [w];
        let batch = compute(&windows, &times, 8, 3);
        for (k, &t) in times.iter().enumerate() {
            let one = compute(&windows, &[t], 8, 3);
            assert_eq!(batch[k].row(0), one[0].row(0), "at {t}");
        }
        // At most 8 samples: the mean of the newest 8 at the last time.
        let end = times.last().unwrap() / 60_000;
        let last: f64 = (end - 7..=end).map(|i| ((i * 7) % 11) as f64).sum::<f64>() / 8.0;
        assert!((batch.last().unwrap().get(0, Feature::Mean).unwrap() - last).abs() < 1e-12);
    }
}
