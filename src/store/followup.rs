//! Orders followed at the backend after delivery: polled until the backend
//! reports them done (or cancelled), then verified against the machine's
//! condition after the repair. Also the per-asset history built from them.

use super::{Store, StoreError};
use crate::common::types::Millis;
use crate::workorders::WorkOrder;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// Where a followed order stands.
pub mod state {
    /// Delivered; the backend has not finished it.
    pub const OPEN: &str = "open";
    /// The backend reports the work done; the repair is not verified yet.
    pub const DONE: &str = "done";
    /// Closed without the work: cancelled or rejected (a false alarm, as the backend tells it).
    pub const CANCELLED: &str = "cancelled";
    /// Checked after the repair: back to normal.
    pub const FIXED: &str = "fixed";
    /// Checked after the repair: the fault persists (re-raised).
    pub const NOT_FIXED: &str = "not_fixed";
    /// A preventive order done; its task's schedule now counts from the work.
    pub const RESCHEDULED: &str = "rescheduled";
}

/// A followed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Followup {
    pub key: String,
    pub asset: String,
    pub failure_mode: String,
    pub remote_id: String,
    pub done_ms: Option<Millis>,
}

/// One asset's record of work orders and repairs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AssetHistory {
    pub asset: String,
    pub raised: u32,
    pub completed: u32,
    pub verified_fixed: u32,
    pub not_fixed: u32,
    /// Closed at the backend without the work (its false-alarm feedback).
    pub cancelled: u32,
    pub open: u32,
    /// Median seconds from the first evidence of a fault to its order reaching the backend.
    pub median_trip_to_order_s: Option<f64>,
    /// Median hours from delivery to the backend reporting the work done.
    pub median_order_to_done_h: Option<f64>,
}

impl Store {
    /// Starts following a delivered order (once per key).
    pub fn follow(
        &self,
        wo: &WorkOrder,
        remote: &str,
        delivered_ms: Millis,
    ) -> Result<(), StoreError> {
        let tripped = wo.evidence.iter().map(|e| e.since.timestamp_millis()).min();
        let tripped = tripped.unwrap_or(wo.detected_at.timestamp_millis());
        let kind = serde_json::to_value(wo.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO followups
                 (key, asset, failure_mode, kind, remote_id, tripped_ms, delivered_ms, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'open')",
                params![
                    wo.idempotency_key,
                    wo.asset.id,
                    wo.failure_mode,
                    kind,
                    remote,
                    tripped,
                    delivered_ms
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Open orders, the longest unchecked first.
    pub fn open_followups(&self, limit: usize) -> Result<Vec<Followup>, StoreError> {
        self.followups(
            "state = 'open' ORDER BY checked_ms, delivered_ms LIMIT ?1",
            params![limit as i64],
        )
    }

    /// Completed condition and prediction orders whose repair is due a check
    /// (done at or before `done_before`).
    pub fn due_verifications(&self, done_before: Millis) -> Result<Vec<Followup>, StoreError> {
        self.followups(
            "state = 'done' AND kind IN ('condition', 'predicted_failure') AND done_ms <= ?1 \
                ORDER BY done_ms",
            params![done_before],
        )
    }

    /// Preventive orders the backend reports done whose task has not been
    /// rescheduled from the work yet.
    pub fn completed_preventive(&self) -> Result<Vec<Followup>, StoreError> {
        self.followups("state = 'done' AND kind = 'preventive' ORDER BY done_ms", params![])
    }

    fn followups(
        &self,
        filter: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<Followup>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT key, asset, failure_mode, remote_id, done_ms FROM followups WHERE {filter}"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(p, |r| {
                Ok(Followup {
                    key: r.get(0)?,
                    asset: r.get(1)?,
                    failure_mode: r.get(2)?,
                    remote_id: r.get(3)?,
                    done_ms: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Records a status poll: `state` is one of [`state`]; `done_ms` when done.
    pub fn set_followup(
        &self,
        key: &str,
        state: &str,
        now: Millis,
        done_ms: Option<Millis>,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "UPDATE followups SET state = ?2, checked_ms = ?3, done_ms = COALESCE(?4, done_ms),
                 verdict_ms = CASE WHEN ?2 IN ('fixed', 'not_fixed') THEN ?3 ELSE verdict_ms END
                 WHERE key = ?1",
                params![key, state, now, done_ms],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The latest revision of an order in the outbox.
    pub fn latest_order(&self, key: &str) -> Result<Option<WorkOrder>, StoreError> {
        let body: Option<String> = self
            .conn()
            .query_row(
                "SELECT body FROM outbox WHERE key = ?1 ORDER BY revision DESC LIMIT 1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }

    /// Per asset: orders raised, completed, verified, cancelled, and how long
    /// trips took to become orders and orders to be done.
    pub fn history(&self) -> Result<Vec<AssetHistory>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT asset, state, tripped_ms, delivered_ms, done_ms FROM followups")
            .map_err(|e| self.err(e))?;
        type Row = (String, String, Millis, Millis, Option<Millis>);
        let rows: Vec<Row> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        // Per asset: its record, and its trip→order and order→done times.
        let mut per: std::collections::BTreeMap<String, (AssetHistory, Vec<f64>, Vec<f64>)> =
            Default::default();
        for (asset, st, tripped, delivered, done) in rows {
            let (h, trip, to_done) = per.entry(asset.clone()).or_insert_with(|| {
                (AssetHistory { asset, ..AssetHistory::default() }, Vec::new(), Vec::new())
            });
            h.raised += 1;
            trip.push((delivered - tripped).max(0) as f64 / 1000.0);
            match st.as_str() {
                state::OPEN => h.open += 1,
                state::CANCELLED => h.cancelled += 1,
                _ => {
                    h.completed += 1;
                    if let Some(d) = done {
                        to_done.push((d - delivered).max(0) as f64 / 3_600_000.0);
                    }
                    h.verified_fixed += u32::from(st == state::FIXED);
                    h.not_fixed += u32::from(st == state::NOT_FIXED);
                }
            }
        }
        Ok(per
            .into_values()
            .map(|(mut h, mut trip, mut done)| {
                h.median_trip_to_order_s = median(&mut trip);
                h.median_order_to_done_h = median(&mut done);
                h
            })
            .collect())
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}
