//! The transform chain in one pure struct: readings → windows → features →
//! detectors → alarms → planned work orders. No IO, driven by event time, so
//! `run`, `demo` and replays share it exactly.
//!
//! In flow order: [`window`], [`features`], [`detect`] (with the learned
//! [`models`]), [`alarms`], [`planner`]; beside them [`usage`] (run hours and
//! preventive schedules), [`recent`] and [`evidence`] (the charts a work order
//! carries) and [`verify`] (the post-repair check).

pub mod alarms;
pub mod charts;
pub mod detect;
pub mod evidence;
pub mod features;
pub mod models;
pub mod planner;
pub mod plant;
pub mod recent;
pub mod state;
pub mod suppress;
pub mod usage;
pub mod verify;
pub mod window;

use crate::common::events::{Events, Failure};
use crate::common::metrics::Metrics;
use crate::common::types::{Millis, Quality, Reading};
use crate::config::Config;
use crate::pipeline::alarms::{AlarmEvent, Alarms, Timing, Transition};
use crate::pipeline::detect::{Detectors, Finding};
use crate::pipeline::planner::Planner;
use crate::pipeline::plant::Plant;
use crate::pipeline::usage::UsageMeters;
use crate::pipeline::window::{Rejected, Window};
use crate::workorders::{SentOrders, WorkOrder};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::warn;

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct TickOutput {
    pub events: Vec<AlarmEvent>,
    pub work_orders: Vec<WorkOrder>,
    /// Anomaly score per asset (plant order), in [0, 1]; 0.5 is the control limit.
    pub scores: Vec<f64>,
    /// Per asset, its baseline model's input vector, when recording (`hums train`).
    pub vectors: Vec<Option<Vec<f64>>>,
    /// What shelving and out of service withheld, expired and released.
    pub suppression: suppress::Outcome,
}

/// The whole transform chain for one plant.
pub struct Pipeline {
    plant: Arc<Plant>,
    windows: Vec<Window>,
    detectors: Detectors,
    alarms: Alarms,
    planner: Planner,
    events: Events,
    max_window_samples: usize,
    min_window_samples: usize,
    /// The due date last sent per raised prediction (asset, failure mode).
    sent_due: std::collections::HashMap<(usize, usize), Millis>,
    record_vectors: bool,
    /// Derived channels that depend on each slot: (derived slot, minuend slot, subtrahend slot).
    dependents: Vec<Vec<(usize, usize, usize)>>,
    /// Largest timestamp gap between the two inputs of a derived value.
    pair_tolerance: Millis,
    usage: UsageMeters,
    /// Recent history for work orders' evidence charts, when they are drawn.
    recent: Option<crate::pipeline::recent::Recent>,
    /// When each (asset, failure mode) alarm was last raised or escalated.
    last_raised: std::collections::HashMap<(usize, usize), Millis>,
    /// The window span: samples older than this have left every window.
    window_span: Millis,
    /// Slot → the asset whose novelty detector reads it.
    novelty_slot: Vec<Option<usize>>,
    /// Slot → the asset whose usage meter counts it.
    usage_slot: Vec<Option<usize>>,
    /// Slot → its channel's valid range; readings outside are refused.
    valid: Vec<(f64, f64)>,
    /// Per asset and failure mode, the slots its rules read.
    fm_slots: Vec<Vec<Vec<usize>>>,
    /// Shelved and out-of-service alarms.
    suppressor: suppress::Suppressor,
    /// The features of the last evaluation, for the operator's view.
    last_table: Option<features::FeatureTable>,
    /// Slot → the limit and zone rules that read it.
    trip_slot: Vec<Vec<detect::RuleRef>>,
    /// Assets with a reading that could trip a limit since the last look,
    /// when limits are judged on arrival (`None`: only at evaluations).
    arrivals: Option<Vec<usize>>,
    /// The least severity that raises an alarm.
    raise_at: crate::common::types::Severity,
}

fn millis(d: std::time::Duration) -> Millis {
    d.as_millis().min(i64::MAX as u128) as Millis
}

