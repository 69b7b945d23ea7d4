//! The state kept across restarts beside the outbox: alarm states and the
//! pipeline's learned state (baselines, trend histories, remaining-life
//! baselines, novelty streams, usage meters).

use super::{Store, StoreError};
use crate::common::types::Millis;
use crate::pipeline::alarms::AlarmRow;
use crate::pipeline::state::{SavedState, StateChanges};
use crate::workorders::flood::Windows;
use rusqlite::OptionalExtension;

impl Store {
    /// The alarm states saved by the last run.
    pub fn alarms(&self) -> Result<Vec<AlarmRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT asset, failure_mode, state FROM alarms")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (asset, fm, state) = row.map_err(|e| self.err(e))?;
            match serde_json::from_str(&state) {
                Ok(s) => out.push((asset, fm, s)),
                Err(e) => {
                    tracing::warn!(asset, failure_mode = fm, error = %e, "ignoring unreadable \
                        saved alarm state")
                }
            }
        }
        Ok(out)
    }

    /// Saves an asset's fitted baseline model (replacing an older one).
    pub fn save_baseline(
        &self,
        asset: &str,
        model: &crate::pipeline::models::Model,
        now: Millis,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(model).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("baseline of {asset}: {e}"),
        })?;
        self.conn()
            .execute(
                "INSERT INTO baselines (asset, model, saved_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (asset) DO UPDATE SET model = excluded.model,
                 saved_ms = excluded.saved_ms",
                rusqlite::params![asset, json, now],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Saves a degradation indicator's history (`indicator` names it, e.g.
    /// `acceleration.mean`), replacing the older one.
    pub fn save_trend(
        &self,
        asset: &str,
        indicator: &str,
        points: &[(Millis, f64)],
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(points).unwrap_or_else(|_| "[]".into());
        self.conn()
            .execute(
                "INSERT INTO trends (asset, indicator, points) VALUES (?1, ?2, ?3)
                 ON CONFLICT (asset, indicator) DO UPDATE SET points = excluded.points",
                rusqlite::params![asset, indicator, json],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Saves usage meters (replacing older ones) in one transaction.
    pub fn save_usage(
        &self,
        meters: &[(&str, &crate::pipeline::usage::Meter)],
    ) -> Result<(), StoreError> {
        self.save_per_asset("usage", "meter", meters)
    }

    /// Writes rows of a per-asset state table (`table` keyed by `asset`,
    /// the JSON in `column`), replacing older ones, in one transaction.
    fn save_per_asset<T: serde::Serialize>(
        &self,
        table: &str,
        column: &str,
        rows: &[(&str, &T)],
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {table} (asset, {column}) VALUES (?1, ?2)
             ON CONFLICT (asset) DO UPDATE SET {column} = excluded.{column}"
        );
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for (asset, value) in rows {
            let json = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
            tx.execute(&sql, rusqlite::params![asset, json]).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The usage meters saved by earlier runs, by asset id. Unreadable ones
    /// are skipped with a warning (the asset then counts from its configured start).
    pub fn usage(&self) -> Result<Vec<(String, crate::pipeline::usage::Meter)>, StoreError> {
        self.per_asset("usage", "meter", "usage meter")
    }

    /// Saves an asset's remaining-life baseline and age (replacing an older one).
    pub fn save_life(
        &self,
        asset: &str,
        state: &crate::pipeline::detect::life::LifeState,
    ) -> Result<(), StoreError> {
        self.save_per_asset("life", "state", &[(asset, state)])
    }

    /// Saves novelty streams (replacing older ones), in one transaction.
    pub fn save_novelty(
        &self,
        rows: &[(&str, &crate::pipeline::detect::novelty::NoveltyState)],
    ) -> Result<(), StoreError> {
        self.save_per_asset("novelty", "state", rows)
    }

    /// The novelty streams saved by earlier runs, by asset id.
    pub fn novelty(
        &self,
    ) -> Result<Vec<(String, crate::pipeline::detect::novelty::NoveltyState)>, StoreError> {
        self.per_asset("novelty", "state", "novelty stream")
    }

    /// The remaining-life states saved by earlier runs, by asset id.
    pub fn life(
        &self,
    ) -> Result<Vec<(String, crate::pipeline::detect::life::LifeState)>, StoreError> {
        self.per_asset("life", "state", "remaining-life state")
    }

    /// Every row of a per-asset state table (`table` keyed by `asset`, its
    /// JSON in `column`); unreadable ones are skipped with a warning naming `what`.
    fn per_asset<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        column: &str,
        what: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!("SELECT asset, {column} FROM {table}"))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (asset, json) = row.map_err(|e| self.err(e))?;
            match serde_json::from_str(&json) {
                Ok(v) => out.push((asset, v)),
                Err(e) => tracing::warn!(asset, error = %e, "ignoring an unreadable saved {what}"),
            }
        }
        Ok(out)
    }

    /// Every saved indicator history, as (asset, indicator, points).
    pub fn trends(
        &self,
    ) -> Result<Vec<(String, String, crate::pipeline::detect::trend::Points)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT asset, indicator, points FROM trends").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (asset, indicator, json) = row.map_err(|e| self.err(e))?;
            match serde_json::from_str(&json) {
                Ok(points) => out.push((asset, indicator, points)),
                Err(e) => {
                    tracing::warn!(asset, indicator, error = %e, "ignoring an unreadable saved \
                        trend history")
                }
            }
        }
        Ok(out)
    }

    /// Forgets an asset's saved baseline model.
    pub fn drop_baseline(&self, asset: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM baselines WHERE asset = ?1", [asset])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The baseline models saved by earlier runs, by asset id. Unreadable ones
    /// are skipped with a warning (the asset then learns again).
    pub fn baselines(&self) -> Result<Vec<(String, crate::pipeline::models::Model)>, StoreError> {
        let models: Vec<(String, crate::pipeline::models::Model)> =
            self.per_asset("baselines", "model", "baseline")?;
        Ok(models
            .into_iter()
            .filter(|(asset, m)| match m.validate() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(asset, error = %e, "ignoring an unreadable saved baseline; the \
                        asset learns again");
                    false
                }
            })
            .collect())
    }

    /// Flood control's windows as last committed; unreadable ones are
    /// dropped with a warning (the budgets start afresh).
    pub fn flood(&self) -> Result<Option<Windows>, StoreError> {
        let json: Option<String> = self
            .conn()
            .query_row("SELECT windows FROM flood WHERE id = 1", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(json.and_then(|j| match serde_json::from_str(&j) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring unreadable saved flood-control windows");
                None
            }
        }))
    }

    /// Everything the pipeline saved, for [`crate::pipeline::Pipeline::restore_state`].
    pub fn load_state(&self) -> Result<SavedState, StoreError> {
        Ok(SavedState {
            baselines: self.baselines()?,
            trends: self.trends()?,
            life: self.life()?,
            novelty: self.novelty()?,
            usage: self.usage()?,
        })
    }

    /// Saves what the pipeline reports changed. Every part is tried; the
    /// first failure is returned (a restart would relearn what was not saved).
    pub fn save_state(&self, c: &StateChanges, now: Millis) -> Result<(), StoreError> {
        let mut results = Vec::new();
        for (asset, model) in &c.baselines {
            results.push(self.save_baseline(asset, model, now));
        }
        for (asset, indicator, points) in &c.trends {
            results.push(self.save_trend(asset, indicator, points));
        }
        for (asset, state) in &c.life {
            results.push(self.save_life(asset, state));
        }
        if !c.novelty.is_empty() {
            let rows: Vec<_> = c.novelty.iter().map(|(a, s)| (&**a, s)).collect();
            results.push(self.save_novelty(&rows));
        }
        if !c.usage.is_empty() {
            let rows: Vec<_> = c.usage.iter().map(|(a, m)| (&**a, m)).collect();
            results.push(self.save_usage(&rows));
        }
        results.into_iter().collect()
    }
}
