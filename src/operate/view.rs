//! What hums sees, as one serializable snapshot: every asset with its score,
//! zone, learning state, latest features and a short history, the alarms that
//! are not normal (shelved and out of service included), and the counters.
//! The engine rebuilds it after each evaluation; the HTTP server, `hums
//! status` and the MQTT publisher read it.

use crate::common::metrics::{Metrics, Snapshot};
use crate::common::types::{Millis, Severity, Zone};
use crate::config::schema::Direction;
use crate::pipeline::alarms::State;
use crate::pipeline::detect::baseline::Phase;
use crate::pipeline::suppress::Suppression;
use crate::pipeline::Pipeline;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The whole picture at one evaluation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct View {
    pub gateway: String,
    /// Event time of the evaluation this view shows.
    pub at: Millis,
    /// Wall time hums started.
    pub started: Millis,
    pub version: String,
    pub config: ConfigStatus,
    /// Sources and whether each is connected.
    pub sources: BTreeMap<String, bool>,
    pub assets: Vec<AssetView>,
    /// Alarms that are not normal, and every suppressed one.
    pub alarms: Vec<AlarmView>,
    /// Shelves and out-of-service entries in force.
    pub suppressions: Vec<Suppression>,
    /// Evaluation times of the history points, oldest first.
    pub history_times: Vec<Millis>,
    pub metrics: Snapshot,
}

/// The configuration hums runs on and its last reload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConfigStatus {
    pub files: Vec<String>,
    /// Wall time the running configuration was loaded.
    pub loaded_at: Millis,
    pub reloads: u64,
    /// The last reload that failed, with why (cleared by one that succeeds).
    pub reload_error: Option<String>,
    /// Settings changed on disk that only a restart applies.
    pub restart_needed: Vec<String>,
}

/// One asset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AssetView {
    pub id: String,
    pub name: String,
    pub class: String,
    pub location: Vec<String>,
    /// Its failure modes' ids (what can be shelved).
    pub failure_modes: Vec<String>,
    /// Anomaly score in [0, 1]; 0.5 is the control limit.
    pub score: f64,
    /// `ok`, `warning`, `alarm`, `critical`, `learning`, `stopped` or `out_of_service`.
    pub health: String,
    /// Worst ISO 10816-3 zone of its vibration channels now.
    pub zone: Option<Zone>,
    /// Rows learned and wanted, while its baseline learns.
    pub learning: Option<(u64, u64)>,
    /// By its running signal, when it has one.
    pub running: Option<bool>,
    pub channels: Vec<ChannelView>,
    /// Score at each of the view's history times.
    pub score_history: Vec<Option<f32>>,
}

/// One channel of an asset.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChannelView {
    pub name: String,
    pub unit: String,
    /// The last reading: (event time, value).
    pub latest: Option<(Millis, f64)>,
    /// The window's features at the last evaluation, by name.
    pub features: BTreeMap<String, f64>,
    pub limits: Vec<LimitView>,
    /// ISO 10816-3 A/B, B/C and C/D boundaries, for vibration channels.
    pub zones: Option<[f64; 3]>,
    /// Window mean at each of the view's history times (`null` where none).
    pub history: Vec<Option<f32>>,
}

/// A limit on a channel feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitView {
    pub feature: String,
    pub direction: Direction,
    pub severity: Severity,
    pub set: f64,
    pub failure_mode: String,
}

/// An alarm that is not normal, or is suppressed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlarmView {
    pub asset: String,
    pub failure_mode: String,
    pub title: String,
    pub priority: u8,
    /// `normal`, `pending`, `active`, `escalated` or `clearing`.
    pub state: String,
    pub severity: Option<Severity>,
    /// When the condition first appeared.
    pub since: Option<Millis>,
    /// The shelf or out-of-service entry that covers it.
    pub suppressed: Option<Suppression>,
    /// Transitions withheld from the planner while suppressed.
    pub withheld: usize,
}

/// Builds views, keeping the short history the plots need.
#[derive(Debug)]
pub struct Viewer {
    gateway: String,
    started: Millis,
    points: usize,
    times: VecDeque<Millis>,
    scores: Vec<VecDeque<f32>>,
    means: Vec<VecDeque<f32>>,
}

impl Viewer {
    /// Keeps `points` evaluations of history.
    pub fn new(gateway: &str, started: Millis, points: usize) -> Self {
        Self {
            gateway: gateway.into(),
            started,
            points: points.max(2),
            times: VecDeque::new(),
            scores: Vec::new(),
            means: Vec::new(),
        }
    }

    /// Forgets the history (the plant changed shape at a reload).
    pub fn reset(&mut self) {
        self.times.clear();
        self.scores.clear();
        self.means.clear();
    }

    /// Records the evaluation at `now` into the history.
    pub fn record(&mut self, p: &Pipeline, now: Millis) {
        let plant = p.plant();
        if self.scores.len() != plant.assets.len() || self.means.len() != plant.slots.len() {
            self.reset();
            self.scores = vec![VecDeque::new(); plant.assets.len()];
            self.means = vec![VecDeque::new(); plant.slots.len()];
        }
        let full = self.times.len() >= self.points;
        let push = |q: &mut VecDeque<f32>, v: f32| {
            if full {
                q.pop_front();
            }
            q.push_back(v);
        };
        if full {
            self.times.pop_front();
        }
        self.times.push_back(now);
        for (a, q) in self.scores.iter_mut().enumerate() {
            push(q, p.scores().get(a).copied().unwrap_or(0.0) as f32);
        }
        let table = p.last_features();
        for (slot, q) in self.means.iter_mut().enumerate() {
            let mean = table.and_then(|t| t.get(slot, crate::config::schema::Feature::Mean));
            push(q, mean.map_or(f32::NAN, |v| v as f32));
        }
    }

