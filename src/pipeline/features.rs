//! Window features computed with polars: one frame holding every channel of
//! every asset for one or more evaluation times, grouped by (time, slot).
//! Live runs evaluate one time per call; replays batch thousands, with the
//! same expressions.

use crate::common::types::Millis;
use crate::config::schema::Feature;
use crate::pipeline::window::Window;
use polars::prelude::*;
use polars::series::IsSorted;

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

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Most evaluation times one [`compute`] call may take for `slots` channels
/// (the group key is a `u32`).
pub fn max_batch(slots: usize) -> usize {
    (u32::MAX as usize / slots.max(1)).max(1)
}

/// Computes the features of every window as it stood at each of `times`
/// (ascending): its samples in `[t - span, t]`, at most the newest
/// `max_samples`. Windows with fewer than `min_samples` get no row. Time is
/// in hours before `t`, so slopes and rates of change are in units per hour.
pub fn compute(
    windows: &[Window],
    times: &[Millis],
    max_samples: usize,
    min_samples: usize,
) -> PolarsResult<Vec<FeatureTable>> {
    let width = windows.len();
    let mut tables = vec![FeatureTable { rows: vec![None; width] }; times.len()];
    if times.len() > max_batch(width) {
        let n = times.len();
        polars_bail!(ComputeError: "{n} evaluation times for {width} channels exceed one batch");
    }
    let Samples { slot, t, v, ends } = gather(windows, times, max_samples, min_samples);
    if slot.is_empty() {
        return Ok(tables);
    }
    let moments = Moments::read(&aggregate(slot, t, v)?)?;
    for (i, &s) in moments.slots.iter().enumerate() {
        let (k, s) = (s as usize / width, s as usize % width);
        let Some(row) = tables.get_mut(k).and_then(|t| t.rows.get_mut(s)) else {
            continue;
        };
        *row = Some(moments.row(i, ends[s + k * width]));
    }
    Ok(tables)
}

/// A window's samples at one time, as [`gather`] finds them: the value they
/// are taken relative to, their count, and the first and last (hours before
/// the time, relative value).
type Ends = (f64, f64, (f64, f64), (f64, f64));

/// The samples of every window at every time, one row each, keyed by
/// `time index × window count + window index`; per key its [`Ends`].
struct Samples {
    slot: Vec<u32>,
    t: Vec<f64>,
    v: Vec<f64>,
    ends: Vec<Ends>,
}

/// Gathers the samples of every window with at least `min_samples` (and at
/// most the newest `max_samples`) at each of `times`.
fn gather(windows: &[Window], times: &[Millis], max_samples: usize, min_samples: usize) -> Samples {
    let width = windows.len();
    let ranges: Vec<_> = times
        .iter()
        .flat_map(|&now| windows.iter().map(move |w| w.range_at(now, max_samples)))
        .collect();
    let total: usize =
        ranges.iter().map(|r| if r.len() >= min_samples.max(1) { r.len() } else { 0 }).sum();
    let mut slot = Vec::with_capacity(total);
    let mut t = Vec::with_capacity(total);
    let mut v = Vec::with_capacity(total);
    // Each window's values are taken relative to its first one: the moments
    // below are sums of powers, which stay exact only near zero.
    // Per key: (origin, count, first and last (t, v)); the ends are known
    // here, so polars need not slice every group for them.
    let mut ends = vec![(0.0, 0.0, (0.0, 0.0), (0.0, 0.0)); ranges.len()];
    for (key, r) in ranges.into_iter().enumerate() {
        if r.len() < min_samples.max(1) {
            continue;
        }
        let now = times[key / width.max(1)];
        let w = &windows[key % width];
        let hours = |ts: Millis| (ts - now) as f64 / MS_PER_HOUR;
        let first = w.slice(r.start..r.start + 1).next();
        let last = w.slice(r.end - 1..r.end).next();
        let (Some(&(t0, o)), Some(&(t1, v1))) = (first, last) else { continue };
        ends[key] = (o, r.len() as f64, (hours(t0), 0.0), (hours(t1), v1 - o));
        for &(ts, value) in w.slice(r) {
            slot.push(key as u32);
            t.push(hours(ts));
            v.push(value - o);
        }
    }
    Samples { slot, t, v, ends }
}

