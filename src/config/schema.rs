//! The configuration as written in TOML. Every field has a built-in default
//! where one makes sense; `configs/reference.toml` documents them all.

use crate::common::types::{Severity, WorkKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A whole hums configuration after layering defaults, files and environment.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Other files merged before this one, relative to it (class libraries, fragments).
    pub include: Vec<String>,
    pub gateway: Gateway,
    pub log: Log,
    pub mqtt: Mqtt,
    pub pipeline: Pipeline,
    pub alarms: Alarms,
    pub iso10816: Iso10816,
    /// The maintenance backend: `kind` and that kind's settings (`config::backend`).
    pub backend: super::backend::Backend,
    pub state: StateDir,
    pub flood: Flood,
    pub modbus: super::modbus::Modbus,
    pub replay: Replay,
    /// The operator's HTTP server: health, metrics, JSON API and status page.
    pub http: super::operate::Http,
    /// hums's judgement published back to MQTT for SCADA and dashboards.
    pub publish: super::operate::Publish,
    /// Hot reload of the configuration files.
    pub reload: super::operate::Reload,

    /// Failure modes of the measurement chain itself, e.g. `stale_data`.
    pub instrument: BTreeMap<String, FailureMode>,
    /// Asset classes by name (`pump`, `fan`, `chiller`, ...).
    pub classes: BTreeMap<String, AssetClass>,
    pub assets: Vec<Asset>,
    /// Assets made per replay input file: each applies to every file that has
    /// all of its class's channel columns, with the file stem as the asset id.
    pub asset_templates: Vec<Asset>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Gateway {
    /// Stable id of this gateway; part of MQTT client ids and idempotency keys.
    pub id: String,
}

impl Default for Gateway {
    fn default() -> Self {
        Self { id: "hums".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Log {
    /// A `tracing` filter such as `info` or `hums=debug,rumqttc=warn`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Pretty }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Mqtt {
    pub host: String,
    pub port: u16,
    /// Defaults to `hums-<gateway.id>`; must be stable for the persistent session.
    pub client_id: Option<String>,
    /// Names of the environment variables holding the credentials.
    pub username_env: String,
    pub password_env: String,
    #[serde(with = "humantime_serde")]
    pub keep_alive: Duration,
    /// Largest payload accepted; larger ones are counted and skipped.
    pub max_payload_bytes: usize,
    /// QoS 1 messages in flight from the broker at once.
    pub inflight: u16,
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
    /// Timestamps further ahead of the gateway clock than this are rejected.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// Timestamps older than this are rejected.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub tls: Tls,
    pub subscriptions: Vec<Subscription>,
}

impl Default for Mqtt {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 1883,
            client_id: None,
            username_env: "HUMS_MQTT_USERNAME".into(),
            password_env: "HUMS_MQTT_PASSWORD".into(),
            keep_alive: Duration::from_secs(30),
            max_payload_bytes: 64 * 1024,
            inflight: 100,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(60),
            max_future_skew: Duration::from_secs(60),
            max_age: Duration::from_secs(24 * 3600),
            tls: Tls::default(),
            subscriptions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Tls {
    pub enabled: bool,
    /// PEM file with the CA certificates that sign the broker's certificate.
    pub ca_file: Option<String>,
    /// PEM client certificate and key, for brokers that require mutual TLS.
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
}

/// How a payload carries its value(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// The payload is a bare number, e.g. `4.2`.
    #[default]
    Number,
    /// A JSON document; `value_pointer` finds the value.
    Json,
    /// A JSON object with one member per channel.
    Object,
}

/// How a timestamp field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// RFC 3339 strings, date-times without an offset (read as UTC), or numbers
    /// read as epoch seconds (< 1e11) or milliseconds.
    #[default]
    Auto,

    Rfc3339,
    EpochSeconds,
    EpochMillis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Subscription {
    /// MQTT topic filter, wildcards allowed (`plant/+/+/+`, `plant/#`).
    pub filter: String,
    /// Maps a topic to asset and channel, e.g. `plant/{site}/{asset}/{channel}`.
    pub template: String,
    pub payload: PayloadFormat,
    /// JSON pointer (RFC 6901) to the value, for `payload = "json"`.
    pub value_pointer: String,
    /// JSON pointer to the timestamp; without it the arrival time is used.
    pub timestamp_pointer: Option<String>,
    pub timestamp_format: TimestampFormat,
    /// JSON pointer to the object holding the channels, for `payload = "object"`.
    pub values_pointer: String,
}

impl Default for Subscription {
    fn default() -> Self {
        Self {
            filter: String::new(),
            template: String::new(),
            payload: PayloadFormat::Number,
            value_pointer: "/value".into(),
            timestamp_pointer: None,
            timestamp_format: TimestampFormat::Auto,
            values_pointer: String::new(),
        }
    }
}

/// The longest `pipeline.window`, in milliseconds: windows keep their
/// sample times as `i32` milliseconds (24 days, 20 hours).
pub const MAX_WINDOW_MS: i64 = i32::MAX as i64;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Pipeline {
    /// How often (in event time) features are computed and detectors run.
    #[serde(with = "humantime_serde")]
    pub eval_interval: Duration,
    /// Length of each channel's time window, at most [`MAX_WINDOW_MS`].
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Ring-buffer capacity per channel; the oldest samples go first.
    pub max_window_samples: usize,
    /// Fewest samples a window needs before its features are judged.
    pub min_window_samples: usize,
    /// No reading for this long raises the instrument `stale_data` failure mode.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Batches queued between the sources and the pipeline: a Modbus poll, or an
    /// MQTT message with those read ahead with it.
    pub queue_capacity: usize,
    /// How much history a work order's evidence chart shows (0s: no charts).
    #[serde(with = "humantime_serde")]
    pub evidence_window: Duration,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            eval_interval: Duration::from_secs(10),
            window: Duration::from_secs(120),
            max_window_samples: 1024,
            min_window_samples: 3,
            stale_after: Duration::from_secs(300),
            queue_capacity: 1024,
            evidence_window: Duration::from_secs(6 * 3600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Alarms {
    /// A condition must persist this long before the alarm is raised.
    #[serde(with = "humantime_serde")]
    pub on_delay: Duration,
    /// A condition must be gone this long before the alarm clears.
    #[serde(with = "humantime_serde")]
    pub off_delay: Duration,
    /// The lowest severity that raises an alarm (and so a work order).
    pub raise_at: Severity,
    /// How soon an order of each priority is due.
    pub response_times: ResponseTimes,
}

impl Default for Alarms {
    fn default() -> Self {
        Self {
            on_delay: Duration::from_secs(60),
            off_delay: Duration::from_secs(300),
            raise_at: Severity::Alarm,
            response_times: ResponseTimes::default(),
        }
    }
}

/// Response time per priority level: a work order is due this long after it
/// is raised (a predicted failure's own due date, if later, stands).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResponseTimes {
    /// Level 1: production stopped or a safety risk.
    #[serde(with = "humantime_serde")]
    pub critical: Duration,
    #[serde(with = "humantime_serde")]
    pub high: Duration,
    #[serde(with = "humantime_serde")]
    pub medium: Duration,
    #[serde(with = "humantime_serde")]
    pub low: Duration,
}

impl Default for ResponseTimes {
    fn default() -> Self {
        Self {
            critical: Duration::from_secs(3600),
            high: Duration::from_secs(86_400),
            medium: Duration::from_secs(7 * 86_400),
            low: Duration::from_secs(30 * 86_400),
        }
    }
}

impl ResponseTimes {
    /// The response time of a priority level (1 critical … 4 low).
    pub fn of(&self, priority: u8) -> Duration {
        match priority {
            0 | 1 => self.critical,
            2 => self.high,
            3 => self.medium,
            _ => self.low,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Foundation {
    #[default]
    Rigid,
    Flexible,
}

/// ISO 10816-3 machine classification.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// Machine group 1–4 as defined by ISO 10816-3.
    pub group: u8,
    pub foundation: Foundation,
}

impl Default for Machine {
    fn default() -> Self {
        Self { group: 2, foundation: Foundation::Rigid }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Iso10816 {
    /// Default classification for assets that do not set their own.
    pub group: u8,
    pub foundation: Foundation,
    /// Fraction below a zone boundary the value must fall to leave the zone.
    pub hysteresis: f64,
    /// Overrides of the A/B, B/C and C/D boundaries (mm/s RMS), keyed `group2_rigid` etc.
    pub boundaries: BTreeMap<String, [f64; 3]>,
}

impl Default for Iso10816 {
    fn default() -> Self {
        Self {
            group: 2,
            foundation: Foundation::Rigid,
            hysteresis: 0.05,
            boundaries: BTreeMap::new(),
        }
    }
}

/// Where durable state (the outbox and alarm states) lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StateDir {
    /// Directory of the SQLite state database `hums.db`.
    pub dir: String,
}

impl Default for StateDir {
    fn default() -> Self {
        Self { dir: "/var/lib/hums".into() }
    }
}

/// Flood control (ISA-18.2 style): budgets and storm detection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Flood {
    /// Work orders one asset may raise per rolling hour; past it, its findings
    /// are grouped into one work order and the rest held.
    pub per_asset_per_hour: u32,
    /// Work orders one site (first element of the location) may raise per rolling hour.
    pub per_site_per_hour: u32,
    /// This many distinct assets of one site raising within `storm_window` is a
    /// storm: one incident work order, the individual ones held.
    pub storm_assets: u32,
    #[serde(with = "humantime_serde")]
    pub storm_window: Duration,
}

impl Default for Flood {
    fn default() -> Self {
        Self {
            per_asset_per_hour: 3,
            per_site_per_hour: 30,
            storm_assets: 10,
            storm_window: Duration::from_secs(60),
        }
    }
}

/// What a channel measures; `vibration_velocity` channels get the ISO 10816 zone check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    VibrationVelocity,
    Temperature,
    Current,
    Flow,
    Pressure,
    Speed,
    /// An on/off or discrete state; booleans read as 1 and 0.
    State,
    #[default]
    Other,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelSpec {
    pub description: String,
    pub unit: String,
    pub quantity: Quantity,
    /// Overrides `pipeline.stale_after` for this channel.
    #[serde(with = "humantime_serde")]
    pub stale_after: Option<Duration>,
    /// Readings outside `[low, high]` are refused and counted as out of range
    /// (an over-range sentinel, a broken transmitter); default: the quantity's
    /// plausible range (`config::plausible`).
    pub valid_range: Option<[f64; 2]>,
}

/// A channel computed from two others: `difference[0] - difference[1]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Derived {
    pub description: String,
    pub difference: Vec<String>,
    pub unit: String,
}

/// The window features a limit or zone check can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    #[default]
    Mean,
    Rms,
    Std,
    Min,
    Max,
    PeakToPeak,
    Kurtosis,
    CrestFactor,
    /// Least-squares slope, units per hour.
    Slope,
    /// (last − first) / span, units per hour.
    RateOfChange,
}

impl Feature {
    /// All features in the column order of the feature table.
    pub const ALL: [Feature; 10] = [
        Feature::Mean,
        Feature::Rms,
        Feature::Std,
        Feature::Min,
        Feature::Max,
        Feature::PeakToPeak,
        Feature::Kurtosis,
        Feature::CrestFactor,
        Feature::Slope,
        Feature::RateOfChange,
    ];

    /// The snake_case name used in configs and evidence.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Mean => "mean",
            Feature::Rms => "rms",
            Feature::Std => "std",
            Feature::Min => "min",
            Feature::Max => "max",
            Feature::PeakToPeak => "peak_to_peak",
            Feature::Kurtosis => "kurtosis",
            Feature::CrestFactor => "crest_factor",
            Feature::Slope => "slope",
            Feature::RateOfChange => "rate_of_change",
        }
    }

    /// Column index in the feature table.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether a window's value of this feature passes a level only when
    /// one of its samples does (by magnitude for RMS): the mean, RMS and
    /// extremes. Those are judged on a reading's arrival, the others at the
    /// next evaluation.
    pub fn follows_values(self) -> bool {
        matches!(self, Feature::Mean | Feature::Rms | Feature::Min | Feature::Max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Trips when the feature rises above the level.
    #[default]
    High,
    /// Trips when the feature falls below the level.
    Low,
}

/// A trip level and the level it must return past to clear (hysteresis).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub set: f64,
    pub clear: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Limit {
    pub channel: String,
    pub feature: Feature,
    pub direction: Direction,
    /// Failure mode of the asset's class that this limit indicates.
    pub failure_mode: String,
    pub warning: Option<Level>,
    pub alarm: Option<Level>,
    pub critical: Option<Level>,
}

/// Which channels the ISO 10816 zone check covers and what a bad zone means.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct VibrationCheck {
    pub channels: Vec<String>,
    pub feature: Feature,
    pub failure_mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Part {
    pub sku: String,
    pub description: String,
    pub qty: f64,
}

/// Maintenance knowledge tied to one kind of failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FailureMode {
    /// Title template; `{asset}`, `{asset_name}`, `{location}` and `{severity}` are filled in.
    pub title: String,
    pub cause: String,
    pub actions: Vec<String>,
    pub parts: Vec<Part>,
    pub skills: Vec<String>,
    pub safety: Vec<String>,
    pub estimated_hours: f64,
    /// Priority at alarm severity: 1 critical, 2 high, 3 medium, 4 low.
    pub priority: u8,
    pub kind: WorkKind,
    /// Whether this failure mode is judged while its machine is stopped (by
    /// its class's `[usage]` running signal): `raise` (the default; instrument
    /// and safety checks) or `suppress` (process alarms such as low flow,
    /// meaningless while the machine stands).
    pub when_stopped: WhenStopped,
}

/// State-based suppression of a failure mode (ISA-18.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenStopped {
    #[default]
    Raise,
    Suppress,
}

impl Default for FailureMode {
    fn default() -> Self {
        Self {
            title: String::new(),
            cause: String::new(),
            actions: Vec::new(),
            parts: Vec::new(),
            skills: Vec::new(),
            safety: Vec::new(),
            estimated_hours: 1.0,
            priority: 3,
            kind: WorkKind::Condition,
            when_stopped: WhenStopped::Raise,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetClass {
    pub description: String,
    pub channels: BTreeMap<String, ChannelSpec>,
    pub derived: BTreeMap<String, Derived>,
    pub limits: Vec<Limit>,
    pub vibration: Option<VibrationCheck>,
    /// Learn each asset's normal from its first samples and score departures from it.
    pub baseline: Option<Baseline>,
    /// Degradation indicators whose trend predicts a failure before it happens.
    pub trends: Vec<Trend>,
    /// A trained remaining-life model that predicts failures from the channels' drift.
    pub life: Option<Life>,
    /// Reading-by-reading novelty of one channel (metric streams without a model of normal).
    pub novelty: Option<Novelty>,
    /// How run hours and starts are counted from live data.
    pub usage: Option<Usage>,
    /// Preventive maintenance at intervals of run hours, starts or calendar time.
    pub preventive: Vec<Preventive>,
    pub failure_modes: BTreeMap<String, FailureMode>,
}

/// Remaining useful life from a model trained on run-to-failure histories
/// (`hums train --life`): each evaluation's channel means, less the asset's
/// own baseline (the mean of its first `baseline` evaluations), with the
/// asset's age, give its remaining life. When that is within `horizon`, a
/// `predicted_failure` order is raised, due `lead` before the predicted failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Life {
    /// Channels whose window mean the model reads (default: every measured channel).
    pub channels: Vec<String>,
    /// Evaluations that make each asset's own baseline.
    pub baseline: usize,
    /// Remaining life is learned up to this much: early in life, all machines look alike.
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
    /// The model from `hums train --life`, relative to this config file.
    pub model_file: Option<String>,
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    #[serde(with = "humantime_serde")]
    pub lead: Duration,
    /// The condition failure mode it predicts; no prediction is raised while
    /// that condition's alarm is open.
    pub failure_mode: String,
}

impl Default for Life {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            baseline: 20,
            cap: Duration::from_secs(125 * 3600),
            model_file: None,
            horizon: Duration::from_secs(14 * 86_400),
            lead: Duration::from_secs(86_400),
            failure_mode: String::new(),
        }
    }
}

/// Novelty of one channel, reading by reading: the distance of each reading
/// from the last `window` readings, judged against the stream's own history
/// of such distances (an anomaly likelihood), readings beyond the range seen
/// so far, and `hold_off` quiet readings after each detection. Nothing is
/// raised during the first `probation` readings, which it learns from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Novelty {
    pub channel: String,
    pub window: usize,
    pub probation: u64,
    /// Replay only: at most this share of a file's rows is probation.
    pub probation_fraction: Option<f64>,
    /// A reading this share of the range beyond the range seen so far is novel.
    pub range_tolerance: f64,
    pub hold_off: u64,
    pub failure_mode: String,
    /// Also judge the shape of the recent readings: how far the newest
    /// `length` readings are from their nearest match in the last `history`
    /// (a k-NN subsequence distance, kept up to date incrementally), through
    /// a likelihood of its own. Off unless set.
    pub pattern: Option<Pattern>,
}

/// A subsequence-distance (discord) judge of a novelty stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// Readings in a subsequence.
    pub length: usize,
    /// How far back (in readings) a match is looked for.
    pub history: usize,
    /// Every this many lags is compared (2: every other one), for speed.
    pub step: usize,
}

impl Default for Novelty {
    fn default() -> Self {
        Self {
            channel: String::new(),
            window: 200,
            probation: 750,
            probation_fraction: None,
            range_tolerance: 0.02,
            hold_off: 30,
            failure_mode: String::new(),
            pattern: None,
        }
    }
}

/// Run hours and starts from one channel (motor current or speed): the
/// machine runs while the reading is at or above `running_above` and stops
/// when it falls below `stopped_below`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub channel: String,
    pub running_above: f64,
    /// Default: `running_above` (no hysteresis).
    pub stopped_below: Option<f64>,
    /// Time between two readings longer than this is not counted: the data
    /// is missing, not known to be running.
    #[serde(with = "humantime_serde")]
    pub max_gap: Duration,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            channel: String::new(),
            running_above: f64::NAN,
            stopped_below: None,
            max_gap: Duration::from_secs(300),
        }
    }
}

