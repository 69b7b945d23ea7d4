//! The HTTP server (axum): `/healthz` and `/readyz` for probes (no token),
//! `/metrics` for Prometheus, the JSON API under `/api/` and the status pages.
//! Every route but the probes needs a token; operator actions need the
//! operator role. Off unless `[http] enabled = true`, on loopback by default.

use super::actions::{self, Action};
use super::auth::{self, Caller};
use super::shared::{order_views, Shared};
use crate::config::operate::{Http, Role};
use crate::store::outbox::Status;
use crate::workorders::backends::http::urlencode;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("http.listen {addr}: {source} (is another process on that port?)")]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Token(#[from] auth::TokenError),
    #[error("{0}")]
    Tls(String),
}

/// The routes.
pub fn router(shared: Shared) -> Router {
    let authed = Router::new()
        .route("/", get(super::page::overview))
        .route("/assets/{id}", get(super::page::asset))
        .route("/outbox", get(super::page::outbox))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/assets", get(assets))
        .route("/api/assets/{id}", get(asset))
        .route("/api/alarms", get(alarms))
        .route("/api/orders", get(orders))
        .route("/api/suppressions", get(suppressions))
        .route("/api/actions", post(act_json))
        .route("/api/outbox/retry", post(retry_json))
        .route("/actions", post(act_form))
        .route("/actions/retry", post(retry_form))
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(authed)
        .layer(middleware::from_fn(security_headers))
        .with_state(shared)
}

/// Binds the listener and serves until `shutdown` turns true.
pub async fn start(
    cfg: &Http,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| ServerError::Bind { addr: cfg.listen.clone(), source })?;
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let app = router(shared);
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    let tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(c), Some(k)) => Some(super::tls::acceptor(c, k).map_err(ServerError::Tls)?),
        _ => None,
    };
    tracing::info!(listen = %addr, tls = tls.is_some(), "HTTP server listening");
    Ok(tokio::spawn(async move {
        let served = match tls {
            Some(acceptor) => {
                let listener = super::tls::Listener::new(listener, acceptor);
                axum::serve(listener, app).with_graceful_shutdown(stop).await
            }
            None => axum::serve(listener, app).with_graceful_shutdown(stop).await,
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    }))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'"),
    );
    res
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Lets a request through with its [`Caller`], answers 401 without a valid
/// token, and trades a page's `?token=` for a cookie.
async fn authenticate(
    State(s): State<Shared>,
    Query(q): Query<TokenQuery>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(t) = q.token {
        if s.tokens.check(&t).is_none() {
            return unauthorized();
        }
        let path = req.uri().path().to_string();
        let mut res = Redirect::to(&path).into_response();
        let secure = if s.secure_cookie { "; Secure" } else { "" };
        let cookie =
            format!("{}={}; Path=/; HttpOnly; SameSite=Strict{secure}", auth::COOKIE, t.trim());
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        return res;
    }
    let by_cookie = !req.headers().contains_key(header::AUTHORIZATION);
    if by_cookie && req.method() == axum::http::Method::POST && cross_site(req.headers()) {
        let msg = "a form from another site: post from hums's own pages";
        return (StatusCode::FORBIDDEN, Json(json!({ "error": msg }))).into_response();
    }
    match auth::presented(req.headers()).and_then(|t| s.tokens.check(&t)) {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => unauthorized(),
    }
}

/// Whether a browser says a request comes from another site (CSRF): its
/// `Sec-Fetch-Site`, else its `Origin` against the `Host` it was sent to.
fn cross_site(h: &axum::http::HeaderMap) -> bool {
    let get = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (get("origin"), get("host")) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, rest)| rest) != Some(host),
        (Some(_), None) => true,
        _ => false,
    }
}

fn unauthorized() -> Response {
    let mut res = (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "a token is required: send Authorization: Bearer <token>, or open the page once with ?token=<token>"})),
    )
        .into_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res
}

fn forbidden(caller: &Caller) -> Response {
    let msg = format!("{} is a viewer token; this needs an operator token", caller.name);
    (StatusCode::FORBIDDEN, Json(json!({ "error": msg }))).into_response()
}

/// Alive: the engine turned its loop recently.
async fn healthz(State(s): State<Shared>) -> Response {
    let age = crate::common::clock::wall_ms() - s.heartbeat.load(Ordering::Relaxed);
    if age > s.stall_after_ms.load(Ordering::Relaxed) {
        let msg = format!("engine stalled: no evaluation for {} s", age / 1000);
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

/// Ready: config loaded, every source connected, the outbox writable.
async fn readyz(State(s): State<Shared>) -> Response {
    let view = s.view.borrow().clone();
    let writable = s.writable().await;
    let sources_up = !view.sources.is_empty() && view.sources.values().all(|up| *up);
    let ready = sources_up && writable;
    let body = json!({
        "ready": ready,
        "config": {"loaded": true, "reload_error": view.config.reload_error},
        "sources": view.sources,
        "outbox_writable": writable,
    });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

async fn metrics(State(s): State<Shared>) -> Response {
    let registry = s.registry.clone();
    let text = tokio::task::spawn_blocking(move || super::prometheus::encode(&registry))
        .await
        .unwrap_or_default();
    let ct = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, ct)], text).into_response()
}

async fn status(State(s): State<Shared>) -> Response {
    let view = s.view.borrow().clone();
    Json(&*view).into_response()
}

async fn assets(State(s): State<Shared>) -> Response {
    Json(&s.view.borrow().assets).into_response()
}

