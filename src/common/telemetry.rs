//! Logging set-up and rate-limited warnings for per-message problems.

use crate::config::schema::{Log, LogFormat};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber (pretty or JSON). `RUST_LOG` wins over the config.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests, embedded use) is harmless: the first subscriber stays.
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
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
        let now = Instant::now();
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
}