/// A preventive task: a work order from the failure mode `failure_mode`
/// (of kind `preventive`) each time one interval has passed. Exactly one of
/// `every_run_hours`, `every_starts` and `every` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Preventive {
    pub failure_mode: String,
    pub every_run_hours: Option<f64>,
    pub every_starts: Option<u64>,
    /// Calendar interval, counted from when hums first judged the asset.
    #[serde(with = "humantime_serde")]
    pub every: Option<Duration>,
    /// The order is due this long after it is raised.
    #[serde(with = "humantime_serde")]
    pub due_within: Duration,
}

impl Default for Preventive {
    fn default() -> Self {
        Self {
            failure_mode: String::new(),
            every_run_hours: None,
            every_starts: None,
            every: None,
            due_within: Duration::from_secs(7 * 86_400),
        }
    }
}

/// An asset's meter readings when hums starts counting (from its hour meter).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageStart {
    pub run_hours: f64,
    pub starts: u64,
}

/// A learned normal: each asset of the class learns a model of its window
/// features over its first rows of running (or uses a model file from `hums
/// train`), then scores how far each evaluation is from that normal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Baseline {
    /// Channels judged (default: every measured channel of the class).
    pub channels: Vec<String>,
    /// Window features of each channel that make up the model's vector.
    pub features: Vec<Feature>,
    /// `zscore`, `pca`, `gmm`, `kmeans` or `ocsvm`.
    pub model: ModelKind,
    /// A model from `hums train` (a relative path is relative to the config
    /// file that sets it); without one, each asset learns its own from its
    /// first rows.
    pub model_file: Option<String>,
    /// The asset learns from its first this many rows (the most any judged
    /// channel has received), one feature vector per evaluation...
    pub samples: u64,
    /// ...or from this much running, whichever ends first.
    #[serde(with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Replay only: learn from at most this share of an input file's rows
    /// (NAB's probationary period is 15 %).
    pub input_fraction: Option<f64>,
    /// The control limit is this upper quantile of the training rows' scores...
    pub false_alarm_rate: f64,
    /// ...moved this many times as far from their median score. Twice as far
    /// again is critical.
    pub margin: f64,
    /// The control limit is also set high enough that, with the on-delay, a
    /// machine like the training's raises at most this many false orders a
    /// year, judged from the extreme tail of the training scores and how long
    /// they stay up (the higher of the two limits holds).
    pub false_orders_per_year: f64,
    /// Follow slow drift with this time constant while the asset is inside
    /// its normal (never during a departure): the model's centre and spread
    /// move towards each normal evaluation. Off by default.
    #[serde(with = "humantime_serde")]
    pub adapt: Option<Duration>,
    /// Keep following during departures too. Only for streams whose level
    /// shifts become their new normal (service metrics, the NAB corpus); a
    /// machine's alarm would clear as the normal caught up with the fault.
    pub adapt_in_departures: bool,
    /// Mixture components or k-means clusters.
    pub clusters: usize,
    /// Share of the variance PCA keeps in its model (the rest is Q).
    pub pca_variance: f64,
    /// Failure mode of the class raised when the asset leaves its normal.
    pub failure_mode: String,
    /// Which departures are faults (default: by the channel's quantity, see
    /// [`FaultDirection`]). A departure the other way raises
    /// `opposite_failure_mode`, or nothing.
    pub direction: Option<FaultDirection>,
    /// Failure mode raised when the departure that tripped went against
    /// `direction` (e.g. an instrument check at the lowest priority for
    /// vibration that fell well below normal: a loose mount, a failed sensor).
    pub opposite_failure_mode: Option<String>,
    /// A departure counts only if the feature that tripped moved at least
    /// this share of its learned level (0.05: 5 %), so a normal learned with
    /// a very small spread does not turn repeatability into orders.
    pub min_change: f64,
}

