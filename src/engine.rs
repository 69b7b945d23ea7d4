//! The runtime: wires the MQTT source, the pipeline, the durable outbox and
//! delivery with bounded channels, and shuts down cleanly.
//!
//! Queue policies: the reading queue is bounded and applies back-pressure to
//! the MQTT source, which acknowledges a message only once its readings are
//! queued (so the broker keeps what we cannot take yet). Work orders are
//! committed to the state database, together with the alarm states, before
//! any network call; if a commit fails they stay in memory and the commit is
//! retried at the next evaluation. They are never dropped.

use crate::clock::SharedClock;
use crate::config::schema::BackendKind;
use crate::config::{Config, Plant};
use crate::metrics::{Metrics, Snapshot};
use crate::pipeline::Pipeline;
use crate::sources::mqtt::{self, Ingest, MqttError};
use crate::store::{NewEntry, Store, StoreError};
use crate::workorders::delivery;
use crate::workorders::flood::FloodControl;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tracing::{error, info, warn};

/// Why the engine could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("MQTT source: {0}")]
    Mqtt(#[from] MqttError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0} stopped unexpectedly")]
    Stopped(String),
    #[error("no [[assets]] configured (asset_templates apply to `hums replay` only)")]
    NoAssets,
    #[error("{0}")]
    Backend(#[from] crate::backends::BackendError),
}

/// What a run did, for the demo summary and for tests.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub metrics: Snapshot,
    /// Outbox entries per status when the run ended.
    pub outbox: Vec<(String, i64)>,
}

