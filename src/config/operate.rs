//! Settings of the operator's side: the HTTP server (`[http]`), publishing
//! back to MQTT (`[publish]`) and hot reload (`[reload]`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The HTTP server: `/healthz`, `/readyz`, `/metrics`, the JSON API under
/// `/api/` and the status page at `/`. Off unless enabled.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Http {
    pub enabled: bool,
    /// Address and port to listen on; loopback unless you mean otherwise.
    pub listen: String,
    /// PEM certificate chain and key: serve HTTPS instead of HTTP.
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    /// Who may use the server. Every request but `/healthz` and `/readyz`
    /// needs one of these tokens (`Authorization: Bearer …`).
    pub tokens: Vec<Token>,
    /// Evaluations of history kept per asset and channel for the page's plots.
    pub history: usize,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:9890".into(),
            tls_cert_file: None,
            tls_key_file: None,
            tokens: Vec::new(),
            history: 120,
        }
    }
}

/// One bearer token and what it may do. The token itself comes from an
/// environment variable or a file, never from the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct Token {
    /// Shown in the log of operator actions (`by`), e.g. "control-room".
    pub name: String,
    pub role: Role,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything.
    #[default]
    Viewer,
    /// Also shelve alarms, take assets out of service and retry dead letters.
    Operator,
}

/// hums's judgement on MQTT, on the `[mqtt]` broker: a retained health
/// message with a last will, per-asset health and alarm events (topics in
/// the README's "Publish to MQTT" section).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Publish {
    pub enabled: bool,
    /// Topics start `<topic_prefix>/<gateway.id>/`.
    pub topic_prefix: String,
    /// How often every asset's health is published even when it did not change.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for Publish {
    fn default() -> Self {
        Self { enabled: false, topic_prefix: "hums".into(), interval: Duration::from_secs(60) }
    }
}

/// Hot reload: SIGHUP always reloads; `watch` also reloads when a config file changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Reload {
    pub watch: bool,
    /// How often the files are checked when watching.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for Reload {
    fn default() -> Self {
        Self { watch: false, interval: Duration::from_secs(2) }
    }
}