/// Which way a departure from normal is a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultDirection {
    /// Rising is wear: the default for vibration, temperature and current.
    Rising,
    Falling,
    /// Either way: the default for other quantities.
    Both,
}

impl FaultDirection {
    /// The physics default of a quantity: vibration, temperature and current
    /// rise as a machine wears; other process values may go either way.
    pub fn of(quantity: Quantity) -> Self {
        match quantity {
            Quantity::VibrationVelocity | Quantity::Temperature | Quantity::Current => {
                FaultDirection::Rising
            }
            _ => FaultDirection::Both,
        }
    }
}

impl Default for Baseline {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            features: vec![Feature::Mean],
            model: ModelKind::Zscore,
            model_file: None,
            samples: 1000,
            duration: None,
            input_fraction: None,
            false_alarm_rate: 0.001,
            margin: 1.5,
            false_orders_per_year: 1.0,
            adapt: None,
            adapt_in_departures: false,
            clusters: 3,

            pca_variance: 0.9,
            failure_mode: String::new(),
            direction: None,
            opposite_failure_mode: None,
            min_change: 0.0,
        }
    }
}

impl Baseline {
    /// How a model is fitted under these settings, evaluated every
    /// `eval_interval` and raising after `on_delay`.
    pub fn fit_spec(&self, eval_interval: Duration, on_delay: Duration) -> FitSpec {
        let every = eval_interval.as_secs_f64().max(1e-3);
        FitSpec {
            kind: self.model,
            false_alarm_rate: self.false_alarm_rate,
            margin: self.margin,
            clusters: self.clusters,
            pca_variance: self.pca_variance,
            false_orders_per_year: self.false_orders_per_year,
            evaluations_per_year: 365.25 * 86_400.0 / every,
            on_delay_evaluations: ((on_delay.as_secs_f64() / every).floor() as u32)
                .saturating_add(1),
        }
    }
}