impl Pipeline {
    /// Builds the chain; `start` is when observation begins (for stale data).
    pub fn new(cfg: &Config, plant: Arc<Plant>, metrics: Arc<Metrics>, start: Millis) -> Self {
        Self::with_headroom(cfg, plant, metrics, start, 0)
    }

    /// A pipeline whose windows can also hold `headroom` samples per channel
    /// pushed ahead of the evaluation time, for replays that push a batch of
    /// rows and then evaluate each of their times with [`Pipeline::evaluate`].
    /// A derived channel takes up to two samples per row (one per input).
    pub fn with_headroom(
        cfg: &Config,
        plant: Arc<Plant>,
        metrics: Arc<Metrics>,
        start: Millis,
        headroom: usize,
    ) -> Self {
        let span = millis(cfg.pipeline.window);
        let capacity = cfg.pipeline.max_window_samples + headroom;
        let windows = (0..plant.slots.len()).map(|_| Window::new(span, capacity)).collect();
        let mut dependents = vec![Vec::new(); plant.slots.len()];
        for a in &plant.assets {
            for c in &a.channels {
                if let Some((x, y)) = c.derived {
                    let (xs, ys) = (a.channels[x].slot, a.channels[y].slot);
                    dependents[xs].push((c.slot, xs, ys));
                    dependents[ys].push((c.slot, xs, ys));
                }
            }
        }
        let mut novelty_slot = vec![None; plant.slots.len()];
        for (i, a) in plant.assets.iter().enumerate() {
            if let Some(n) = &a.novelty {
                novelty_slot[a.channels[n.channel].slot] = Some(i);
            }
        }
        let mut usage_slot = vec![None; plant.slots.len()];
        for (i, a) in plant.assets.iter().enumerate() {
            if let Some(u) = &a.usage {
                usage_slot[a.channels[u.channel].slot] = Some(i);
            }
        }
        let valid = (0..plant.slots.len()).map(|s| plant.channel(s).1.valid).collect();
        let mut trip_slot = vec![Vec::new(); plant.slots.len()];
        for (i, a) in plant.assets.iter().enumerate() {
            for (r, rule) in a.limits.iter().enumerate() {
                trip_slot[a.channels[rule.channel].slot].push(detect::RuleRef::Limit(i, r));
            }
            for (k, &c) in a.vibration.iter().flat_map(|v| v.channels.iter()).enumerate() {
                trip_slot[a.channels[c].slot].push(detect::RuleRef::Zone(i, k));
            }
        }
        Self {
            trip_slot,
            arrivals: None,
            raise_at: cfg.alarms.raise_at,
            valid,
            fm_slots: plant.assets.iter().map(|a| a.slots_by_failure_mode()).collect(),
            detectors: Detectors::new(&plant, start),
            usage: UsageMeters::new(&plant),
            recent: None,
            last_raised: Default::default(),
            window_span: span,
            usage_slot,
            novelty_slot,
            alarms: Alarms::new(Timing {
                on_delay: millis(cfg.alarms.on_delay),
                off_delay: millis(cfg.alarms.off_delay),
                raise_at: cfg.alarms.raise_at,
            }),
            planner: Planner::default(),
            max_window_samples: cfg.pipeline.max_window_samples,
            min_window_samples: cfg.pipeline.min_window_samples,
            sent_due: Default::default(),
            record_vectors: false,
            windows,
            dependents,
            pair_tolerance: millis(cfg.pipeline.eval_interval),
            plant,
            events: Events::new(metrics),
            suppressor: Default::default(),
            last_table: None,
        }
    }

    /// The plant this pipeline judges.
    pub fn plant(&self) -> &Plant {
        &self.plant
    }

    /// Judges limits and vibration zones when a reading that could trip one
    /// arrives, not only at the next evaluation: see [`Pipeline::judge_arrivals`].
    pub fn judge_on_arrival(&mut self) {
        self.arrivals.get_or_insert_with(Vec::new);
    }

    /// Makes every evaluation also return each asset's baseline input vector.
    pub fn record_vectors(&mut self) {
        self.record_vectors = true;
    }