impl RunReport {
    /// Outbox entries with a given status.
    pub fn outbox_count(&self, status: &str) -> i64 {
        self.outbox.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n)
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(
    cfg: Config,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunReport, EngineError> {
    if cfg.assets.is_empty() {
        return Err(EngineError::NoAssets);
    }
    let plant = Arc::new(Plant::new(&cfg));

    let ingest = Ingest::new(&cfg.mqtt, plant.clone(), metrics.clone())?;
    // Fail fast on unreadable TLS files rather than inside the reconnect loop.
    mqtt::options(&cfg.mqtt, &cfg.gateway.id)?;
    let store = Arc::new(Store::open_dir(Path::new(&cfg.state.dir))?);

    let mut pipeline = Pipeline::new(&cfg, plant.clone(), metrics.clone(), clock.now());
    pipeline.draw_evidence(cfg.pipeline.evidence_window.as_millis().min(i64::MAX as u128) as i64);
    let saved = store.alarms()?;
    if !saved.is_empty() {
        info!(alarms = saved.len(), "resuming alarm states from the last run");
    }
    pipeline.restore(saved, &*store)?;
    // Learned baselines survive restarts; fits run beside ingestion, not in its way.
    pipeline.baseline().fit_in_background();
    for (asset_id, model) in store.baselines()? {
        let index = plant.asset_index(&asset_id);
        if index.is_some_and(|a| pipeline.baseline().restore(&plant, a, model)) {
            info!(asset = %asset_id, "resuming the learned baseline saved by the last run");
            continue;
        }
        let shipped = index.and_then(|a| plant.assets[a].baseline.as_ref()).is_some_and(|r| r.model.is_some());
        if shipped {
            info!(asset = %asset_id, "the class now has a model file; the learned baseline saved earlier is dropped");
        } else {
            warn!(asset = %asset_id, "the saved baseline does not match the configuration any more; dropped, the asset learns again");
        }
        store.drop_baseline(&asset_id)?;
    }
    // Degradation histories survive restarts too.
    for (asset_id, indicator, points) in store.trends()? {
        let found = plant.asset_index(&asset_id).and_then(|a| {
            let asset = &plant.assets[a];
            asset.trends.iter().position(|t| t.name(asset) == indicator).map(|r| (a, r))
        });
        match found {
            Some((a, r)) => pipeline.trends().restore(&plant, a, r, points),
            None => {
                warn!(asset = %asset_id, indicator, "saved trend history no longer matches the configuration; ignored")
            }
        }
    }
    // So do the baselines and ages remaining-life models read.
    for (asset_id, state) in store.life()? {
        let restored = plant.asset_index(&asset_id).is_some_and(|a| pipeline.life().restore(&plant, a, state));
        if !restored {
            warn!(asset = %asset_id, "saved remaining-life baseline no longer matches the configuration; the asset learns it again");
        }
    }
    // Novelty streams go on past their probation.
    for (asset_id, state) in store.novelty()? {
        let restored = plant.asset_index(&asset_id).is_some_and(|a| pipeline.novelty().restore(&plant, a, state));
        if !restored {
            warn!(asset = %asset_id, "saved novelty stream no longer matches the configuration; the asset learns it again");
        }
    }
    // Run hours, starts and preventive schedules survive restarts.
    for (asset_id, meter) in store.usage()? {
        let restored = plant.asset_index(&asset_id).is_some_and(|a| pipeline.usage().restore(&plant, a, meter));
        if !restored {
            warn!(asset = %asset_id, "saved usage meter no longer matches the configuration; ignored");
        }
    }
    let mut flood = FloodControl::new(&cfg.flood, &cfg.gateway.id);
    // The backend first: a credential problem stops hums before any source starts.
    let wake = Arc::new(Notify::new());
    let outbox =
        Outbox { store: store.clone(), metrics: metrics.clone(), wake: wake.clone(), shutdown: shutdown.clone() };
    let mut delivery = match cfg.backend.kind {
        BackendKind::Rest => outbox.deliver(crate::backends::rest::RestBackend::new(&cfg.backend)?, &cfg),
        BackendKind::Webhook => outbox.deliver(crate::backends::webhook::Webhook::new(&cfg.backend)?, &cfg),
        BackendKind::Maintainx => outbox.deliver(crate::backends::maintainx::MaintainX::new(&cfg.backend)?, &cfg),
        BackendKind::Upkeep => outbox.deliver(crate::backends::upkeep::UpKeep::new(&cfg.backend)?, &cfg),
        BackendKind::Limble => outbox.deliver(crate::backends::limble::Limble::new(&cfg.backend)?, &cfg),
        BackendKind::Maximo => outbox.deliver(crate::backends::maximo::Maximo::new(&cfg.backend)?, &cfg),
        BackendKind::Sap => outbox.deliver(crate::backends::sap::Sap::new(&cfg.backend)?, &cfg),
        BackendKind::Dynamics => outbox.deliver(crate::backends::dynamics::Dynamics::new(&cfg.backend)?, &cfg),
        BackendKind::Servicenow => outbox.deliver(crate::backends::servicenow::ServiceNow::new(&cfg.backend)?, &cfg),
    };

    let (reading_tx, mut reading_rx) = mpsc::channel(cfg.pipeline.queue_capacity);
    let mut sources = Vec::new();
    for link in &cfg.modbus.links {
        let units = crate::sources::modbus::resolve(link, &cfg.modbus);
        sources.push(tokio::spawn(crate::sources::modbus::link::run(
            link.clone(),
            units,
            clock.clone(),
            metrics.clone(),
            reading_tx.clone(),
            shutdown.clone(),
        )));
    }
    if !cfg.mqtt.subscriptions.is_empty() {
        let mqtt = mqtt::run(
            cfg.mqtt.clone(),
            cfg.gateway.id.clone(),
            ingest,
            clock.clone(),
            metrics.clone(),
            reading_tx,
            shutdown.clone(),
        );
        sources.push(tokio::spawn(async move {
            if let Err(e) = mqtt.await {
                error!(error = %e, "MQTT source stopped");
            }
        }));
    } else {
        drop(reading_tx);
    }

    let tick_every = Duration::from_secs_f64((cfg.pipeline.eval_interval.as_secs_f64() / clock.speed()).max(0.005));
    let mut ticker = tokio::time::interval(tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status = tokio::time::interval(Duration::from_secs(60));
    let mut stop = shutdown.clone();
    let mut uncommitted: Vec<NewEntry> = Vec::new();
    let mut saved_alarms = pipeline.alarm_rows();
    let mut next_check = clock.now();
    info!(assets = plant.assets.len(), channels = plant.slots.len(), state = %cfg.state.dir, "pipeline running");
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ticker.tick() => {
                let now = clock.now();
                let out = pipeline.tick(now);
                // Post-repair checks, once a minute of event time.
                let mut verdicts = Vec::new();
                if now >= next_check {
                    next_check = now + 60_000;
                    let (orders, v) = verify_repairs(&store, &mut pipeline, &cfg, now);
                    uncommitted.extend(orders);
                    verdicts = v;
                    reschedule_preventive(&store, &plant, &mut pipeline, &metrics, now);
                }
                for (a, r, points) in pipeline.trends().take_changed() {
                    let asset = &plant.assets[a];
                    if let Err(e) = store.save_trend(&asset.id, &asset.trends[r].name(asset), &points) {
                        Metrics::inc(&metrics.store_errors);
                        warn!(asset = %asset.id, error = %e, "cannot save a trend history; a restart would start it again");
                    }
                }
                for (a, state) in pipeline.life().take_changed() {
                    let id = &plant.assets[a].id;
                    if let Err(e) = store.save_life(id, &state) {
                        Metrics::inc(&metrics.store_errors);
                        warn!(asset = %id, error = %e, "cannot save the remaining-life baseline; a restart would learn it again");
                    }
                }
                for (a, model) in pipeline.baseline().take_fitted() {
                    let id = &plant.assets[a].id;
                    info!(asset = %id, rows = model.training.rows, "learned baseline fitted");
                    if let Err(e) = store.save_baseline(id, &model, now) {
                        Metrics::inc(&metrics.store_errors);
                        warn!(asset = %id, error = %e, "cannot save the learned baseline; a restart would relearn it");
                    }
                }

                for ev in &out.events {
                    let asset = &plant.assets[ev.asset];
                    info!(asset = %asset.id, failure_mode = %asset.failure_modes[ev.failure_mode].id, transition = ?ev.transition, "alarm");
                }
                let alarms = pipeline.alarm_rows();
                if out.events.is_empty() && out.work_orders.is_empty() && uncommitted.is_empty() && alarms == saved_alarms {
                    continue;
                }
                for mut e in flood.admit(out.work_orders, now) {
                    if e.status != crate::store::Status::Held {
                        e.order.chart = pipeline.evidence_chart(&e.order);
                    }
                    if e.status == crate::store::Status::Held {
                        Metrics::inc(&metrics.workorders_held);
                        info!(key = %e.order.idempotency_key, why = e.note.as_deref().unwrap_or(""), "work order held by flood control");
                    } else if e.order.failure_mode.starts_with("site.") || e.order.failure_mode.starts_with("asset.") {
                        Metrics::inc(&metrics.workorders_grouped);
                    }
                    uncommitted.push(e);
                }
                match store.commit(&uncommitted, &alarms) {
                    Ok(()) => {
                        for (key, verdict) in verdicts {
                            if let Err(e) = store.set_followup(&key, verdict, now, None) {
                                warn!(key, error = %e, "cannot record a post-repair verdict; it will be checked again");
                            }
                        }
                        // A preventive order's schedule moves on once the order is safe.
                        if uncommitted.iter().any(|e| e.order.kind == crate::model::WorkKind::Preventive) {
                            save_usage(&store, &plant, &mut pipeline, &metrics);
                        }
                        uncommitted.clear();
                        saved_alarms = alarms;
                        wake.notify_one();
                    }
                    Err(e) => {
                        Metrics::inc(&metrics.store_errors);
                        error!(error = %e, kept = uncommitted.len(), "cannot commit work orders; keeping them in memory and retrying at the next evaluation");
                    }
                }
            }
            r = reading_rx.recv() => match r {
                Some(r) => pipeline.push(&r),
                None => break,
            },
            // Delivery only ends on shutdown; if it ever stops otherwise, exit
            // with an error so the service manager restarts hums (nothing is
            // lost: the outbox is durable).
            r = &mut delivery => {
                if *stop.borrow() {
                    break; // it stopped because we are stopping
                }
                error!(result = ?r, "work-order delivery stopped unexpectedly; exiting so hums is restarted");
                return Err(EngineError::Stopped(format!("work-order delivery ({r:?})")));
            }

            _ = status.tick() => {
                save_usage(&store, &plant, &mut pipeline, &metrics);
                save_novelty(&store, &plant, &mut pipeline, &metrics);
                let m = metrics.snapshot();
                let learning: Vec<String> =
                    pipeline.learning().into_iter().map(|(a, seen, wanted)| format!("{a} {seen}/{wanted}")).collect();
                let usage: Vec<String> = plant.assets.iter().enumerate().filter(|(_, a)| a.usage.is_some())
                    .filter_map(|(i, a)| pipeline.usage().meter(i).map(|m| format!("{} {:.1} h {} starts", a.id, m.run_hours(), m.starts)))
                    .collect();
                info!(readings = m.readings_accepted, malformed = m.payload_malformed, delivered = m.workorders_delivered,
                      outbox = ?store.counts().unwrap_or_default(), alarms = ?pipeline.alarm_states(), learning = ?learning, usage = ?usage, "status");
            }
        }
    }
    // Stop reading: a source blocked on a full queue then sees it closed and ends.
    drop(reading_rx);
    info!("shutting down");

    if !uncommitted.is_empty() {
        if let Err(e) = store.commit(&uncommitted, &pipeline.alarm_rows()) {
            error!(error = %e, lost = uncommitted.len(), "work orders could not be saved at shutdown");
        }
    }
    save_usage(&store, &plant, &mut pipeline, &metrics);
    save_novelty(&store, &plant, &mut pipeline, &metrics);
    for s in sources {
        let _ = s.await;
    }

    if !delivery.is_finished() {
        let _ = delivery.await;
    }
    Ok(RunReport { metrics: metrics.snapshot(), outbox: store.counts().unwrap_or_default() })
}

/// Preventive orders the backend reports done: each task is next due one
/// interval after the work. The meters are saved before the orders are
/// marked, so a crash in between reschedules again (from a slightly later meter).
fn reschedule_preventive(
    store: &Store,
    plant: &Plant,
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    now: crate::model::Millis,
) {
    use crate::store::followup::state;
    let done = match store.completed_preventive() {
        Ok(d) if d.is_empty() => return,
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot read the completed preventive orders");
            return;
        }
    };
    for f in &done {
        let at = f.done_ms.unwrap_or(now);
        let moved =
            plant.asset_index(&f.asset).is_some_and(|a| pipeline.usage().completed(plant, a, &f.failure_mode, at));
        if moved {
            info!(asset = %f.asset, task = %f.failure_mode, "preventive task done; next due one interval from the work");
        }
    }
    save_usage(store, plant, pipeline, metrics);
    for f in done {
        if let Err(e) = store.set_followup(&f.key, state::RESCHEDULED, now, None) {
            warn!(key = %f.key, error = %e, "cannot mark a preventive order rescheduled");
        }
    }
}

