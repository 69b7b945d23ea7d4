//! The sources a configuration names, checked before anything starts and
//! spawned onto one bounded reading queue.

use super::EngineError;
use crate::common::clock::SharedClock;
use crate::common::metrics::Metrics;
use crate::config::Config;
use crate::pipeline::plant::Plant;
use crate::sources::mqtt::{self, Ingest};
use crate::sources::Batch;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Sources whose settings were checked, ready to spawn.
pub struct Sources {
    ingest: Ingest,
    metrics: Arc<Metrics>,
}

impl Sources {
    /// Checks the MQTT topic routes and TLS files now, rather than inside the reconnect loop.
    pub fn prepare(
        cfg: &Config,
        plant: Arc<Plant>,
        plants: watch::Receiver<Arc<Plant>>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, EngineError> {
        let ingest = Ingest::new(&cfg.mqtt, plant, metrics.clone())?.follow(plants);
        mqtt::options(&cfg.mqtt, &cfg.gateway.id)?;
        Ok(Self { ingest, metrics })
    }

    /// Spawns every Modbus link and the MQTT source; the queue (of messages and
    /// polls, `pipeline.queue_capacity`) closes when all have stopped.
    pub fn spawn(
        self,
        cfg: &Config,
        clock: SharedClock,
        shutdown: watch::Receiver<bool>,
    ) -> (mpsc::Receiver<Batch>, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(cfg.pipeline.queue_capacity);
        let mut tasks = Vec::new();
        for link in &cfg.modbus.links {
            let units = crate::sources::modbus::resolve(link, &cfg.modbus);
            tasks.push(tokio::spawn(crate::sources::modbus::link::run(
                link.clone(),
                units,
                clock.clone(),
                self.metrics.clone(),
                tx.clone(),
                shutdown.clone(),
            )));
        }
        if !cfg.mqtt.subscriptions.is_empty() {
            let mqtt = mqtt::run(
                cfg.mqtt.clone(),
                cfg.gateway.id.clone(),
                self.ingest,
                clock,
                self.metrics.clone(),
                tx,
                shutdown,
            );
            tasks.push(tokio::spawn(async move {
                if let Err(e) = mqtt.await {
                    tracing::error!(error = %e, "MQTT source stopped");
                }
            }));
        }
        (rx, tasks)
    }
}
