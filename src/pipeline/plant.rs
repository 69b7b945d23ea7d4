//! The validated configuration compiled into flat, indexed runtime tables:
//! assets with their resolved channels, limits, zone checks and failure modes.

use crate::common::types::{Millis, Severity};
use crate::config::inputs::{baseline_hash, baseline_names, life_channels, life_hash, life_names};
use crate::config::plausible::MAX_MAGNITUDE;
use crate::config::schema::*;
use crate::pipeline::models::files::ModelFiles;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The hasher of the maps looked up per reading.
type Fast = foldhash::fast::RandomState;

/// Name of the instrument failure mode raised by the stale-data detector.
pub const STALE_DATA: &str = "stale_data";

/// A failure mode with its fully qualified id (`pump.bearing_wear`, `instrument.stale_data`).
#[derive(Debug, Clone)]
pub struct FailureModeInfo {
    pub id: String,
    pub spec: FailureMode,
}

/// One channel of one asset, measured or derived.
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    pub name: Arc<str>,
    pub unit: String,
    pub quantity: Quantity,
    pub stale_after: Millis,
    pub topic: Option<String>,
    /// Column in replay files (`<asset>.<channel>` unless configured).
    pub column: String,
    /// For derived channels: the local indices of minuend and subtrahend.
    pub derived: Option<(usize, usize)>,
    /// Global slot index (position in the plant-wide channel table).
    pub slot: usize,
    /// Readings outside `[low, high]` are refused (`config::plausible`).
    pub valid: (f64, f64),
}

/// A compiled limit: which channel feature, which failure mode, which levels.
#[derive(Debug, Clone)]
pub struct LimitRule {
    pub channel: usize,
    pub feature: Feature,
    pub direction: Direction,
    pub failure_mode: usize,
    /// Levels present, from least to most severe.
    pub levels: Vec<(Severity, Level)>,
}

/// A compiled ISO 10816-3 zone check.
#[derive(Debug, Clone)]
pub struct VibrationRule {
    pub channels: Vec<usize>,
    pub feature: Feature,
    pub failure_mode: usize,
    /// A/B, B/C and C/D boundaries in mm/s RMS.
    pub boundaries: [f64; 3],
    pub hysteresis: f64,
}

/// A compiled learned baseline (see [`Baseline`]).
#[derive(Debug, Clone)]
pub struct BaselineRule {
    /// (local channel index, feature) per element of the model's vector.
    pub inputs: Vec<(usize, Feature)>,
    /// `channel.feature` per element, as model files name them.
    pub names: Vec<String>,
    pub fit: FitSpec,
    /// A trained model to use instead of learning one.
    pub model: Option<Arc<crate::pipeline::models::Model>>,
    pub samples: u64,
    pub duration: Option<Millis>,
    pub input_fraction: Option<f64>,
    /// Time constant of drift following, if on.
    pub adapt: Option<Millis>,
    pub adapt_in_departures: bool,
    pub failure_mode: usize,
    /// Hash of what defines the features (channels, features, window).
    pub config_hash: String,
    /// Per input, which departures are faults.
    pub directions: Vec<FaultDirection>,
    /// Raised (at the failure mode's own priority) for a departure the other way.
    pub opposite_failure_mode: Option<usize>,
    /// Smallest move of the tripping feature, as a share of its learned level.
    pub min_change: f64,
}

impl BaselineRule {
    /// The model's input vector for an asset from one evaluation's features;
    /// `None` unless every element has a value.
    pub fn vector(
        &self,
        asset: &AssetInfo,
        table: &crate::pipeline::features::FeatureTable,
    ) -> Option<Vec<f64>> {
        self.inputs.iter().map(|&(c, f)| table.get(asset.channels[c].slot, f)).collect()
    }
}

/// A compiled degradation indicator (see [`Trend`]).
#[derive(Debug, Clone)]
pub struct TrendRule {
    pub channel: usize,
    pub feature: Feature,
    pub limit: f64,
    /// Times the asset's learned level, when that is higher than `limit`.
    pub relative_limit: Option<f64>,
    pub every: Millis,
    pub history: Millis,
    pub min_points: usize,
    pub min_t: f64,
    pub horizon: Millis,
    pub lead: Millis,
    /// The predicted-failure mode it raises (index into the asset's failure modes).
    pub failure_mode: usize,
    /// The condition failure mode it predicts; nothing is predicted while that alarm is open.
    pub condition: usize,
}

