//! Logging set-up and rate-limited warnings for per-message problems.

use crate::config::schema::{Log, LogFormat};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber. `RUST_LOG` wins over the config.
///
/// - JSON: one object per line with every field at the top level, for log shippers.
/// - Pretty: colours only on a terminal and without `NO_COLOR`; under systemd's
///   journal (`JOURNAL_STREAM` set) each line starts with its syslog priority
///   (`<3>` error … `<7>` debug) and leaves the timestamp to the journal.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour && !journal);
    // A second init (tests, embedded use) is harmless: the first subscriber stays.
    let _ = match (log.format, journal) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Pretty, true) => builder
            .event_format(Priority(tracing_subscriber::fmt::format().compact().without_time()))
            .try_init(),
        (LogFormat::Pretty, false) => builder.compact().try_init(),
    };
}

/// Prefixes each line with its syslog priority, as the journal reads it (sd-daemon(3)).
struct Priority<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Priority<F>
where
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Lets one warning per key through per period and counts the rest, so a
/// device spewing garbage cannot flood the log.
#[derive(Debug)]
pub struct RateLimiter {
    period: Duration,
    seen: HashMap<String, (Instant, u64)>,
}

impl RateLimiter {
    pub fn new(period: Duration) -> Self {
        Self { period, seen: HashMap::new() }
    }

    /// Returns `Some(suppressed)` when a warning for `key` may be logged now,
    /// with the number of warnings held back since the last one.
    pub fn allow(&mut self, key: &str) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    /// [`allow`](Self::allow) at `now`.
    pub fn allow_at(&mut self, key: &str, now: Instant) -> Option<u64> {
        match self.seen.get_mut(key) {
            Some((last, suppressed)) if now.duration_since(*last) < self.period => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                let n = *suppressed;
                *last = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                if self.seen.len() > 10_000 {
                    self.seen.clear(); // bounded memory against endless distinct keys
                }
                self.seen.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// Most warnings one owner of [`LogLimits`] (an `Events`) logs per
/// [`BUDGET_PERIOD`], whatever their keys: garbage on a thousand topics stays a
/// few lines, and the rest are summed up in one.
pub const BUDGET_WARNINGS: u64 = 20;

/// The period of [`BUDGET_WARNINGS`].
pub const BUDGET_PERIOD: Duration = Duration::from_secs(30);

/// A budget of warnings per period shared by all keys. Warnings over it are
/// held back and counted until the period is over.
#[derive(Debug)]
struct Budget {
    limit: u64,
    period: Duration,
    started: Option<Instant>,
    spent: u64,
    held: u64,
}

impl Budget {
    fn new(limit: u64, period: Duration) -> Self {
        Self { limit, period, started: None, spent: 0, held: 0 }
    }

    /// Starts a new period at `now` when the current one is over; returns how
    /// many warnings the finished period held back, if any.
    fn roll(&mut self, now: Instant) -> Option<u64> {
        if self.started.is_some_and(|s| now.duration_since(s) < self.period) {
            return None;
        }
        self.started = Some(now);
        self.spent = 0;
        Some(std::mem::take(&mut self.held)).filter(|&n| n > 0)
    }
}

/// What [`LogLimits::admit`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Warnings the global budget held back in a finished period: log one summary line.
    pub held_back: Option<u64>,
    /// `Some(suppressed)` when the warning may be logged, as [`RateLimiter::allow`] says.
    pub allowed: Option<u64>,
}

/// A [`RateLimiter`] per key within a global budget of warnings per period
/// (for `Events`: [`BUDGET_WARNINGS`] per [`BUDGET_PERIOD`]). Every warning held
/// back is counted once: by its key's limiter, or by the spent budget.
#[derive(Debug)]
pub struct LogLimits {
    per_key: RateLimiter,
    budget: Budget,
}

impl LogLimits {
    /// One warning per key per `period`; at most `budget` in all per `budget_period`.
    pub fn new(period: Duration, budget: u64, budget_period: Duration) -> Self {
        Self { per_key: RateLimiter::new(period), budget: Budget::new(budget, budget_period) }
    }

    /// Decides about one warning for `key` at `now`.
    pub fn admit(&mut self, key: &str, now: Instant) -> Admission {
        let held_back = self.budget.roll(now);
        if self.budget.spent >= self.budget.limit {
            self.budget.held += 1;
            return Admission { held_back, allowed: None };
        }
        let allowed = self.per_key.allow_at(key, now);
        if allowed.is_some() {
            self.budget.spent += 1;
        }
        Admission { held_back, allowed }
    }

    /// Takes the count of warnings the budget held back and no summary reported yet.
    pub fn take_held(&mut self) -> u64 {
        std::mem::take(&mut self.budget.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let mut r = RateLimiter::new(Duration::from_secs(60));
        assert_eq!(r.allow("a"), Some(0));
        assert_eq!(r.allow("a"), None);
        assert_eq!(r.allow("a"), None);
        assert_eq!(r.allow("b"), Some(0));
        let mut fast = RateLimiter::new(Duration::ZERO);
        fast.allow("a");
        assert_eq!(fast.allow("a"), Some(0));
    }

    fn limits(budget: u64) -> LogLimits {
        LogLimits::new(Duration::from_secs(60), budget, Duration::from_secs(30))
    }

    #[test]
    fn the_budget_caps_warnings_across_keys_and_sums_up_the_rest_once() {
        let t0 = Instant::now();
        let mut l = limits(20);
        let allowed =
            (0..1000).filter(|i| l.admit(&format!("topic-{i}"), t0).allowed.is_some()).count();
        assert_eq!(allowed, 20, "1,000 distinct topics, 20 lines");
        let later = t0 + Duration::from_secs(29);
        assert_eq!(l.admit("topic-x", later), Admission { held_back: None, allowed: None });
        // The first warning after the period brings one summary of all 981 held back.
        let next = t0 + Duration::from_secs(30);
        assert_eq!(l.admit("topic-y", next), Admission { held_back: Some(981), allowed: Some(0) });
        assert_eq!(l.admit("topic-z", next).held_back, None, "the summary comes once");
        assert_eq!(l.take_held(), 0);
    }

    #[test]
    fn repeats_of_one_key_are_the_key_limiters_not_the_budgets() {
        let t0 = Instant::now();
        let mut l = limits(3);
        assert_eq!(l.admit("a", t0).allowed, Some(0));
        for _ in 0..100 {
            assert_eq!(l.admit("a", t0).allowed, None);
        }
        assert_eq!(l.admit("b", t0).allowed, Some(0), "100 repeats of a spent nothing");
        assert_eq!(l.admit("c", t0).allowed, Some(0));
        assert_eq!(l.admit("d", t0).allowed, None, "a budget of 3");
        let next = t0 + Duration::from_secs(31);
        assert_eq!(l.admit("e", next), Admission { held_back: Some(1), allowed: Some(0) });
        // a's repeats are reported by a's next line, once its own period is over.
        assert_eq!(l.admit("a", t0 + Duration::from_secs(61)).allowed, Some(100));
    }

    #[test]
    fn held_back_warnings_can_be_taken_for_a_last_summary() {
        let t0 = Instant::now();
        let mut l = limits(1);
        for key in ["a", "b", "c"] {
            l.admit(key, t0);
        }
        assert_eq!(l.take_held(), 2);
        assert_eq!(l.take_held(), 0);
    }
}
