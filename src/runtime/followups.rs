//! Orders the backend reports done: the post-repair check of corrective
//! orders, and the next interval of preventive ones.

use crate::common::types::Millis;
use crate::pipeline::plant::Plant;
use crate::pipeline::Pipeline;
use crate::store::followup::state;
use crate::store::outbox::{NewEntry, Status};
use crate::store::Store;
use crate::workorders::WorkEvent;
use tracing::{info, warn};

/// Checks the machines whose orders the backend reported done at least
/// `after` ago: the orders the verdicts make, and the verdicts to record
/// once those are committed (their keys are deterministic, so a crash in
/// between re-checks and makes the same ones).
pub fn verify_repairs(
    store: &Store,
    pipeline: &mut Pipeline,
    after: Millis,
    now: Millis,
) -> (Vec<NewEntry>, Vec<(String, &'static str)>) {
    let due = match store.due_verifications(now - after) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot read the orders due a post-repair check");
            return (Vec::new(), Vec::new());
        }
    };
    let (mut orders, mut verdicts) = (Vec::new(), Vec::new());
    for f in due {
        let done_at = f.done_ms.unwrap_or(now);
        let done = store.latest_order(&f.key).ok().flatten();
        let check = done.as_ref().and_then(|wo| pipeline.check_repair(wo, done_at, now));
        let (Some(done), Some(check)) = (done, check) else {
            warn!(key = %f.key, "the completed order's asset or failure mode is no longer \
                configured; not checked");
            let _ = store.set_followup(&f.key, state::FIXED, now, None);
            continue;
        };
        let verdict = if check.fixed { state::FIXED } else { state::NOT_FIXED };
        info!(key = %f.key, asset = %f.asset, verdict, "post-repair check");
        for order in crate::pipeline::verify::orders(&done, &check, done_at, now) {
            if order.event == WorkEvent::Raised {
                pipeline.reraised(&done.idempotency_key, &order);
            }
            orders.push(NewEntry { order, status: Status::Pending, note: None });
        }
        verdicts.push((f.key, verdict));
    }
    (orders, verdicts)
}

/// Preventive orders the backend reports done: each task is next due one
/// interval after the work. Returns the orders' keys, to be marked with
/// [`mark_rescheduled`] once the meters are saved, so a crash in between
/// reschedules again (from a slightly later meter).
pub fn reschedule_preventive(
    store: &Store,
    plant: &Plant,
    pipeline: &mut Pipeline,
    now: Millis,
) -> Vec<String> {
    let done = match store.completed_preventive() {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot read the completed preventive orders");
            return Vec::new();
        }
    };
    for f in &done {
        let at = f.done_ms.unwrap_or(now);
        let moved = plant
            .asset_index(&f.asset)
            .is_some_and(|a| pipeline.usage().completed(plant, a, &f.failure_mode, at));
        if moved {
            info!(asset = %f.asset, task = %f.failure_mode, "preventive task done; next due one \
                interval from the work");
        }
    }
    done.into_iter().map(|f| f.key).collect()
}

/// Marks preventive orders whose next interval is saved.
pub fn mark_rescheduled(store: &Store, keys: Vec<String>, now: Millis) {
    for key in keys {
        if let Err(e) = store.set_followup(&key, state::RESCHEDULED, now, None) {
            warn!(key, error = %e, "cannot mark a preventive order rescheduled");
        }
    }
}
