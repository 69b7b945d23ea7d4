//! Per-channel time windows in bounded ring buffers, driven by event time.

use crate::common::types::Millis;
use std::collections::VecDeque;

/// Why a sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Older than the window behind the newest sample.
    Late,
    /// The same time and value as a sample already held: a redelivery.
    Duplicate,
}

/// One channel's recent samples, sorted by time, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct Window {
    span: Millis,
    capacity: usize,
    samples: VecDeque<(Millis, f64)>,
    /// Samples accepted since the window was made.
    pushed: u64,
    /// Time of the newest sample that left the buffer.
    evicted: Option<Millis>,
    /// Time of the first sample ever accepted.
    first: Option<Millis>,
    /// Times at which samples resumed after a gap longer than the span,
    /// kept while the window they start is still filling.
    resumed: VecDeque<Millis>,
}

impl Window {
    pub fn new(span: Millis, capacity: usize) -> Self {
        Self {
            span,
            capacity: capacity.max(2),
            samples: VecDeque::new(),
            pushed: 0,
            evicted: None,
            first: None,
            resumed: VecDeque::new(),
        }
    }

    /// This window as one of `span` and `capacity` would hold it: itself when
    /// those are its own, else a new window its samples are pushed into.
    pub fn reshaped(&self, span: Millis, capacity: usize) -> Self {
        if span == self.span && capacity.max(2) == self.capacity {
            return self.clone();
        }
        let mut w = Self::new(span, capacity);
        for &(ts, v) in &self.samples {
            let _ = w.push(ts, v);
        }
        w
    }

    /// Adds a sample; slightly out-of-order samples are inserted in place.
    pub fn push(&mut self, ts: Millis, value: f64) -> Result<(), Rejected> {
        let newest = self.samples.back().map_or(ts, |s| s.0);
        if ts < newest - self.span {
            return Err(Rejected::Late);
        }
        let at = if ts >= newest {
            self.samples.len()
        } else {
            self.samples.partition_point(|s| s.0 <= ts)
        };
        // Samples of the same time sit just before `at`.
        let same = self.samples.range(..at).rev().take_while(|s| s.0 == ts);
        if same.into_iter().any(|s| s.1.to_bits() == value.to_bits()) {
            return Err(Rejected::Duplicate);
        }
        let previous = self.samples.back().map(|s| s.0).or(self.evicted);
        if previous.is_some_and(|p| ts - p > self.span) {
            self.resumed.push_back(ts);
        }
        self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
        self.samples.insert(at, (ts, value));
        if self.samples.len() > self.capacity {
            self.evict();
        }
        self.pushed += 1;
        Ok(())
    }

    fn evict(&mut self) {
        if let Some((ts, _)) = self.samples.pop_front() {
            self.evicted = Some(self.evicted.map_or(ts, |e| e.max(ts)));
        }
    }

    /// Drops samples older than `now - span`.
    pub fn prune(&mut self, now: Millis) {
        while self.samples.front().is_some_and(|s| s.0 < now - self.span) {
            self.evict();
        }
        while self.resumed.front().is_some_and(|&r| r + self.span < now) {
            self.resumed.pop_front();
        }
    }

    /// Whether the window at `at` is still filling after a gap in the data
    /// longer than its span: it then holds less than a window's worth of
    /// the new running, and judging it against a normal would compare a
    /// few samples with a full window's statistics.
    pub fn refilling(&self, at: Millis) -> bool {
        self.resumed.iter().any(|&r| r <= at && at < r + self.span)
    }

    /// Whether the window at `at` holds a whole span of running: samples
    /// began at least a span before, and it is not refilling after a gap.
    pub fn full(&self, at: Millis) -> bool {
        self.first.is_some_and(|f| at - f >= self.span) && !self.refilling(at)
    }

    /// How many samples the window held at `at`.
    pub fn count_at(&self, at: Millis) -> usize {
        self.range_at(at, usize::MAX).len()
    }

    /// The window as it stood at `at`: the index range of the samples in
    /// `[at - span, at]`, at most the newest `max` of them. Samples pushed
    /// after `at` (a replay pushes ahead) are left out.
    pub fn range_at(&self, at: Millis, max: usize) -> std::ops::Range<usize> {
        let end = self.samples.partition_point(|s| s.0 <= at);
        let start =
            self.samples.partition_point(|s| s.0 < at - self.span).max(end.saturating_sub(max));
        start..end.max(start)
    }

