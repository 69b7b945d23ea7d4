//! Operator actions, the one way both the HTTP API and the command line take
//! them: shelve and unshelve alarms, take assets out of service and return
//! them. Each is checked against the configured assets and failure modes and
//! recorded in the state database, which the daemon reads what is in force
//! from (at once when told through the API, else within seconds).

use crate::common::types::Millis;
use crate::pipeline::suppress::Kind;
use crate::store::suppress::NewSuppression;
use crate::store::{Store, StoreError};
use serde::Deserialize;
use std::time::Duration;

/// The longest a shelf may last (ISA-18.2: shelving always expires).
pub const MAX_SHELF: Duration = Duration::from_secs(30 * 24 * 3600);

/// An action an operator asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Quiet one alarm of an asset (or all of them) for a while.
    Shelve {
        asset: String,
        failure_mode: Option<String>,
        /// How long, e.g. "8h".
        #[serde(rename = "for", with = "humantime_serde")]
        duration: Duration,
        reason: String,
    },
    /// End shelves early.
    Unshelve { asset: String, failure_mode: Option<String>, reason: Option<String> },
    /// Quiet every alarm of an asset until it is returned to service.
    OutOfService { asset: String, reason: String },
    /// End an asset's out-of-service entry.
    ReturnToService { asset: String, reason: Option<String> },
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("no asset {0:?} is configured")]
    UnknownAsset(String),
    #[error("asset {asset} has no failure mode {failure_mode:?}; it has: {known}")]
    UnknownFailureMode { asset: String, failure_mode: String, known: String },
    #[error("a reason is required: say why, e.g. \"bearing replacement, permit 4711\"")]
    NoReason,
    #[error("a shelf must last between 1 second and 30 days, not {0}")]
    Duration(String),
    #[error("nothing to end: {0}")]
    Nothing(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The configured assets and their failure modes, by id.
pub type Catalogue = Vec<(String, Vec<String>)>;

/// What an action did, for the caller to show.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    pub message: String,
    /// The new entry's id, for shelves and out-of-service entries.
    pub id: Option<i64>,
}

/// Checks an action against the configured assets, then records it.
pub fn apply(
    store: &Store,
    catalogue: &Catalogue,
    action: &Action,
    by: &str,
    now: Millis,
) -> Result<Done, ActionError> {
    let ctx = Ctx { store, catalogue, by, now };
    match action {
        Action::Shelve { asset, failure_mode, duration, reason } => {
            ctx.shelve(asset, failure_mode.as_deref(), *duration, reason)
        }
        Action::OutOfService { asset, reason } => ctx.out_of_service(asset, reason),
        Action::Unshelve { asset, failure_mode, reason } => {
            ctx.check(asset, failure_mode.as_deref())?;
            let why = reason.as_deref().unwrap_or("unshelved");
            let n = store.end_suppressions(
                asset,
                failure_mode.as_deref(),
                Kind::Shelved,
                by,
                why,
                now,
            )?;
            if n == 0 {
                return Err(ActionError::Nothing(format!("{asset} has no shelf in force")));
            }
            Ok(Done { message: format!("{asset}: {n} shelf(s) ended by {by}"), id: None })
        }
        Action::ReturnToService { asset, reason } => {
            ctx.check(asset, None)?;
            let why = reason.as_deref().unwrap_or("returned to service");
            let n = store.end_suppressions(asset, None, Kind::OutOfService, by, why, now)?;
            if n == 0 {
                return Err(ActionError::Nothing(format!("{asset} is not out of service")));
            }
            Ok(Done { message: format!("{asset} returned to service by {by}"), id: None })
        }
    }
}

/// What an action is taken with.
struct Ctx<'a> {
    store: &'a Store,
    catalogue: &'a Catalogue,
    by: &'a str,
    now: Millis,
}

impl Ctx<'_> {
    /// The asset, and the failure mode when given, are configured.
    fn check(&self, asset: &str, fm: Option<&str>) -> Result<(), ActionError> {
        let (_, fms) = (self.catalogue.iter())
            .find(|(a, _)| a == asset)
            .ok_or_else(|| ActionError::UnknownAsset(asset.into()))?;
        match fm {
            Some(f) if !fms.iter().any(|x| x == f) => Err(ActionError::UnknownFailureMode {
                asset: asset.into(),
                failure_mode: f.into(),
                known: fms.join(", "),
            }),
            _ => Ok(()),
        }
    }

    fn shelve(
        &self,
        asset: &str,
        failure_mode: Option<&str>,
        duration: Duration,
        why: &str,
    ) -> Result<Done, ActionError> {
        self.check(asset, failure_mode)?;
        reason(why)?;
        if duration < Duration::from_secs(1) || duration > MAX_SHELF {
            return Err(ActionError::Duration(humantime::format_duration(duration).to_string()));
        }
        let until = self.now + duration.as_millis().min(i64::MAX as u128) as i64;
        let id = self.store.suppress(&NewSuppression {
            asset,
            failure_mode,
            kind: Kind::Shelved,
            reason: why.trim(),
            by: self.by,
            since: self.now,
            until: Some(until),
        })?;
        let until = crate::common::types::to_datetime(until).format("%Y-%m-%d %H:%M UTC");
        let what = failure_mode.unwrap_or("every alarm");
        let message =
            format!("{asset} {what} shelved until {until} by {}: {}", self.by, why.trim());
        Ok(Done { message, id: Some(id) })
    }

    fn out_of_service(&self, asset: &str, why: &str) -> Result<Done, ActionError> {
        self.check(asset, None)?;
        reason(why)?;
        let id = self.store.suppress(&NewSuppression {
            asset,
            failure_mode: None,
            kind: Kind::OutOfService,
            reason: why.trim(),
            by: self.by,
            since: self.now,
            until: None,
        })?;
        let message = format!("{asset} out of service by {}: {}", self.by, why.trim());
        Ok(Done { message, id: Some(id) })
    }
}

/// A reason says something.
fn reason(r: &str) -> Result<(), ActionError> {
    if r.trim().chars().count() < 3 {
        return Err(ActionError::NoReason);
    }
    Ok(())
}

/// The catalogue of a plant.
pub fn catalogue(plant: &crate::pipeline::plant::Plant) -> Catalogue {
    plant
        .assets
        .iter()
        .map(|a| (a.id.to_string(), a.failure_modes.iter().map(|f| f.id.clone()).collect()))
        .collect()
}