    /// The view of the pipeline as it stands.
    pub fn view(&self, p: &Pipeline, metrics: &Metrics, config: ConfigStatus) -> View {
        let plant = p.plant();
        let suppressor = p.suppressor();
        let mut alarms = Vec::new();
        for (a, asset) in plant.assets.iter().enumerate() {
            for (f, fm) in asset.failure_modes.iter().enumerate() {
                let state = p.alarm_state((a, f));
                let suppressed = suppressor.covering(a, f).cloned();
                let withheld = suppressor.withheld().get(&(a, f)).map_or(0, Vec::len);
                if state == State::Normal && suppressed.is_none() && withheld == 0 {
                    continue;
                }
                let (severity, since) = match state {
                    State::Normal => (None, None),
                    State::Pending { since, severity } => (Some(severity), Some(since)),
                    State::Active { severity, episode, .. }
                    | State::Clearing { severity, episode, .. } => (Some(severity), Some(episode)),
                };
                alarms.push(AlarmView {
                    asset: asset.id.to_string(),
                    failure_mode: fm.id.clone(),
                    title: crate::pipeline::planner::title(asset, &fm.spec, fm.spec.priority, &[]),
                    priority: fm.spec.priority,
                    state: state.name().into(),
                    severity,
                    since,
                    suppressed,
                    withheld,
                });
            }
        }
        let assets = (0..plant.assets.len()).map(|a| self.asset(p, a, &alarms)).collect();
        View {
            gateway: self.gateway.clone(),
            at: self.times.back().copied().unwrap_or(0),
            started: self.started,
            version: env!("CARGO_PKG_VERSION").into(),
            config,
            sources: metrics.connected.snapshot(),
            assets,
            alarms,
            suppressions: suppressor.list().cloned().collect(),
            history_times: self.times.iter().copied().collect(),
            metrics: metrics.snapshot(),
        }
    }

    fn channel(&self, p: &Pipeline, a: usize, c: usize) -> ChannelView {
        let asset = &p.plant().assets[a];
        let ch = &asset.channels[c];
        let features: BTreeMap<String, f64> = (p.last_features())
            .and_then(|t| t.row(ch.slot))
            .map(|row| {
                crate::config::schema::Feature::ALL
                    .iter()
                    .map(|f| (f.name().to_string(), row[f.index()]))
                    .filter(|(_, v)| v.is_finite())
                    .collect()
            })
            .unwrap_or_default();
        let zones =
            asset.vibration.as_ref().filter(|v| v.channels.contains(&c)).map(|v| v.boundaries);
        let limits = (asset.limits.iter())
            .filter(|l| l.channel == c)
            .flat_map(|l| {
                l.levels.iter().map(|(severity, level)| LimitView {
                    feature: l.feature.name().into(),
                    direction: l.direction,
                    severity: *severity,
                    set: level.set,
                    failure_mode: asset.failure_modes[l.failure_mode].id.clone(),
                })
            })
            .collect();
        ChannelView {
            name: ch.name.to_string(),
            unit: ch.unit.clone(),
            latest: p.windows()[ch.slot].latest(),
            features,
            limits,
            zones,
            history: self
                .means
                .get(ch.slot)
                .map_or(Vec::new(), |q| q.iter().map(|v| finite(*v)).collect()),
        }
    }

    fn asset(&self, p: &Pipeline, a: usize, alarms: &[AlarmView]) -> AssetView {
        let plant = p.plant();
        let asset = &plant.assets[a];
        let learning = match p.baseline_phase(a) {
            Phase::Learning { samples, of } => Some((samples, of)),
            _ => None,
        };
        let running = p.usage_running(a);
        let channels: Vec<ChannelView> =
            (0..asset.channels.len()).map(|c| self.channel(p, a, c)).collect();
        let zone = asset.vibration.as_ref().and_then(|v| {
            let zone_of = |ch: &ChannelView| {
                let value = ch.features.get(v.feature.name())?;
                Some(crate::pipeline::detect::iso10816::classify(*value, &v.boundaries, 0.0, None))
            };
            v.channels.iter().filter_map(|&c| zone_of(&channels[c])).max()
        });
        let worst = alarms
            .iter()
            .filter(|al| *al.asset == *asset.id && al.suppressed.is_none())
            .filter(|al| matches!(al.state.as_str(), "active" | "escalated" | "clearing"))
            .filter_map(|al| al.severity)
            .max();
        let health = if p.suppressor().out_of_service(a) {
            "out_of_service"
        } else if let Some(s) = worst {
            match s {
                Severity::Warning => "warning",
                Severity::Alarm => "alarm",
                Severity::Critical => "critical",
            }
        } else if running == Some(false) {
            "stopped"
        } else if learning.is_some() {
            "learning"
        } else {
            "ok"
        };
        AssetView {
            id: asset.id.to_string(),
            name: asset.name.clone(),
            class: asset.class.clone(),
            location: asset.location.clone(),
            failure_modes: asset.failure_modes.iter().map(|f| f.id.clone()).collect(),
            score: p.scores().get(a).copied().unwrap_or(0.0),
            health: health.into(),
            zone,
            learning,
            running,
            channels,
            score_history: self
                .scores
                .get(a)
                .map_or(Vec::new(), |q| q.iter().map(|v| finite(*v)).collect()),
        }
    }
}

/// A value, or `None` for NaN (which JSON cannot carry).
fn finite(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}
