//! Durable state in an embedded SQLite database (WAL mode) in the state
//! directory: the work-order outbox and the alarm states. A work order is
//! committed here before any network call, so a crash or a dead backend never
//! loses one, and a restart resumes where the last run stopped.

pub mod followup;
mod schema;

use crate::alarms::State;
use crate::model::Millis;
use crate::workorders::WorkOrder;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "hums.db";

/// Why the state database cannot be used. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database {path} is corrupt or not a hums database ({detail}); stop hums, move the file aside (it may still hold undelivered work orders) and start again")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "state database {path} is locked by another process (is a second hums running on the same state directory?)"
    )]
    Locked { path: PathBuf },
    #[error("state database {path} is read-only: give the hums user write access to the file and its directory")]
    ReadOnly { path: PathBuf },
    #[error("state database {path}: the disk is full; free space, nothing was lost")]
    Full { path: PathBuf },
    #[error(
        "state database {path} has schema version {found}, newer than this hums supports ({supported}); upgrade hums"
    )]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("cannot create state directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("state database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("stored work order {id} cannot be read: {detail}")]
    Body { id: i64, detail: String },
}

/// Where an outbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for (re)delivery.
    Pending,
    /// An attempt is in flight; after a crash this means "outcome unknown".
    Sending,
    Delivered,
    /// Refused permanently by the backend; `hums outbox retry` after fixing the cause.
    Dead,
    /// Held back by flood control; listed, and releasable with `hums outbox retry`.
    Held,
    /// Dropped by an operator.
    Dropped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Delivered => "delivered",
            Status::Dead => "dead",
            Status::Held => "held",
            Status::Dropped => "dropped",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<Self> {
        [Status::Pending, Status::Sending, Status::Delivered, Status::Dead, Status::Held, Status::Dropped]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One outbox row.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: i64,
    pub key: String,
    pub revision: u32,
    pub status: Status,
    /// A previous attempt may have reached the backend: look up before re-posting.
    pub uncertain: bool,
    pub attempts: u32,
    pub next_attempt_ms: Millis,
    pub last_error: Option<String>,
    pub note: Option<String>,
    pub remote_id: Option<String>,
    pub created_ms: Millis,
    pub delivered_ms: Option<Millis>,
    pub order: WorkOrder,
}

/// A work order to commit, with what flood control decided for it.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub order: WorkOrder,
    /// `Pending` to send, or `Held` with a note saying why.
    pub status: Status,
    pub note: Option<String>,
}

/// A persisted alarm: asset id, failure-mode id and state.
pub type AlarmRow = (String, String, State);

