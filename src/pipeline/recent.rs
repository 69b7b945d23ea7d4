//! Recent history for evidence charts: each channel's window mean and each
//! asset's anomaly score over a bounded span, one point per bucket (the mean
//! of its evaluations), so a work order can show the hours before its trip.
//! Memory is fixed: `POINTS` points per series.

use crate::common::types::Millis;
use crate::config::schema::Feature;
use crate::pipeline::features::FeatureTable;
use std::collections::VecDeque;

/// Points kept per series.
pub const POINTS: usize = 360;

#[derive(Debug, Clone, Default)]
struct Series {
    points: VecDeque<(Millis, f64)>,
    /// The open bucket: start, sum, count.
    open: Option<(Millis, f64, u32)>,
}

impl Series {
    fn add(&mut self, now: Millis, v: f64, bucket: Millis) {
        let start = now - now.rem_euclid(bucket);
        match &mut self.open {
            Some((s, sum, n)) if *s == start => {
                *sum += v;
                *n += 1;
            }
            open => {
                if let Some((s, sum, n)) = open.take() {
                    self.points.push_back((s + bucket / 2, sum / f64::from(n)));
                    while self.points.len() > POINTS {
                        self.points.pop_front();
                    }
                }
                *open = Some((start, v, 1));
            }
        }
    }

    fn snapshot(&self, bucket: Millis) -> Vec<(Millis, f64)> {
        let open = self.open.map(|(s, sum, n)| (s + bucket / 2, sum / f64::from(n)));
        self.points.iter().copied().chain(open).collect()
    }
}

/// The recent history of every channel (by slot) and every asset's score.
#[derive(Debug)]
pub struct Recent {
    bucket: Millis,
    channels: Vec<Series>,
    scores: Vec<Series>,
}

impl Recent {
    /// History over `span` for `slots` channels and `assets` scores.
    pub fn new(span: Millis, slots: usize, assets: usize) -> Self {
        Self {
            bucket: (span / POINTS as Millis).max(1),
            channels: vec![Series::default(); slots],
            scores: vec![Series::default(); assets],
        }
    }

    /// Records one evaluation.
    pub fn record(&mut self, now: Millis, table: &FeatureTable, scores: &[f64]) {
        for (slot, s) in self.channels.iter_mut().enumerate() {
            if let Some(v) = table.get(slot, Feature::Mean) {
                s.add(now, v, self.bucket);
            }
        }
        for (s, &v) in self.scores.iter_mut().zip(scores) {
            s.add(now, v, self.bucket);
        }
    }

    /// A channel's recent means, oldest first.
    pub fn channel(&self, slot: usize) -> Vec<(Millis, f64)> {
        self.channels.get(slot).map_or_else(Vec::new, |s| s.snapshot(self.bucket))
    }

    /// An asset's recent anomaly scores, oldest first.
    pub fn score(&self, asset: usize) -> Vec<(Millis, f64)> {
        self.scores.get(asset).map_or_else(Vec::new, |s| s.snapshot(self.bucket))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_average_their_evaluations_and_the_span_is_bounded() {
        let mut s = Series::default();
        for t in 0..(POINTS as Millis + 50) * 10 {
            s.add(t, t as f64, 10);
        }
        let snap = s.snapshot(10);
        assert_eq!(snap.len(), POINTS + 1, "the closed points and the open bucket");
        let (t, v) = snap[snap.len() - 2];
        assert_eq!(v, (t - 5) as f64 + 4.5, "the mean of a bucket's ten evaluations");
        assert!(snap.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
