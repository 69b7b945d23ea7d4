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
/// A sample takes 12 bytes: its time as milliseconds after the window's
/// `base` (an `i32`, so a window holds at most [`MAX_SPAN`]) and its value.
#[derive(Debug, Clone)]
pub struct Window {
    span: Millis,
    capacity: usize,
    /// The time the offsets count from.
    base: Millis,
    /// Sample times, as milliseconds after `base`, oldest first.
    offsets: VecDeque<i32>,
    /// Sample values, in the same order.
    values: VecDeque<f64>,
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

/// The longest window span: sample times are kept as `i32` milliseconds.
pub const MAX_SPAN: Millis = crate::config::schema::MAX_WINDOW_MS;

impl Window {
    pub fn new(span: Millis, capacity: usize) -> Self {
        Self {
            span: span.min(MAX_SPAN),
            capacity: capacity.max(2),
            base: 0,
            offsets: VecDeque::new(),
            values: VecDeque::new(),
            pushed: 0,
            evicted: None,
            first: None,
            resumed: VecDeque::new(),
        }
    }

    /// This window as one of `span` and `capacity` would hold it: itself when
    /// those are its own, else a new window its samples are pushed into.
    pub fn reshaped(&self, span: Millis, capacity: usize) -> Self {
        if span.min(MAX_SPAN) == self.span && capacity.max(2) == self.capacity {
            return self.clone();
        }
        let mut w = Self::new(span, capacity);
        for (ts, v) in self.samples() {
            let _ = w.push(ts, v);
        }
        w
    }

    /// The time of the sample at index `i`.
    fn time(&self, i: usize) -> Millis {
        self.base + Millis::from(self.offsets[i])
    }

    /// The time of the newest sample.
    fn newest(&self) -> Option<Millis> {
        self.offsets.back().map(|&o| self.base + Millis::from(o))
    }

    /// Index of the first sample with a time that `before` does not hold for
    /// (the samples are sorted by time).
    fn partition(&self, before: impl Fn(Millis) -> bool) -> usize {
        let base = self.base;
        self.offsets.partition_point(|&o| before(base + Millis::from(o)))
    }

    /// Adds a sample; slightly out-of-order samples are inserted in place.
    pub fn push(&mut self, ts: Millis, value: f64) -> Result<(), Rejected> {
        let newest = self.newest().unwrap_or(ts);
        if ts < newest - self.span {
            return Err(Rejected::Late);
        }
        let previous = self.newest().or(self.evicted);
        let offset = self.offset(ts);
        let at = if ts >= newest { self.len() } else { self.partition(|t| t <= ts) };
        // Samples of the same time sit just before `at`.
        let same = (0..at).rev().take_while(|&i| self.time(i) == ts);
        if same.into_iter().any(|i| self.values[i].to_bits() == value.to_bits()) {
            return Err(Rejected::Duplicate);
        }
        if previous.is_some_and(|p| ts - p > self.span) {
            self.resumed.push_back(ts);
        }
        self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
        self.offsets.insert(at, offset);
        self.values.insert(at, value);
        if self.len() > self.capacity {
            self.evict();
        }
        self.pushed += 1;
        Ok(())
    }

    /// `ts` as an offset from `base`. When the newest sample has gone an
    /// `i32` past `base` (after about 25 days of data), `base` moves to half
    /// that range before `ts`, and samples more than one and a half ranges
    /// older than `ts` (37 days), which no window reaches, are evicted.
    fn offset(&mut self, ts: Millis) -> i32 {
        if self.offsets.is_empty() {
            self.base = ts;
        }
        if let Ok(o) = i32::try_from(ts - self.base) {
            return o;
        }
        let base = ts - MAX_SPAN / 2;
        while !self.offsets.is_empty() && self.time(0) - base < Millis::from(i32::MIN) {
            self.evict();
        }
        let old = self.base;
        // Every time held is now within an i32 of `base`: the casts keep them exact.
        for o in &mut self.offsets {
            *o = (old + Millis::from(*o) - base) as i32;
        }
        self.base = base;
        (ts - base) as i32
    }

    fn evict(&mut self) {
        if let Some(o) = self.offsets.pop_front() {
            self.values.pop_front();
            let ts = self.base + Millis::from(o);
            self.evicted = Some(self.evicted.map_or(ts, |e| e.max(ts)));
        }
    }

