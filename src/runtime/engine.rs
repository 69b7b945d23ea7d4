//! The evaluation loop: readings into the pipeline, an evaluation each tick,
//! work orders through flood control into the outbox, state saved as it
//! changes, and a status line each minute.

use super::console::Console;
use super::{followups, EngineError};
use crate::common::clock::{Clock, SharedClock};
use crate::common::events::{Events, Failure};
use crate::common::metrics::Metrics;
use crate::common::types::{Millis, Quality, WorkKind};
use crate::config::Config;
use crate::pipeline::alarms::{AlarmEvent, AlarmRow, Transition};
use crate::pipeline::plant::Plant;
use crate::pipeline::state::Take;
use crate::pipeline::{Pipeline, TickOutput};
use crate::sources::Batch;
use crate::store::outbox::{NewEntry, Status};
use crate::store::Store;
use crate::workorders::flood::FloodControl;
use crate::workorders::WorkOrder;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// The loop's parts and what it carries from one tick to the next.
pub struct Engine {
    pub pipeline: Pipeline,
    pub plant: Arc<Plant>,
    pub store: Arc<Store>,
    pub flood: FloodControl,
    pub events: Events,
    /// Notifies delivery of new commits.
    pub wake: Arc<Notify>,
    /// Orders not yet committed (the database refused): retried each tick.
    pub uncommitted: Vec<NewEntry>,
    /// Orders whose evidence chart is drawn once they are committed.
    pub undrawn: Vec<WorkOrder>,
    /// Committed orders whose chart is drawn at the next evaluation.
    pub to_draw: Vec<WorkOrder>,
    /// Draws the charts, away from the loop.
    pub charts: super::charts::ChartWorker,
    /// Alarm transitions not yet committed, logged once they are.
    pub unlogged: Vec<AlarmEvent>,
    /// The alarm states as last committed.
    pub saved_alarms: Vec<AlarmRow>,
    /// When the next post-repair check is due (event time).
    pub next_check: Millis,
    /// How long after the backend reports an order done the machine is checked.
    pub verify_after: Millis,
    /// The view, heartbeat and notifications for operating hums.
    pub console: Console,
    /// The configuration running now.
    pub cfg: Config,
    /// Where it came from, for reloads (`None`: it cannot be reloaded).
    pub files: Option<crate::operate::reload::ConfigFiles>,
    pub metrics: Arc<Metrics>,
    /// The plant the MQTT source routes topics by; a reload sends the new one.
    pub plants: watch::Sender<Arc<Plant>>,
    /// Notified when an operator changed shelves or out-of-service entries.
    pub suppressions_changed: Arc<Notify>,
    /// A new evaluation period from a reload, for the loop's ticker.
    pub new_tick: Option<Duration>,
    /// Withheld alarms released, to mark in the store once committed.
    pub unreleased: Vec<(String, String)>,
}

/// Batches taken from the queue at once, beyond the one that woke the loop.
const DRAIN: usize = 256;

/// How often the loop evaluates, in wall-clock time.
pub struct Timing {
    tick: Duration,
}

impl Timing {
    /// One evaluation per `pipeline.eval_interval` of event time.
    pub fn new(cfg: &Config, clock: &dyn Clock) -> Self {
        Self {
            tick: Duration::from_secs_f64(
                (cfg.pipeline.eval_interval.as_secs_f64() / clock.speed()).max(0.005),
            ),
        }
    }
}

