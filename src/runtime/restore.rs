//! The start hook (and a reload's): shelves in force with what they withheld,
//! alarm states, open episodes' orders, the pipeline's learned state and flood
//! control's budgets, as the last run left them.

use super::EngineError;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::workorders::flood::FloodControl;
use tracing::info;

/// Restores the pipeline and flood control from the store, and forgets saved
/// baselines that no longer match the configuration.
pub fn resume(
    pipeline: &mut Pipeline,
    flood: &mut FloodControl,
    store: &Store,
) -> Result<(), EngineError> {
    // Before the alarms: an alarm raised while shelved has no order yet.
    for s in pipeline.set_suppressions(store.open_suppressions()?) {
        tracing::warn!(asset = %s.asset, failure_mode = s.failure_mode.as_deref().unwrap_or("*"),
            "a shelf or out-of-service entry names an asset or failure mode no longer \
            configured; ignored");
    }
    pipeline.restore_withheld(store.withheld(false, 100_000)?);
    let saved = store.alarms()?;
    if !saved.is_empty() {
        info!(alarms = saved.len(), "resuming alarm states from the last run");
    }
    pipeline.restore(saved, store)?;
    // Learned baselines are fitted beside ingestion, not in its way.
    pipeline.baseline().fit_in_background();
    for asset in pipeline.restore_state(store.load_state()?) {
        store.drop_baseline(&asset)?;
    }
    if let Some(windows) = store.flood()? {
        flood.restore(windows);
    }
    Ok(())
}