impl TrendRule {
    /// The indicator's name on an asset, e.g. `acceleration.mean`.
    pub fn name(&self, asset: &AssetInfo) -> String {
        format!("{}.{}", asset.channels[self.channel].name, self.feature.name())
    }
}

/// A compiled remaining-life predictor (see [`Life`]).
#[derive(Debug, Clone)]
pub struct LifeRule {
    /// Local channel indices whose window mean the model reads.
    pub inputs: Vec<usize>,
    /// The model's feature names: `channel.mean` per input, then the age.
    pub names: Vec<String>,
    pub baseline: usize,
    pub cap: Millis,
    pub horizon: Millis,
    pub lead: Millis,
    /// The trained model; without one the asset's life is not predicted.
    pub model: Option<Arc<crate::pipeline::models::life::LifeModel>>,
    /// The predicted-failure mode it raises (index into the asset's failure modes).
    pub failure_mode: usize,
    /// The condition failure mode it predicts; nothing is predicted while that alarm is open.
    pub condition: usize,
    pub config_hash: String,
}

/// A compiled novelty detector (see [`Novelty`]).
#[derive(Debug, Clone)]
pub struct NoveltyRule {
    pub channel: usize,
    pub window: usize,
    pub probation: u64,
    pub range_tolerance: f64,
    pub hold_off: u64,
    pub failure_mode: usize,
    /// The subsequence-distance judge, if on.
    pub pattern: Option<Pattern>,
}

/// A compiled usage meter (see [`Usage`]).
#[derive(Debug, Clone)]
pub struct UsageRule {
    pub channel: usize,
    pub running_above: f64,
    pub stopped_below: f64,
    pub max_gap: Millis,
    /// Meter readings when counting starts.
    pub start: UsageStart,
}

/// What a preventive task counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Interval {
    RunHours(f64),
    Starts(u64),
    Calendar(Millis),
}

/// A compiled preventive task (see [`Preventive`]).
#[derive(Debug, Clone)]
pub struct PreventiveRule {
    pub interval: Interval,
    pub due_within: Millis,
    /// Index into the asset's failure modes.
    pub failure_mode: usize,
}

/// One asset with everything the pipeline needs to judge it.
#[derive(Debug, Clone)]
pub struct AssetInfo {
    pub id: Arc<str>,
    pub name: String,
    pub class: String,
    pub backend_id: Option<String>,
    pub location: Vec<String>,
    pub channels: Vec<ChannelInfo>,
    pub limits: Vec<LimitRule>,
    pub vibration: Option<VibrationRule>,
    pub baseline: Option<BaselineRule>,
    pub trends: Vec<TrendRule>,
    pub life: Option<LifeRule>,
    pub novelty: Option<NoveltyRule>,
    pub usage: Option<UsageRule>,
    pub preventive: Vec<PreventiveRule>,
    pub failure_modes: Vec<Arc<FailureModeInfo>>,
    /// Index into `failure_modes` of the instrument stale-data mode.
    pub stale_failure_mode: usize,
}

impl AssetInfo {
    /// Local index of a channel by name.
    pub fn channel_index(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| &*c.name == name)
    }

    /// Per failure mode, the slots of the channels its rules read (empty for
    /// failure modes no rule reads, e.g. stale data and preventive tasks).
    pub fn slots_by_failure_mode(&self) -> Vec<Vec<usize>> {
        let mut by_fm = vec![Vec::new(); self.failure_modes.len()];
        let mut add = |fm: usize, channel: usize| {
            if let (Some(list), Some(c)) = (by_fm.get_mut(fm), self.channels.get(channel)) {
                list.push(c.slot);
            }
        };
        for l in &self.limits {
            add(l.failure_mode, l.channel);
        }
        if let Some(v) = &self.vibration {
            v.channels.iter().for_each(|&c| add(v.failure_mode, c));
        }
        if let Some(b) = &self.baseline {
            b.inputs.iter().for_each(|&(c, _)| add(b.failure_mode, c));
        }
        for t in &self.trends {
            add(t.failure_mode, t.channel);
        }
        if let Some(l) = &self.life {
            l.inputs.iter().for_each(|&c| add(l.failure_mode, c));
        }
        if let Some(n) = &self.novelty {
            add(n.failure_mode, n.channel);
        }
        by_fm
    }

    /// For a predicted-failure mode, the condition it predicts.
    pub fn predicted_condition(&self, failure_mode: usize) -> Option<usize> {
        let trend =
            self.trends.iter().find(|t| t.failure_mode == failure_mode).map(|t| t.condition);
        trend.or(self.life.as_ref().filter(|l| l.failure_mode == failure_mode).map(|l| l.condition))
    }
}

