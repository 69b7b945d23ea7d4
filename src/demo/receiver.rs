//! An embedded work-order receiver: a small HTTP server that stores what it
//! gets. The demo uses it in place of a CMMS, and tests use it (with injected
//! faults) as a real backend on a loopback socket.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A scripted answer for the next request, for fault-injection tests.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds, if given) and store nothing.
    Status(u16, Option<u64>),
    /// Store the order, then wait this long before answering: a backend that
    /// did the work but answers after the client's timeout.
    Delay(Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub authorization: Option<String>,
    /// When it arrived.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    faults: VecDeque<Fault>,
    attempts: usize,
    record: Option<std::fs::File>,
    echo: bool,
    /// Orders closed (by key): "done" or "cancelled", and when.
    closed: std::collections::HashMap<String, (String, String)>,
}

/// Handle to a running receiver.
#[derive(Clone)]
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Starts on `127.0.0.1:0`; `record` appends every accepted work order as a JSON line,
    /// `echo` prints a line per work order to stdout.
    pub async fn start(record: Option<PathBuf>, echo: bool) -> std::io::Result<Self> {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), record, echo).await
    }

    /// Starts on a given address (a test can bring a "dead" backend back to life).
    pub async fn start_at(
        addr: SocketAddr,
        record: Option<PathBuf>,
        echo: bool,
    ) -> std::io::Result<Self> {
        let record = match record {
            Some(p) => {
                Some(std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(p)?)
            }
            None => None,
        };
        let inner = Arc::new(Mutex::new(Inner { record, echo, ..Inner::default() }));
        let listener = tokio::net::TcpListener::bind(addr).await?;

        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/workorders", post(accept).get(list))
            .route("/workorders/{id}", axum::routing::get(order_status))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner })
    }

    /// The URL to POST work orders to.
    pub fn url(&self) -> String {
        format!("http://{}/workorders", self.addr)
    }

    /// The look-up URL template (`{key}` placeholder) for `backend.lookup_url`.
    pub fn lookup_url(&self) -> String {
        format!("http://{}/workorders?idempotency_key={{key}}", self.addr)
    }

    /// Queues scripted answers for the next requests.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Every work order accepted so far.
    /// Closes an order as a technician would, at `at`: `status` is "done" or "cancelled".
    pub fn close(&self, key: &str, status: &str, at: chrono::DateTime<chrono::Utc>) {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.lock().closed.insert(key.to_string(), (status.to_string(), at));
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Every request, accepted or not.
    pub fn attempts(&self) -> usize {
        self.lock().attempts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `GET /workorders[?idempotency_key=K]`: the orders received (with that key), each with its `id`.
async fn list(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Vec<Value>> {
    let inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    let wanted = q.get("idempotency_key");
    Json(
        inner
            .received
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                wanted.is_none_or(|k| {
                    r.body.get("idempotency_key").and_then(Value::as_str) == Some(k)
                })
            })
            .map(|(i, r)| {
                let mut body = r.body.clone();
                if let Value::Object(o) = &mut body {
                    o.insert("id".into(), Value::String(format!("WO-{}", i + 1)));
                }
                body
            })
            .collect(),
    )
}

/// `GET /workorders/WO-n`: where an order stands (open, done or cancelled).
async fn order_status(
    State(inner): State<Arc<Mutex<Inner>>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    let n: Option<usize> = id.strip_prefix("WO-").and_then(|n| n.parse().ok());
    let Some(r) = n.and_then(|n| n.checked_sub(1)).and_then(|i| inner.received.get(i)) else {
        return (StatusCode::NOT_FOUND, "no such work order").into_response();
    };
    let key = r.body.get("idempotency_key").and_then(Value::as_str).unwrap_or_default();
    let (status, at) =
        inner.closed.get(key).cloned().unwrap_or_else(|| ("open".into(), String::new()));
    let completed = if at.is_empty() { Value::Null } else { Value::String(at) };
    Json(serde_json::json!({
        "id": id, "idempotency_key": key, "status": status, "completed_at": completed
    }))
    .into_response()
}

async fn accept(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    let fault = {
        let mut i = inner.lock().unwrap_or_else(|p| p.into_inner());
        i.attempts += 1;
        i.faults.pop_front()
    };
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = (status, format!("injected fault {code}")).into_response();
            if let Some(s) = retry_after {
                resp.headers_mut().insert("retry-after", HeaderValue::from(s));
            }
            return resp;
        }
        Some(Fault::Delay(_)) | None => {}
    }
    let delay = match fault {
        Some(Fault::Delay(d)) => Some(d),
        _ => None,
    };
    let Json(body) = body;
    let authorization =
        headers.get("authorization").and_then(|v| v.to_str().ok()).map(String::from);
    let (status, n) = store(&inner, body, authorization);
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    (status, Json(serde_json::json!({ "id": format!("WO-{n}") }))).into_response()
}

/// Stores an accepted order; returns the status to answer and its number.
fn store(inner: &Mutex<Inner>, body: Value, authorization: Option<String>) -> (StatusCode, usize) {
    let mut i = inner.lock().unwrap_or_else(|p| p.into_inner());
    let key = body.get("idempotency_key").and_then(Value::as_str).unwrap_or_default().to_string();
    let id = i
        .received
        .iter()
        .position(|r| r.body.get("idempotency_key").and_then(Value::as_str) == Some(&key));
    if i.echo {
        println!(
            "[receiver] {} P{} {} ({})",
            body.get("event").and_then(Value::as_str).unwrap_or("?"),
            body.get("priority").and_then(Value::as_u64).unwrap_or(0),
            body.get("title").and_then(Value::as_str).unwrap_or("?"),
            key
        );
    }
    if let Some(f) = i.record.as_mut() {
        let _ = writeln!(f, "{body}");
    }
    i.received.push(Received { body, authorization, at: std::time::Instant::now() });
    let n = id.unwrap_or(i.received.len() - 1) + 1;
    let status = if id.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    (status, n)
}
