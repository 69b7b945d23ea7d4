//! The generic REST backend: POST the canonical JSON with a bearer token,
//! retry transient failures with jittered backoff, honour `429 Retry-After`,
//! and park permanent refusals as dead letters.

use super::WorkOrder;
use crate::backoff::Backoff;
use crate::config::schema::Backend;
use crate::metrics::Metrics;
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch, Mutex};
use tracing::{error, info, warn};

/// How a delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: connection trouble, timeouts, 408, 429, 5xx.
    #[error("transient: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The backend refused the order; retrying the same request cannot help.
    #[error("refused with {status}: {body}")]
    Permanent { status: StatusCode, body: String },
}

/// The one constructor of HTTP clients, so every client gets the same timeouts.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("hums/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A REST endpoint that accepts the canonical work-order JSON.
pub struct RestBackend {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl RestBackend {
    /// Reads the bearer token from the environment variable named in the config.
    pub fn new(cfg: &Backend) -> Self {
        let token = cfg
            .token_env
            .as_ref()
            .and_then(|name| std::env::var(name).ok())
            .filter(|t| !t.is_empty());
        Self {
            client: http_client(cfg.timeout),
            url: cfg.url.clone(),
            token,
        }
    }

    /// One delivery attempt.
    pub async fn send(&self, wo: &WorkOrder) -> Result<(), DeliveryError> {
        let mut req = self
            .client
            .post(&self.url)
            .json(wo)
            .header("Idempotency-Key", &wo.idempotency_key);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| DeliveryError::Transient {
            reason: if e.is_timeout() {
                "timed out".into()
            } else {
                format!("{e}")
            },
            retry_after: None,
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(resp.headers());
        let body: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(2000)
            .collect();
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            Err(DeliveryError::Transient {
                reason: format!("{status}: {body}"),
                retry_after,
            })
        } else {
            Err(DeliveryError::Permanent { status, body })
        }
    }
}

/// Reads `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Work orders the backend refused permanently, kept for the operator.
pub type DeadLetters = Arc<Mutex<Vec<(WorkOrder, String)>>>;

/// Delivers queued work orders one at a time, retrying each until it lands or
/// is refused. On shutdown it keeps trying for `grace`, then reports what is left.
pub async fn dispatch(
    backend: RestBackend,
    cfg: Backend,
    mut rx: mpsc::UnboundedReceiver<WorkOrder>,
    metrics: Arc<Metrics>,
    dead: DeadLetters,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut deadline: Option<tokio::time::Instant> = None;
    while let Some(wo) = rx.recv().await {
        let mut backoff = Backoff::new(cfg.retry_min, cfg.retry_max);
        loop {
            match backend.send(&wo).await {
                Ok(()) => {
                    Metrics::inc(&metrics.workorders_delivered);
                    info!(key = %wo.idempotency_key, priority = wo.priority, title = %wo.title, "work order delivered");
                    break;
                }
                Err(DeliveryError::Permanent { status, body }) => {
                    Metrics::inc(&metrics.workorders_dead_lettered);
                    error!(key = %wo.idempotency_key, %status, body = %body, "backend refused the work order; parked as a dead letter");
                    dead.lock()
                        .await
                        .push((wo.clone(), format!("{status}: {body}")));
                    break;
                }
                Err(DeliveryError::Transient {
                    reason,
                    retry_after,
                }) => {
                    Metrics::inc(&metrics.delivery_retries);
                    let delay = retry_after
                        .unwrap_or_else(|| backoff.next_delay())
                        .min(cfg.retry_max.max(Duration::from_secs(1)) * 4);
                    warn!(key = %wo.idempotency_key, reason = %reason, retry_in = ?delay, "work order delivery failed; will retry");
                    if *shutdown.borrow() && deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + grace);
                    }
                    let wake = tokio::time::Instant::now() + delay;
                    let wake = deadline.map_or(wake, |d| wake.min(d));
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake) => {}
                        _ = shutdown.changed(), if deadline.is_none() => {
                            deadline = Some(tokio::time::Instant::now() + grace);
                        }
                    }
                    if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                        let left = 1 + rx.len();
                        error!(
                            undelivered = left,
                            "shutting down with work orders undelivered"
                        );
                        return;
                    }
                }
            }
        }
    }
}
