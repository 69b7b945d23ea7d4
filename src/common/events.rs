//! Failure events: one call counts a failure in its metric and logs it,
//! rate-limited per kind and subject with the number held back, and within a
//! budget of lines per part of hums (each `Events`: the MQTT source, each
//! Modbus link, the pipeline, delivery, the loop) whose overflow is summed up
//! in one line, so no
//! failure is counted without a word or logged without a count.

use super::metrics::Metrics;
use super::telemetry::{LogLimits, BUDGET_PERIOD, BUDGET_WARNINGS};
use std::fmt::{Debug, Display};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{error, warn};

/// A failure and what its log line says.
pub enum Failure<'a> {
    /// An MQTT payload larger than `mqtt.max_payload`.
    PayloadOversized { topic: &'a str, error: &'a dyn Display },
    /// An MQTT payload that is not what its subscription expects.
    PayloadMalformed { topic: &'a str, error: &'a dyn Display },
    /// An MQTT payload with a NaN or infinite value.
    PayloadNonFinite { topic: &'a str, error: &'a dyn Display },
    /// A reading's timestamp too far in the future or the past, or unreadable.
    PayloadBadTimestamp { topic: &'a str, error: &'a dyn Display },
    /// A reading outside its channel's valid range: refused, never judged.
    OutOfRange { asset: &'a str, channel: &'a str, value: f64, range: (f64, f64) },
    /// A topic or payload channel that no configured asset channel matches.
    TopicUnmapped { topic: &'a str, why: &'a str },
    /// The MQTT connection failed or was lost.
    MqttConnection { error: &'a dyn Display, retry_in: Duration },
    /// A Modbus link that cannot connect.
    ModbusConnect { link: &'a str, error: &'a dyn Display, retry_in: Duration },
    /// A Modbus exception reply (a device or register-map problem).
    ModbusException {
        link: &'a str,
        unit: u8,
        table: &'a dyn Debug,
        start: u16,
        count: u16,
        error: &'a dyn Display,
    },
    /// A Modbus unit that stopped answering; the others keep polling.
    ModbusUnitDown { link: &'a str, unit: u8, error: &'a dyn Display, retry_in: Duration },
    /// A delivery attempt failed and is retried.
    DeliveryRetry { key: &'a str, reason: &'a str, retry_in: Duration, attempts: u32 },
    /// The backend could not say where an open order stands.
    StatusPoll { key: &'a str, error: &'a dyn Display },
    /// The backend refused an order for good: a dead letter.
    DeadLetter { key: &'a str, id: i64, status: &'a dyn Display, body: &'a str },
    /// The state database failed (`doing` says at what, and what it means).
    Store { doing: &'a str, error: &'a dyn Display },
}

/// Counts and logs failures for one part of hums.
#[derive(Debug)]
pub struct Events {
    metrics: Arc<Metrics>,
    limits: Mutex<LogLimits>,
}

impl Events {
    /// Events counted in `metrics`, each kind and subject logged at most once per
    /// 30 s, and at most [`BUDGET_WARNINGS`] lines per [`BUDGET_PERIOD`] in all.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let limits = LogLimits::new(PER_KEY_PERIOD, BUDGET_WARNINGS, BUDGET_PERIOD);
        Self { metrics, limits: Mutex::new(limits) }
    }

    /// The counters these events increment.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Counts a failure and logs it unless its kind and subject were logged
    /// recently. Every dead letter is logged: an operator must act on each.
    pub fn report(&self, failure: Failure<'_>) {
        let (counter, key, n) = self.tally(&failure);
        let labelled = &self.metrics.labelled;
        match failure {
            Failure::ModbusConnect { link, .. } => labelled.add(
                "modbus_transport_errors_by_link",
                vec![("link", link.to_string()), ("unit", "0".into())],
                1,
            ),
            Failure::ModbusUnitDown { link, unit, .. } => labelled.add(
                "modbus_transport_errors_by_link",
                vec![("link", link.to_string()), ("unit", unit.to_string())],
                1,
            ),
            Failure::ModbusException { link, unit, .. } => labelled.add(
                "modbus_exceptions_by_unit",
                vec![("link", link.to_string()), ("unit", unit.to_string())],
                1,
            ),
            _ => {}
        }
        if let Failure::DeadLetter { .. } = failure {
            counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            return log(&failure, 0);
        }
        self.emit(counter, &key, n, |suppressed| log(&failure, suppressed));
    }

    /// A failure's counter, the subject its warnings are rate-limited by, and its count.
    fn tally(&self, failure: &Failure<'_>) -> (&AtomicU64, String, u64) {
        let m = &*self.metrics;
        match *failure {
            Failure::PayloadOversized { topic, .. } => (&m.payload_oversized, topic.into(), 1),
            Failure::PayloadMalformed { topic, .. } => (&m.payload_malformed, topic.into(), 1),
            Failure::PayloadNonFinite { topic, .. } => (&m.payload_non_finite, topic.into(), 1),
            Failure::PayloadBadTimestamp { topic, .. } => {
                (&m.payload_bad_timestamp, topic.into(), 1)
            }
            Failure::TopicUnmapped { topic, .. } => (&m.topic_unmapped, topic.into(), 1),
            Failure::OutOfRange { asset, channel, .. } => {
                (&m.readings_out_of_range, format!("range-{asset}-{channel}"), 1)
            }
            Failure::MqttConnection { .. } => (&m.mqtt_connection_errors, "mqtt".into(), 1),
            Failure::ModbusConnect { link, .. } => {
                (&m.modbus_transport_errors, format!("modbus-connect-{link}"), 1)
            }
            Failure::ModbusException { link, unit, table, start, .. } => (
                &m.modbus_exceptions,
                format!("modbus-exception-{link}-{unit}-{table:?}-{start}"),
                1,
            ),
            Failure::ModbusUnitDown { link, unit, .. } => {
                (&m.modbus_transport_errors, format!("modbus-unit-{link}-{unit}"), 1)
            }
            Failure::DeliveryRetry { .. } => (&m.delivery_retries, "delivery".into(), 1),
            Failure::StatusPoll { .. } => (&m.status_poll_errors, "status".into(), 1),
            Failure::DeadLetter { .. } => (&m.workorders_dead_lettered, String::new(), 1),
            Failure::Store { doing, .. } => (&m.store_errors, doing.into(), 1),
        }
    }

    /// Adds `n` to `counter`, and logs through `log(suppressed)` when `key` may be logged now.
    fn emit(&self, counter: &AtomicU64, key: &str, n: u64, log: impl FnOnce(u64)) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        let admission = self.limits().admit(key, Instant::now());
        if let Some(count) = admission.held_back {
            held_back(count);
        }
        if let Some(suppressed) = admission.allowed {
            log(suppressed);
        }
    }

    fn limits(&self) -> MutexGuard<'_, LogLimits> {
        self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Events {
    /// Sums up what the global budget still holds back, so it is not lost unsaid.
    fn drop(&mut self) {
        let count = self.limits().take_held();
        if count > 0 {
            held_back(count);
        }
    }
}

