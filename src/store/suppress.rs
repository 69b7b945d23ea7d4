//! Shelved and out-of-service alarms (`pipeline::suppress`), and the
//! transitions they withheld. The command line and the HTTP API write here;
//! the daemon reads what is in force from here.

use super::{Store, StoreError};
use crate::common::types::Millis;
use crate::pipeline::suppress::{Kind, Suppression, WithheldEvent};
use rusqlite::params;

/// A new shelf or out-of-service entry.
#[derive(Debug, Clone)]
pub struct NewSuppression<'a> {
    pub asset: &'a str,
    pub failure_mode: Option<&'a str>,
    pub kind: Kind,
    pub reason: &'a str,
    pub by: &'a str,
    pub since: Millis,
    pub until: Option<Millis>,
}

/// A suppression with how it ended, for the history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ended {
    #[serde(flatten)]
    pub suppression: Suppression,
    pub ended: Option<Millis>,
    pub ended_by: Option<String>,
    pub ended_why: Option<String>,
}

const COLUMNS: &str =
    "id, asset, failure_mode, kind, reason, by, since_ms, until_ms, ended_ms, ended_by, ended_why";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Ended> {
    let kind: String = r.get(3)?;
    Ok(Ended {
        suppression: Suppression {
            id: r.get(0)?,
            asset: r.get(1)?,
            failure_mode: r.get(2)?,
            kind: Kind::parse(&kind).unwrap_or(Kind::Shelved),
            reason: r.get(4)?,
            by: r.get(5)?,
            since: r.get(6)?,
            until: r.get(7)?,
        },
        ended: r.get(8)?,
        ended_by: r.get(9)?,
        ended_why: r.get(10)?,
    })
}

impl Store {
    /// Records a shelf or out-of-service entry; returns its id.
    pub fn suppress(&self, s: &NewSuppression<'_>) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO suppressions (asset, failure_mode, kind, reason, by, since_ms, until_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![s.asset, s.failure_mode, s.kind.as_str(), s.reason, s.by, s.since, s.until],
        )
        .map_err(|e| self.err(e))?;
        Ok(conn.last_insert_rowid())
    }

    /// Ends the suppressions in force that match: an asset's entries of one
    /// kind, and of one failure mode when given (`None` matches all of them).
    /// Returns how many ended.
    pub fn end_suppressions(
        &self,
        asset: &str,
        failure_mode: Option<&str>,
        kind: Kind,
        by: &str,
        why: &str,
        now: Millis,
    ) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "UPDATE suppressions SET ended_ms = ?1, ended_by = ?2, ended_why = ?3
                 WHERE ended_ms IS NULL AND asset = ?4 AND kind = ?5
                   AND (?6 IS NULL OR failure_mode IS ?6)",
                params![now, by, why, asset, kind.as_str(), failure_mode],
            )
            .map_err(|e| self.err(e))
    }

    /// Marks shelves that expired.
    pub fn expire_suppressions(&self, ids: &[i64], now: Millis) -> Result<(), StoreError> {
        let conn = self.conn();
        for id in ids {
            conn.execute(
                "UPDATE suppressions SET ended_ms = ?1, ended_by = 'hums', ended_why = 'expired'
                 WHERE id = ?2 AND ended_ms IS NULL",
                params![now, id],
            )
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The suppressions in force at `now` (shelves past their expiry are not).
    pub fn suppressions(&self, now: Millis) -> Result<Vec<Suppression>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {COLUMNS} FROM suppressions
             WHERE ended_ms IS NULL AND (until_ms IS NULL OR until_ms > ?1) ORDER BY id"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([now], row).map_err(|e| self.err(e))?;
        rows.map(|r| r.map(|e| e.suppression).map_err(|e| self.err(e))).collect()
    }

    /// Every suppression not ended, expired shelves included (the pipeline
    /// expires those at its next evaluation, and they are marked then).
    pub fn open_suppressions(&self) -> Result<Vec<Suppression>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM suppressions WHERE ended_ms IS NULL ORDER BY id");
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row).map_err(|e| self.err(e))?;
        rows.map(|r| r.map(|e| e.suppression).map_err(|e| self.err(e))).collect()
    }

    /// The latest suppressions, in force or ended, newest first.
    pub fn suppression_history(&self, limit: usize) -> Result<Vec<Ended>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM suppressions ORDER BY id DESC LIMIT ?1");
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([limit as i64], row).map_err(|e| self.err(e))?;
        rows.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// Records transitions a suppression withheld.
    pub fn record_withheld(&self, events: &[WithheldEvent]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for w in events {
            let json = serde_json::to_string(w)
                .map_err(|x| StoreError::Body { id: 0, detail: x.to_string() })?;
            tx.execute(
                "INSERT INTO withheld (suppression, asset, failure_mode, event)
                 VALUES (?1, ?2, ?3, ?4)",
                params![w.suppression, w.asset, w.failure_mode, json],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Marks an alarm's withheld transitions as released.
    pub fn release_withheld(&self, asset: &str, failure_mode: &str) -> Result<(), StoreError> {
        self.update(
            "UPDATE withheld SET released = 1
             WHERE released = 0 AND asset = ?1 AND failure_mode = ?2",
            params![asset, failure_mode],
        )
        .map(|_| ())
    }

    /// Withheld transitions not released yet, oldest first; with `released`,
    /// the latest `limit` of all, newest first.
    pub fn withheld(&self, released: bool, limit: usize) -> Result<Vec<WithheldEvent>, StoreError> {
        let conn = self.conn();
        let sql = if released {
            "SELECT event FROM withheld ORDER BY id DESC LIMIT ?1"
        } else {
            "SELECT event FROM withheld WHERE released = 0 ORDER BY id LIMIT ?1"
        };
        let mut stmt = conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([limit as i64], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let json = r.map_err(|e| self.err(e))?;
            match serde_json::from_str(&json) {
                Ok(w) => out.push(w),
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable withheld alarm"),
            }
        }
        Ok(out)
    }
}
