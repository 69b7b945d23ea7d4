//! The engine's side of operating hums: the view it hands the HTTP server and
//! the MQTT publisher after each evaluation, the alarm notes it publishes, its
//! heartbeat and evaluation latency, and the service manager's notifications.

use super::EngineError;
use crate::common::clock::SharedClock;
use crate::common::metrics::Metrics;
use crate::common::types::Millis;
use crate::config::Config;
use crate::operate::notify::ServiceManager;
use crate::operate::prometheus;
use crate::operate::publish::AlarmNote;
use crate::operate::reload::{self, ConfigFiles};
use crate::operate::server::ServerError;
use crate::operate::shared::Shared;
use crate::operate::view::{ConfigStatus, View, Viewer};
use crate::pipeline::alarms::{AlarmEvent, Transition};
use crate::pipeline::Pipeline;
use crate::store::Store;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

/// What the engine keeps for the operator's side.
pub struct Console {
    pub viewer: Viewer,
    pub views: watch::Sender<Arc<View>>,
    pub config: ConfigStatus,
    /// Alarm transitions for the MQTT publisher, when it runs.
    pub notes: Option<mpsc::Sender<AlarmNote>>,
    /// Wall time (ms) of the engine's last turn.
    pub heartbeat: Arc<AtomicI64>,
    pub tick_latency: Histogram,
    pub manager: ServiceManager,
    /// How long without a turn `/healthz` calls the engine stalled (ms).
    pub stall_after_ms: Arc<AtomicI64>,
}

impl Console {
    /// Records an evaluation and, when anyone looks, hands on a fresh view.
    pub fn show(&mut self, p: &Pipeline, metrics: &Metrics, now: Millis) {
        self.viewer.record(p, now);
        self.refresh(p, metrics);
    }

    /// Hands on a fresh view of the pipeline without recording history.
    pub fn refresh(&mut self, p: &Pipeline, metrics: &Metrics) {
        if self.views.receiver_count() > 0 {
            let view = self.viewer.view(p, metrics, self.config.clone());
            self.views.send_replace(Arc::new(view));
        }
    }

    /// Ten evaluations of `period_s` seconds (a minute at least) without a
    /// turn of the loop count as a stall.
    pub fn stall_after(&self, period_s: f64) {
        self.stall_after_ms.store(stall_ms(period_s), Ordering::Relaxed);
    }

    /// The engine turned its loop.
    pub fn beat(&self) {
        self.heartbeat.store(crate::common::clock::wall_ms(), Ordering::Relaxed);
    }

    /// Hands committed alarm transitions to the publisher; a full queue drops them.
    pub fn note(&self, p: &Pipeline, ev: &AlarmEvent, metrics: &Metrics) {
        let Some(tx) = &self.notes else { return };
        let asset = &p.plant().assets[ev.asset];
        let fm = &asset.failure_modes[ev.failure_mode];
        let (transition, severity, episode) = match ev.transition {
            Transition::Raised { severity, episode } => ("raised", Some(severity), episode),
            Transition::Escalated { to, episode, .. } => ("escalated", Some(to), episode),
            Transition::Cleared { episode } => ("cleared", None, episode),
        };
        let note = AlarmNote {
            asset: asset.id.to_string(),
            failure_mode: fm.id.clone(),
            title: crate::pipeline::planner::title(asset, &fm.spec, fm.spec.priority, &[]),
            priority: fm.spec.priority,
            transition,
            severity,
            episode,
            at: ev.at,
        };
        if tx.try_send(note).is_err() {
            tracing::debug!("MQTT publisher busy; an alarm event was not published");
            Metrics::inc(&metrics.mqtt_publish_dropped);
        }
    }
}

/// Ten evaluations of `period_s` seconds, a minute at least, in ms.
fn stall_ms(period_s: f64) -> i64 {
    ((period_s * 10_000.0) as i64).max(60_000)
}

/// What the operator's side starts with.
pub struct Parts<'a> {
    pub store: &'a Arc<Store>,
    pub metrics: &'a Arc<Metrics>,
    pub clock: &'a SharedClock,
    /// Wakes delivery (dead letters retried through the API).
    pub wake: &'a Arc<Notify>,
}

