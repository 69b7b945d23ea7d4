//! HTTP plumbing shared by every backend adapter: one client constructor,
//! the classification of answers into retryable and permanent failures, and
//! the rate-limit headers backends use to ask for a pause.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a request failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: connection trouble, timeouts, 408, 429, 5xx.
    #[error("{reason}")]
    Transient {
        reason: String,
        /// The backend's own hint (Retry-After or a rate-limit reset header).
        retry_after: Option<Duration>,
        /// The request may have been processed (timeout, 5xx, connection lost
        /// after sending): look the key up before posting again.
        maybe_delivered: bool,
    },
    /// The backend refused the order; retrying the same request cannot help.
    #[error("refused with {status}: {body}")]
    Permanent { status: StatusCode, body: String },
}

/// The one constructor of HTTP clients, so every client gets the same
/// timeouts and user agent. `cookies` keeps the session's cookies (SAP binds
/// its CSRF token to them).
#[allow(clippy::disallowed_methods)] // the one place allowed to build a client
pub fn http_client(timeout: Duration, cookies: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("hums/", env!("CARGO_PKG_VERSION")))
        .cookie_store(cookies)
        .build()
}

/// A request that failed in transport: retryable, and maybe delivered unless
/// the connection was refused.
pub fn transport(e: reqwest::Error) -> DeliveryError {
    // A refused connection never reached the backend; anything else might have.
    let maybe_delivered = !e.is_connect();
    // Without the URL: it may carry an API key in its query string.
    let reason = if e.is_timeout() { "timed out".to_string() } else { e.without_url().to_string() };
    DeliveryError::Transient { reason, retry_after: None, maybe_delivered }
}

/// The response if it succeeded, else what its status means: 401/403 hold
/// deliveries for `auth_hold`, 408/429/5xx retry (with the backend's hint),
/// other 4xx are permanent.
pub async fn check(
    resp: reqwest::Response,
    auth_hold: Duration,
) -> Result<reqwest::Response, DeliveryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = rate_limit_delay(resp.headers(), crate::common::clock::wall().into());
    let body: String = resp.text().await.unwrap_or_default().chars().take(2000).collect();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        // Credentials are wrong or expired: every order would fail the same
        // way, so hold them all (retrying) rather than dead-letter each one.
        tracing::error!(%status, "backend refused our credentials; check the token, deliveries \
            are held meanwhile");
        return Err(DeliveryError::Transient {
            reason: format!("{status}: check the backend credentials"),
            retry_after: Some(auth_hold),
            maybe_delivered: false,
        });
    }
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        Err(DeliveryError::Transient {
            reason: format!("{status}: {body}"),
            retry_after,
            maybe_delivered: status.is_server_error(),
        })
    } else {
        Err(DeliveryError::Permanent { status, body })
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How long the backend asks us to wait: `Retry-After` (seconds or HTTP date),
/// else a rate-limit reset header (`X-RateLimit-Reset`, `X-Rate-Limit-Reset`,
/// `RateLimit-Reset`: seconds, or epoch seconds when large), else Limble's
/// `X-RateLimit-TTL`.
pub fn rate_limit_delay(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = get("retry-after") {
        if let Some(secs) = v.parse::<f64>().ok().filter(|s| s.is_finite()) {
            return Some(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)));
        }
        if let Ok(when) = httpdate::parse_http_date(v) {
            return Some(when.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    for name in ["x-ratelimit-reset", "x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-ttl"] {
        let Some(secs) = get(name).and_then(|v| v.parse::<f64>().ok()).filter(|s| s.is_finite())
        else {
            continue;
        };
        let now_s = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let wait = if secs > 1e9 { secs - now_s } else { secs };
        return Some(Duration::from_secs_f64(wait.clamp(0.0, 86_400.0)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn rate_limit_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let d = |pairs| rate_limit_delay(&headers(pairs), now);
        assert_eq!(d(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        assert_eq!(
            d(&[("retry-after", "Fri, 15 Jan 2027 08:00:10 GMT")]).map(|x| x.as_secs() > 0),
            Some(true)
        );
        assert_eq!(d(&[("x-rate-limit-reset", "12")]), Some(Duration::from_secs(12)));
        assert_eq!(d(&[("x-ratelimit-reset", "1800000030")]), Some(Duration::from_secs(30)));
        assert_eq!(d(&[("ratelimit-reset", "3")]), Some(Duration::from_secs(3)));
        assert_eq!(d(&[("x-ratelimit-ttl", "40")]), Some(Duration::from_secs(40)));
        assert_eq!(
            d(&[("retry-after", "7"), ("x-rate-limit-reset", "99")]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(d(&[]), None);
        assert_eq!(d(&[("retry-after", "nan")]), None, "garbage never panics");
        assert_eq!(d(&[("x-rate-limit-reset", "inf")]), None);
    }

    #[test]
    fn keys_are_url_encoded() {
        assert_eq!(urlencode("gw:pump-01:a.b:12"), "gw%3Apump-01%3Aa.b%3A12");
    }
}