    /// Assets still learning their normal, as (asset id, rows seen, rows wanted).
    pub fn learning(&self) -> Vec<(String, u64, u64)> {
        (0..self.plant.assets.len())
            .filter_map(|a| match self.detectors.baseline_phase(a) {
                crate::pipeline::detect::baseline::Phase::Learning { samples, of } => {
                    Some((self.plant.assets[a].id.to_string(), samples, of))
                }
                _ => None,
            })
            .collect()
    }

    /// The degradation-trend detector: saving and restoring indicator histories.
    pub fn trends(&mut self) -> &mut crate::pipeline::detect::trend::TrendDetector {
        self.detectors.trends()
    }

    /// Keeps `span` of recent history for [`Pipeline::evidence_drawing`].
    pub fn draw_evidence(&mut self, span: Millis) {
        if span > 0 {
            self.recent = Some(crate::pipeline::recent::Recent::new(
                span,
                self.plant.slots.len(),
                self.plant.assets.len(),
            ));
        }
    }

    /// What a condition or prediction order's evidence chart shows, from
    /// the recent history; `None` unless [`Pipeline::draw_evidence`] is on.
    /// Drawing it takes milliseconds: the engine draws it on another thread,
    /// after the order is committed.
    pub fn evidence_drawing(
        &mut self,
        wo: &crate::workorders::WorkOrder,
    ) -> Option<crate::pipeline::evidence::Drawing> {
        let recent = self.recent.as_ref()?;
        crate::pipeline::evidence::drawing(&self.plant, recent, self.detectors.trends(), wo)
    }

    /// A repair check found order `old` not fixed and raised `order` in its
    /// place: the open episode's further updates go to the new order.
    pub fn reraised(&mut self, old: &str, order: &crate::workorders::WorkOrder) {
        if let Some(a) = self.plant.asset_index(&order.asset.id) {
            let at = order.detected_at.timestamp_millis();
            self.planner.reraised(
                a,
                old,
                order.idempotency_key.clone(),
                Some(order.revision),
                Some(at),
            );
        }
    }

    /// The machine's condition since a repair done at `done`, for a
    /// post-repair check of `wo`: fixed when its failure mode (and the
    /// condition a prediction names) is clear now and was not raised again
    /// since, and the anomaly score stayed under its limit (from a window
    /// after the repair, when samples from before it have left the windows).
    /// With the evidence channels' window means now. `None` if the order's
    /// asset or failure mode is no longer configured.
    pub fn check_repair(
        &self,
        wo: &crate::workorders::WorkOrder,
        done: Millis,
        now: Millis,
    ) -> Option<crate::pipeline::verify::RepairCheck> {
        use crate::common::types::Evidence;
        let a = self.plant.asset_index(&wo.asset.id)?;
        let asset = &self.plant.assets[a];
        let f = asset.failure_modes.iter().position(|m| m.id == wo.failure_mode)?;
        let condition = asset.predicted_condition(f).unwrap_or(f);
        let settled = done + self.window_span;
        let recurred = [(a, f), (a, condition)]
            .iter()
            .any(|k| self.last_raised.get(k).is_some_and(|&t| t > settled));
        let open = self.alarms.is_open((a, f)) || self.alarms.is_open((a, condition)) || recurred;
        let now_score = self.detectors.scores().get(a).copied().unwrap_or(0.0);
        let since: Vec<f64> = self.recent.as_ref().map_or(Vec::new(), |r| {
            r.score(a).into_iter().filter(|p| p.0 > settled).map(|p| p.1).collect()
        });
        let score = since.into_iter().fold(now_score, f64::max);
        let mut evidence = Vec::new();
        for e in &wo.evidence {
            let Some(c) = asset.channel_index(&e.channel) else { continue };
            if evidence.iter().any(|x: &Evidence| x.channel == e.channel) {
                continue;
            }
            let ch = &asset.channels[c];
            let w = &self.windows[ch.slot];
            if w.is_empty() {
                continue;
            }
            let value = w.samples().map(|s| s.1).sum::<f64>() / w.len() as f64;
            let zone = asset.vibration.as_ref().filter(|v| v.channels.contains(&c)).map(|v| {
                crate::pipeline::detect::iso10816::classify(value, &v.boundaries, 0.0, None)
            });
            evidence.push(Evidence {
                channel: e.channel.clone(),
                feature: "mean".into(),
                value,
                limit: e.limit,
                unit: ch.unit.clone(),
                zone,
                since: crate::common::types::to_datetime(now),
                note: "after the repair".into(),
                due_by: None,
            });
        }
        evidence.push(Evidence {
            channel: "anomaly_score".into(),
            feature: "max".into(),
            value: score,
            limit: Some(0.5),
            unit: String::new(),
            zone: None,
            since: crate::common::types::to_datetime(settled),
            note: "highest since the repair".into(),
            due_by: None,
        });
        Some(crate::pipeline::verify::RepairCheck { fixed: !open && score < 0.5, evidence })
    }

