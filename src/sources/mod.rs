//! Sources turn the outside world into [`crate::common::types::Reading`]s,
//! handed to the engine a [`Batch`] at a time: one MQTT message, one Modbus poll.

pub mod modbus;
pub mod mqtt;
pub mod payload;
pub mod replay;

use crate::common::types::Reading;
use crate::pipeline::plant::Plant;
use std::sync::Arc;

/// The readings of one message or poll, with the plant slots the source
/// already resolved (so the engine needs no lookup by name).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub readings: Vec<Reading>,
    /// Each reading's slot in `Slots::plant`, when the source resolved them.
    pub slots: Option<Slots>,
}

/// Slots resolved against one plant (a reload may have replaced it since).
#[derive(Debug, Clone)]
pub struct Slots {
    pub plant: Arc<Plant>,
    pub slots: Vec<usize>,
}

impl Batch {
    /// Readings the engine resolves by asset and channel name.
    pub fn named(readings: Vec<Reading>) -> Self {
        Self { readings, slots: None }
    }

    /// Adds another batch's readings after these. Their slots stay resolved
    /// when both batches were resolved against the same plant.
    pub fn append(&mut self, other: Batch) {
        if self.readings.is_empty() {
            *self = other;
            return;
        }
        if other.readings.is_empty() {
            return;
        }
        self.slots = match (self.slots.take(), other.slots) {
            (Some(mut a), Some(b)) if Arc::ptr_eq(&a.plant, &b.plant) => {
                a.slots.extend(b.slots);
                Some(a)
            }
            _ => None,
        };
        self.readings.extend(other.readings);
    }

    pub fn len(&self) -> usize {
        self.readings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }
}