/// Each kind and subject is logged at most once per this period.
const PER_KEY_PERIOD: Duration = Duration::from_secs(30);

/// The one line for the warnings the global budget held back in a period.
fn held_back(count: u64) {
    warn!(count, "{count} more warnings suppressed");
}

/// The log line of a failure, with the number of its kind and subject held back since.
fn log(failure: &Failure<'_>, suppressed: u64) {
    match *failure {
        Failure::PayloadOversized { topic, error }
        | Failure::PayloadMalformed { topic, error }
        | Failure::PayloadNonFinite { topic, error }
        | Failure::PayloadBadTimestamp { topic, error } => {
            warn!(topic, error = %error, suppressed, "skipping MQTT payload")
        }
        Failure::TopicUnmapped { topic, why } => {
            warn!(topic, why, suppressed, "MQTT topic not mapped to a configured asset/channel")
        }
        Failure::OutOfRange { asset, channel, value, range: (low, high) } => {
            warn!(
                asset,
                channel,
                value,
                low,
                high,
                suppressed,
                "reading outside the channel's valid range refused (an over-range sentinel or \
                   a faulty transmitter?)"
            )
        }
        Failure::MqttConnection { error, retry_in } => {
            warn!(error = %error, retry_in_s = retry_in.as_secs_f64(), suppressed,
                  "MQTT connection lost; reconnecting")
        }
        Failure::ModbusConnect { link, error, retry_in } => {
            warn!(link, error = %error, retry_in_s = retry_in.as_secs_f64(), suppressed,
                  "Modbus link cannot connect")
        }
        Failure::ModbusException { link, unit, table, start, count, error } => {
            warn!(link, unit, table = ?table, start, count, error = %error, suppressed,
                  "Modbus exception reply")
        }
        Failure::ModbusUnitDown { link, unit, error, retry_in } => {
            warn!(link, unit, error = %error, retry_in_s = retry_in.as_secs_f64(), suppressed,
                  "Modbus unit not answering; backing it off, the others keep polling")
        }
        Failure::DeliveryRetry { key, reason, retry_in, attempts } => {
            warn!(
                key,
                reason,
                retry_in_s = retry_in.as_secs_f64(),
                attempts,
                suppressed,
                "work order delivery failed; will retry"
            )
        }
        Failure::StatusPoll { key, error } => {
            warn!(key, error = %error, suppressed, "cannot read an order's status; will poll again")
        }
        Failure::DeadLetter { key, id, status, body } => {
            error!(key, %status, body, id,
                   "backend refused the work order; parked as a dead letter (fix the cause, \
                    then `hums outbox retry`)")
        }
        Failure::Store { doing, error } => {
            error!(error = %error, suppressed, "state database: {doing}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_global_budget_limits_lines_not_counts() {
        let events = Events::new(Arc::new(Metrics::default()));
        for i in 0..1000 {
            let topic = format!("plant/unmapped-{i}/x");
            events.report(Failure::TopicUnmapped { topic: &topic, why: "test" });
        }
        assert_eq!(events.metrics().snapshot().topic_unmapped, 1000, "every failure counted");
        assert_eq!(events.limits().take_held(), 1000 - BUDGET_WARNINGS, "the rest held back");
    }
}
