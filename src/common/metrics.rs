//! Process-wide counters. Every failure kind increments one, so operators can
//! see what was skipped even when the rate-limited logs stayed quiet.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Monotonic counters, one per event kind.
        #[derive(Debug, Default)]
        pub struct Metrics { $($(#[$doc])* pub $name: AtomicU64,)* }

        /// A point-in-time copy of [`Metrics`].
        #[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
        pub struct Snapshot { $(pub $name: u64,)* }

        impl Metrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// MQTT messages received.
    mqtt_messages,
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
    /// Pipeline evaluation ticks.
    eval_ticks,
    /// Feature computations that failed (the tick is skipped).
    feature_errors,
    /// Alarms raised.
    alarms_raised,
    /// Alarms escalated.
    alarms_escalated,
    /// Alarms cleared.
    alarms_cleared,
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
    /// Failed commits to the state database (work orders kept in memory and retried).
    store_errors,
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

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