    /// Run hours, starts and preventive schedules: saving and restoring meters.
    pub fn usage(&mut self) -> &mut UsageMeters {
        &mut self.usage
    }

    /// The novelty detector: shortening probations for replays.
    pub fn novelty(&mut self) -> &mut crate::pipeline::detect::novelty::NoveltyDetector {
        self.detectors.novelty()
    }

    /// The remaining-life detector: saving and restoring each asset's baseline and age.
    pub fn life(&mut self) -> &mut crate::pipeline::detect::life::LifeDetector {
        self.detectors.life()
    }

    /// Whether an asset's learned baseline is off, learning or fitted.
    pub fn baseline_phase(&self, asset: usize) -> crate::pipeline::detect::baseline::Phase {
        self.detectors.baseline_phase(asset)
    }

    /// The learned-baseline detector: learning caps, background fits,
    /// restoring and saving fitted models.
    pub fn baseline(&mut self) -> &mut crate::pipeline::detect::baseline::BaselineDetector {
        self.detectors.baseline()
    }

    /// Adds a reading to its channel's window (and updates derived channels).
    /// Readings that are not of good quality are never judged.
    pub fn push(&mut self, r: &Reading) {
        if r.quality != Quality::Good || !r.value.is_finite() {
            return;
        }
        match self.plant.slot(&r.asset, &r.channel) {
            Some(slot) => self.push_slot(slot, r.ts, r.value),
            None => Metrics::inc(&self.events.metrics().topic_unmapped),
        }
    }

    /// Adds a value to a slot directly (fast path for sources that resolved it).
    pub fn push_slot(&mut self, slot: usize, ts: Millis, value: f64) {
        let (lo, hi) = self.valid[slot];
        if !(lo..=hi).contains(&value) {
            let (asset, channel) = self.plant.channel(slot);
            let range = (lo, hi);
            self.events.report(Failure::OutOfRange {
                asset: &asset.id,
                channel: &channel.name,
                value,
                range,
            });
            return;
        }
        match self.windows[slot].push(ts, value) {
            Ok(()) => {}
            Err(Rejected::Late) => return Metrics::inc(&self.events.metrics().readings_late),
            Err(Rejected::Duplicate) => {
                return Metrics::inc(&self.events.metrics().readings_duplicate)
            }
        }
        self.note_arrival(slot, value);
        if let Some(a) = self.usage_slot[slot] {
            self.usage.observe(&self.plant, a, ts, value);
        }
        if let Some(a) = self.novelty_slot[slot] {
            self.detectors.novelty().observe(&self.plant, a, ts, value);
        }
        for i in 0..self.dependents[slot].len() {
            let (derived, x, y) = self.dependents[slot][i];
            if let (Some((tx, vx)), Some((ty, vy))) =
                (self.windows[x].latest(), self.windows[y].latest())
            {
                if (tx - ty).abs() <= self.pair_tolerance
                    && self.windows[derived].push(tx.max(ty), vx - vy).is_ok()
                {
                    self.note_arrival(derived, vx - vy);
                }
            }
        }
    }