/// The state database.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Opens (creating if needed) `dir/hums.db` for the daemon: migrates it and
    /// marks attempts that were in flight when the last run stopped as uncertain.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: dir.into(), source })?;
        let store = Self::open(&dir.join(DB_FILE))?;
        store.recover_in_flight()?;
        Ok(store)
    }

    /// Opens `dir/hums.db` for inspection (the CLI) while a daemon may be
    /// running: it does not touch the daemon's in-flight attempts.
    pub fn inspect_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: dir.into(), source })?;
        Self::open(&dir.join(DB_FILE))
    }

    /// After a crash, an attempt left "sending" may or may not have landed.
    pub fn recover_in_flight(&self) -> Result<(), StoreError> {
        self.update("UPDATE outbox SET status = 'pending', uncertain = 1 WHERE status = 'sending'", []).map(|_| ())
    }

    /// Opens a database file (migrated; in-flight attempts untouched).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |e| classify(path, e);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        // Probe early: a non-database file fails here with a clear error.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "state database is not in WAL mode");
        }
        // FULL: a committed work order survives a power cut, not just a crash.
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(err)?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(err)?;
        if check != "ok" {
            return Err(StoreError::Corrupt { path: path.into(), detail: check });
        }
        schema::migrate(&conn, path)?;
        Ok(Self { path: path.into(), conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    /// Commits new work orders and the current alarm states in one transaction.
    /// Re-committing an order with the same key and revision is a no-op.
    pub fn commit(&self, orders: &[NewEntry], alarms: &[AlarmRow]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let now = now_ms();
        for e in orders {
            let body =
                serde_json::to_string(&e.order).map_err(|x| StoreError::Body { id: 0, detail: x.to_string() })?;
            tx.execute(
                "INSERT OR IGNORE INTO outbox (key, revision, asset, failure_mode, body, status, note, next_attempt_ms, created_ms, chart)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
                params![
                    e.order.idempotency_key,
                    e.order.revision,
                    e.order.asset.id,
                    e.order.failure_mode,
                    body,
                    e.status.as_str(),
                    e.note,
                    now,
                    e.order.chart.as_ref().map(|c| c.0.as_slice())
                ],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.execute("DELETE FROM alarms", []).map_err(|e| self.err(e))?;
        for (asset, fm, state) in alarms {
            let state = serde_json::to_string(state).map_err(|x| StoreError::Body { id: 0, detail: x.to_string() })?;
            tx.execute(
                "INSERT INTO alarms (asset, failure_mode, state) VALUES (?1, ?2, ?3)",
                params![asset, fm, state],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The alarm states saved by the last run.
    pub fn alarms(&self) -> Result<Vec<AlarmRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT asset, failure_mode, state FROM alarms").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (asset, fm, state) = row.map_err(|e| self.err(e))?;
            match serde_json::from_str(&state) {
                Ok(s) => out.push((asset, fm, s)),
                Err(e) => {
                    tracing::warn!(asset, failure_mode = fm, error = %e, "ignoring unreadable saved alarm state")
                }
            }
        }
        Ok(out)
    }

    /// Saves an asset's fitted baseline model (replacing an older one).
    pub fn save_baseline(&self, asset: &str, model: &crate::models::Model, now: Millis) -> Result<(), StoreError> {
        let json = serde_json::to_string(model).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("baseline of {asset}: {e}"),
        })?;
        self.conn()
            .execute(
                "INSERT INTO baselines (asset, model, saved_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (asset) DO UPDATE SET model = excluded.model, saved_ms = excluded.saved_ms",
                rusqlite::params![asset, json, now],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Saves a degradation indicator's history (`indicator` names it, e.g.
    /// `acceleration.mean`), replacing the older one.
    pub fn save_trend(&self, asset: &str, indicator: &str, points: &[(Millis, f64)]) -> Result<(), StoreError> {
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
    pub fn save_usage(&self, meters: &[(&str, &crate::usage::Meter)]) -> Result<(), StoreError> {
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
    pub fn usage(&self) -> Result<Vec<(String, crate::usage::Meter)>, StoreError> {
        self.per_asset("usage", "meter", "usage meter")
    }

    /// Saves an asset's remaining-life baseline and age (replacing an older one).
    pub fn save_life(&self, asset: &str, state: &crate::detect::life::LifeState) -> Result<(), StoreError> {
        self.save_per_asset("life", "state", &[(asset, state)])
    }

    /// Saves novelty streams (replacing older ones), in one transaction.
    pub fn save_novelty(&self, rows: &[(&str, &crate::detect::novelty::NoveltyState)]) -> Result<(), StoreError> {
        self.save_per_asset("novelty", "state", rows)
    }

    /// The novelty streams saved by earlier runs, by asset id.
    pub fn novelty(&self) -> Result<Vec<(String, crate::detect::novelty::NoveltyState)>, StoreError> {
        self.per_asset("novelty", "state", "novelty stream")
    }

    /// The remaining-life states saved by earlier runs, by asset id.
    pub fn life(&self) -> Result<Vec<(String, crate::detect::life::LifeState)>, StoreError> {
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
        let mut stmt = conn.prepare(&format!("SELECT asset, {column} FROM {table}")).map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
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
    pub fn trends(&self) -> Result<Vec<(String, String, crate::detect::trend::Points)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT asset, indicator, points FROM trends").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (asset, indicator, json) = row.map_err(|e| self.err(e))?;
            match serde_json::from_str(&json) {
                Ok(points) => out.push((asset, indicator, points)),
                Err(e) => tracing::warn!(asset, indicator, error = %e, "ignoring an unreadable saved trend history"),
            }
        }
        Ok(out)
    }

    /// Forgets an asset's saved baseline model.
    pub fn drop_baseline(&self, asset: &str) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM baselines WHERE asset = ?1", [asset]).map(|_| ()).map_err(|e| self.err(e))
    }

    /// The baseline models saved by earlier runs, by asset id. Unreadable ones
    /// are skipped with a warning (the asset then learns again).
    pub fn baselines(&self) -> Result<Vec<(String, crate::models::Model)>, StoreError> {
        let models: Vec<(String, crate::models::Model)> = self.per_asset("baselines", "model", "baseline")?;
        Ok(models
            .into_iter()
            .filter(|(asset, m)| match m.validate() {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(asset, error = %e, "ignoring an unreadable saved baseline; the asset learns again");
                    false
                }
            })
            .collect())
    }

    /// The key of the newest order sent for an asset's failure mode (an update
    /// of another order carries that order's key).
    pub fn last_order(&self, asset: &str, failure_mode: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT key FROM outbox WHERE asset = ?1 AND failure_mode = ?2 ORDER BY id DESC LIMIT 1",
                [asset, failure_mode],
                |r| r.get::<_, String>(0),
            )
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(|e| self.err(e))
    }

    /// Highest stored revision per idempotency key, for the given keys.
    pub fn revision(&self, key: &str) -> Result<Option<u32>, StoreError> {
        self.conn()
            .query_row("SELECT MAX(revision) FROM outbox WHERE key = ?1", [key], |r| r.get::<_, Option<u32>>(0))
            .map_err(|e| self.err(e))
    }

    /// Sets an entry's note (e.g. an attachment that failed after delivery).
    pub fn set_note(&self, id: i64, note: &str) -> Result<bool, StoreError> {
        self.update("UPDATE outbox SET note = ?2 WHERE id = ?1", params![id, note])
    }

    /// The backend's id for an order: from any delivered revision of its key.
    pub fn remote_id(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT remote_id FROM outbox WHERE key = ?1 AND status = 'delivered' AND remote_id IS NOT NULL
                 ORDER BY revision LIMIT 1",
                [key],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The next entry due for delivery at `now`: pending, due, and with no
    /// earlier revision of the same key still undelivered.
    /// An entry whose stored body cannot be read is parked as dead (with the
    /// reason) instead of blocking the queue.
    pub fn next_due(&self, now: Millis) -> Result<Option<Entry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox o WHERE status = 'pending' AND next_attempt_ms <= ?1 AND {NOT_BLOCKED}
             ORDER BY next_attempt_ms, id LIMIT 1"
        );
        loop {
            let row = self
                .conn()
                .query_row(&sql, [now], |r| Ok((r.get::<_, i64>(0)?, entry(r).map_err(|e| e.to_string()))))
                .optional()
                .map_err(|e| self.err(e))?;
            match row {
                None => return Ok(None),
                Some((_, Ok(e))) => return Ok(Some(e)),
                Some((id, Err(detail))) => {
                    tracing::error!(id, detail, "outbox entry cannot be read; parked as dead");
                    self.mark_dead(id, &format!("unreadable entry: {detail}"))?;
                }
            }
        }
    }

    /// When the next deliverable entry falls due, if any (same rule as [`Self::next_due`]).
    pub fn next_due_at(&self) -> Result<Option<Millis>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT MIN(next_attempt_ms) FROM outbox o WHERE status = 'pending' AND {NOT_BLOCKED}"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Records that an attempt is starting (committed before the request goes
    /// out). Returns false if the entry is no longer pending (an operator
    /// dropped it meanwhile): then nothing may be sent.
    pub fn mark_sending(&self, id: i64) -> Result<bool, StoreError> {
        self.update(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ?1 AND status = 'pending'",
            params![id],
        )
    }

    /// Records a delivery the backend confirmed (or that a look-up found).
    pub fn mark_delivered(&self, id: i64, remote_id: Option<&str>) -> Result<bool, StoreError> {
        self.update(
            "UPDATE outbox SET status = 'delivered', uncertain = 0, remote_id = ?2, delivered_ms = ?3, last_error = NULL
             WHERE id = ?1 AND status IN ('pending', 'sending')",
            params![id, remote_id, now_ms()],
        )
    }

    /// Schedules another attempt; `uncertain` if this one may have reached the backend.
    pub fn mark_retry(
        &self,
        id: i64,
        next_attempt_ms: Millis,
        error: &str,
        uncertain: bool,
    ) -> Result<bool, StoreError> {
        self.update(
            "UPDATE outbox SET status = 'pending', next_attempt_ms = ?2, last_error = ?3, uncertain = MAX(uncertain, ?4)
             WHERE id = ?1 AND status IN ('pending', 'sending')",
            params![id, next_attempt_ms, error, uncertain],
        )
    }

    /// Parks an entry the backend refused permanently.
    pub fn mark_dead(&self, id: i64, error: &str) -> Result<bool, StoreError> {
        self.update(
            "UPDATE outbox SET status = 'dead', last_error = ?2 WHERE id = ?1 AND status IN ('pending', 'sending')",
            params![id, error],
        )
    }

    /// Puts dead or held entries (or all of them with `ids` empty and `status`) back in the queue.
    pub fn release(&self, ids: &[i64], status: Option<Status>) -> Result<usize, StoreError> {
        self.set_status(ids, status, "pending", "status IN ('dead', 'held')")
    }

    /// Drops undelivered entries so they are never sent.
    pub fn drop_entries(&self, ids: &[i64], status: Option<Status>) -> Result<usize, StoreError> {
        self.set_status(ids, status, "dropped", "status IN ('pending', 'dead', 'held')")
    }

    fn set_status(&self, ids: &[i64], status: Option<Status>, to: &str, allowed: &str) -> Result<usize, StoreError> {
        let conn = self.conn();
        let now = now_ms();
        let mut n = 0;
        if let Some(st) = status {
            n += conn
                .execute(
                    &format!("UPDATE outbox SET status = ?1, next_attempt_ms = ?2 WHERE status = ?3 AND {allowed}"),
                    params![to, now, st.as_str()],
                )
                .map_err(|e| self.err(e))?;
        }
        for id in ids {
            n += conn
                .execute(
                    &format!("UPDATE outbox SET status = ?1, next_attempt_ms = ?2 WHERE id = ?3 AND {allowed}"),
                    params![to, now, id],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(n)
    }

    /// Runs an update; true if it changed a row.
    fn update(&self, sql: &str, p: impl rusqlite::Params) -> Result<bool, StoreError> {
        self.conn().execute(sql, p).map(|n| n > 0).map_err(|e| self.err(e))
    }

    /// Entries, newest first, optionally of one status.
    pub fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM outbox o WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2");
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![status.map(Status::as_str), limit as i64], entry).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Number of entries per status.
    pub fn counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// An entry waits while an earlier revision of its key is undelivered.
const NOT_BLOCKED: &str = "NOT EXISTS (SELECT 1 FROM outbox p WHERE p.key = o.key AND p.revision < o.revision \
                           AND p.status IN ('pending', 'sending', 'held', 'dead'))";

const COLUMNS: &str = "o.id, o.key, o.revision, o.status, o.uncertain, o.attempts, o.next_attempt_ms, o.last_error, \
                       o.note, o.remote_id, o.created_ms, o.delivered_ms, o.body, o.chart";

/// Reads one outbox row. A body or status that cannot be read is a
/// conversion error naming the column, so one bad row is reported, not skipped.
fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    use rusqlite::types::Type;
    let status: String = r.get(3)?;
    let body: String = r.get(12)?;
    Ok(Entry {
        id: r.get(0)?,
        key: r.get(1)?,
        revision: r.get(2)?,
        status: Status::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(3, Type::Text, format!("unknown status {status:?}").into())
        })?,
        uncertain: r.get(4)?,
        attempts: r.get(5)?,
        next_attempt_ms: r.get(6)?,
        last_error: r.get(7)?,
        note: r.get(8)?,
        remote_id: r.get(9)?,
        created_ms: r.get(10)?,
        delivered_ms: r.get(11)?,
        order: {
            let mut o: WorkOrder = serde_json::from_str(&body)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(12, Type::Text, Box::new(e)))?;
            o.chart = r.get::<_, Option<Vec<u8>>>(13)?.map(|b| crate::charts::Png(std::sync::Arc::new(b)));
            o
        },
    })
}

