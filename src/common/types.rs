//! Core value types shared by every stage of the pipeline.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Event time in milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

/// Converts event time to a UTC timestamp, clamping values chrono cannot represent.
pub fn to_datetime(ms: Millis) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// How far a reading can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    Good,
    Stale,
    Bad,
}

/// One sensor value for one channel of one asset at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub asset: Arc<str>,
    pub channel: Arc<str>,
    /// Event time (when it was measured, not when it arrived).
    pub ts: Millis,
    pub value: f64,
    pub quality: Quality,
}

/// Severity of a finding, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Alarm,
    Critical,
}

impl Severity {
    /// The name used in configs, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Alarm => "alarm",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Alarm => "alarm",
            Severity::Critical => "critical",
        })
    }
}

/// What kind of maintenance a work order asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    /// The machine's condition is outside its limits.
    #[default]
    Condition,
    /// A degradation trend predicts a failure.
    PredictedFailure,
    /// The measurement chain (sensor, transmitter, network) is at fault.
    Instrument,
    /// Maintenance due by run hours, starts or calendar time.
    Preventive,
}

/// ISO 10816-3 evaluation zone of a vibration velocity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Zone {
    A,
    B,
    C,
    D,
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Why a detector thinks something is wrong: one measured fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub channel: String,
    pub feature: String,
    pub value: f64,
    pub limit: Option<f64>,
    pub unit: String,
    pub zone: Option<Zone>,
    /// First evaluation at which this condition was seen in the current episode.
    pub since: DateTime<Utc>,
    /// Short human explanation, e.g. "above alarm limit".
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub note: String,
    /// For a predicted failure: when the work should be done by.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub due_by: Option<DateTime<Utc>>,
}