    /// Notes the asset of a rule a value just added to `slot` could trip, for
    /// [`Pipeline::judge_arrivals`].
    fn note_arrival(&mut self, slot: usize, value: f64) {
        let Some(arrivals) = &mut self.arrivals else { return };
        for &rule in &self.trip_slot[slot] {
            if self.detectors.could_trip(&self.plant, rule, value, self.raise_at) {
                arrivals.push(rule.asset());
            }
        }
    }

    /// Evaluates every window at `now` and plans work orders for new alarms.
    pub fn tick(&mut self, now: Millis) -> TickOutput {
        self.evaluate(&[now]).pop().unwrap_or_default()
    }

    /// Evaluates every window as it stood at each of `times` (ascending), in
    /// order, as if ticked at each. Samples pushed after
    /// `times[0]` must fit in the windows' headroom (see [`Pipeline::with_headroom`]).
    pub fn evaluate(&mut self, times: &[Millis]) -> Vec<TickOutput> {
        let Some(&first) = times.first() else { return Vec::new() };
        for w in &mut self.windows {
            w.prune(first);
        }
        let tables = features::compute(
            &self.windows,
            times,
            self.max_window_samples,
            self.min_window_samples,
        );
        let out = times.iter().zip(&tables).map(|(&now, table)| self.judge(now, table)).collect();
        self.last_table = tables.into_iter().last();
        out
    }

    /// Judges the limits and vibration zones of the assets whose readings
    /// could trip one since the last call (see [`Pipeline::judge_on_arrival`]),
    /// at `now`: their windows' features, their rules, and the alarms those
    /// find.
    /// It only raises and escalates: what clears waits for the evaluation,
    /// which judges every detector. `None` when nothing was found. Replays
    /// judge at their evaluation times only, so a live run may raise a
    /// little earlier than the replay of its readings.
    pub fn judge_arrivals(&mut self, now: Millis) -> Option<TickOutput> {
        let mut assets = std::mem::take(self.arrivals.as_mut()?);
        if assets.is_empty() {
            return None;
        }
        assets.sort_unstable();
        assets.dedup();
        let slots: Vec<usize> = assets
            .iter()
            .flat_map(|&a| self.plant.assets[a].channels.iter().map(|c| c.slot))
            .collect();
        let table = features::compute_slots(
            &self.windows,
            &slots,
            now,
            self.max_window_samples,
            self.min_window_samples,
        );
        let mut findings = self.detectors.step_on_arrival(&self.plant, &table, now, &assets);
        let (plant, usage, least) = (&self.plant, &self.usage, self.raise_at);
        // Only what raises steps an alarm here: a warning below `raise_at`
        // would read as "clear" to an alarm another detector holds.
        findings.retain(|f| {
            f.severity >= least && !stopped_process(plant, usage, (f.asset, f.failure_mode))
        });
        if findings.is_empty() {
            return None;
        }
        Metrics::inc(&self.events.metrics().limits_judged_on_arrival);
        // Nothing else is judged here: alarms without a finding hold their state.
        let events = self.alarms.step(now, findings, |_| false);
        Some(self.finish(now, &table, events, false))
    }

    /// The features of the last evaluation, if it had any.
    pub fn last_features(&self) -> Option<&features::FeatureTable> {
        self.last_table.as_ref()
    }

    /// The windows, by slot.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Takes over the windows of an earlier pipeline (a reload) for every
    /// channel both plants have, matched by asset and channel name.
    pub fn adopt_windows(&mut self, old: &Pipeline) {
        let capacity = self.max_window_samples;
        for slot in 0..self.plant.slots.len() {
            let (asset, channel) = self.plant.channel(slot);
            if let Some(from) = old.plant.slot(&asset.id, &channel.name) {
                self.windows[slot] = old.windows[from].reshaped(self.window_span, capacity);
            }
        }
    }

    /// Per asset, its anomaly score at the last evaluation.
    pub fn scores(&self) -> &[f64] {
        self.detectors.scores()
    }

