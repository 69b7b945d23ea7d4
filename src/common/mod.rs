//! What every stage shares: value types, the clock, metrics, retry delays and logging.

pub mod backoff;
pub mod clock;
pub mod events;
pub mod metrics;
pub mod telemetry;
pub mod types;
