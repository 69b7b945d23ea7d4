//! What the HTTP handlers share: the engine's view and notifications, the
//! store, the tokens and metrics, and the outbox as the pages and API show it.

use super::auth::Tokens;
use super::view::View;
use crate::common::clock::SharedClock;
use crate::store::outbox::Status;
use crate::store::Store;
use serde::Serialize;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// What the handlers share with the engine.
#[derive(Clone)]
pub struct Shared {
    pub view: watch::Receiver<Arc<View>>,
    pub store: Arc<Store>,
    pub tokens: Arc<Tokens>,
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// Tells the engine the suppressions in the store changed.
    pub suppressions_changed: Arc<Notify>,
    /// Tells delivery that entries were released.
    pub wake_delivery: Arc<Notify>,
    /// Wall time (ms) of the engine's last turn of its loop.
    pub heartbeat: Arc<AtomicI64>,
    /// How long without a turn the engine counts as stalled (ms; a reload may change it).
    pub stall_after_ms: Arc<AtomicI64>,
    pub clock: SharedClock,
    /// Set the token cookie `Secure` (the server speaks HTTPS).
    pub secure_cookie: bool,
    /// The last check that the state database takes writes: (wall ms, result).
    pub writable: Arc<std::sync::Mutex<(i64, bool)>>,
}

impl Shared {
    /// Runs a store query off the async threads (SQLite blocks).
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Whether the state database takes writes, checked at most every 5 s (a
    /// probe, which needs no token, must not hold the database's lock often).
    pub async fn writable(&self) -> bool {
        let now = crate::common::clock::wall_ms();
        let (at, ok) = *self.writable.lock().unwrap_or_else(|p| p.into_inner());
        if now - at < 5_000 {
            return ok;
        }
        let store = self.store.clone();
        let ok = tokio::task::spawn_blocking(move || store.writable()).await.unwrap_or(false);
        *self.writable.lock().unwrap_or_else(|p| p.into_inner()) = (now, ok);
        ok
    }
}

/// An outbox entry without its body's bulk.
#[derive(Debug, Clone, Serialize)]
pub struct OrderView {
    pub id: i64,
    pub key: String,
    pub revision: u32,
    pub status: String,
    pub attempts: u32,
    pub asset: String,
    pub failure_mode: String,
    pub title: String,
    pub priority: u8,
    pub created_ms: i64,
    pub delivered_ms: Option<i64>,
    pub remote_id: Option<String>,
    pub why: Option<String>,
}

/// The latest outbox entries, newest first.
pub fn order_views(
    store: &Store,
    status: Option<Status>,
    limit: usize,
) -> Result<Vec<OrderView>, crate::store::StoreError> {
    Ok(store
        .list(status, limit)?
        .into_iter()
        .map(|e| OrderView {
            id: e.id,
            key: e.key,
            revision: e.revision,
            status: e.status.as_str().into(),
            attempts: e.attempts,
            asset: e.order.asset.id.clone(),
            failure_mode: e.order.failure_mode.clone(),
            title: e.order.title.clone(),
            priority: e.order.priority,
            created_ms: e.created_ms,
            delivered_ms: e.delivered_ms,
            remote_id: e.remote_id,
            why: e.note.or(e.last_error),
        })
        .collect())
}