    /// Whether an asset runs, by its running signal (`None`: no signal or not seen yet).
    pub fn usage_running(&self, asset: usize) -> Option<bool> {
        self.usage.meter(asset).and_then(|m| m.running)
    }

    /// Shelved and out-of-service alarms.
    pub fn suppressor(&self) -> &suppress::Suppressor {
        &self.suppressor
    }

    /// Replaces the suppressions in force (from the store); returns those that
    /// name assets or failure modes no longer configured.
    pub fn set_suppressions(
        &mut self,
        list: Vec<suppress::Suppression>,
    ) -> Vec<suppress::Suppression> {
        self.suppressor.set(&self.plant, list)
    }

    /// Puts back the transitions withheld before a restart.
    pub fn restore_withheld(&mut self, events: Vec<suppress::WithheldEvent>) {
        self.suppressor.restore_withheld(&self.plant, events);
    }

    /// The alarm state of (asset, failure mode), by index.
    pub fn alarm_state(&self, key: (usize, usize)) -> crate::pipeline::alarms::State {
        self.alarms.state(key)
    }

    /// Detectors, alarms and planning for one evaluation time.
    fn judge(&mut self, now: Millis, table: &features::FeatureTable) -> TickOutput {
        Metrics::inc(&self.events.metrics().eval_ticks);
        let mut findings = self.detectors.step(&self.plant, table, &self.windows, now);
        if let Some(r) = &mut self.recent {
            r.record(now, table, self.detectors.scores());
        }
        // State-based suppression: a stopped machine raises no process alarms.
        let (plant, usage) = (&self.plant, &self.usage);
        let before = findings.len();
        findings.retain(|f| !stopped_process(plant, usage, (f.asset, f.failure_mode)));
        let stopped = (before - findings.len()) as u64;
        self.events.metrics().findings_while_stopped.fetch_add(stopped, Ordering::Relaxed);
        // A prediction says nothing new while the condition it predicts is already raised.
        let plant = &self.plant;
        let alarms = &self.alarms;
        findings.retain(|f| {
            let condition = plant.assets[f.asset].predicted_condition(f.failure_mode);
            condition.is_none_or(|c| !alarms.is_open((f.asset, c)))
        });
        let mut moved = self.moved_due_dates(now, &findings);
        let (plant, fm_slots, usage) = (&self.plant, &self.fm_slots, &self.usage);
        // A process alarm of a stopped machine is not judged: it holds its state.
        let judged = |key: (usize, usize)| {
            judged(plant, fm_slots, table, key) && !stopped_process(plant, usage, key)
        };
        let mut events = self.alarms.step(now, findings, judged);
        // A new severity already carries the new date.
        moved.retain(|m| {
            !events.iter().any(|e| (e.asset, e.failure_mode) == (m.asset, m.failure_mode))
        });
        events.extend(moved);
        self.finish(now, table, events, true)
    }

    /// Shelving, then the work orders of what passes it. An evaluation (not
    /// a judgement on arrival) also plans the preventive tasks due and
    /// records the baseline input vectors.
    fn finish(
        &mut self,
        now: Millis,
        table: &features::FeatureTable,
        events: Vec<AlarmEvent>,
        evaluation: bool,
    ) -> TickOutput {
        let mut suppression = self.suppressor.apply(&self.plant, now, events);
        let events = std::mem::take(&mut suppression.events);
        let withheld = suppression.withheld.len() as u64;
        self.events.metrics().alarms_withheld.fetch_add(withheld, Ordering::Relaxed);
        let mut events = events;
        self.remember(now, &events);
        // Early warnings first: a diagnosis raised in the same evaluation joins their order.
        events.sort_by_key(|ev| {
            self.plant.assets[ev.asset].baseline.as_ref().map(|b| b.failure_mode)
                != Some(ev.failure_mode)
        });
        let work_orders = self.plan_work(now, &events, evaluation);
        let vectors = if self.record_vectors && evaluation {
            self.plant
                .assets
                .iter()
                .map(|a| a.baseline.as_ref().and_then(|r| r.vector(a, table)))
                .collect()
        } else {
            Vec::new()
        };
        TickOutput {
            events,
            work_orders,
            scores: self.detectors.scores().to_vec(),
            vectors,
            suppression,
        }
    }

