//! Durable state in an embedded SQLite database (WAL mode) in the state
//! directory: the work-order outbox (`outbox`), the alarm states, flood
//! control's windows and the pipeline's learned state (`state`), and the
//! orders followed at the backend (`followup`). A work order is
//! committed here before any network call, so a crash or a dead backend never
//! loses one, and a restart resumes where the last run stopped.

pub mod followup;
pub mod outbox;
mod schema;
pub mod state;
pub mod suppress;

use crate::common::types::Millis;
use crate::pipeline::alarms::AlarmRow;
use crate::workorders::flood::Windows;
use outbox::NewEntry;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "hums.db";

/// Why the state database cannot be used. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "state database {path} is corrupt or not a hums database ({detail}); stop hums, move \
        the file aside (it may still hold undelivered work orders) and start again"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "state database {path} is locked by another process (is a second hums running on the same \
            state directory?)"
    )]
    Locked { path: PathBuf },
    #[error(
        "state database {path} is read-only: give the hums user write access to the file and \
        its directory"
    )]
    ReadOnly { path: PathBuf },
    #[error("state database {path}: the disk is full; free space, nothing was lost")]
    Full { path: PathBuf },
    #[error(
        "state database {path} has schema version {found}, newer than this hums supports \
            ({supported}); upgrade hums"
    )]
    TooNew { path: PathBuf, found: i64, supported: i64 },
    #[error("cannot create state directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("state database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("stored work order {id} cannot be read: {detail}")]
    Body { id: i64, detail: String },
}

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

pub(crate) fn now_ms() -> Millis {
    crate::common::clock::wall_ms()
}

impl Store {
    /// Opens (creating if needed) `dir/hums.db` for the daemon: migrates it and
    /// marks attempts that were in flight when the last run stopped as uncertain.
    pub fn open_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::Dir { path: dir.into(), source })?;
        let store = Self::open(&dir.join(DB_FILE))?;
        store.recover_in_flight()?;
        Ok(store)
    }

    /// Opens `dir/hums.db` for inspection (the CLI) while a daemon may be
    /// running: it does not touch the daemon's in-flight attempts.
    pub fn inspect_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::Dir { path: dir.into(), source })?;
        Self::open(&dir.join(DB_FILE))
    }

    /// After a crash, an attempt left "sending" may or may not have landed.
    pub fn recover_in_flight(&self) -> Result<(), StoreError> {
        self.update(
            "UPDATE outbox SET status = 'pending', uncertain = 1 WHERE status = 'sending'",
            [],
        )
        .map(|_| ())
    }

    /// Opens a database file (migrated; in-flight attempts untouched).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |e| classify(path, e);
        create_private(path);
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        // Probe early: a non-database file fails here with a clear error.
        let mode: String =
            conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(err)?;
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

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    /// Commits new work orders, the current alarm states and (when given)
    /// flood control's windows in one transaction. Re-committing an order
    /// with the same key and revision is a no-op.
    pub fn commit(
        &self,
        orders: &[NewEntry],
        alarms: &[AlarmRow],
        flood: Option<&Windows>,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let now = now_ms();
        for e in orders {
            let body = serde_json::to_string(&e.order)
                .map_err(|x| StoreError::Body { id: 0, detail: x.to_string() })?;
            tx.execute(
                "INSERT OR IGNORE INTO outbox (key, revision, asset, failure_mode, body, status,
                 note, next_attempt_ms, created_ms, chart, chart_due)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?9 IS NOT NULL)",
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
            let state = serde_json::to_string(state)
                .map_err(|x| StoreError::Body { id: 0, detail: x.to_string() })?;
            tx.execute(
                "INSERT INTO alarms (asset, failure_mode, state) VALUES (?1, ?2, ?3)",
                params![asset, fm, state],
            )
            .map_err(|e| self.err(e))?;
        }
        if let Some(w) = flood {
            let json = serde_json::to_string(w)
                .map_err(|x| StoreError::Body { id: 0, detail: x.to_string() })?;
            tx.execute(
                "INSERT INTO flood (id, windows) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET windows = excluded.windows",
                [json],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Whether the database takes writes now (for `/readyz`): takes the
    /// write lock and lets it go.
    pub fn writable(&self) -> bool {
        self.conn().execute_batch("BEGIN IMMEDIATE; ROLLBACK;").is_ok()
    }

    /// Runs an update; true if it changed a row.
    pub(crate) fn update(&self, sql: &str, p: impl rusqlite::Params) -> Result<bool, StoreError> {
        self.conn().execute(sql, p).map(|n| n > 0).map_err(|e| self.err(e))
    }
}

/// Turns SQLite's error codes into the errors an operator can act on.
fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => {
            StoreError::Corrupt { path, detail: e.to_string() }
        }
        Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Locked { path },
        Some(C::ReadOnly | C::CannotOpen | C::PermissionDenied) if is_read_only(&path) => {
            StoreError::ReadOnly { path }
        }
        Some(C::ReadOnly) => StoreError::ReadOnly { path },
        Some(C::DiskFull) => StoreError::Full { path },
        _ => StoreError::Sqlite { path, source: e },
    }
}

/// Creates the database file readable by its owner only (SQLite gives its
/// journal files the same mode), whatever the umask: it holds work orders.
fn create_private(path: &Path) {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    // Exists already, or cannot be created: SQLite's open says which.
    let _ = o.open(path);
}

fn is_read_only(path: &Path) -> bool {
    let target = if path.exists() { path } else { path.parent().unwrap_or(path) };
    std::fs::metadata(target).map(|m| m.permissions().readonly()).unwrap_or(false)
}