/// Groups the samples by key with polars into per-key means and extremes.
fn aggregate(slot: Vec<u32>, t: Vec<f64>, v: Vec<f64>) -> PolarsResult<DataFrame> {
    // Rows are built key by key, so the key is sorted: polars then groups by
    // slicing instead of hashing.
    let mut slot = Column::new("slot".into(), slot);
    slot.set_sorted_flag(IsSorted::Ascending);
    let (t, v) = (Column::new("t".into(), t), Column::new("v".into(), v));
    let df = DataFrame::new(slot.len(), vec![slot, t, v])?;
    // Only plain per-group means and extremes: polars runs these as grouped
    // kernels rather than once per group.
    let v2 = col("v") * col("v");
    df.lazy()
        .group_by([col("slot")])
        .agg([
            col("v").mean().alias("mean"),
            v2.clone().mean().alias("mean_sq"),
            (v2.clone() * col("v")).mean().alias("mean_cube"),
            (v2.clone() * v2).mean().alias("mean_4th"),
            col("v").min().alias("min"),
            col("v").max().alias("max"),
            col("t").mean().alias("mean_t"),
            (col("t") * col("t")).mean().alias("mean_tt"),
            (col("t") * col("v")).mean().alias("mean_tv"),
        ])
        .collect()
}

/// The grouped aggregates of the relative values `v` and hours `t`, one
/// entry per key.
struct Moments {
    slots: Vec<u32>,
    mean: Vec<f64>,
    mean_sq: Vec<f64>,
    mean_cube: Vec<f64>,
    mean_4th: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    mean_t: Vec<f64>,
    mean_tt: Vec<f64>,
    mean_tv: Vec<f64>,
}

impl Moments {
    /// Reads the aggregates back from the grouped frame.
    fn read(out: &DataFrame) -> PolarsResult<Self> {
        let f = |name: &str| -> PolarsResult<Vec<f64>> {
            let c = out.column(name)?.cast(&DataType::Float64)?;
            Ok(c.f64()?.iter().map(|x| x.unwrap_or(f64::NAN)).collect())
        };
        let slots: Vec<u32> =
            out.column("slot")?.u32()?.iter().map(|x| x.unwrap_or(u32::MAX)).collect();
        let names = [
            "mean",
            "mean_sq",
            "mean_cube",
            "mean_4th",
            "min",
            "max",
            "mean_t",
            "mean_tt",
            "mean_tv",
        ];
        let [mean, mean_sq, mean_cube, mean_4th, min, max, mean_t, mean_tt, mean_tv] = names.map(f);
        Ok(Moments {
            slots,
            mean: mean?,
            mean_sq: mean_sq?,
            mean_cube: mean_cube?,
            mean_4th: mean_4th?,
            min: min?,
            max: max?,
            mean_t: mean_t?,
            mean_tt: mean_tt?,
            mean_tv: mean_tv?,
        })
    }

    /// The features of entry `i`, whose samples had these [`Ends`].
    fn row(&self, i: usize, ends: Ends) -> FeatureRow {
        // Raw moments of the shifted values s = v − o give the central ones.
        let (o, n, (t_first, v_first), (t_last, v_last)) = ends;
        let (m1, e2, e3, e4) = (self.mean[i], self.mean_sq[i], self.mean_cube[i], self.mean_4th[i]);
        let (min, max) = (self.min[i], self.max[i]);
        let m2 = (e2 - m1 * m1).max(0.0);
        let m4 = (e4 - 4.0 * m1 * e3 + 6.0 * m1 * m1 * e2 - 3.0 * m1.powi(4)).max(0.0);
        let (value_mean, value_min, value_max) = (o + m1, o + min, o + max);
        let rms = (e2 + 2.0 * o * m1 + o * o).max(0.0).sqrt();
        let std = if n > 1.0 { (m2 * n / (n - 1.0)).sqrt() } else { 0.0 };
        let kurtosis = if m2 > 0.0 { m4 / (m2 * m2) } else { f64::NAN };
        let crest = if rms > 0.0 { value_max.abs().max(value_min.abs()) / rms } else { f64::NAN };
        let (mean_t, mean_tt, mean_tv) = (self.mean_t[i], self.mean_tt[i], self.mean_tv[i]);
        let var_t = mean_tt - mean_t * mean_t;
        let slope = if var_t > 0.0 { (mean_tv - mean_t * m1) / var_t } else { f64::NAN };
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
        let tables = compute(&windows, &[now], 1000, 2).unwrap();
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
        let t = &compute(&[w], &[49_000], 1000, 3).unwrap()[0];
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
        let batch = compute(&windows, &times, 8, 3).unwrap();
        for (k, &t) in times.iter().enumerate() {
            let one = compute(&windows, &[t], 8, 3).unwrap();
            assert_eq!(batch[k].row(0), one[0].row(0), "at {t}");
        }
        // At most 8 samples: the mean of the newest 8 at the last time.
        let end = times.last().unwrap() / 60_000;
        let last: f64 = (end - 7..=end).map(|i| ((i * 7) % 11) as f64).sum::<f64>() / 8.0;
        assert!((batch.last().unwrap().get(0, Feature::Mean).unwrap() - last).abs() < 1e-12);
    }
}