    /// The samples in an index range from [`Window::range_at`].
    pub fn slice(&self, r: std::ops::Range<usize>) -> impl Iterator<Item = &(Millis, f64)> {
        self.samples.range(r)
    }

    /// Samples accepted up to event time `at` (exact while the samples pushed
    /// after `at` are still in the buffer: see the pipeline's headroom).
    pub fn pushed_until(&self, at: Millis) -> u64 {
        let later = self.samples.len() - self.samples.partition_point(|s| s.0 <= at);
        self.pushed - later as u64
    }

    /// Time of the newest sample at or before `at`.
    pub fn seen_at(&self, at: Millis) -> Option<Millis> {
        match self.samples.partition_point(|s| s.0 <= at) {
            0 => self.evicted.filter(|&e| e <= at),
            n => Some(self.samples[n - 1].0),
        }
    }

    /// The samples in time order.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = &(Millis, f64)> {
        self.samples.iter()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The newest sample's value.
    pub fn latest(&self) -> Option<(Millis, f64)> {
        self.samples.back().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redelivered_sample_is_refused_in_order_or_not() {
        let mut w = Window::new(60_000, 100);
        for (t, v) in [(1_000, 1.0), (2_000, 2.0), (3_000, 3.0)] {
            w.push(t, v).unwrap();
        }
        assert_eq!(w.push(3_000, 3.0), Err(Rejected::Duplicate), "the newest again");
        assert_eq!(w.push(2_000, 2.0), Err(Rejected::Duplicate), "an older one again");
        assert_eq!(w.push(2_000, 2.5), Ok(()), "another value at the same time is a reading");
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn a_gap_longer_than_the_span_refills_the_window() {
        let mut w = Window::new(10_000, 100);
        for t in 0..5 {
            w.push(t * 1_000, 1.0).unwrap();
        }
        assert!(!w.refilling(4_000), "the first samples are no gap");
        w.push(20_000, 2.0).unwrap();
        assert!(!w.refilling(19_000), "before the gap ended");
        assert!(w.refilling(20_000) && w.refilling(29_999));
        assert!(!w.refilling(30_000), "full again one span after the data resumed");
        w.push(27_000, 2.0).unwrap();
        w.prune(27_000);
        assert!(w.refilling(27_000), "a gap shorter than the span is no gap: still refilling");
        assert!(!w.full(29_000) && w.full(30_000));
        w.prune(60_000);
        w.push(60_000, 2.0).unwrap();
        assert!(w.refilling(60_000), "an emptied window remembers its newest sample");
    }

    #[test]
    fn keeps_order_span_and_capacity() {
        let mut w = Window::new(10_000, 4);
        for (ts, v) in [(1_000, 1.0), (3_000, 3.0), (2_000, 2.0)] {
            w.push(ts, v).unwrap();
        }
        let ts: Vec<_> = w.samples().map(|s| s.0).collect();
        assert_eq!(ts, [1_000, 2_000, 3_000]);
        w.push(4_000, 4.0).unwrap();
        w.push(5_000, 5.0).unwrap();
        assert_eq!(w.len(), 4, "capacity bounds the buffer");
        assert_eq!(w.samples().next().unwrap().0, 2_000);
        assert_eq!(w.push(-6_000, 0.0), Err(Rejected::Late));
        w.prune(14_500);
        assert_eq!(w.samples().map(|s| s.0).collect::<Vec<_>>(), [5_000]);
        w.prune(100_000);
        assert!(w.is_empty());
        assert_eq!(w.seen_at(100_000), Some(5_000), "pruned samples still count as seen");
        assert_eq!(w.pushed_until(100_000), 5);
    }

    #[test]
    fn range_at_sees_the_window_as_it_stood_then() {
        let mut w = Window::new(3_000, 100);
        for t in 0..10 {
            w.push(t * 1_000, t as f64).unwrap();
        }
        let at = |t, max| w.slice(w.range_at(t, max)).map(|s| s.1).collect::<Vec<_>>();
        assert_eq!(at(5_000, 100), [2.0, 3.0, 4.0, 5.0], "[t - span, t], nothing after t");
        assert_eq!(at(5_000, 2), [4.0, 5.0], "the newest `max` samples only");
        assert_eq!(at(-1, 100), Vec::<f64>::new());
        assert_eq!(w.pushed_until(5_000), 10 - 4);
        assert_eq!(w.seen_at(5_500), Some(5_000));
        assert_eq!(w.seen_at(-1), None);
    }
}