async fn asset(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let view = s.view.borrow().clone();
    match view.assets.iter().find(|a| a.id == id) {
        Some(a) => Json(a).into_response(),
        None => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": format!("no asset {id:?}")}))).into_response()
}

async fn alarms(State(s): State<Shared>) -> Response {
    Json(&s.view.borrow().alarms).into_response()
}

#[derive(Deserialize)]
struct OrdersQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn orders(State(s): State<Shared>, Query(q): Query<OrdersQuery>) -> Response {
    let status = match q.status.as_deref().map(Status::parse) {
        Some(None) => {
            let msg = "status must be pending, sending, held, delivered, dead or dropped";
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response();
        }
        Some(st) => st,
        None => None,
    };
    let limit = q.limit.unwrap_or(50).min(1000);
    let got = s.query(move |store| Ok((store.counts()?, order_views(store, status, limit)?))).await;
    match got {
        Ok((counts, list)) => {
            let counts: serde_json::Map<String, serde_json::Value> =
                counts.into_iter().map(|(k, v)| (k, v.into())).collect();
            Json(json!({"counts": counts, "orders": list})).into_response()
        }
        Err(e) => server_error(&e),
    }
}

fn server_error(msg: &str) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": msg }))).into_response()
}

async fn suppressions(State(s): State<Shared>) -> Response {
    let got =
        s.query(|store| Ok((store.suppression_history(200)?, store.withheld(true, 200)?))).await;
    match got {
        Ok((history, withheld)) => {
            Json(json!({"suppressions": history, "withheld": withheld})).into_response()
        }
        Err(e) => server_error(&e),
    }
}

/// Takes an operator action for `caller`.
async fn act(s: &Shared, caller: &Caller, action: Action) -> Result<actions::Done, Response> {
    if caller.role < Role::Operator {
        return Err(forbidden(caller));
    }
    let catalogue: actions::Catalogue =
        (s.view.borrow().assets.iter()).map(|a| (a.id.clone(), a.failure_modes.clone())).collect();
    let (store, by, now) = (s.store.clone(), caller.name.clone(), s.clock.now());
    let done =
        tokio::task::spawn_blocking(move || actions::apply(&store, &catalogue, &action, &by, now))
            .await
            .map_err(|e| server_error(&e.to_string()))?;
    match done {
        Ok(d) => {
            tracing::info!(by = %caller.name, message = %d.message, "operator action");
            s.suppressions_changed.notify_one();
            Ok(d)
        }
        Err(actions::ActionError::Store(e)) => Err(server_error(&e.to_string())),
        Err(e) => {
            Err((StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string()}))).into_response())
        }
    }
}

async fn act_json(
    State(s): State<Shared>,
    Extension(caller): Extension<Caller>,
    Json(action): Json<Action>,
) -> Response {
    match act(&s, &caller, action).await {
        Ok(done) => Json(done).into_response(),
        Err(r) => r,
    }
}

/// The status page's forms: the same actions, answered with a redirect back.
#[derive(Deserialize)]
struct ActionForm {
    action: String,
    asset: String,
    failure_mode: Option<String>,
    #[serde(rename = "for")]
    duration: Option<String>,
    reason: Option<String>,
}

async fn act_form(
    State(s): State<Shared>,
    Extension(caller): Extension<Caller>,
    Form(f): Form<ActionForm>,
) -> Response {
    let fm = f.failure_mode.filter(|x| !x.is_empty());
    let reason = f.reason.unwrap_or_default();
    let action = match f.action.as_str() {
        "shelve" => match humantime::parse_duration(f.duration.as_deref().unwrap_or("")) {
            Ok(duration) => {
                Action::Shelve { asset: f.asset.clone(), failure_mode: fm, duration, reason }
            }
            Err(e) => {
                let msg = format!("for: {e} (e.g. 8h)");
                return (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response();
            }
        },
        "unshelve" => {
            Action::Unshelve { asset: f.asset.clone(), failure_mode: fm, reason: Some(reason) }
        }
        "out-of-service" => Action::OutOfService { asset: f.asset.clone(), reason },
        "return-to-service" => {
            Action::ReturnToService { asset: f.asset.clone(), reason: Some(reason) }
        }
        other => {
            let msg = format!("unknown action {other:?}");
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response();
        }
    };
    match act(&s, &caller, action).await {
        Ok(_) => Redirect::to(&format!("/assets/{}", urlencode(&f.asset))).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct RetryRequest {
    /// Entry ids; empty with `all_dead` retries every dead letter.
    #[serde(default)]
    ids: Vec<i64>,
    #[serde(default)]
    all_dead: bool,
}

async fn retry(s: &Shared, caller: &Caller, r: RetryRequest) -> Result<usize, Response> {
    if caller.role < Role::Operator {
        return Err(forbidden(caller));
    }
    let status = r.all_dead.then_some(Status::Dead);
    let n =
        s.query(move |store| store.release(&r.ids, status)).await.map_err(|e| server_error(&e))?;
    tracing::info!(by = %caller.name, released = n, "operator action: dead letters retried");
    s.wake_delivery.notify_one();
    Ok(n)
}

async fn retry_json(
    State(s): State<Shared>,
    Extension(caller): Extension<Caller>,
    Json(r): Json<RetryRequest>,
) -> Response {
    match retry(&s, &caller, r).await {
        Ok(n) => Json(json!({ "released": n })).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct RetryForm {
    id: Option<i64>,
}

async fn retry_form(
    State(s): State<Shared>,
    Extension(caller): Extension<Caller>,
    Form(f): Form<RetryForm>,
) -> Response {
    let r = RetryRequest { ids: f.id.into_iter().collect(), all_dead: f.id.is_none() };
    match retry(&s, &caller, r).await {
        Ok(_) => Redirect::to("/outbox").into_response(),
        Err(r) => r,
    }
}
