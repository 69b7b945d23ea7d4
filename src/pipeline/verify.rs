//! Closing the loop: after the backend reports an order done, the machine's
//! condition some hours later says whether the repair worked. The verdict
//! goes to the order as a further revision (a comment at the backend); a
//! repair that did not fix the fault raises a new order.

use crate::common::types::{to_datetime, Evidence, Millis};
use crate::workorders::{WorkEvent, WorkOrder};

/// The machine's condition when a repair is checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairCheck {
    /// No alarm of the failure mode is open and the anomaly score is under its limit.
    pub fixed: bool,
    /// The channels of the order's evidence as they are now, and the score.
    pub evidence: Vec<Evidence>,
}

/// The orders a check produces: the verdict as the next revision of the
/// completed order and, when the fault persists, a new order for it (keyed
/// by when the first was done, so a repeated check makes the same one).
pub fn orders(
    done: &WorkOrder,
    check: &RepairCheck,
    done_ms: Millis,
    now: Millis,
) -> Vec<WorkOrder> {
    let verdict = if check.fixed { "back to normal" } else { "not fixed, the anomaly persists" };
    let readings: Vec<String> = check
        .evidence
        .iter()
        .map(|e| {
            let zone = e.zone.map(|z| format!(", zone {z}")).unwrap_or_default();
            let limit = e.limit.map(|l| format!(" (limit {l})")).unwrap_or_default();
            let unit = if e.unit.is_empty() { String::new() } else { format!(" {}", e.unit) };
            format!("{} {:.2}{unit}{limit}{zone}", e.channel, e.value)
        })
        .collect();
    let when = to_datetime(done_ms).format("%Y-%m-%d %H:%M UTC");
    let mut verified = WorkOrder {
        event: WorkEvent::Verified,
        revision: done.revision + 1,
        title: format!("Post-repair check of {}: {verdict}", done.title),
        description: format!(
            "Post-repair check, {} after the order was done ({when}): {}; {verdict}.\n",
            hours(now - done_ms),
            readings.join(", ")
        ),
        evidence: check.evidence.clone(),
        detected_at: to_datetime(now),
        due_by: None,
        chart: None,
        ..done.clone()
    };
    if check.fixed {
        return vec![verified];
    }
    verified.description.push_str("A new work order has been raised for the fault.\n");
    let prefix =
        done.idempotency_key.rsplit_once(':').map_or(done.idempotency_key.as_str(), |(p, _)| p);
    let again = WorkOrder {
        idempotency_key: format!("{prefix}:{}", done_ms + 1),
        event: WorkEvent::Raised,
        revision: 1,
        title: format!("{} (not fixed by the last repair)", done.title),
        description: format!(
            "The fault persists after the repair done at {when} (order {}): {}.\n\n{}",
            done.idempotency_key,
            readings.join(", "),
            done.description
        ),
        evidence: check.evidence.clone(),
        detected_at: to_datetime(now),
        chart: None,
        ..done.clone()
    };
    vec![verified, again]
}

fn hours(ms: Millis) -> String {
    format!("{:.1} h", ms as f64 / 3_600_000.0)
}