impl Engine {
    /// Runs until shutdown, then saves and waits for the sources and delivery to stop.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        mut self,
        clock: SharedClock,
        timing: Timing,
        mut readings: mpsc::Receiver<Batch>,
        mut delivery: JoinHandle<()>,
        mut stop: watch::Receiver<bool>,
        sources: Vec<JoinHandle<()>>,
        mut reload: Option<mpsc::Receiver<()>>,
    ) -> Result<(), EngineError> {
        let mut ticker = tokio::time::interval(timing.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut status = tokio::time::interval(Duration::from_secs(60));
        // Shelves set from the command line reach the store, not the engine: look each few seconds.
        let mut suppressions = tokio::time::interval(Duration::from_secs(5));
        let watchdog_every =
            self.console.manager.watchdog_every.unwrap_or(Duration::from_secs(3600));
        let mut watchdog = tokio::time::interval(watchdog_every);
        info!(
            assets = self.plant.assets.len(),
            channels = self.plant.slots.len(),
            "pipeline running"
        );
        self.console.beat();
        self.console.refresh(&self.pipeline, &self.metrics);
        let status_line = format!("judging {} assets", self.plant.assets.len());
        self.console.manager.ready(&status_line);
        let suppressions_changed = self.suppressions_changed.clone();
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                _ = ticker.tick() => {
                    self.tick(clock.now());
                    if let Some(t) = self.take_new_tick() {
                        ticker = tokio::time::interval(t);
                        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        ticker.reset();
                    }
                }
                _ = watchdog.tick() => self.console.manager.watchdog(),
                _ = suppressions_changed.notified() => self.load_suppressions(),
                _ = suppressions.tick() => self.load_suppressions(),
                r = async {
                    match reload.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match r {
                    Some(()) => self.reload(clock.as_ref()),
                    None => reload = None,
                },
                r = readings.recv() => match r {
                    Some(b) => {
                        self.push(b);
                        // What else is queued, without going round the loop for each.
                        for _ in 0..DRAIN {
                            match readings.try_recv() {
                                Ok(b) => self.push(b),
                                Err(_) => break,
                            }
                        }
                        if let Some(out) = self.pipeline.judge_arrivals(clock.now()) {
                            self.settle(out, Vec::new(), clock.now());
                        }
                    }
                    None => break,
                },
                // Delivery only ends on shutdown; if it ever stops otherwise, exit
                // with an error so the service manager restarts hums (nothing is
                // lost: the outbox is durable).
                r = &mut delivery => {
                    if *stop.borrow() {
                        break;
                    }
                    error!(result = ?r, "work-order delivery stopped unexpectedly; exiting so \
                        hums is restarted");
                    return Err(EngineError::Stopped(format!("work-order delivery ({r:?})")));
                }
                _ = status.tick() => self.status(clock.now()),
            }
        }
        // Stop reading: a source blocked on a full queue then sees it closed and ends.
        drop(readings);
        info!("shutting down");
        self.console.manager.stopping();
        self.stop(clock.now());
        for s in sources {
            let _ = s.await;
        }
        if !delivery.is_finished() {
            let _ = delivery.await;
        }
        Ok(())
    }

    /// Adds a batch's readings to the windows, by the slots the source resolved
    /// when they refer to the plant judged now (else by name).
    fn push(&mut self, batch: Batch) {
        match batch.slots {
            Some(s) if Arc::ptr_eq(&s.plant, &self.plant) => {
                for (r, slot) in batch.readings.iter().zip(s.slots) {
                    if r.quality == Quality::Good && r.value.is_finite() {
                        self.pipeline.push_slot(slot, r.ts, r.value);
                    }
                }
            }
            _ => batch.readings.iter().for_each(|r| self.pipeline.push(r)),
        }
    }

    /// One evaluation: judge, check repairs once a minute, save what changed, commit.
    fn tick(&mut self, now: Millis) {
        let started = std::time::Instant::now();
        self.draw_charts();
        self.judge(now);
        self.console.tick_latency.observe(started.elapsed().as_secs_f64());
        self.console.show(&self.pipeline, &self.metrics, now);
        self.console.beat();
    }

    fn judge(&mut self, now: Millis) {
        let out = self.pipeline.tick(now);
        let mut verdicts = Vec::new();
        if now >= self.next_check {
            self.next_check = now + 60_000;
            let (orders, v) =
                followups::verify_repairs(&self.store, &mut self.pipeline, self.verify_after, now);
            // The chart shows the hours around the repair.
            self.undrawn.extend(orders.iter().map(|e| e.order.clone()));
            self.uncommitted.extend(orders);
            verdicts = v;
            let rescheduled =
                followups::reschedule_preventive(&self.store, &self.plant, &mut self.pipeline, now);
            if !rescheduled.is_empty() {
                self.save(Take::All, now);
                followups::mark_rescheduled(&self.store, rescheduled, now);
            }
        }
        self.save(Take::Rare, now);
        self.settle(out, verdicts, now);
    }

    /// Records what shelving withheld, admits the orders through flood
    /// control, and commits them with the alarm states and `verdicts`.
    fn settle(&mut self, mut out: TickOutput, verdicts: Vec<(String, &'static str)>, now: Millis) {
        self.record_suppression(std::mem::take(&mut out.suppression), now);
        let alarms = self.pipeline.alarm_rows();
        if out.events.is_empty()
            && out.work_orders.is_empty()
            && self.uncommitted.is_empty()
            && alarms == self.saved_alarms
        {
            return;
        }
        for e in self.flood.admit(out.work_orders, now) {
            if e.status == Status::Held {
                Metrics::inc(&self.events.metrics().workorders_held);
                info!(key = %e.order.idempotency_key, why = e.note.as_deref().unwrap_or(""),
                      "work order held by flood control");
            } else {
                self.undrawn.push(e.order.clone());
                if e.order.failure_mode.starts_with("site.")
                    || e.order.failure_mode.starts_with("asset.")
                {
                    Metrics::inc(&self.events.metrics().workorders_grouped);
                }
            }
            self.uncommitted.push(e);
        }
        self.unlogged.extend(out.events);
        if self.commit(alarms, verdicts, now) {
            self.log_committed();
            self.to_draw.append(&mut self.undrawn);
        }
    }

    /// Hands the evidence charts of the orders committed since the last
    /// evaluation to the chart thread: each order has gone out by then, and
    /// its chart is attached once drawn.
    pub(super) fn draw_charts(&mut self) {
        for order in std::mem::take(&mut self.to_draw) {
            if let Some(drawing) = self.pipeline.evidence_drawing(&order) {
                self.charts.draw(order.idempotency_key, order.revision, drawing);
            }
        }
    }

    /// Logs the alarm transitions once they are committed: a crash before
    /// the commit replays them, and a refused commit keeps them for the next.
    pub(super) fn log_committed(&mut self) {
        for ev in self.unlogged.drain(..) {
            let asset = &self.plant.assets[ev.asset];
            let (transition, severity) = match ev.transition {
                Transition::Raised { severity, .. } => ("raised", Some(severity)),
                Transition::Escalated { to, .. } => ("escalated", Some(to)),
                Transition::Cleared { .. } => ("cleared", None),
            };
            info!(asset = %asset.id,
                  failure_mode = %asset.failure_modes[ev.failure_mode].id,
                  transition,
                  severity = severity.map(|s| s.as_str()),
                  "alarm");
            self.console.note(&self.pipeline, &ev, &self.metrics);
        }
    }

    /// Commits the orders and alarm states together, then the verdicts they carry.
    /// Returns whether the commit went through.
    fn commit(
        &mut self,
        alarms: Vec<AlarmRow>,
        verdicts: Vec<(String, &'static str)>,
        now: Millis,
    ) -> bool {
        if let Err(error) =
            self.store.commit(&self.uncommitted, &alarms, Some(self.flood.windows()))
        {
            let doing = "cannot commit work orders; keeping them in memory and retrying at the \
                next evaluation";
            self.events.report(Failure::Store { doing, error: &error });
            return false;
        }
        for (key, verdict) in verdicts {
            if let Err(e) = self.store.set_followup(&key, verdict, now, None) {
                warn!(key, error = %e, "cannot record a post-repair verdict; it will be checked \
                    again");
            }
        }
        // A preventive order's schedule moves on once the order is safe.
        if self.uncommitted.iter().any(|e| e.order.kind == WorkKind::Preventive) {
            self.save(Take::All, now);
        }
        self.uncommitted.clear();
        self.saved_alarms = alarms;
        self.mark_released();
        self.wake.notify_one();
        true
    }

    /// Saves the pipeline's state that changed. Novelty streams and usage
    /// meters go each minute, after a preventive order and at shutdown: a
    /// kill -9 loses at most a minute of counting.
    pub(super) fn save(&mut self, take: Take, now: Millis) {
        let changes = self.pipeline.take_changes(take);
        for (asset, model) in &changes.baselines {
            info!(asset = %asset, rows = model.training.rows, "learned baseline fitted");
        }
        if changes.is_empty() {
            return;
        }
        if let Err(error) = self.store.save_state(&changes, now) {
            let doing = "cannot save the pipeline's learned state; a restart would learn what \
                changed since again";
            self.events.report(Failure::Store { doing, error: &error });
        }
    }

    /// The status lines each minute (every counter, as plain fields), and the minute's saves.
    fn status(&mut self, now: Millis) {
        self.save(Take::All, now);
        let m = self.events.metrics().snapshot();
        let outbox = self.store.counts().unwrap_or_default();
        let count = |s: &str| outbox.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        let states = self.pipeline.alarm_states();
        let open = states.iter().filter(|(_, _, s)| *s != "pending").count();
        let learning: Vec<String> = self
            .pipeline
            .learning()
            .into_iter()
            .map(|(a, seen, wanted)| format!("{a} {seen}/{wanted}"))
            .collect();
        let usage: Vec<String> = (self.plant.assets.iter().enumerate())
            .filter(|(_, a)| a.usage.is_some())
            .filter_map(|(i, a)| {
                let m = self.pipeline.usage().meter(i)?;
                Some(format!("{} {:.1} h {} starts", a.id, m.run_hours(), m.starts))
            })
            .collect();
        let alarms: Vec<String> = states.iter().map(|(a, f, s)| format!("{a} {f} {s}")).collect();
        info!(
            assets = self.plant.assets.len(),
            alarms_open = open,
            alarms = alarms.join("; "),
            suppressed = self.pipeline.suppressor().list().count(),
            outbox_pending = count("pending"),
            outbox_held = count("held"),
            outbox_dead = count("dead"),
            outbox_delivered = count("delivered"),
            learning = learning.join("; "),
            usage = usage.join("; "),
            "status"
        );
        crate::common::metrics::log_counters(&m);
        let line = format!(
            "{} assets, {open} alarms open, {} orders pending, {} dead",
            self.plant.assets.len(),
            count("pending"),
            count("dead")
        );
        self.console.manager.status(&line);
    }

    /// At shutdown: what is not committed yet, and the minute's saves.
    fn stop(&mut self, now: Millis) {
        if !self.uncommitted.is_empty() || !self.unlogged.is_empty() {
            let alarms = self.pipeline.alarm_rows();
            match self.store.commit(&self.uncommitted, &alarms, Some(self.flood.windows())) {
                Ok(()) => {
                    self.log_committed();
                    self.mark_released();
                    self.to_draw.append(&mut self.undrawn);
                }
                Err(e) => error!(error = %e, lost = self.uncommitted.len(),
                                 "work orders could not be saved at shutdown"),
            }
        }
        self.save(Take::All, now);
        self.draw_charts();
        self.charts.finish(Duration::from_secs(5));
    }
}