/// The operator's side, started.
pub struct Started {
    pub console: Console,
    pub files: Option<ConfigFiles>,
    pub suppressions_changed: Arc<Notify>,
    /// The server, publisher and file watcher.
    pub helpers: Vec<JoinHandle<()>>,
    /// Reload requests: SIGHUP and, when watching, changed files.
    pub reload: Option<mpsc::Receiver<()>>,
}

/// Starts what `[http]`, `[publish]` and `[reload]` ask for.
pub async fn start(
    cfg: &Config,
    options: super::Options,
    parts: Parts<'_>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Started, EngineError> {
    let Parts { store, metrics, clock, wake } = parts;
    let (views, view) = watch::channel(Arc::new(View::default()));
    let heartbeat = Arc::new(AtomicI64::new(crate::common::clock::wall_ms()));
    let tick_latency = crate::operate::prometheus::tick_latency();
    let suppressions_changed = Arc::new(Notify::new());
    let period = cfg.pipeline.eval_interval.as_secs_f64() / clock.speed();
    let stall_after_ms = Arc::new(AtomicI64::new(stall_ms(period)));
    let mut config =
        ConfigStatus { loaded_at: crate::common::clock::wall_ms(), ..Default::default() };
    let mut read = Vec::new();
    if let Some(files) = &options.files {
        let f = files.clone();
        read = tokio::task::spawn_blocking(move || f.load().files).await.unwrap_or_default();
        config.files = read.iter().map(|p| p.display().to_string()).collect();
    }
    let mut helpers = Vec::new();
    if cfg.http.enabled {
        let tokens =
            crate::operate::auth::Tokens::load(&cfg.http.tokens).map_err(ServerError::from)?;
        let registry = prometheus::registry(
            metrics.clone(),
            view.clone(),
            store.clone(),
            tick_latency.clone(),
        );
        let shared = Shared {
            view: view.clone(),
            store: store.clone(),
            tokens: Arc::new(tokens),
            registry: Arc::new(registry),
            suppressions_changed: suppressions_changed.clone(),
            wake_delivery: wake.clone(),
            heartbeat: heartbeat.clone(),
            stall_after_ms: stall_after_ms.clone(),
            clock: clock.clone(),
            secure_cookie: cfg.http.tls_cert_file.is_some(),
            writable: Arc::default(),
        };
        helpers.push(crate::operate::server::start(&cfg.http, shared, shutdown.clone()).await?);
    }
    let mut notes = None;
    if cfg.publish.enabled {
        let (tx, rx) = mpsc::channel(1024);
        notes = Some(tx);
        let publisher = crate::operate::publish::run(
            cfg.clone(),
            metrics.clone(),
            view.clone(),
            rx,
            shutdown.clone(),
        );
        helpers.push(tokio::spawn(publisher));
    }
    drop(view);
    let reload = match (&options.files, cfg.reload.watch) {
        (Some(files), true) => {
            let (rx, watcher) = watch_and_hup(cfg, files, read, options.reload, shutdown);
            helpers.push(watcher);
            Some(rx)
        }
        _ => options.reload,
    };
    let console = Console {
        viewer: Viewer::new(&cfg.gateway.id, crate::common::clock::wall_ms(), cfg.http.history),
        views,
        config,
        notes,
        heartbeat,
        tick_latency,
        manager: ServiceManager::from_env(),
        stall_after_ms,
    };
    Ok(Started { console, files: options.files, suppressions_changed, helpers, reload })
}

/// One queue of reload requests: the file watcher's and SIGHUP's (`hup`).
fn watch_and_hup(
    cfg: &Config,
    files: &ConfigFiles,
    read: Vec<std::path::PathBuf>,
    hup: Option<mpsc::Receiver<()>>,
    shutdown: &watch::Receiver<bool>,
) -> (mpsc::Receiver<()>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(4);
    let every = cfg.reload.interval;
    let watcher = reload::watch_files(files.clone(), read, every, tx.clone(), shutdown.clone());
    if let Some(mut hup) = hup {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
    }
    (rx, watcher)
}