    /// Raised predictions whose due date moved enough to change a plan, as
    /// updates. Earlier by a quarter of the time left (12 h at least), or
    /// later by as much again as was left (a day at least): a fit that
    /// wobbles stays quiet, and a planner hears at once when it gets urgent.
    fn moved_due_dates(&self, now: Millis, findings: &[Finding]) -> Vec<AlarmEvent> {
        let mut moved = Vec::new();
        for f in findings {
            let (Some(due), Some((episode, severity))) =
                (f.evidence.due_by, self.alarms.raised((f.asset, f.failure_mode)))
            else {
                continue;
            };
            let due = due.timestamp_millis();
            let sent = self.sent_due.get(&(f.asset, f.failure_mode)).copied();
            const HOUR: Millis = 3_600_000;
            let significant = |s: Millis| {
                let left = (s - now).max(0);
                (s - due >= (left / 4).max(12 * HOUR)) || (due - s >= left.max(24 * HOUR))
            };
            if sent.is_some_and(significant) {
                moved.push(AlarmEvent {
                    asset: f.asset,
                    failure_mode: f.failure_mode,
                    transition: Transition::Escalated { from: severity, to: severity, episode },
                    at: now,
                    evidence: vec![f.evidence.clone()],
                });
            }
        }
        moved
    }

    /// Remembers, per alarm, when it was last raised or escalated and the
    /// due date last sent; a clear forgets the due date.
    fn remember(&mut self, now: Millis, events: &[AlarmEvent]) {
        for ev in events {
            let key = (ev.asset, ev.failure_mode);
            if !matches!(ev.transition, Transition::Cleared { .. }) {
                self.last_raised.insert(key, now);
            }
            match (ev.transition, ev.evidence.iter().filter_map(|e| e.due_by).min()) {
                (Transition::Cleared { .. }, _) => {
                    self.sent_due.remove(&key);
                }
                (_, Some(due)) => {
                    self.sent_due.insert(key, due.timestamp_millis());
                }
                _ => {}
            }
        }
    }

    /// Counts the alarm events and plans their work orders, then (with
    /// `preventive`) those of the preventive tasks that fell due.
    fn plan_work(
        &mut self,
        now: Millis,
        events: &[AlarmEvent],
        preventive: bool,
    ) -> Vec<WorkOrder> {
        let mut work_orders = Vec::new();
        for ev in events {
            let counter = match ev.transition {
                Transition::Raised { .. } => &self.events.metrics().alarms_raised,
                Transition::Escalated { .. } => &self.events.metrics().alarms_escalated,
                Transition::Cleared { .. } => &self.events.metrics().alarms_cleared,
            };
            Metrics::inc(counter);
            if let Some(wo) = self.planner.plan(&self.plant, ev) {
                Metrics::inc(&self.events.metrics().workorders_planned);
                work_orders.push(wo);
            }
        }
        if !preventive {
            return work_orders;
        }
        for due in self.usage.take_due(&self.plant, now) {
            let meter = self.usage.meter(due.asset).cloned().unwrap_or_default();
            Metrics::inc(&self.events.metrics().workorders_planned);
            work_orders.push(self.planner.preventive(&self.plant, &due, &meter));
        }
        work_orders
    }

    /// Alarm states worth keeping across a restart, by asset and failure-mode id.
    pub fn alarm_rows(&self) -> Vec<crate::pipeline::alarms::AlarmRow> {
        self.alarms
            .states()
            .map(|((a, f), s)| {
                let asset = &self.plant.assets[a];
                (asset.id.to_string(), asset.failure_modes[f].id.clone(), s)
            })
            .collect()
    }