/// A degradation indicator: one channel feature that rises as the machine
/// wears. Its down-sampled history is fitted with linear and exponential
/// (log-linear) trends; when a significant trend will cross `limit` within
/// `horizon`, a `predicted_failure` work order is raised, due `lead` before
/// the early end of the predicted crossing's interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Trend {
    pub channel: String,
    pub feature: Feature,
    /// The level at which the failure is due (e.g. the alarm limit or ISO zone D).
    pub limit: f64,
    /// ...or this many times the asset's own learned level of the indicator
    /// (its baseline model's mean of the same channel and feature), if that
    /// is higher: a machine that runs in higher is judged against itself.
    pub relative_limit: Option<f64>,
    /// One history point per this much time (the mean of its evaluations).
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// The trend is fitted over at most this much recent history.
    #[serde(with = "humantime_serde")]
    pub history: Duration,
    /// Fewest history points a trend is fitted on.
    pub min_points: usize,
    /// A slope must be this many standard errors from zero to predict anything.
    pub min_t: f64,
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    #[serde(with = "humantime_serde")]
    pub lead: Duration,
    /// The condition failure mode this trend predicts; no prediction is
    /// raised while that condition's alarm is open.
    pub failure_mode: String,
}

impl Default for Trend {
    fn default() -> Self {
        Self {
            channel: String::new(),
            feature: Feature::Mean,
            limit: f64::NAN,
            relative_limit: None,
            every: Duration::from_secs(3600),
            history: Duration::from_secs(7 * 86_400),
            min_points: 12,
            min_t: 4.0,
            horizon: Duration::from_secs(14 * 86_400),
            lead: Duration::from_secs(86_400),
            failure_mode: String::new(),
        }
    }
}

