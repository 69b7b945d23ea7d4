//! The runtime: wires the MQTT source, the pipeline and the work-order
//! dispatcher with bounded channels, and shuts down cleanly.
//!
//! Queue policies: the reading queue is bounded and applies back-pressure to
//! the MQTT source, which acknowledges a message only once its readings are
//! queued (so the broker keeps what we cannot take yet). Work orders go on an
//! unbounded queue: they are rare and are never dropped.

use crate::clock::SharedClock;
use crate::config::{Config, Plant};
use crate::metrics::{Metrics, Snapshot};
use crate::pipeline::Pipeline;
use crate::sources::mqtt::{self, Ingest, MqttError};
use crate::workorders::rest::{self, DeadLetters, RestBackend};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Why the engine could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("MQTT source: {0}")]
    Mqtt(#[from] MqttError),
}

/// What a run did, for the demo summary and for tests.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub metrics: Snapshot,
    pub dead_letters: usize,
}

/// How long the dispatcher keeps retrying undelivered work orders after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs until `shutdown` turns true.
pub async fn run(
    cfg: Config,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunReport, EngineError> {
    let plant = Arc::new(Plant::new(&cfg));
    let ingest = Ingest::new(&cfg.mqtt, plant.clone(), metrics.clone())?;
    // Fail fast on unreadable TLS files rather than inside the reconnect loop.
    mqtt::options(&cfg.mqtt, &cfg.gateway.id)?;
    let mut pipeline = Pipeline::new(&cfg, plant.clone(), metrics.clone(), clock.now());

    let (reading_tx, mut reading_rx) = mpsc::channel(cfg.pipeline.queue_capacity);
    let source = tokio::spawn(mqtt::run(
        cfg.mqtt.clone(),
        cfg.gateway.id.clone(),
        ingest,
        clock.clone(),
        metrics.clone(),
        reading_tx,
        shutdown.clone(),
    ));

    let (wo_tx, wo_rx) = mpsc::unbounded_channel();
    let dead: DeadLetters = Arc::default();
    let dispatcher = tokio::spawn(rest::dispatch(
        RestBackend::new(&cfg.backend),
        cfg.backend.clone(),
        wo_rx,
        metrics.clone(),
        dead.clone(),
        shutdown.clone(),
        SHUTDOWN_GRACE,
    ));

    let tick_every = Duration::from_secs_f64(
        (cfg.pipeline.eval_interval.as_secs_f64() / clock.speed()).max(0.005),
    );
    let mut ticker = tokio::time::interval(tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status = tokio::time::interval(Duration::from_secs(60));
    let mut stop = shutdown.clone();
    info!(
        assets = plant.assets.len(),
        channels = plant.slots.len(),
        "pipeline running"
    );
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = ticker.tick() => {
                let out = pipeline.tick(clock.now());
                for ev in &out.events {
                    let asset = &plant.assets[ev.asset];
                    info!(asset = %asset.id, failure_mode = %asset.failure_modes[ev.failure_mode].id, transition = ?ev.transition, "alarm");
                }
                for wo in out.work_orders {
                    if wo_tx.send(wo).is_err() {
                        warn!("dispatcher stopped; work order not queued");
                    }
                }
            }
            r = reading_rx.recv() => match r {
                Some(r) => pipeline.push(&r),
                None => break,
            },
            _ = status.tick() => {
                let m = metrics.snapshot();
                info!(readings = m.readings_accepted, malformed = m.payload_malformed, delivered = m.workorders_delivered,
                      alarms = ?pipeline.alarm_states(), "status");
            }
        }
    }
    info!("shutting down: finishing deliveries");
    drop(wo_tx);
    let _ = source.await;
    let _ = dispatcher.await;
    let dead_letters = dead.lock().await.len();
    Ok(RunReport {
        metrics: metrics.snapshot(),
        dead_letters,
    })
}
