//! The work-order outbox: entries waiting, in flight, delivered, dead or
//! held, and what delivery and the operator do with them.

use super::{now_ms, Store, StoreError};
use crate::common::types::Millis;
use crate::workorders::WorkOrder;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// Where an outbox entry stands (also `hums outbox list --status`'s choices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
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
    pub(crate) fn as_str(self) -> &'static str {
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
        [
            Status::Pending,
            Status::Sending,
            Status::Delivered,
            Status::Dead,
            Status::Held,
            Status::Dropped,
        ]
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

impl Store {
    /// The key of the newest order sent for an asset's failure mode (an update
    /// of another order carries that order's key).
    pub fn last_order(
        &self,
        asset: &str,
        failure_mode: &str,
    ) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT key FROM outbox WHERE asset = ?1 AND failure_mode = ?2 ORDER BY id DESC \
                    LIMIT 1",
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
            .query_row("SELECT MAX(revision) FROM outbox WHERE key = ?1", [key], |r| {
                r.get::<_, Option<u32>>(0)
            })
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
                "SELECT remote_id FROM outbox WHERE key = ?1 AND status = 'delivered'
                 AND remote_id IS NOT NULL ORDER BY revision LIMIT 1",
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
            "SELECT {COLUMNS} FROM outbox o WHERE status = 'pending' AND next_attempt_ms <= ?1
             AND {NOT_BLOCKED} ORDER BY next_attempt_ms, id LIMIT 1"
        );
        loop {
            let row = self
                .conn()
                .query_row(&sql, [now], |r| {
                    Ok((r.get::<_, i64>(0)?, entry(r).map_err(|e| e.to_string())))
                })
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
                &format!(
                    "SELECT MIN(next_attempt_ms) FROM outbox o WHERE status = 'pending' AND \
                    {NOT_BLOCKED}"
                ),
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
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id = ?1 AND \
                status = 'pending'",
            params![id],
        )
    }

    /// Records a delivery the backend confirmed (or that a look-up found).
    pub fn mark_delivered(&self, id: i64, remote_id: Option<&str>) -> Result<bool, StoreError> {
        self.update(
            "UPDATE outbox SET status = 'delivered', uncertain = 0, remote_id = ?2,
             delivered_ms = ?3, last_error = NULL
             WHERE id = ?1 AND status IN ('pending', 'sending')",
            params![id, remote_id, now_ms()],
        )
    }

    /// Stores the chart drawn for an order after it was committed; it is
    /// attached once the order is delivered ([`Store::charts_due`]). An
    /// entry that has a chart already keeps it.
    pub fn set_chart(&self, key: &str, revision: u32, png: &[u8]) -> Result<bool, StoreError> {
        self.update(
            "UPDATE outbox SET chart = ?3, chart_due = 1
             WHERE key = ?1 AND revision = ?2 AND chart IS NULL",
            params![key, revision, png],
        )
    }

    /// Delivered entries whose chart is not attached yet, oldest first.
    pub fn charts_due(&self, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox o WHERE o.chart_due = 1 AND o.status = 'delivered'
             ORDER BY o.id LIMIT ?1"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([limit as i64], entry).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Marks an entry's chart as attached (or given up on).
    pub fn chart_done(&self, id: i64) -> Result<bool, StoreError> {
        self.update("UPDATE outbox SET chart_due = 0 WHERE id = ?1", params![id])
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
            "UPDATE outbox SET status = 'pending', next_attempt_ms = ?2, last_error = ?3,
             uncertain = MAX(uncertain, ?4) WHERE id = ?1 AND status IN ('pending', 'sending')",
            params![id, next_attempt_ms, error, uncertain],
        )
    }

    /// Parks an entry the backend refused permanently.
    pub fn mark_dead(&self, id: i64, error: &str) -> Result<bool, StoreError> {
        self.update(
            "UPDATE outbox SET status = 'dead', last_error = ?2 WHERE id = ?1 AND status IN \
                ('pending', 'sending')",
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

    fn set_status(
        &self,
        ids: &[i64],
        status: Option<Status>,
        to: &str,
        allowed: &str,
    ) -> Result<usize, StoreError> {
        let conn = self.conn();
        let now = now_ms();
        let mut n = 0;
        if let Some(st) = status {
            n += conn
                .execute(
                    &format!(
                        "UPDATE outbox SET status = ?1, next_attempt_ms = ?2 WHERE status = \
                        ?3 AND {allowed}"
                    ),
                    params![to, now, st.as_str()],
                )
                .map_err(|e| self.err(e))?;
        }
        for id in ids {
            n += conn
                .execute(
                    &format!(
                        "UPDATE outbox SET status = ?1, next_attempt_ms = ?2 WHERE id = ?3 \
                        AND {allowed}"
                    ),
                    params![to, now, id],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(n)
    }

    /// Entries, newest first, optionally of one status.
    pub fn list(&self, status: Option<Status>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox o WHERE (?1 IS NULL OR status = ?1) ORDER \
            BY id DESC LIMIT ?2"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![status.map(Status::as_str), limit as i64], entry)
            .map_err(|e| self.err(e))?;
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
const NOT_BLOCKED: &str =
    "NOT EXISTS (SELECT 1 FROM outbox p WHERE p.key = o.key AND p.revision < o.revision \
                           AND p.status IN ('pending', 'sending', 'held', 'dead'))";

const COLUMNS: &str =
    "o.id, o.key, o.revision, o.status, o.uncertain, o.attempts, o.next_attempt_ms, o.last_error, \
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
            rusqlite::Error::FromSqlConversionFailure(
                3,
                Type::Text,
                format!("unknown status {status:?}").into(),
            )
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
            let mut o: WorkOrder = serde_json::from_str(&body).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(12, Type::Text, Box::new(e))
            })?;
            o.chart = r
                .get::<_, Option<Vec<u8>>>(13)?
                .map(|b| crate::pipeline::charts::Png(std::sync::Arc::new(b)));
            o
        },
    })
}

impl crate::workorders::SentOrders for Store {
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
            .query_row(
                "SELECT body FROM outbox WHERE key = ?1 ORDER BY revision DESC LIMIT 1",
                [key],
                |r| r.get(0),
            )
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
                "SELECT key FROM outbox WHERE substr(key, 1, length(?1)) = ?1 AND key <> ?2
                   AND revision = 1
                   AND id > (SELECT MIN(id) FROM outbox
                             WHERE key = ?2 AND json_extract(body, '$.event') = 'verified')
                 ORDER BY id LIMIT 1",
                params![prefix, key],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}
