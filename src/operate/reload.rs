//! Hot reload: where the configuration comes from, what asks for a reload
//! (SIGHUP, or a change of any file read, includes and `conf.d/` included,
//! when `[reload] watch = true`), and which changed settings only a restart
//! applies. The engine validates the new configuration and swaps it in, or
//! keeps running on the old one and says why.

use crate::config::{Config, ConfigErrors};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Lists the configuration files afresh (a `conf.d/` may have gained one).
pub type Resolve = Arc<dyn Fn() -> Result<Vec<PathBuf>, String> + Send + Sync>;

/// Where the running configuration came from.
#[derive(Clone)]
pub struct ConfigFiles {
    resolve: Resolve,
}

impl std::fmt::Debug for ConfigFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFiles").finish_non_exhaustive()
    }
}

/// What a load found: the configuration, or why not, and the files it read.
pub struct Loaded {
    pub config: Result<Config, String>,
    pub files: Vec<PathBuf>,
}

impl ConfigFiles {
    /// Files listed by `resolve` at each reload.
    pub fn new(resolve: Resolve) -> Self {
        Self { resolve }
    }

    /// A fixed list of files.
    pub fn fixed(paths: Vec<PathBuf>) -> Self {
        Self { resolve: Arc::new(move || Ok(paths.clone())) }
    }

    /// Loads and validates the configuration as it is on disk now.
    pub fn load(&self) -> Loaded {
        let paths = match (self.resolve)() {
            Ok(p) => p,
            Err(e) => return Loaded { config: Err(e), files: Vec::new() },
        };
        let (config, files) = crate::config::load_files_traced(&paths);
        Loaded { config: config.map_err(|e: ConfigErrors| e.to_string()), files }
    }

    /// A digest of the listed files and every file in `read`, as they are now.
    pub fn fingerprint(&self, read: &[PathBuf]) -> [u8; 32] {
        let mut h = Sha256::new();
        let listed = (self.resolve)().unwrap_or_default();
        for p in listed.iter().chain(read) {
            h.update(p.as_os_str().as_encoded_bytes());
            match std::fs::read(p) {
                Ok(bytes) => h.update(&bytes),
                Err(e) => h.update(e.to_string().as_bytes()),
            }
        }
        h.finalize().into()
    }
}

/// Asks for a reload whenever a file read changes; checks every `every`.
pub fn watch_files(
    files: ConfigFiles,
    mut read: Vec<PathBuf>,
    every: Duration,
    tx: mpsc::Sender<()>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = fingerprint_off_thread(&files, &read).await;
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticker.tick() => {}
            }
            let now = fingerprint_off_thread(&files, &read).await;
            if now != last {
                tracing::info!("configuration files changed; reloading");
                if tx.send(()).await.is_err() {
                    break;
                }
                // Includes may have changed with them.
                read = tokio::task::spawn_blocking({
                    let files = files.clone();
                    move || files.load().files
                })
                .await
                .unwrap_or(read);
                last = fingerprint_off_thread(&files, &read).await;
            }
        }
    })
}

async fn fingerprint_off_thread(files: &ConfigFiles, read: &[PathBuf]) -> [u8; 32] {
    let (files, read) = (files.clone(), read.to_vec());
    tokio::task::spawn_blocking(move || files.fingerprint(&read)).await.unwrap_or_default()
}

/// Asks for a reload on every SIGHUP.
pub fn on_sighup(tx: mpsc::Sender<()>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload by restarting");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            if tx.send(()).await.is_err() {
                break;
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
}

/// Settings that changed between `old` and `new` but only apply at a
/// restart: the gateway id (part of every order's key), the sources, the
/// backend, the state directory, the server, the publisher, logging, reload
/// and the queue. Everything else (assets, classes, thresholds, rules, alarm
/// timing, flood control) applies at once.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let json = |v: &dyn erased::Ser| v.to_json();
    let mut out = Vec::new();
    let sections: [(&str, &dyn erased::Ser, &dyn erased::Ser); 9] = [
        ("gateway", &old.gateway, &new.gateway),
        ("log", &old.log, &new.log),
        ("mqtt", &old.mqtt, &new.mqtt),
        ("modbus", &old.modbus, &new.modbus),
        ("backend", &old.backend, &new.backend),
        ("state", &old.state, &new.state),
        ("http", &old.http, &new.http),
        ("publish", &old.publish, &new.publish),
        ("reload", &old.reload, &new.reload),
    ];
    for (name, a, b) in sections {
        if json(a) != json(b) {
            out.push(format!("[{name}]"));
        }
    }
    if old.pipeline.queue_capacity != new.pipeline.queue_capacity {
        out.push("pipeline.queue_capacity".into());
    }
    out
}

/// Puts the running values of the settings only a restart applies into `new`.
pub fn keep_running(running: &Config, new: &mut Config) {
    new.gateway = running.gateway.clone();
    new.log = running.log.clone();
    new.mqtt = running.mqtt.clone();
    new.modbus = running.modbus.clone();
    new.backend = running.backend.clone();
    new.state = running.state.clone();
    new.http = running.http.clone();
    new.publish = running.publish.clone();
    new.reload = running.reload.clone();
    new.pipeline.queue_capacity = running.pipeline.queue_capacity;
}

mod erased {
    /// Serializes any section to JSON for comparison.
    pub trait Ser {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}
