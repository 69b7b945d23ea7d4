//! The one source of "now". Live runs use the system clock, the demo a scaled
//! simulation clock, and tests a manual clock they advance themselves.

use crate::common::types::Millis;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A source of the current time in epoch milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Millis;
    /// Simulated seconds per wall-clock second (1 for real time).
    fn speed(&self) -> f64 {
        1.0
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// Wall-clock UTC time.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        wall_ms()
    }
}

/// Wall-clock time, for what is not event time: the outbox's schedule and
/// records, backend sessions and rate limits. Everything judged reads a [`Clock`].
#[allow(clippy::disallowed_methods)] // the one place that reads the system time
pub fn wall() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// [`wall`] in epoch milliseconds.
pub fn wall_ms() -> Millis {
    wall().timestamp_millis()
}

/// Simulated time that runs `speed` times faster than the wall clock from `start`.
#[derive(Debug)]
pub struct ScaledClock {
    start: Millis,
    origin: Instant,
    speed: f64,
}

impl ScaledClock {
    pub fn new(start: Millis, speed: f64) -> Self {
        Self { start, origin: Instant::now(), speed: speed.max(f64::MIN_POSITIVE) }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Millis {
        self.start + (self.origin.elapsed().as_secs_f64() * 1000.0 * self.speed) as Millis
    }
    fn speed(&self) -> f64 {
        self.speed
    }
}

/// A clock that only moves when told to; for tests and replay.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Millis) -> Self {
        Self(AtomicI64::new(start))
    }
    pub fn set(&self, now: Millis) {
        self.0.store(now, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}