/// The whole plant as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct Plant {
    pub gateway_id: String,
    /// How soon an order of each priority is due (`alarms.response_times`).
    pub response_times: ResponseTimes,
    pub assets: Vec<AssetInfo>,
    /// Slot → (asset index, local channel index).
    pub slots: Vec<(usize, usize)>,
    index: HashMap<Arc<str>, HashMap<Arc<str>, usize, Fast>, Fast>,
}

impl Plant {
    /// Compiles a configuration that passed validation, with the model files
    /// it names (loaded and checked by [`ModelFiles::load`]).
    pub fn new(c: &Config, models: &ModelFiles) -> Self {
        let mut plant = Plant {
            gateway_id: c.gateway.id.clone(),
            response_times: c.alarms.response_times.clone(),
            assets: Vec::new(),
            slots: Vec::new(),
            index: HashMap::default(),
        };
        let mut instrument = c.instrument.clone();
        instrument.entry(STALE_DATA.into()).or_insert_with(default_stale_data);
        let empty = AssetClass::default();
        for a in &c.assets {
            let class = c.classes.get(&a.class).unwrap_or(&empty);
            let asset = plant.compile_asset(c, models, a, class, &instrument);
            plant.assets.push(asset);
        }
        plant
    }

    /// Compiles one asset of `class`, its channels taking the next slots.
    fn compile_asset(
        &mut self,
        c: &Config,
        models: &ModelFiles,
        a: &Asset,
        class: &AssetClass,
        instrument: &BTreeMap<String, FailureMode>,
    ) -> AssetInfo {
        let asset_idx = self.assets.len();
        let mut failure_modes = failure_modes(a, class, instrument);
        let stale_id = format!("instrument.{STALE_DATA}");
        let stale_failure_mode = failure_modes.iter().position(|f| f.id == stale_id).unwrap_or(0);
        let channels = self.channels(c, a, class, asset_idx);
        let rules = Rules { c, a, class, channels: &channels };
        let limits = rules.limits();
        let vibration = rules.vibration();
        let baseline = rules.baseline(models);
        let trends = rules.trends(&mut failure_modes);
        let life = rules.life(models, &mut failure_modes);
        let novelty = rules.novelty();
        let usage = rules.usage();
        let preventive = rules.preventive();
        for ch in &channels {
            self.index.entry(a.id.as_str().into()).or_default().insert(ch.name.clone(), ch.slot);
        }
        AssetInfo {
            id: a.id.as_str().into(),
            name: a.name.clone(),
            class: a.class.clone(),
            backend_id: a.backend_id.clone(),
            location: a.location.clone(),
            channels,
            limits,
            vibration,
            baseline,
            trends,
            life,
            novelty,
            usage,
            preventive,
            failure_modes,
            stale_failure_mode,
        }
    }

