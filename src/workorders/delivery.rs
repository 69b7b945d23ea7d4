//! Delivery from the durable outbox, in one place for every backend adapter:
//! commit "sending" before the request, look the key up before re-posting when
//! an earlier attempt may have landed, back off with jitter, honour the
//! backend's rate-limit hints, and park permanent refusals as dead letters.

use super::rest::{DeliveryError, RestBackend};
use crate::backoff::Backoff;
use crate::config::schema::Backend;
use crate::metrics::Metrics;
use crate::model::Millis;
use crate::store::{Entry, Store, StoreError};
use crate::telemetry::RateLimiter;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// Delivers outbox entries until `shutdown` turns true. `wake` is notified
/// whenever new entries are committed; the outbox is also polled every second,
/// so entries released with `hums outbox retry` are picked up while running.
pub async fn run(
    store: Arc<Store>,
    backend: RestBackend,
    cfg: Backend,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut d =
        Dispatcher { store, backend, cfg, metrics, hold_until: 0, warnings: RateLimiter::new(Duration::from_secs(30)) };
    while !*shutdown.borrow() {
        let now = now_ms();
        let wait = if d.hold_until > now {
            Some((d.hold_until - now) as u64)
        } else {
            match d.store.next_due(now) {
                Ok(Some(entry)) => {
                    d.deliver(entry).await;
                    None
                }
                Ok(None) => {
                    Some(d.store.next_due_at().ok().flatten().map_or(1000, |t| (t - now).clamp(10, 1000)) as u64)
                }
                Err(e) => {
                    d.store_failed(&e);
                    Some(5000)
                }
            }
        };
        if let Some(ms) = wait {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
    if let Ok(counts) = d.store.counts() {
        info!(?counts, "delivery stopped; pending work orders stay in the outbox for the next start");
    }
}

struct Dispatcher {
    store: Arc<Store>,
    backend: RestBackend,
    cfg: Backend,
    metrics: Arc<Metrics>,
    /// The backend asked us to wait (Retry-After and friends) until then.
    hold_until: Millis,
    warnings: RateLimiter,
}

impl Dispatcher {
    async fn deliver(&mut self, e: Entry) {
        let key = e.key.as_str();
        if e.uncertain && self.backend.can_look_up() {
            match self.backend.lookup(&e.order).await {
                Ok(Some(remote)) => {
                    Metrics::inc(&self.metrics.workorders_found_by_lookup);
                    Metrics::inc(&self.metrics.workorders_delivered);
                    info!(key, revision = e.revision, "work order was already at the backend; not posting again");
                    self.record(|s| s.mark_delivered(e.id, Some(&remote))).await;
                    return;
                }
                Ok(None) => {}
                Err(err) => return self.retry(&e, err).await,
            }
        }
        match self.store.mark_sending(e.id) {
            Ok(true) => {}
            Ok(false) => return, // dropped or released by an operator meanwhile
            // Never send what we could not record as being sent.
            Err(err) => return self.store_failed(&err),
        }
        match self.backend.send(&e.order).await {
            Ok(remote) => {
                Metrics::inc(&self.metrics.workorders_delivered);
                info!(key, revision = e.revision, priority = e.order.priority, title = %e.order.title, "work order delivered");
                self.record(|s| s.mark_delivered(e.id, remote.as_deref())).await;
            }
            Err(DeliveryError::Permanent { status, body }) => {
                Metrics::inc(&self.metrics.workorders_dead_lettered);
                error!(key, %status, body = %body, id = e.id,
                       "backend refused the work order; parked as a dead letter (fix the cause, then `hums outbox retry`)");
                let reason = format!("{status}: {body}");
                self.record(|s| s.mark_dead(e.id, &reason)).await;
            }
            Err(err) => self.retry(&e, err).await,
        }
    }

    async fn retry(&mut self, e: &Entry, err: DeliveryError) {
        let (reason, hint, maybe) = match err {
            DeliveryError::Transient { reason, retry_after, maybe_delivered } => (reason, retry_after, maybe_delivered),
            DeliveryError::Permanent { status, body } => (format!("look-up refused: {status}: {body}"), None, true),
        };
        Metrics::inc(&self.metrics.delivery_retries);
        let delay = hint.unwrap_or_else(|| Backoff::nth(self.cfg.retry_min, self.cfg.retry_max, e.attempts.max(1)));
        let next = now_ms() + delay.as_millis() as Millis;
        if hint.is_some() {
            self.hold_until = self.hold_until.max(next); // the backend is limiting us as a whole
        }
        if let Some(suppressed) = self.warnings.allow("delivery") {
            warn!(key = %e.key, reason = %reason, retry_in = ?delay, attempts = e.attempts, suppressed,
                  "work order delivery failed; will retry");
        }
        self.record(|s| s.mark_retry(e.id, next, &reason, maybe)).await;
    }

    /// Records an outcome, retrying briefly: the outcome is also recoverable
    /// after a restart (an entry left "sending" is looked up before re-posting).
    async fn record(&self, f: impl Fn(&Store) -> Result<bool, StoreError>) {
        for attempt in 0..3 {
            match f(&self.store) {
                Ok(_) => return,
                Err(e) if attempt == 2 => self.store_failed(&e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn store_failed(&self, e: &StoreError) {
        Metrics::inc(&self.metrics.store_errors);
        error!(error = %e, "state database error in delivery");
    }
}