    /// Drops samples older than `now - span`.
    pub fn prune(&mut self, now: Millis) {
        while !self.offsets.is_empty() && self.time(0) < now - self.span {
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
        let end = self.partition(|t| t <= at);
        let start = self.partition(|t| t < at - self.span).max(end.saturating_sub(max));
        start..end.max(start)
    }

    /// The samples in an index range from [`Window::range_at`], in time
    /// order, as runs contiguous in memory: `f(base, offsets, values)` per
    /// run, a sample's time being `base + offset`.
    pub fn runs(&self, r: std::ops::Range<usize>, mut f: impl FnMut(Millis, &[i32], &[f64])) {
        let (o1, o2) = self.offsets.as_slices();
        let (v1, v2) = self.values.as_slices();
        let end = r.end.min(self.len());
        let start = r.start.min(end);
        // The two buffers may wrap at different indices: cut the range at both.
        let mut cuts = [start, o1.len().clamp(start, end), v1.len().clamp(start, end), end];
        cuts[1..3].sort_unstable();
        for w in cuts.windows(2) {
            let (i, j) = (w[0], w[1]);
            if i >= j {
                continue;
            }
            let offsets = if i < o1.len() { &o1[i..j] } else { &o2[i - o1.len()..j - o1.len()] };
            let values = if i < v1.len() { &v1[i..j] } else { &v2[i - v1.len()..j - v1.len()] };
            f(self.base, offsets, values);
        }
    }

    /// Samples accepted up to event time `at` (exact while the samples pushed
    /// after `at` are still in the buffer: see the pipeline's headroom).
    pub fn pushed_until(&self, at: Millis) -> u64 {
        let later = self.len() - self.partition(|t| t <= at);
        self.pushed - later as u64
    }

    /// Time of the newest sample at or before `at`.
    pub fn seen_at(&self, at: Millis) -> Option<Millis> {
        match self.partition(|t| t <= at) {
            0 => self.evicted.filter(|&e| e <= at),
            n => Some(self.time(n - 1)),
        }
    }

    /// The samples, as (time, value), in time order.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = (Millis, f64)> + '_ {
        let base = self.base;
        self.offsets.iter().zip(&self.values).map(move |(&o, &v)| (base + Millis::from(o), v))
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Bytes its sample buffers take, spare capacity included.
    pub fn buffer_bytes(&self) -> usize {
        self.offsets.capacity() * std::mem::size_of::<i32>()
            + self.values.capacity() * std::mem::size_of::<f64>()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The sample at index `i` (see [`Window::range_at`]), as (time, value).
    pub fn sample(&self, i: usize) -> Option<(Millis, f64)> {
        Some((self.base + Millis::from(*self.offsets.get(i)?), *self.values.get(i)?))
    }

    /// The newest sample's value.
    pub fn latest(&self) -> Option<(Millis, f64)> {
        Some((self.newest()?, *self.values.back()?))
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
        let at = |t, max| {
            let mut out = Vec::new();
            w.runs(w.range_at(t, max), |_, _, values| out.extend_from_slice(values));
            out
        };
        assert_eq!(at(5_000, 100), [2.0, 3.0, 4.0, 5.0], "[t - span, t], nothing after t");
        assert_eq!(at(5_000, 2), [4.0, 5.0], "the newest `max` samples only");
        assert_eq!(at(-1, 100), Vec::<f64>::new());
        assert_eq!(w.pushed_until(5_000), 10 - 4);
        assert_eq!(w.seen_at(5_500), Some(5_000));
        assert_eq!(w.seen_at(-1), None);
    }

    #[test]
    fn samples_weeks_apart_keep_exact_times() {
        const DAY: Millis = 86_400_000;
        let mut w = Window::new(MAX_SPAN, 100);
        let t0 = 1_700_000_000_000;
        w.push(t0, 1.0).unwrap();
        w.push(t0 + 20 * DAY + 1, 2.0).unwrap();
        w.push(t0 + 30 * DAY + 3, 2.8).unwrap();
        assert_eq!(
            w.samples().collect::<Vec<_>>(),
            [(t0, 1.0), (t0 + 20 * DAY + 1, 2.0), (t0 + 30 * DAY + 3, 2.8)],
            "30 days apart: all held, to the millisecond"
        );
        w.push(t0 + 60 * DAY + 7, 3.0).unwrap();
        assert_eq!(
            w.samples().collect::<Vec<_>>(),
            [(t0 + 30 * DAY + 3, 2.8), (t0 + 60 * DAY + 7, 3.0)],
            "more than 37 days older than the newest: no window reaches them"
        );
        assert_eq!(w.seen_at(t0 + 21 * DAY), Some(t0 + 20 * DAY + 1), "evicted, still seen");
        w.push(t0 + 40 * DAY, 2.5).unwrap();
        assert_eq!(w.samples().nth(1), Some((t0 + 40 * DAY, 2.5)), "in order after a move of base");
        let mut values = Vec::new();
        w.runs(w.range_at(t0 + 60 * DAY + 7, 10), |base, offsets, v| {
            assert!(offsets.iter().all(|&o| base + Millis::from(o) >= t0 + 40 * DAY));
            values.extend_from_slice(v);
        });
        assert_eq!(values, [2.5, 3.0], "the window's span reaches back to day 35");
    }

    #[test]
    fn runs_cover_a_wrapped_buffer_in_order() {
        let mut w = Window::new(1_000_000, 8);
        for t in 0..50 {
            w.push(t * 1_000, t as f64).unwrap();
            let mut seen = Vec::new();
            w.runs(w.range_at(t * 1_000, 5), |base, offsets, values| {
                assert_eq!(offsets.len(), values.len());
                for (&o, &v) in offsets.iter().zip(values) {
                    seen.push((base + Millis::from(o), v));
                }
            });
            let want: Vec<_> = ((t - 4).max(0)..=t).map(|k| (k * 1_000, k as f64)).collect();
            assert_eq!(seen, want, "at {t}");
        }
    }
}