    /// The asset's measured channels, then the derived ones whose inputs
    /// exist, each taking the next plant-wide slot.
    fn channels(
        &mut self,
        c: &Config,
        a: &Asset,
        class: &AssetClass,
        asset_idx: usize,
    ) -> Vec<ChannelInfo> {
        let mut channels = Vec::new();
        for (name, spec) in &class.channels {
            let over = a.channels.get(name);
            let slot = self.slots.len();
            self.slots.push((asset_idx, channels.len()));
            let stale_after = over
                .and_then(|o| o.stale_after)
                .or(spec.stale_after)
                .unwrap_or(c.pipeline.stale_after);
            let column =
                over.and_then(|o| o.column.clone()).unwrap_or_else(|| default_column(&a.id, name));
            channels.push(ChannelInfo {
                name: name.as_str().into(),
                unit: over.and_then(|o| o.unit.clone()).unwrap_or_else(|| spec.unit.clone()),
                quantity: spec.quantity,
                stale_after: millis(stale_after),
                topic: over.and_then(|o| o.topic.clone()),
                column,
                derived: None,
                slot,
                valid: crate::config::plausible::range(spec),
            });
        }
        for (name, d) in &class.derived {
            let pos =
                |n: &String| channels.iter().position(|c: &ChannelInfo| &*c.name == n.as_str());
            let (Some(a_idx), Some(b_idx)) =
                (d.difference.first().and_then(pos), d.difference.get(1).and_then(pos))
            else {
                continue;
            };
            let slot = self.slots.len();
            self.slots.push((asset_idx, channels.len()));
            channels.push(ChannelInfo {
                name: name.as_str().into(),
                unit: d.unit.clone(),
                quantity: Quantity::Other,
                stale_after: millis(c.pipeline.stale_after),
                topic: None,
                column: String::new(),
                derived: Some((a_idx, b_idx)),
                slot,
                valid: (-2.0 * MAX_MAGNITUDE, 2.0 * MAX_MAGNITUDE),
            });
        }
        channels
    }

    /// The slot of a measured or derived channel.
    pub fn slot(&self, asset: &str, channel: &str) -> Option<usize> {
        self.index.get(asset)?.get(channel).copied()
    }

    /// The asset and channel behind a slot.
    pub fn channel(&self, slot: usize) -> (&AssetInfo, &ChannelInfo) {
        let (a, c) = self.slots[slot];
        (&self.assets[a], &self.assets[a].channels[c])
    }

    /// Index of an asset by id.
    pub fn asset_index(&self, id: &str) -> Option<usize> {
        self.assets.iter().position(|a| &*a.id == id)
    }
}

/// The asset's failure modes: its class's (`<class>.<name>`), then the
/// instrument ones (`instrument.<name>`).
fn failure_modes(
    a: &Asset,
    class: &AssetClass,
    instrument: &BTreeMap<String, FailureMode>,
) -> Vec<Arc<FailureModeInfo>> {
    let mut failure_modes: Vec<Arc<FailureModeInfo>> = class
        .failure_modes
        .iter()
        .map(|(n, fm)| {
            Arc::new(FailureModeInfo { id: format!("{}.{n}", a.class), spec: fm.clone() })
        })
        .collect();
    for (n, fm) in instrument {
        let id = format!("instrument.{n}");
        failure_modes.push(Arc::new(FailureModeInfo { id, spec: fm.clone() }));
    }
    failure_modes
}

/// One asset's configuration, class and resolved channels, which its rules
/// compile against.
struct Rules<'a> {
    c: &'a Config,
    a: &'a Asset,
    class: &'a AssetClass,
    channels: &'a [ChannelInfo],
}

