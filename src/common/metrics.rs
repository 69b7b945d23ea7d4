//! Process-wide counters. Every failure kind increments one, so operators can
//! see what was skipped even when the rate-limited logs stayed quiet.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

macro_rules! counters {
    ($($group:ident { $($(#[doc = $doc:literal])* $name:ident),* $(,)? })*) => {
        /// Monotonic counters, one per event kind, and the labelled ones.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($($(#[doc = $doc])* pub $name: AtomicU64,)*)*
            /// Counters per source, link or unit (failure paths and per-poll counts only).
            pub labelled: Labelled,
            /// Whether each source is connected now.
            pub connected: Connected,
        }

        /// Each counter's name and its help text (its doc comment).
        pub const HELP: &[(&str, &str)] = &[$($((stringify!($name), concat!($($doc),*)),)*)*];

        /// A point-in-time copy of [`Metrics`].
        #[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
        #[serde(default)]
        pub struct Snapshot { $($(pub $name: u64,)*)* }

        impl Metrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($($name: self.$name.load(Ordering::Relaxed),)*)* }
            }
        }

        /// Logs every counter as plain fields, one line per group
        /// (`counters ingest`, `counters judgement`), for log shippers.
        pub fn log_counters(s: &Snapshot) {
            $(tracing::info!($($name = s.$name,)* concat!("counters ", stringify!($group)));)*
        }
    };
}

counters! {
    ingest {
        /// MQTT messages received.
        mqtt_messages,
        /// MQTT messages held in the source while the engine was busy (acknowledged once handed on).
        mqtt_backlogged,
        /// Readings accepted into the pipeline.
        readings_accepted,
        /// Payloads that were not a number or valid JSON, or lacked the value.
        payload_malformed,
        /// Payloads larger than the configured maximum.
        payload_oversized,
        /// NaN or infinite values.
        payload_non_finite,
        /// Timestamps that could not be parsed or were too far in the past or future.
        payload_bad_timestamp,
        /// Topics that matched a subscription but no configured asset/channel.
        topic_unmapped,
        /// Readings outside their channel's valid range (refused, never judged).
        readings_out_of_range,
        /// Readings with the time and value of one already in their window (a
        /// redelivery, e.g. after a restart): not judged twice.
        readings_duplicate,
        /// Readings older than their channel's window when they arrived.
        readings_late,
        /// MQTT connection errors (each one triggers a backoff and reconnect).
        mqtt_connection_errors,
        /// Re-subscriptions because the broker had no session for us.
        mqtt_resubscribes,
        /// QoS 1 acks that waited for room in the MQTT client's request queue (sent later, in order).
        mqtt_acks_deferred,
        /// QoS 1 acks never sent (connection lost, or a stop that timed out): the
        /// broker redelivers those messages.
        mqtt_acks_unsent,
        /// Redelivered QoS 1 messages recognised as already handed on: acked, not judged again.
        mqtt_duplicates,
        /// Modbus read requests sent.
        modbus_requests,
        /// Modbus connections opened (the first and every reconnect).
        modbus_connects,
        /// Modbus timeouts, transport errors and failed connects (connection dropped).
        modbus_transport_errors,
        /// Modbus exception replies (device or config problems).
        modbus_exceptions,
        /// Modbus values that decoded to NaN or infinity (marked bad).
        modbus_bad_values,
    }
    judgement {
            /// Pipeline evaluation ticks.
        eval_ticks,
        /// Judgements of limits and zones on a reading's arrival, between evaluations, that found something.
        limits_judged_on_arrival,
        /// Alarms raised.
        alarms_raised,
        /// Alarms escalated.
        alarms_escalated,
        /// Alarms cleared.
        alarms_cleared,
        /// Alarm transitions withheld by a shelf or out of service (recorded, released when it ends).
        alarms_withheld,
        /// Findings of process failure modes dropped because their machine was stopped.
        findings_while_stopped,
        /// Work orders planned.
        workorders_planned,
        /// Work orders the backend accepted.
        workorders_delivered,
        /// Delivery attempts that failed and will be retried.
        delivery_retries,
        /// Status look-ups of open orders that failed (polled again later).
        status_poll_errors,
        /// Work orders the backend refused permanently (dead letters).
        workorders_dead_lettered,
        /// Uncertain attempts resolved by a look-up that found the order already there.
        workorders_found_by_lookup,
        /// Work orders held back by flood control (listed in the outbox as `held`).
        workorders_held,
        /// Incident or grouped work orders created by flood control.
        workorders_grouped,
        /// Messages hums's MQTT publisher could not queue (a broker down), and alarm events it had no room for.
        mqtt_publish_dropped,
        /// Configuration reloads that failed (hums kept running on the configuration before).
        config_reload_failures,
        /// Failed commits to the state database (work orders kept in memory and retried).
        store_errors,
    }
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters with labels, such as Modbus exceptions per link and unit. A lock
/// per count: used on failure paths and once per poll, never per reading.
#[derive(Debug, Default)]
pub struct Labelled(Mutex<BTreeMap<(&'static str, Labels), u64>>);

/// A counter's labels: (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

impl Labelled {
    /// Adds `n` to the counter `name` with these labels.
    pub fn add(&self, name: &'static str, labels: Labels, n: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((name, labels)).or_default() += n;
    }

    /// Every labelled counter: (name, labels, value), ordered by name.
    pub fn snapshot(&self) -> Vec<(&'static str, Labels, u64)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|((n, l), v)| (*n, l.clone(), *v)).collect()
    }
}

/// Whether each source is connected now (for `/readyz` and the gauges).
#[derive(Debug, Default)]
pub struct Connected(Mutex<BTreeMap<String, bool>>);

impl Connected {
    /// Records a source's connection state (`mqtt`, `modbus:<link>`).
    pub fn set(&self, source: &str, up: bool) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(source) != Some(&up) {
            map.insert(source.to_string(), up);
        }
    }

    /// Every source's state, by name.
    pub fn snapshot(&self) -> BTreeMap<String, bool> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Help texts of the labelled counters.
pub const LABELLED_HELP: &[(&str, &str)] = &[
    ("modbus_readings", " Readings from each Modbus link."),
    ("modbus_exceptions_by_unit", " Modbus exception replies per link and unit."),
    ("modbus_transport_errors_by_link", " Modbus timeouts, transport errors and failed connects per link and unit (0 for the link itself)."),
];
