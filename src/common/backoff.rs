//! The one place that decides retry delays: exponential backoff with jitter
//! (from `backon`), used by the MQTT reconnect loop and the work-order dispatcher.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// An endless sequence of jittered, exponentially growing delays.
pub struct Backoff {
    min: Duration,
    max: Duration,
    inner: backon::ExponentialBackoff,
}

impl Backoff {
    /// Starts at `min`, doubles each step, never exceeds `max`, and never ends.
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self { min, max, inner: Self::build(min, max) }
    }

    #[allow(clippy::disallowed_methods)] // the one place that builds retry delays
    fn build(min: Duration, max: Duration) -> backon::ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// The next delay to wait before retrying.
    pub fn next_delay(&mut self) -> Duration {
        // backon's jitter adds up to one `min` on top; keep the ceiling honest.
        self.inner.next().unwrap_or(self.max).min(self.max)
    }

    /// The jittered delay before attempt `n` (1-based) of something that failed `n - 1` times.
    pub fn nth(min: Duration, max: Duration, n: u32) -> Duration {
        let mut b = Self::new(min, max);
        let mut d = min;
        for _ in 0..n.clamp(1, 64) {
            d = b.next_delay();
        }
        d
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.inner = Self::build(self.min, self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_stays_bounded() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<_> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(100)));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[8] > delays[0], "backoff must grow: {delays:?}");
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(201));
    }
}