impl Rules<'_> {
    /// Local index of a channel by name.
    fn ch_index(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| &*c.name == name)
    }

    /// Index of one of the class's failure modes by name.
    fn fm_index(&self, name: &str) -> Option<usize> {
        self.class.failure_modes.keys().position(|n| n.as_str() == name)
    }

    /// The class's limits, less those the asset replaces (same channel and
    /// feature), then the asset's own.
    fn limits(&self) -> Vec<LimitRule> {
        let (class, a) = (self.class, self.a);
        let mut limits: Vec<&Limit> = class
            .limits
            .iter()
            .filter(|l| !a.limits.iter().any(|o| o.channel == l.channel && o.feature == l.feature))
            .collect();
        limits.extend(a.limits.iter());
        limits
            .into_iter()
            .filter_map(|l| {
                Some(LimitRule {
                    channel: self.ch_index(&l.channel)?,
                    feature: l.feature,
                    direction: l.direction,
                    failure_mode: self.fm_index(&l.failure_mode)?,
                    levels: [
                        (Severity::Warning, l.warning),
                        (Severity::Alarm, l.alarm),
                        (Severity::Critical, l.critical),
                    ]
                    .into_iter()
                    .filter_map(|(s, lv)| lv.map(|lv| (s, lv)))
                    .collect(),
                })
            })
            .collect()
    }

    /// The ISO 10816-3 zone check, for the asset's machine group and
    /// foundation (the plant's unless it sets its own).
    fn vibration(&self) -> Option<VibrationRule> {
        let c = self.c;
        let plant_machine = Machine { group: c.iso10816.group, foundation: c.iso10816.foundation };
        let machine = self.a.iso10816.clone().unwrap_or(plant_machine);
        self.class.vibration.as_ref().and_then(|v| {
            Some(VibrationRule {
                channels: v.channels.iter().filter_map(|n| self.ch_index(n)).collect(),
                feature: v.feature,
                failure_mode: self.fm_index(&v.failure_mode)?,
                boundaries: crate::config::zones::boundaries(&c.iso10816, &machine),
                hysteresis: c.iso10816.hysteresis,
            })
        })
    }

    /// The learned baseline over its channels (every measured one unless it
    /// names some) and features, with its trained model if it names one.
    fn baseline(&self, models: &ModelFiles) -> Option<BaselineRule> {
        let (c, class, channels) = (self.c, self.class, self.channels);
        class.baseline.as_ref().and_then(|b| {
            let chans: Vec<usize> = if b.channels.is_empty() {
                (0..channels.len()).filter(|&i| channels[i].derived.is_none()).collect()
            } else {
                b.channels.iter().filter_map(|n| self.ch_index(n)).collect()
            };
            let inputs: Vec<(usize, Feature)> =
                chans.iter().flat_map(|&c| b.features.iter().map(move |&f| (c, f))).collect();
            let names = baseline_names(class, b);
            let directions = inputs
                .iter()
                .map(|&(c, _)| b.direction.unwrap_or(FaultDirection::of(channels[c].quantity)))
                .collect();
            let model = b.model_file.as_deref().and_then(|p| models.baseline(p));
            let fit = b.fit_spec(c.pipeline.eval_interval, c.alarms.on_delay);
            Some(BaselineRule {
                // A learned model saved under another fit spec is not restored.
                config_hash: baseline_hash(&names, c, &fit),
                inputs,
                names,
                fit,
                model,
                samples: b.samples,
                duration: b.duration.map(millis),
                input_fraction: b.input_fraction,
                adapt: b.adapt.map(millis),
                adapt_in_departures: b.adapt_in_departures,
                failure_mode: self.fm_index(&b.failure_mode)?,
                directions,
                opposite_failure_mode: match b.opposite_failure_mode.as_deref() {
                    Some(fm) => Some(self.fm_index(fm)?),
                    None => None,
                },
                min_change: b.min_change,
            })
        })
    }

    /// The degradation indicators. Each raises a predicted variant of the
    /// condition it predicts, added to `failure_modes` when first needed.
    fn trends(&self, failure_modes: &mut Vec<Arc<FailureModeInfo>>) -> Vec<TrendRule> {
        let mut trends = Vec::new();
        for t in &self.class.trends {
            let (Some(channel), Some(condition)) =
                (self.ch_index(&t.channel), self.fm_index(&t.failure_mode))
            else {
                continue;
            };
            let failure_mode =
                predicted_mode(failure_modes, &self.a.class, &t.failure_mode, condition);
            trends.push(TrendRule {
                channel,
                feature: t.feature,
                limit: t.limit,
                relative_limit: t.relative_limit,
                every: millis(t.every).max(1),
                history: millis(t.history),
                min_points: t.min_points.max(3),
                min_t: t.min_t,
                horizon: millis(t.horizon),
                lead: millis(t.lead),
                failure_mode,
                condition,
            });
        }
        trends
    }

    /// The remaining-life predictor, raising a predicted variant of its
    /// condition (added to `failure_modes` when first needed).
    fn life(
        &self,
        models: &ModelFiles,
        failure_modes: &mut Vec<Arc<FailureModeInfo>>,
    ) -> Option<LifeRule> {
        let (c, class, asset_class) = (self.c, self.class, &self.a.class);
        class.life.as_ref().and_then(|l| {
            let condition = self.fm_index(&l.failure_mode)?;
            let inputs: Vec<usize> =
                life_channels(class, l).iter().filter_map(|n| self.ch_index(n)).collect();
            let names = life_names(class, l);
            let model = l.model_file.as_deref().and_then(|p| models.life(p));
            Some(LifeRule {
                config_hash: life_hash(&names, c, l),
                inputs,
                names,
                baseline: l.baseline.max(1),
                cap: millis(l.cap).max(1),
                horizon: millis(l.horizon),
                lead: millis(l.lead),
                model,
                failure_mode: predicted_mode(
                    failure_modes,
                    asset_class,
                    &l.failure_mode,
                    condition,
                ),
                condition,
            })
        })
    }

    /// The novelty detector.
    fn novelty(&self) -> Option<NoveltyRule> {
        self.class.novelty.as_ref().and_then(|n| {
            Some(NoveltyRule {
                channel: self.ch_index(&n.channel)?,
                window: n.window.max(2),
                probation: n.probation,
                range_tolerance: n.range_tolerance,
                hold_off: n.hold_off,
                failure_mode: self.fm_index(&n.failure_mode)?,
                pattern: n.pattern,
            })
        })
    }

    /// The usage meter, starting from the asset's own meter readings.
    fn usage(&self) -> Option<UsageRule> {
        self.class.usage.as_ref().and_then(|u| {
            Some(UsageRule {
                channel: self.ch_index(&u.channel)?,
                running_above: u.running_above,
                stopped_below: u.stopped_below.unwrap_or(u.running_above),
                max_gap: millis(u.max_gap),
                start: self.a.usage.clone(),
            })
        })
    }

    /// The preventive tasks that count exactly one kind of interval.
    fn preventive(&self) -> Vec<PreventiveRule> {
        self.class
            .preventive
            .iter()
            .filter_map(|p| {
                let interval = match (p.every_run_hours, p.every_starts, p.every) {
                    (Some(h), None, None) => Interval::RunHours(h),
                    (None, Some(n), None) => Interval::Starts(n),
                    (None, None, Some(d)) => Interval::Calendar(millis(d)),
                    _ => return None,
                };
                Some(PreventiveRule {
                    interval,
                    due_within: millis(p.due_within),
                    failure_mode: self.fm_index(&p.failure_mode)?,
                })
            })
            .collect()
    }
}