/// Saves the usage meters that changed. Called each minute, after a
/// preventive order is committed, and at shutdown: a kill -9 loses at most
/// a minute of counting, and a re-raised occurrence has the same key.
fn save_usage(store: &Store, plant: &Plant, pipeline: &mut Pipeline, metrics: &Metrics) {
    let changed = pipeline.usage().take_changed();
    if changed.is_empty() {
        return;
    }
    let rows: Vec<(&str, &crate::usage::Meter)> = changed.iter().map(|(a, m)| (&*plant.assets[*a].id, m)).collect();
    if let Err(e) = store.save_usage(&rows) {
        Metrics::inc(&metrics.store_errors);
        warn!(error = %e, "cannot save usage meters; a restart would lose the run hours since the last save");
    }
}

/// Saves the novelty streams that read something since the last save: each
/// minute and at shutdown, so a restart goes on where they were.
fn save_novelty(store: &Store, plant: &Plant, pipeline: &mut Pipeline, metrics: &Metrics) {
    let changed = pipeline.novelty().take_changed(plant);
    if changed.is_empty() {
        return;
    }
    let rows: Vec<(&str, &crate::detect::novelty::NoveltyState)> =
        changed.iter().map(|(a, s)| (&*plant.assets[*a].id, s)).collect();
    if let Err(e) = store.save_novelty(&rows) {
        Metrics::inc(&metrics.store_errors);
        warn!(error = %e, "cannot save novelty streams; a restart would serve their probation again");
    }
}

