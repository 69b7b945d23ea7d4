//! Per-channel time windows in bounded ring buffers, driven by event time.

use crate::model::Millis;
use std::collections::VecDeque;

/// Why a sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Older than the window behind the newest sample.
    Late,
}

/// One channel's recent samples, sorted by time, at most `capacity` of them.
#[derive(Debug, Clone)]
pub struct Window {
    span: Millis,
    capacity: usize,
    samples: VecDeque<(Millis, f64)>,
    /// Newest event time ever seen (survives pruning, for staleness).
    last_seen: Option<Millis>,
}

impl Window {
    pub fn new(span: Millis, capacity: usize) -> Self {
        Self { span, capacity: capacity.max(2), samples: VecDeque::new(), last_seen: None }
    }

    /// Adds a sample; slightly out-of-order samples are inserted in place.
    pub fn push(&mut self, ts: Millis, value: f64) -> Result<(), Rejected> {
        let newest = self.samples.back().map_or(ts, |s| s.0);
        if ts < newest - self.span {
            return Err(Rejected::Late);
        }
        if ts >= newest {
            self.samples.push_back((ts, value));
        } else {
            let at = self.samples.partition_point(|s| s.0 <= ts);
            self.samples.insert(at, (ts, value));
        }
        if self.samples.len() > self.capacity {
            self.samples.pop_front();
        }
        self.last_seen = Some(self.last_seen.map_or(ts, |l| l.max(ts)));
        Ok(())
    }

    /// Drops samples older than `now - span`.
    pub fn prune(&mut self, now: Millis) {
        while self.samples.front().is_some_and(|s| s.0 < now - self.span) {
            self.samples.pop_front();
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

    /// Newest event time ever pushed.
    pub fn last_seen(&self) -> Option<Millis> {
        self.last_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(w.last_seen(), Some(5_000));
    }
}
