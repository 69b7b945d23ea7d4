//! Delivery from the durable outbox, in one place for every backend adapter:
//! commit "sending" before the request, look the key up before re-posting when
//! an earlier attempt may have landed, back off with jitter, honour the
//! backend's rate-limit hints, and park permanent refusals as dead letters.

use crate::common::backoff::Backoff;
use crate::common::clock::wall_ms;
use crate::common::events::{Events, Failure};
use crate::common::metrics::Metrics;
use crate::common::types::Millis;
use crate::config::backend::Backend;
use crate::config::backend::Common;
use crate::store::outbox::Entry;
use crate::store::{followup, Store, StoreError};
use crate::workorders::backends::http::DeliveryError;
use crate::workorders::backends::{
    dynamics, limble, maintainx, maximo, rest, sap, servicenow, upkeep, webhook, Adapter,
    BackendError, Found, RemoteStatus,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// What delivery shares with the runtime, whichever backend it serves.
pub struct Outbox {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// Notified when new orders are committed.
    pub wake: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
}

/// Builds the configured backend's adapter (checking its credentials) and
/// spawns delivery through it. The one place that names every backend.
pub fn start(cfg: &Backend, outbox: Outbox) -> Result<JoinHandle<()>, BackendError> {
    let common = cfg.common();
    Ok(match cfg {
        Backend::Rest(s) => outbox.deliver(rest::RestBackend::new(s)?, common),
        Backend::Webhook(s) => outbox.deliver(webhook::Webhook::new(s)?, common),
        Backend::Maintainx(s) => outbox.deliver(maintainx::MaintainX::new(s)?, common),
        Backend::Upkeep(s) => outbox.deliver(upkeep::UpKeep::new(s)?, common),
        Backend::Limble(s) => outbox.deliver(limble::Limble::new(s)?, common),
        Backend::Maximo(s) => outbox.deliver(maximo::Maximo::new(s)?, common),
        Backend::Sap(s) => outbox.deliver(sap::Sap::new(s)?, common),
        Backend::Dynamics(s) => outbox.deliver(dynamics::Dynamics::new(s)?, common),
        Backend::Servicenow(s) => outbox.deliver(servicenow::ServiceNow::new(s)?, common),
    })
}

/// Builds the configured adapter without starting it, as [`start`] would:
/// its secrets resolved and its settings checked (`hums check-config --environment`).
pub fn check(cfg: &Backend) -> Result<(), BackendError> {
    match cfg {
        Backend::Rest(s) => rest::RestBackend::new(s).map(drop),
        Backend::Webhook(s) => webhook::Webhook::new(s).map(drop),
        Backend::Maintainx(s) => maintainx::MaintainX::new(s).map(drop),
        Backend::Upkeep(s) => upkeep::UpKeep::new(s).map(drop),
        Backend::Limble(s) => limble::Limble::new(s).map(drop),
        Backend::Maximo(s) => maximo::Maximo::new(s).map(drop),
        Backend::Sap(s) => sap::Sap::new(s).map(drop),
        Backend::Dynamics(s) => dynamics::Dynamics::new(s).map(drop),
        Backend::Servicenow(s) => servicenow::ServiceNow::new(s).map(drop),
    }
}

impl Outbox {
    fn deliver<B: Adapter>(self, backend: B, cfg: &Common) -> JoinHandle<()> {
        info!(backend = backend.name(), url = %cfg.url, "delivering work orders");
        tokio::spawn(run(self.store, backend, cfg.clone(), self.metrics, self.wake, self.shutdown))
    }
}

/// Delivers outbox entries until `shutdown` turns true. `wake` is notified
/// whenever new entries are committed; the outbox is also polled every second,
/// so entries released with `hums outbox retry` are picked up while running.
/// `cfg` is the backend's shared settings: `poll`, `retry_min` and `retry_max`.
pub async fn run<B: Adapter>(
    store: Arc<Store>,
    backend: B,
    cfg: Common,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let poll = cfg.poll.map(|p| p.as_millis().min(i64::MAX as u128) as Millis);
    let mut d = Dispatcher { store, backend, cfg, events: Events::new(metrics), hold_until: 0 };
    let mut next_poll = wall_ms();
    while !*shutdown.borrow() {
        let now = wall_ms();
        if let Some(every) = poll.filter(|_| now >= next_poll && d.hold_until <= now) {
            next_poll = now + every;
            d.poll_statuses().await;
        }
        let wait = if d.hold_until > now {
            Some((d.hold_until - now) as u64)
        } else {
            match d.store.next_due(now) {
                Ok(Some(entry)) => {
                    d.deliver(entry).await;
                    None
                }
                // Nothing to send: attach the charts drawn since, one at a time.
                Ok(None) if d.attach_next_chart().await => None,
                Ok(None) => Some(
                    d.store.next_due_at().ok().flatten().map_or(1000, |t| (t - now).clamp(10, 1000))
                        as u64,
                ),
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
        info!(
            ?counts,
            "delivery stopped; pending work orders stay in the outbox for the next start"
        );
    }
}

struct Dispatcher<B> {
    store: Arc<Store>,
    backend: B,
    cfg: Common,
    events: Events,
    /// The backend asked us to wait (Retry-After and friends) until then.
    hold_until: Millis,
}

impl<B: Adapter> Dispatcher<B> {
    async fn deliver(&mut self, e: Entry) {
        let wo = &e.order;
        if e.revision == 1 {
            if e.uncertain || self.backend.looks_up_first() {
                match self.backend.find(wo).await {
                    Ok(Some(Found::Same(remote))) => return self.already_there(&e, remote).await,
                    // An earlier episode's order for the same fault is still open: comment on it.
                    Ok(Some(Found::Open(remote))) => return self.send(&e, Some(remote)).await,
                    Ok(None) => {}
                    Err(err) => return self.retry(&e, err).await,
                }
            }
            return self.send(&e, None).await;
        }
        // An update goes to the order its raise created.
        let mut remote = match self.store.remote_id(&e.key) {
            Ok(r) => r.filter(|r| !r.is_empty()),
            Err(err) => return self.store_failed(&err),
        };
        if remote.is_none() && self.backend.looks_up_first() {
            match self.backend.find(wo).await {
                Ok(Some(Found::Same(r) | Found::Open(r))) => remote = Some(r),
                Ok(None) => {}
                Err(err) => return self.retry(&e, err).await,
            }
        }
        if e.uncertain {
            match self.backend.landed(wo, remote.as_deref().unwrap_or_default()).await {
                Ok(true) => return self.already_there(&e, remote.unwrap_or_default()).await,
                Ok(false) => {}
                Err(err) => return self.retry(&e, err).await,
            }
        }
        // A backend that tracks orders by id and lost this one gets it anew.
        let target = match remote {
            Some(r) => Some(r),
            None if self.backend.looks_up_first() => None,
            None => Some(String::new()),
        };
        self.send(&e, target).await
    }

    async fn already_there(&mut self, e: &Entry, remote: String) {
        Metrics::inc(&self.events.metrics().workorders_found_by_lookup);
        Metrics::inc(&self.events.metrics().workorders_delivered);
        info!(key = %e.key, revision = e.revision, backend = self.backend.name(), "work order was \
            already at the backend; not sending again");
        self.record(|s| s.mark_delivered(e.id, Some(&remote))).await;
        if e.revision == 1 {
            self.follow(e, &remote).await;
        }
    }

    /// Follows a raised order at the backend, to verify its repair.
    async fn follow(&self, e: &Entry, remote: &str) {
        if !remote.is_empty() {
            self.record(|s| s.follow(&e.order, remote, wall_ms()).map(|()| true)).await;
        }
    }

    /// Asks the backend where open orders stand; records the done and the cancelled.
    async fn poll_statuses(&mut self) {
        let open = match self.store.open_followups(20) {
            Ok(o) => o,
            Err(e) => return self.store_failed(&e),
        };
        for f in open {
            let now = wall_ms();
            let (state, done) = match self.backend.status(&f.remote_id).await {
                Ok(Some(RemoteStatus::Open)) => (followup::state::OPEN, None),
                Ok(Some(RemoteStatus::Done(at))) => {
                    (followup::state::DONE, Some(at.map_or(now, |t| t.timestamp_millis())))
                }
                Ok(Some(RemoteStatus::Cancelled)) => (followup::state::CANCELLED, None),
                // The backend cannot say: nothing to follow there.
                Ok(None) => return,
                Err(err) => {
                    if let DeliveryError::Transient { retry_after: Some(wait), .. } = &err {
                        self.hold_until = self.hold_until.max(now + wait.as_millis() as Millis);
                    }
                    self.events.report(Failure::StatusPoll { key: &f.key, error: &err });
                    return;
                }
            };
            if state != followup::state::OPEN {
                info!(key = %f.key, remote = %f.remote_id, state,
                      "the backend closed a work order");
            }
            self.record(|s| s.set_followup(&f.key, state, now, done).map(|()| true)).await;
        }
    }

    /// Creates the order, or adds this revision to `target`.
    async fn send(&mut self, e: &Entry, target: Option<String>) {
        let key = e.key.as_str();
        match self.store.mark_sending(e.id) {
            Ok(true) => {}
            Ok(false) => return, // dropped or released by an operator meanwhile
            // Never send what we could not record as being sent.
            Err(err) => return self.store_failed(&err),
        }
        let created = target.is_none();
        let sent = match &target {
            Some(remote) => {
                self.backend.update(&e.order, remote).await.map(|()| Some(remote.clone()))
            }
            None => self.backend.create(&e.order).await,
        };
        match sent {
            Ok(remote) => {
                Metrics::inc(&self.events.metrics().workorders_delivered);
                info!(key, revision = e.revision, priority = e.order.priority,
                      title = %e.order.title, backend = self.backend.name(),
                      remote = remote.as_deref().unwrap_or(""), "work order delivered");
                self.record(|s| s.mark_delivered(e.id, remote.as_deref())).await;
                if let Some(remote) = remote.as_deref().filter(|r| !r.is_empty()) {
                    // A raise that became a comment on an open order is followed as that order.
                    if e.revision == 1 && created {
                        self.follow(e, remote).await;
                    }
                }
            }
            Err(DeliveryError::Permanent { status, body }) => {
                self.events.report(Failure::DeadLetter {
                    key,
                    id: e.id,
                    status: &status,
                    body: &body,
                });
                let reason = format!("{status}: {body}");
                self.record(|s| s.mark_dead(e.id, &reason)).await;
            }
            Err(err) => self.retry(e, err).await,
        }
    }

    /// Attaches the oldest chart due (drawn after its order was committed,
    /// the order now delivered); false when none is. The chart is marked
    /// done first: a failed upload is not retried, and none goes twice.
    async fn attach_next_chart(&mut self) -> bool {
        let e = match self.store.charts_due(1) {
            Ok(mut due) => match due.pop() {
                Some(e) => e,
                None => return false,
            },
            Err(err) => {
                self.store_failed(&err);
                return false;
            }
        };
        if let Err(err) = self.store.chart_done(e.id) {
            self.store_failed(&err);
            return false;
        }
        // Backends that give no id (a webhook) have nothing to attach it to.
        if let (Some(chart), Some(remote)) = (&e.order.chart, e.remote_id.as_deref()) {
            if !remote.is_empty() {
                self.attach(&e, remote, &chart.0).await;
            }
        }
        true
    }

    /// Uploads the order's chart. The order itself is delivered: a failed
    /// upload is logged and noted on the entry, not retried.
    async fn attach(&self, e: &Entry, remote: &str, png: &[u8]) {
        let name =
            format!("hums-{}-{}-r{}.png", e.order.asset.id, e.order.failure_mode, e.revision);
        match self.backend.attach(remote, &name, png).await {
            Ok(true) => {
                info!(key = %e.key, revision = e.revision, file = %name, "evidence chart attached")
            }
            Ok(false) => {}
            Err(err) => {
                warn!(key = %e.key, revision = e.revision, error = %err, "the evidence chart \
                    could not be attached");
                let note = format!("chart not attached: {err}");
                self.record(|s| s.set_note(e.id, &note)).await;
            }
        }
    }

    async fn retry(&mut self, e: &Entry, err: DeliveryError) {
        let (reason, hint, maybe) = match err {
            DeliveryError::Transient { reason, retry_after, maybe_delivered } => {
                (reason, retry_after, maybe_delivered)
            }
            DeliveryError::Permanent { status, body } => {
                (format!("look-up refused: {status}: {body}"), None, true)
            }
        };
        let delay = hint.unwrap_or_else(|| {
            Backoff::nth(self.cfg.retry_min, self.cfg.retry_max, e.attempts.max(1))
        });
        let next = wall_ms() + delay.as_millis() as Millis;
        if hint.is_some() {
            self.hold_until = self.hold_until.max(next); // the backend is limiting us as a whole
        }
        let attempts = e.attempts;
        self.events.report(Failure::DeliveryRetry {
            key: &e.key,
            reason: &reason,
            retry_in: delay,
            attempts,
        });
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
        self.events.report(Failure::Store { doing: "error in delivery", error: e });
    }
}