/// What delivery shares with the engine, whichever backend it serves.
struct Outbox {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
}

impl Outbox {
    fn deliver<B: crate::backends::Cmms>(self, backend: B, cfg: &Config) -> tokio::task::JoinHandle<()> {
        info!(backend = backend.name(), url = %cfg.backend.url, "delivering work orders");
        tokio::spawn(delivery::run(self.store, backend, cfg.backend.clone(), self.metrics, self.wake, self.shutdown))
    }
}

/// Checks the machines whose orders the backend reported done at least
/// `backend.verify_after` ago: the orders the verdicts make, and the
/// verdicts to record once those are committed (their keys are
/// deterministic, so a crash in between re-checks and makes the same ones).
fn verify_repairs(
    store: &Store,
    pipeline: &mut Pipeline,
    cfg: &Config,
    now: crate::model::Millis,
) -> (Vec<NewEntry>, Vec<(String, &'static str)>) {
    use crate::store::followup::state;
    let after = cfg.backend.verify_after.as_millis().min(i64::MAX as u128) as i64;
    let due = match store.due_verifications(now - after) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot read the orders due a post-repair check");
            return (Vec::new(), Vec::new());
        }
    };
    let (mut orders, mut verdicts) = (Vec::new(), Vec::new());
    for f in due {
        let done = store.latest_order(&f.key).ok().flatten();
        let check = done.as_ref().and_then(|wo| pipeline.check_repair(wo, f.done_ms.unwrap_or(now), now));
        let (Some(done), Some(check)) = (done, check) else {
            warn!(key = %f.key, "the completed order's asset or failure mode is no longer configured; not checked");
            let _ = store.set_followup(&f.key, state::FIXED, now, None);
            continue;
        };
        let verdict = if check.fixed { state::FIXED } else { state::NOT_FIXED };
        info!(key = %f.key, asset = %f.asset, verdict, "post-repair check");
        for mut order in crate::workorders::verify::orders(&done, &check, f.done_ms.unwrap_or(now), now) {
            if order.event == crate::workorders::WorkEvent::Raised {
                pipeline.reraised(&done.idempotency_key, &order);
            }
            // The chart shows the hours around the repair.
            order.chart = pipeline.evidence_chart(&order);
            orders.push(NewEntry { order, status: crate::store::Status::Pending, note: None });
        }
        verdicts.push((f.key, verdict));
    }
    (orders, verdicts)
}
