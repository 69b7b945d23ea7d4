//! Versioned schema migrations (`PRAGMA user_version`).

use super::{classify, StoreError};
use rusqlite::Connection;
use std::path::Path;

/// Migrations in order; entry `n` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the outbox and the alarm states.
    "CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        revision INTEGER NOT NULL,
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        body TEXT NOT NULL,
        status TEXT NOT NULL,
        uncertain INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error TEXT,
        note TEXT,
        remote_id TEXT,
        created_ms INTEGER NOT NULL,
        delivered_ms INTEGER,
        UNIQUE (key, revision)
     );
     CREATE INDEX outbox_due ON outbox (status, next_attempt_ms);
     CREATE TABLE alarms (
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (asset, failure_mode)
     );",
    // 2: learned baselines, so a restart does not relearn.
    "CREATE TABLE baselines (
        asset TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        saved_ms INTEGER NOT NULL
     );",
    // 3: degradation-indicator histories, so a restart keeps its trends.
    "CREATE TABLE trends (
        asset TEXT NOT NULL,
        indicator TEXT NOT NULL,
        points TEXT NOT NULL,
        PRIMARY KEY (asset, indicator)
     );",
    // 4: usage meters (run hours, starts, preventive schedules).
    "CREATE TABLE usage (
        asset TEXT PRIMARY KEY,
        meter TEXT NOT NULL
     );",
    // 5: each asset's own baseline and age for its remaining-life model.
    "CREATE TABLE life (
        asset TEXT PRIMARY KEY,
        state TEXT NOT NULL
     );",
    // 6: each order's evidence chart (PNG), for backends that take attachments.
    "ALTER TABLE outbox ADD COLUMN chart BLOB;",
    // 7: orders followed at the backend until their repair is verified.
    "CREATE TABLE followups (
        key TEXT PRIMARY KEY,
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        kind TEXT NOT NULL,
        remote_id TEXT NOT NULL,
        tripped_ms INTEGER NOT NULL,
        delivered_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        checked_ms INTEGER NOT NULL DEFAULT 0,
        done_ms INTEGER,
        verdict_ms INTEGER
     );
     CREATE INDEX followups_state ON followups (state, checked_ms);",
    // 8: each novelty stream's recent readings, range and history of surprises.
    "CREATE TABLE novelty (
        asset TEXT PRIMARY KEY,
        state TEXT NOT NULL
     );",
    // 9: flood control's rolling windows, committed with the alarm states.
    "CREATE TABLE flood (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        windows TEXT NOT NULL
     );",
    // 10: shelved and out-of-service alarms, and what they withheld.
    "CREATE TABLE suppressions (
        id INTEGER PRIMARY KEY,
        asset TEXT NOT NULL,
        failure_mode TEXT,
        kind TEXT NOT NULL,
        reason TEXT NOT NULL,
        by TEXT NOT NULL,
        since_ms INTEGER NOT NULL,
        until_ms INTEGER,
        ended_ms INTEGER,
        ended_by TEXT,
        ended_why TEXT
     );
     CREATE INDEX suppressions_open ON suppressions (ended_ms);
     CREATE TABLE withheld (
        id INTEGER PRIMARY KEY,
        suppression INTEGER NOT NULL,
        asset TEXT NOT NULL,
        failure_mode TEXT NOT NULL,
        event TEXT NOT NULL,
        released INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX withheld_open ON withheld (released, asset, failure_mode);",
    // 11: charts are drawn after their order is committed and attached once
    // it is delivered: `chart_due` marks those not attached yet.
    "ALTER TABLE outbox ADD COLUMN chart_due INTEGER NOT NULL DEFAULT 0;
     UPDATE outbox SET chart_due = 1 WHERE chart IS NOT NULL AND status <> 'delivered';
     CREATE INDEX outbox_chart_due ON outbox (status, id) WHERE chart_due = 1;",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`VERSION`], one transaction per step.
pub fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| classify(path, e);
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
    if found > VERSION {
        return Err(StoreError::TooNew { path: path.into(), found, supported: VERSION });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let step = format!("BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1);
        if let Err(e) = conn.execute_batch(&step) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err(e));
        }
        tracing::info!(path = %path.display(), version = i + 1, "state database migrated");
    }
    Ok(())
}
