//! The runtime of `hums run` (and of the demo): builds the parts, connects
//! them with bounded channels, spawns them, and stops them cleanly.
//!
//! Queue policies: the reading queue is bounded and applies back-pressure to
//! the MQTT source, which acknowledges a message only once its readings are
//! queued (so the broker keeps what we cannot take yet). Work orders are
//! committed to the state database, together with the alarm states, before
//! any network call; if a commit fails they stay in memory and the commit is
//! retried at the next evaluation. They are never dropped.
//!
//! [`restore`] brings back what the last run saved, [`sources`] spawns the
//! inputs, [`engine`] is the evaluation loop and [`followups`] the checks on
//! orders the backend reports done; [`charts`] draws evidence charts on its
//! own thread. For operating hums: [`console`] (the view,
//! heartbeat and service-manager notifications), [`suppression`] (shelving and
//! out of service) and [`reload`] (hot reload); the server and publisher they
//! feed live in `crate::operate`.

mod charts;
mod console;
mod engine;
mod followups;
mod reload;
mod restore;
mod sources;
mod suppression;

use crate::common::clock::SharedClock;
use crate::common::events::Events;
use crate::common::metrics::{Metrics, Snapshot};
use crate::config::Config;
use crate::pipeline::models::files::ModelFiles;
use crate::pipeline::plant::Plant;
use crate::pipeline::Pipeline;
use crate::sources::mqtt::MqttError;
use crate::store::{Store, StoreError};
use crate::workorders::backends;
use crate::workorders::delivery::{self, Outbox};
use crate::workorders::flood::FloodControl;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};

/// Why the runtime could not run.
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
    Config(#[from] crate::config::ConfigErrors),
    #[error("{0}")]
    Backend(#[from] backends::BackendError),
    /// The HTTP server could not start (a port taken, a token unset, a bad certificate).
    #[error("{0}")]
    Server(#[from] crate::operate::server::ServerError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
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

/// How a run is operated beyond its configuration.
#[derive(Debug, Default)]
pub struct Options {
    /// Where the configuration came from; `None` disables reloading.
    pub files: Option<crate::operate::reload::ConfigFiles>,
    /// Reload requests (SIGHUP); file watching adds its own when configured.
    pub reload: Option<mpsc::Receiver<()>>,
}

/// Runs until `shutdown` turns true.
pub async fn run(
    cfg: Config,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunReport, EngineError> {
    run_with(cfg, clock, metrics, shutdown, Options::default()).await
}

/// [`run`], reloadable from `options.files`.
pub async fn run_with(
    cfg: Config,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    options: Options,
) -> Result<RunReport, EngineError> {
    if cfg.assets.is_empty() {
        return Err(EngineError::NoAssets);
    }
    let plant = Arc::new(Plant::new(&cfg, &ModelFiles::load(&cfg)?));
    let (plants, followed) = watch::channel(plant.clone());
    let sources = sources::Sources::prepare(&cfg, plant.clone(), followed, metrics.clone())?;
    let store = Arc::new(Store::open_dir(Path::new(&cfg.state.dir))?);
    tracing::info!(state = %cfg.state.dir, "state database open");

    let mut pipeline = Pipeline::new(&cfg, plant.clone(), metrics.clone(), clock.now());
    pipeline.draw_evidence(cfg.pipeline.evidence_window.as_millis().min(i64::MAX as u128) as i64);
    pipeline.judge_on_arrival();
    let mut flood = FloodControl::new(&cfg.flood, &cfg.gateway.id);
    restore::resume(&mut pipeline, &mut flood, &store)?;

    // The backend first: a credential problem stops hums before any source starts.
    let wake = Arc::new(Notify::new());
    let charts =
        charts::ChartWorker::start(store.clone(), wake.clone()).map_err(EngineError::Thread)?;
    let outbox = Outbox {
        store: store.clone(),
        metrics: metrics.clone(),
        wake: wake.clone(),
        shutdown: shutdown.clone(),
    };
    let delivery = delivery::start(&cfg.backend, outbox)?;

    let started = console::start(
        &cfg,
        options,
        console::Parts { store: &store, metrics: &metrics, clock: &clock, wake: &wake },
        &shutdown,
    )
    .await?;

    let (readings, tasks) = sources.spawn(&cfg, clock.clone(), shutdown.clone());
    let engine = engine::Engine {
        flood,
        verify_after: cfg.backend.common().verify_after.as_millis().min(i64::MAX as u128) as i64,
        saved_alarms: pipeline.alarm_rows(),
        uncommitted: Vec::new(),
        undrawn: Vec::new(),
        to_draw: Vec::new(),
        charts,
        unlogged: Vec::new(),
        next_check: clock.now(),
        pipeline,
        plant,
        store: store.clone(),
        events: Events::new(metrics.clone()),
        wake,
        console: started.console,
        files: started.files,
        metrics: metrics.clone(),
        plants,
        suppressions_changed: started.suppressions_changed,
        new_tick: None,
        unreleased: Vec::new(),
        cfg,
    };
    let timing = engine::Timing::new(&engine.cfg, clock.as_ref());
    engine.run(clock, timing, readings, delivery, shutdown, tasks, started.reload).await?;
    for h in started.helpers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), h).await;
    }
    Ok(RunReport { metrics: metrics.snapshot(), outbox: store.counts().unwrap_or_default() })
}