/// How `hums replay` reads history files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Replay {
    /// The timestamp column (default: the first column).
    pub timestamp_column: Option<String>,
    /// RFC 3339, `YYYY-MM-DD hh:mm:ss[.fff]` (read as UTC) or epoch seconds/milliseconds.
    pub timestamp_format: TimestampFormat,
    /// CSV field delimiter (default: `;` or tab if the header has one and no `,`, else `,`).
    pub delimiter: Option<char>,
    /// Ground-truth label columns (0/1): shaded in the report, never read as channels.
    pub label_columns: Vec<String>,
}

impl Default for Replay {
    fn default() -> Self {
        Self {
            timestamp_column: None,
            timestamp_format: TimestampFormat::Auto,
            delimiter: None,
            label_columns: vec!["anomaly".into(), "changepoint".into(), "label".into()],
        }
    }
}

/// Per-asset settings for one channel of its class.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetChannel {
    /// Exact MQTT topic carrying this channel (instead of a subscription template).
    pub topic: Option<String>,
    /// Overrides the class's unit.
    pub unit: Option<String>,
    #[serde(with = "humantime_serde")]
    pub stale_after: Option<Duration>,
    /// Column holding this channel in replay files (default: `<asset id>.<channel>`,
    /// or the channel's name for asset templates).
    pub column: Option<String>,
}