/// The predicted variant (`<class>.<fm>.predicted`) of a condition failure
/// mode, added to the asset's failure modes the first time it is asked for.
fn predicted_mode(
    modes: &mut Vec<Arc<FailureModeInfo>>,
    class: &str,
    fm: &str,
    condition: usize,
) -> usize {
    let id = format!("{class}.{fm}.predicted");
    if let Some(i) = modes.iter().position(|f| f.id == id) {
        return i;
    }
    let mut spec = modes[condition].spec.clone();
    spec.title = format!("Predicted: {}", spec.title);
    spec.kind = crate::common::types::WorkKind::PredictedFailure;
    modes.push(Arc::new(FailureModeInfo { id, spec }));
    modes.len() - 1
}

/// The replay column of a configured asset's channel unless it sets `column`.
pub fn default_column(asset: &str, channel: &str) -> String {
    format!("{asset}.{channel}")
}

fn millis(d: std::time::Duration) -> Millis {
    d.as_millis().min(i64::MAX as u128) as Millis
}

fn default_stale_data() -> FailureMode {
    FailureMode {
        title: "{asset_name}: no valid data from {channels}".into(),
        cause: "Sensor, transmitter, cabling or network fault, or a transmitter stuck at its \
                over-range value (readings outside the valid range); the machine itself may be fine."
            .into(),
        actions: vec![
            "Check the sensor's power and cabling".into(),
            "Check the transmitter or gateway link and its status LEDs".into(),
            "Confirm readings resume in hums".into(),
        ],
        parts: Vec::new(),
        skills: vec!["instrumentation".into()],
        safety: vec!["Follow site electrical safety rules when opening junction boxes".into()],
        estimated_hours: 1.0,
        priority: 3,
        kind: crate::common::types::WorkKind::Instrument,
        when_stopped: WhenStopped::Raise,
    }
}