/// Turns SQLite's error codes into the errors an operator can act on.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::Corrupt { path, detail: e.to_string() },
        Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Locked { path },
        Some(C::ReadOnly | C::CannotOpen | C::PermissionDenied) if is_read_only(&path) => StoreError::ReadOnly { path },
        Some(C::ReadOnly) => StoreError::ReadOnly { path },
        Some(C::DiskFull) => StoreError::Full { path },
        _ => StoreError::Sqlite { path, source: e },
    }
}

fn is_read_only(path: &Path) -> bool {
    let target = if path.exists() { path } else { path.parent().unwrap_or(path) };
    std::fs::metadata(target).map(|m| m.permissions().readonly()).unwrap_or(false)
}

impl crate::pipeline::SentOrders for Store {
    type Error = StoreError;

    fn revision(&self, key: &str) -> Result<Option<u32>, StoreError> {
        Store::revision(self, key)
    }

    fn last_order(&self, asset: &str, failure_mode: &str) -> Result<Option<String>, StoreError> {
        Store::last_order(self, asset, failure_mode)
    }

    fn due_by(&self, key: &str) -> Result<Option<Millis>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row("SELECT body FROM outbox WHERE key = ?1 ORDER BY revision DESC LIMIT 1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        let order = body.and_then(|b| serde_json::from_str::<WorkOrder>(&b).ok());
        Ok(order.and_then(|o| o.due_by).map(|d| d.timestamp_millis()))
    }

    /// A failed check is committed as the old order's `verified` revision
    /// followed by a new order of the same asset and failure mode: the first
    /// such order stored after that revision.
    fn reraised(&self, key: &str) -> Result<Option<String>, StoreError> {
        let prefix = key.rsplit_once(':').map_or(key, |(p, _)| p).to_string() + ":";
        self.conn()
            .query_row(
                "SELECT key FROM outbox WHERE substr(key, 1, length(?1)) = ?1 AND key <> ?2 AND revision = 1
                   AND id > (SELECT MIN(id) FROM outbox WHERE key = ?2 AND json_extract(body, '$.event') = 'verified')
                 ORDER BY id LIMIT 1",
                params![prefix, key],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