/// A monitored machine. In `asset_templates` the id is the input file's stem.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Asset {
    pub id: String,
    pub name: String,
    pub class: String,
    /// The asset's id in the maintenance backend.
    pub backend_id: Option<String>,
    /// Site › building › area › line.
    pub location: Vec<String>,
    pub channels: BTreeMap<String, AssetChannel>,
    /// Extra limits; they replace class limits on the same channel and feature.
    pub limits: Vec<Limit>,
    /// ISO 10816-3 classification of this machine (default: `[iso10816]`).
    pub iso10816: Option<Machine>,
    /// Run hours and starts already on the machine when hums first counts.
    pub usage: UsageStart,
}

/// Which model an asset's normal is learned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Each feature on its own: the largest |z|.
    #[default]
    Zscore,
    /// Principal components: Hotelling T² inside the model, Q (SPE) outside it.
    Pca,
    /// Gaussian mixture: negative log-likelihood.
    Gmm,
    /// k-means: squared distance to the nearest centroid.
    Kmeans,
    /// One-class SVM with an RBF kernel: how far outside the learned support
    /// of normal. For normals of any shape (several operating points, curved
    /// relations between channels); it costs one kernel per support vector.
    Ocsvm,
}

/// How to fit (from the class's `[baseline]`).
#[derive(Debug, Clone, PartialEq)]
pub struct FitSpec {
    pub kind: ModelKind,
    /// The control limit is this upper quantile of the training scores...
    pub false_alarm_rate: f64,
    /// ...moved this many times as far from the typical training score.
    pub margin: f64,
    /// Components (PCA: share of variance kept) or clusters (GMM, k-means).
    pub clusters: usize,
    pub pca_variance: f64,
    /// The false-order budget the limit is raised to meet, per asset-year.
    pub false_orders_per_year: f64,
    /// Evaluations a year (from `pipeline.eval_interval`).
    pub evaluations_per_year: f64,
    /// Evaluations in a row above the limit that raise an order (the on-delay).
    pub on_delay_evaluations: u32,
}