    /// Restores alarm states saved by an earlier run, with what the outbox
    /// remembers of each open episode's order: the revision it reached, the
    /// order it updated, the due date it carried. Alarms of assets or failure
    /// modes no longer configured are dropped with a warning.
    pub fn restore<H: SentOrders>(
        &mut self,
        rows: Vec<crate::pipeline::alarms::AlarmRow>,
        sent: &H,
    ) -> Result<(), H::Error> {
        use crate::pipeline::alarms::State;
        for (asset_id, fm_id, state) in rows {
            let found = self.plant.asset_index(&asset_id).and_then(|a| {
                let f = self.plant.assets[a].failure_modes.iter().position(|f| f.id == fm_id)?;
                Some((a, f))
            });
            let Some(key) = found else {
                warn!(
                    asset = asset_id,
                    failure_mode = fm_id,
                    "saved alarm no longer matches the config; dropped"
                );
                continue;
            };
            // A pending condition keeps its onset: its on-delay goes on across restarts.
            self.alarms.restore(key, state);

            if let State::Active { episode, .. } | State::Clearing { episode, .. } = state {
                // Raised while shelved: no order yet; releasing the raise opens it.
                if self.suppressor.withholds_raise(key, episode) {
                    continue;
                }
                let k = crate::pipeline::planner::idempotency_key(
                    &self.plant.gateway_id,
                    &asset_id,
                    &fm_id,
                    episode,
                );
                let own = sent.revision(&k)?;
                if self.plant.assets[key.0].failure_modes[key.1].spec.kind
                    == crate::common::types::WorkKind::PredictedFailure
                {
                    if let Some(due) = sent.due_by(&k)? {
                        self.sent_due.insert(key, due);
                    }
                }
                // No order of its own: it updated another one
                // (a diagnosis joined to an early warning).
                let updated = match own {
                    Some(_) => None,
                    None => match sent.last_order(&asset_id, &fm_id)? {
                        Some(t) => {
                            let r = sent.revision(&t)?;
                            Some((t, r))
                        }
                        None => None,
                    },
                };
                // Failed repair checks may have raised the order again since.
                let mut order = updated.as_ref().map_or_else(|| k.clone(), |(t, _)| t.clone());
                self.planner.restore_open(&self.plant, key.0, key.1, k, episode, own, updated);
                for _ in 0..64 {
                    let Some(next) = sent.reraised(&order)? else { break };
                    let r = sent.revision(&next)?;
                    self.planner.reraised(key.0, &order, next.clone(), r, None);
                    order = next;
                }
            }
        }
        Ok(())
    }

    /// Alarm states that are not normal, as (asset id, failure mode id, state name).
    pub fn alarm_states(&self) -> Vec<(String, String, &'static str)> {
        self.alarms
            .states()
            .map(|((a, f), s)| {
                let asset = &self.plant.assets[a];
                (asset.id.to_string(), asset.failure_modes[f].id.clone(), s.name())
            })
            .collect()
    }
}

/// Whether (asset, failure mode) is a process alarm (`when_stopped = "suppress"`)
/// of a machine its running signal shows stopped.
fn stopped_process(plant: &Plant, usage: &UsageMeters, (a, f): (usize, usize)) -> bool {
    let suppress = plant
        .assets
        .get(a)
        .and_then(|asset| asset.failure_modes.get(f))
        .is_some_and(|fm| fm.spec.when_stopped == crate::config::schema::WhenStopped::Suppress);
    suppress && usage.meter(a).is_some_and(|m| m.running == Some(false))
}

/// Whether an evaluation had data to judge an alarm by: enough samples in the
/// window of a channel its failure mode's rules read (any channel of the asset
/// for failure modes no rule reads).
fn judged(
    plant: &Plant,
    fm_slots: &[Vec<Vec<usize>>],
    table: &features::FeatureTable,
    (a, f): (usize, usize),
) -> bool {
    let has_row = |s: &usize| table.row(*s).is_some();
    match fm_slots.get(a).and_then(|by_fm| by_fm.get(f)) {
        Some(slots) if !slots.is_empty() => slots.iter().any(has_row),
        _ => {
            plant.assets.get(a).is_none_or(|asset| asset.channels.iter().any(|c| has_row(&c.slot)))
        }
    }
}
