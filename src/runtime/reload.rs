//! Hot reload in the engine: the new configuration is loaded and validated,
//! its models loaded and its plant compiled; only then is the state saved and
//! a new pipeline built and resumed from it (alarm states, open episodes,
//! learned baselines, trends, usage and flood-control windows, the path a
//! restart takes), taking over the old pipeline's windows. Any failure keeps
//! the old configuration running and says why in the log, the metrics and
//! the status page.

use super::engine::Engine;
use crate::common::clock::Clock;
use crate::config::Config;
use crate::pipeline::models::files::ModelFiles;
use crate::pipeline::plant::Plant;
use crate::pipeline::state::Take;
use crate::pipeline::Pipeline;
use crate::workorders::flood::FloodControl;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

impl Engine {
    /// Reloads the configuration from its files, or keeps the running one.
    pub(super) fn reload(&mut self, clock: &dyn Clock) {
        let Some(files) = self.files.clone() else {
            warn!("this run's configuration was not read from files; nothing to reload");
            return;
        };
        self.console.manager.reloading();
        let loaded = files.load();
        let result = loaded.config.and_then(|cfg| self.swap(cfg, clock));
        match result {
            Ok(restart) => {
                self.console.config.reloads += 1;
                self.console.config.loaded_at = crate::common::clock::wall_ms();
                self.console.config.reload_error = None;
                self.console.config.files =
                    loaded.files.iter().map(|p| p.display().to_string()).collect();
                if !restart.is_empty() {
                    warn!(
                        settings = restart.join(", "),
                        "configuration reloaded; these changed \
                        settings apply at the next restart"
                    );
                }
                self.console.config.restart_needed = restart;
                info!(assets = self.plant.assets.len(), "configuration reloaded");
            }
            Err(why) => {
                crate::common::metrics::Metrics::inc(&self.metrics.config_reload_failures);
                error!(error = %why, "configuration reload failed; still running on the \
                    configuration loaded before");
                self.console.config.reload_error = Some(why);
            }
        }
        self.console.refresh(&self.pipeline, &self.metrics);
        self.console.manager.ready("configuration reloaded");
    }

    /// Swaps `cfg` in; returns the changed settings only a restart applies.
    fn swap(&mut self, mut cfg: Config, clock: &dyn Clock) -> Result<Vec<String>, String> {
        if cfg.assets.is_empty() {
            return Err("no [[assets]] configured".into());
        }
        // What only a restart applies keeps running as it is (and is reported
        // again at every reload until then).
        let restart = crate::operate::reload::restart_needed(&self.cfg, &cfg);
        crate::operate::reload::keep_running(&self.cfg, &mut cfg);
        let models = ModelFiles::load(&cfg).map_err(|e| e.to_string())?;
        let plant = Arc::new(Plant::new(&cfg, &models));
        let now = clock.now();

        // Everything the new pipeline resumes from goes to the store first.
        self.save(Take::All, now);
        let alarms = self.pipeline.alarm_rows();
        self.store
            .commit(&self.uncommitted, &alarms, Some(self.flood.windows()))
            .map_err(|e| format!("cannot save the state before swapping: {e}"))?;
        self.uncommitted.clear();
        self.saved_alarms = alarms;
        // Their events name the old plant's indices.
        self.log_committed();
        self.mark_released();
        // Their charts come from the old pipeline's history.
        self.to_draw.append(&mut self.undrawn);
        self.draw_charts();

        let mut pipeline = Pipeline::new(&cfg, plant.clone(), self.metrics.clone(), now);
        let evidence = cfg.pipeline.evidence_window.as_millis().min(i64::MAX as u128) as i64;
        pipeline.draw_evidence(evidence);
        pipeline.judge_on_arrival();
        let mut flood = FloodControl::new(&cfg.flood, &cfg.gateway.id);
        super::restore::resume(&mut pipeline, &mut flood, &self.store)
            .map_err(|e| format!("cannot resume the state: {e}"))?;
        pipeline.adopt_windows(&self.pipeline);

        let interval_changed = cfg.pipeline.eval_interval != self.cfg.pipeline.eval_interval;
        self.pipeline = pipeline;
        self.flood = flood;
        self.plant = plant.clone();
        self.saved_alarms = self.pipeline.alarm_rows();
        self.verify_after =
            cfg.backend.common().verify_after.as_millis().min(i64::MAX as u128) as i64;
        if interval_changed {
            let tick = (cfg.pipeline.eval_interval.as_secs_f64() / clock.speed()).max(0.005);
            self.new_tick = Some(Duration::from_secs_f64(tick));
            self.console.stall_after(tick);
        }
        self.cfg = cfg;
        self.console.viewer.reset();
        self.plants.send_replace(plant);
        Ok(restart)
    }

    /// A new evaluation period set by a reload, once.
    pub(super) fn take_new_tick(&mut self) -> Option<Duration> {
        self.new_tick.take()
    }
}
