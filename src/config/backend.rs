//! The `[backend]` table: which maintenance system hums delivers to and the
//! settings of that kind only. `kind` picks the variant (default `rest`);
//! the keys every backend shares live in [`Common`], flattened into each
//! kind's settings, so the TOML stays one flat table:
//!
//! ```toml
//! [backend]
//! kind = "maximo"
//! url = "https://host/maximo"
//! token_env = "MAXIMO_APIKEY"
//! site_id = "BEDFORD"
//! ```
//!
//! Every kind refuses keys it does not take (`site_id` under
//! `kind = "servicenow"` is an error naming `site_id`), and [`Backend::check`]
//! holds every rule that can be judged from the configuration alone, so
//! `hums check-config` refuses what `hums run` would. What needs the
//! environment (a secret variable actually being set, a template file being
//! readable) is left to the adapters in `workorders::backends`, which also
//! refuse to start on the first problem of their kind's `check`.
//!
//! Secrets come from an environment variable (`*_env`) or a file (`*_file`),
//! never from the configuration itself.

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Where `kind = "rest"` posts when no `url` is given: the hums receiver.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/workorders";

type Found = Vec<(String, String)>;

fn push(out: &mut Found, key: impl AsRef<str>, message: impl Into<String>) {
    out.push((format!("backend.{}", key.as_ref()), message.into()));
}

/// The keys every backend takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Common {
    /// The endpoint (`rest`, `webhook`) or the API's base URL
    /// (e.g. `https://api.getmaintainx.com/v1`).
    pub url: String,
    /// hums priority ("1" critical … "4" low) → the backend's value (not used by `rest`,
    /// which posts the canonical order with hums's own priority).
    #[serde(deserialize_with = "lenient::string_map")]
    pub priorities: BTreeMap<String, String>,
    /// Location path (`Site › Building › …`, any prefix) → the backend's location id
    /// (not used by `rest`).
    #[serde(deserialize_with = "lenient::string_map")]
    pub locations: BTreeMap<String, String>,
    /// How often the status of open orders is polled (closing the loop); unset: never.
    #[serde(with = "humantime_serde")]
    pub poll: Option<Duration>,
    /// How long after the backend reports an order done the machine is checked.
    #[serde(with = "humantime_serde")]
    pub verify_after: Duration,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Jittered exponential backoff for transient failures, from `retry_min` up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.into(),
            priorities: BTreeMap::new(),
            locations: BTreeMap::new(),
            poll: None,
            verify_after: Duration::from_secs(2 * 3600),
            timeout: Duration::from_secs(10),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
        }
    }
}

impl Common {
    /// The rules every backend shares.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        match reqwest::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => push(&mut out, "url", format!("{:?} is not an http(s) URL", self.url)),
        }
        if self.timeout.is_zero() {
            push(&mut out, "timeout", "must be longer than 0s");
        }
        if self.retry_min.is_zero() || self.retry_max < self.retry_min {
            push(&mut out, "retry_min", "expected 0 < retry_min <= retry_max");
        }
        for (k, v) in &self.priorities {
            if !matches!(k.as_str(), "1" | "2" | "3" | "4") || v.trim().is_empty() {
                push(
                    &mut out,
                    format!("priorities.{k}"),
                    "expected keys \"1\" to \"4\" (hums priorities) with the backend's value",
                );
            }
        }
        out
    }
}

/// `kind = "rest"`: POST the canonical work-order JSON to `url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestSettings {
    #[serde(flatten)]
    pub common: Common,
    /// Environment variable holding the bearer token (unset: no Authorization header).
    pub token_env: Option<String>,
    /// File holding the token instead (e.g. a mounted secret).
    pub token_file: Option<String>,
    /// URL that lists the backend's orders for an idempotency key (`{key}` is
    /// replaced, URL-encoded). Used before re-posting after a timeout, a 5xx or
    /// a crash, so an order that did land is not created twice.
    pub lookup_url: Option<String>,
}

impl RestSettings {
    /// The rules of `rest` beyond the shared ones.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        if let Some(l) = &self.lookup_url {
            match reqwest::Url::parse(&l.replace("{key}", "k")) {
                Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && l.contains("{key}") => {
                }
                _ => push(
                    &mut out,
                    "lookup_url",
                    format!(
                        "{l:?} must be an http(s) URL containing {{key}}, e.g. \
                         \"http://cmms/workorders?idempotency_key={{key}}\""
                    ),
                ),
            }
        }
        secret(&mut out, "token", &self.token_env, &self.token_file, false);
        out
    }
}

/// `kind = "webhook"`: POST a body rendered from a template.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    #[serde(flatten)]
    pub common: Common,
    /// Environment variable holding a bearer token (unset: no Authorization header).
    pub token_env: Option<String>,
    /// File holding the token instead.
    pub token_file: Option<String>,
    /// The request body as a template over the work order (minijinja), or a file holding it.
    pub template: Option<String>,
    pub template_file: Option<String>,
    /// The body's content type.
    pub content_type: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            common: Common::default(),
            token_env: None,
            token_file: None,
            template: None,
            template_file: None,
            content_type: "application/json".into(),
        }
    }
}

impl WebhookSettings {
    /// One template, inline or from a file; an inline one must parse. Whether
    /// it reads only fields a work order has is checked by the adapter.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        match (&self.template, &self.template_file) {
            (Some(t), None) => {
                let mut env = minijinja::Environment::new();
                if let Err(e) = env.add_template_owned("body", t.as_str()) {
                    push(&mut out, "template", e.to_string());
                }
            }
            (None, Some(path)) if path.trim().is_empty() => {
                push(&mut out, "template_file", "is empty: name the file holding the template")
            }
            (None, Some(_)) => {}
            _ => push(&mut out, "template", "set template (inline) or template_file, one of them"),
        }
        if self.content_type.trim().is_empty() {
            push(
                &mut out,
                "content_type",
                "must name the body's content type, e.g. \"application/json\"",
            );
        }
        secret(&mut out, "token", &self.token_env, &self.token_file, false);
        out
    }
}

/// `kind = "maintainx"`: MaintainX REST API v1.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaintainxSettings {
    #[serde(flatten)]
    pub common: Common,
    /// Environment variable holding the API key (required, or `token_file`).
    pub token_env: Option<String>,
    /// File holding the API key instead.
    pub token_file: Option<String>,
    /// The organization of a multi-organization API key.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub organization_id: Option<i64>,
    /// Upload each order's evidence chart as an attachment.
    pub attachments: bool,
}

impl Default for MaintainxSettings {
    fn default() -> Self {
        Self {
            common: Common::default(),
            token_env: None,
            token_file: None,
            organization_id: None,
            attachments: true,
        }
    }
}

impl MaintainxSettings {
    /// The API key is required.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        secret(&mut out, "token", &self.token_env, &self.token_file, true);
        out
    }
}

/// `kind = "upkeep"`: UpKeep API v2 (session-token login).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpkeepSettings {
    #[serde(flatten)]
    pub common: Common,
    /// The login e-mail, from an environment variable or a file. The password, from an environment variable or a file.
    #[serde(flatten)]
    pub login: Login,
    /// Fixed fields added to every order created (never the description).
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl UpkeepSettings {
    /// Integer priorities; the login is required.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        for (level, value) in &self.common.priorities {
            if value.trim().parse::<i64>().is_err() {
                push(
                    &mut out,
                    format!("priorities.{level}"),
                    format!(
                        "UpKeep priorities are integers, 0 (lowest) to 3 (high), not {value:?}"
                    ),
                );
            }
        }
        self.login.check(&mut out, true);
        out
    }
}

/// `kind = "limble"`: Limble CMMS API v2 (basic auth, meta fields).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimbleSettings {
    #[serde(flatten)]
    pub common: Common,
    /// The API client id (Settings › Configuration › API Settings).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub client_id: Option<String>,
    /// The client secret, from an environment variable or a file.
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<String>,
    /// Fixed fields added to every task created; `locationID` is the default location.
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Upload each order's evidence chart as the task's image.
    pub attachments: bool,
}

impl Default for LimbleSettings {
    fn default() -> Self {
        Self {
            common: Common::default(),
            client_id: None,
            client_secret_env: None,
            client_secret_file: None,
            fields: BTreeMap::new(),
            attachments: true,
        }
    }
}

impl LimbleSettings {
    /// The client id and secret, a location for every task, integer priorities.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        if self.client_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
            push(
                &mut out,
                "client_id",
                "Limble needs the API client id (Settings › Configuration › API Settings)",
            );
        }
        if self.common.locations.is_empty() && !self.fields.contains_key("locationID") {
            push(
                &mut out,
                "locations",
                "every Limble task needs a locationID: map location paths to Limble location ids \
                 in backend.locations, or set a default in backend.fields.locationID",
            );
        }
        for (level, value) in &self.common.priorities {
            if value.trim().parse::<i64>().is_err() {
                push(
                    &mut out,
                    format!("priorities.{level}"),
                    format!(
                        "Limble priorities are the tenant's integer priority levels, not {value:?}"
                    ),
                );
            }
        }
        secret(&mut out, "client_secret", &self.client_secret_env, &self.client_secret_file, true);
        out
    }
}

/// `kind = "maximo"`: IBM Maximo (REST/JSON API, `externalrefid`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaximoSettings {
    #[serde(flatten)]
    pub common: Common,
    /// Environment variable holding an API key (the `apikey` header).
    pub token_env: Option<String>,
    /// File holding the API key instead.
    pub token_file: Option<String>,
    /// Without an API key: a user name and password for native authentication (`maxauth`).
    #[serde(flatten)]
    pub login: Login,
    /// The site of the assets (e.g. `BEDFORD`).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub site_id: Option<String>,
    /// Fixed fields added to every order created (e.g. `worktype = "EM"`; never `externalrefid`).
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Upload each order's evidence chart as a DOCLINKS attachment.
    pub attachments: bool,
}

impl Default for MaximoSettings {
    fn default() -> Self {
        Self {
            common: Common::default(),
            token_env: None,
            token_file: None,
            login: Login::default(),
            site_id: None,
            fields: BTreeMap::new(),
            attachments: true,
        }
    }
}

impl MaximoSettings {
    /// An API key or a user name and password, the site, integer priorities.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        secret(&mut out, "token", &self.token_env, &self.token_file, false);
        self.login.check(&mut out, false);
        let login = self.login.configured();
        if !configured(&self.token_env, &self.token_file) && !login {
            push(
                &mut out,
                "token_env",
                "set an API key (token_env or token_file), or a user name and password \
                 (username_env/username_file, password_env/password_file) for native \
                 authentication",
            );
        }
        if self.site_id.as_deref().is_none_or(|s| s.trim().is_empty()) {
            push(&mut out, "site_id", "Maximo needs the site of the assets (e.g. BEDFORD)");
        }
        for (p, v) in &self.common.priorities {
            if v.trim().parse::<i64>().is_err() {
                push(
                    &mut out,
                    format!("priorities.{p}"),
                    format!("{v:?}: Maximo's wopriority is an integer"),
                );
            }
        }
        out
    }
}

/// `kind = "sap"`: SAP S/4HANA maintenance notifications (OData V2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SapSettings {
    #[serde(flatten)]
    pub common: Common,
    /// The communication user's name and password, each from an environment variable or a file.
    #[serde(flatten)]
    pub login: Login,
    /// Fixed fields added to every notification (e.g. `NotificationType = "M2"`).
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Upload each order's evidence chart through `API_CV_ATTACHMENT_SRV`.
    pub attachments: bool,
}

impl Default for SapSettings {
    fn default() -> Self {
        Self {
            common: Common::default(),
            login: Login::default(),
            fields: BTreeMap::new(),
            attachments: true,
        }
    }
}

impl SapSettings {
    /// `url` is the service root; the user name and password are required.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        let root = self.common.url.trim_end_matches('/');
        let has_parent = root.rsplit_once('/').is_some_and(|(parent, _)| parent.contains("://"));
        if reqwest::Url::parse(root).is_ok() && !has_parent {
            push(
                &mut out,
                "url",
                "give the service root, e.g. https://host/sap/opu/odata/sap/API_MAINTNOTIFICATION",
            );
        }
        self.login.check(&mut out, true);
        out
    }
}

/// `kind = "dynamics"`: Microsoft Dynamics 365 Field Service (OAuth2 client credentials).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamicsSettings {
    #[serde(flatten)]
    pub common: Common,
    /// The OAuth 2.0 token endpoint (Entra ID), e.g.
    /// `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    pub token_url: Option<String>,
    /// The scope asked for (default `<org origin>/.default`).
    pub scope: Option<String>,
    /// The application (client) id; its secret from an environment variable or a file.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub client_id: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_secret_file: Option<String>,
    /// Fixed fields added to every order
    /// (e.g. `"msdyn_serviceaccount@odata.bind" = "/accounts(…)"`).
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Attach each order's evidence chart as a note.
    pub attachments: bool,
}

impl Default for DynamicsSettings {
    fn default() -> Self {
        Self {
            common: Common::default(),
            token_url: None,
            scope: None,
            client_id: None,
            client_secret_env: None,
            client_secret_file: None,
            fields: BTreeMap::new(),
            attachments: true,
        }
    }
}

impl DynamicsSettings {
    /// The token endpoint, client id and secret are required.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        match self.token_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            None => {
                push(&mut out, "token_url", "the OAuth 2.0 token endpoint (Entra ID) is required")
            }
            Some(u) => match reqwest::Url::parse(u) {
                Ok(p) if p.scheme() == "http" || p.scheme() == "https" => {}
                _ => push(&mut out, "token_url", format!("{u:?} is not an http(s) URL")),
            },
        }
        if self.client_id.as_deref().is_none_or(|c| c.trim().is_empty()) {
            push(&mut out, "client_id", "the application (client) id is required");
        }
        secret(&mut out, "client_secret", &self.client_secret_env, &self.client_secret_file, true);
        out
    }
}

/// `kind = "servicenow"`: ServiceNow Table API (`correlation_id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicenowSettings {
    #[serde(flatten)]
    pub common: Common,
    /// User name and password, each from an environment variable or a file.
    #[serde(flatten)]
    pub login: Login,
    /// The table orders go to (`incident`, the default; `wm_order`).
    pub table: Option<String>,
    /// Fixed fields added to every record created (never `correlation_id`).
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Upload each order's evidence chart through the Attachment API.
    pub attachments: bool,
}

impl Default for ServicenowSettings {
    fn default() -> Self {
        Self {
            common: Common::default(),
            login: Login::default(),
            table: None,
            fields: BTreeMap::new(),
            attachments: true,
        }
    }
}

impl ServicenowSettings {
    /// A table name, "impact,urgency" priorities, the user name and password.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Found::new();
        if let Some(table) = self.table.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                push(
                    &mut out,
                    "table",
                    format!("{table:?} is not a ServiceNow table name (letters, digits and _)"),
                );
            }
        }
        for (level, value) in &self.common.priorities {
            if impact_urgency(value).is_none() {
                push(
                    &mut out,
                    format!("priorities.{level}"),
                    format!(
                        "ServiceNow priorities are \"impact,urgency\", each 1 (high) to 3 \
                        (low), not {value:?}"
                    ),
                );
            }
        }
        self.login.check(&mut out, true);
        out
    }
}

/// A ServiceNow priority value, `"impact,urgency"`, each 1 (high) to 3 (low).
pub fn impact_urgency(s: &str) -> Option<(u8, u8)> {
    let (i, u) = s.split_once(',')?;
    let level = |x: &str| x.trim().parse::<u8>().ok().filter(|v| (1..=3).contains(v));
    Some((level(i)?, level(u)?))
}

/// A user name (or e-mail) and a password, each from an environment variable
/// or a file (`username_env`/`username_file`, `password_env`/`password_file`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Login {
    pub username_env: Option<String>,
    pub username_file: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

impl Login {
    /// Adds the login's problems to `out`; with `required`, both parts must be set.
    fn check(&self, out: &mut Found, required: bool) {
        secret(out, "username", &self.username_env, &self.username_file, required);
        secret(out, "password", &self.password_env, &self.password_file, required);
    }

    /// Whether both parts are configured.
    fn configured(&self) -> bool {
        configured(&self.username_env, &self.username_file)
            && configured(&self.password_env, &self.password_file)
    }
}

/// Whether a secret is named by its `<key>_env` or `<key>_file`.
fn configured(env: &Option<String>, file: &Option<String>) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    set(env) || set(file)
}

/// A secret named by `<key>_env` or `<key>_file`: at most one of them, neither
/// blank; one of them when `required`. Whether the variable is actually set is
/// the adapter's to find out.
fn secret(out: &mut Found, key: &str, env: &Option<String>, file: &Option<String>, required: bool) {
    if env.as_deref().is_some_and(|s| s.trim().is_empty()) {
        push(out, format!("{key}_env"), "is empty: name the environment variable holding it");
    }
    if file.as_deref().is_some_and(|s| s.trim().is_empty()) {
        push(out, format!("{key}_file"), "is empty: name the file holding it");
    }
    let env_set = env.as_deref().is_some_and(|s| !s.trim().is_empty());
    let file_set = file.as_deref().is_some_and(|s| !s.trim().is_empty());
    if env_set && file_set {
        push(out, format!("{key}_file"), format!("set {key}_env or {key}_file, not both"));
    } else if required && !env_set && !file_set {
        push(
            out,
            format!("{key}_env"),
            format!("set {key}_env (an environment variable) or {key}_file (a file) holding it"),
        );
    }
}

/// The maintenance backend: `kind` and that kind's settings, in one table.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Backend {
    /// POST the canonical work-order JSON to a URL (hums receivers, webhooks that upsert by key).
    Rest(RestSettings),
    /// POST a body rendered from a template (any system with a webhook).
    Webhook(WebhookSettings),
    /// MaintainX REST API v1.
    Maintainx(MaintainxSettings),
    /// UpKeep API v2 (session-token login).
    Upkeep(UpkeepSettings),
    /// Limble CMMS API v2 (basic auth, meta fields).
    Limble(LimbleSettings),
    /// IBM Maximo (OSLC JSON, `externalrefid`).
    Maximo(MaximoSettings),
    /// SAP S/4HANA maintenance notifications (OData V2, CSRF round trip).
    Sap(SapSettings),
    /// Microsoft Dynamics 365 Field Service (OAuth2 client credentials).
    Dynamics(DynamicsSettings),
    /// ServiceNow Table API (`correlation_id`).
    Servicenow(ServicenowSettings),
}

impl Default for Backend {
    /// `rest` to the hums receiver at [`DEFAULT_URL`].
    fn default() -> Self {
        Backend::Rest(RestSettings::default())
    }
}

impl Backend {
    /// The keys every kind shares.
    pub fn common(&self) -> &Common {
        match self {
            Backend::Rest(s) => &s.common,
            Backend::Webhook(s) => &s.common,
            Backend::Maintainx(s) => &s.common,
            Backend::Upkeep(s) => &s.common,
            Backend::Limble(s) => &s.common,
            Backend::Maximo(s) => &s.common,
            Backend::Sap(s) => &s.common,
            Backend::Dynamics(s) => &s.common,
            Backend::Servicenow(s) => &s.common,
        }
    }

    /// The keys every kind shares, to change (tests, the demo).
    pub fn common_mut(&mut self) -> &mut Common {
        match self {
            Backend::Rest(s) => &mut s.common,
            Backend::Webhook(s) => &mut s.common,
            Backend::Maintainx(s) => &mut s.common,
            Backend::Upkeep(s) => &mut s.common,
            Backend::Limble(s) => &mut s.common,
            Backend::Maximo(s) => &mut s.common,
            Backend::Sap(s) => &mut s.common,
            Backend::Dynamics(s) => &mut s.common,
            Backend::Servicenow(s) => &mut s.common,
        }
    }

    /// The kind as written in `kind = "…"`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Rest(_) => "rest",
            Backend::Webhook(_) => "webhook",
            Backend::Maintainx(_) => "maintainx",
            Backend::Upkeep(_) => "upkeep",
            Backend::Limble(_) => "limble",
            Backend::Maximo(_) => "maximo",
            Backend::Sap(_) => "sap",
            Backend::Dynamics(_) => "dynamics",
            Backend::Servicenow(_) => "servicenow",
        }
    }

    /// Every problem the configuration alone shows: the shared rules, then
    /// the kind's own. Each is a key path (`backend.site_id`) and what to set.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = self.common().check();
        out.extend(match self {
            Backend::Rest(s) => s.check(),
            Backend::Webhook(s) => s.check(),
            Backend::Maintainx(s) => s.check(),
            Backend::Upkeep(s) => s.check(),
            Backend::Limble(s) => s.check(),
            Backend::Maximo(s) => s.check(),
            Backend::Sap(s) => s.check(),
            Backend::Dynamics(s) => s.check(),
            Backend::Servicenow(s) => s.check(),
        });
        out
    }
}

/// The values of `kind`; `rest` when the table has none.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Rest,
    Webhook,
    Maintainx,
    Upkeep,
    Limble,
    Maximo,
    Sap,
    Dynamics,
    Servicenow,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rest => "rest",
            Kind::Webhook => "webhook",
            Kind::Maintainx => "maintainx",
            Kind::Upkeep => "upkeep",
            Kind::Limble => "limble",
            Kind::Maximo => "maximo",
            Kind::Sap => "sap",
            Kind::Dynamics => "dynamics",
            Kind::Servicenow => "servicenow",
        }
    }

    /// The kind's settings from the rest of the table.
    fn settings(self, table: serde_json::Value) -> Result<Backend, String> {
        let kind = self.name();
        // The shared keys first: inside the flattened part serde loses the
        // key of a wrong value, read on their own they keep it.
        if let Err(e) = serde_path_to_error::deserialize::<_, Common>(&table) {
            return Err(explain(kind, e));
        }
        Ok(match self {
            Kind::Rest => Backend::Rest(settings(kind, table)?),
            Kind::Webhook => Backend::Webhook(settings(kind, table)?),
            Kind::Maintainx => Backend::Maintainx(settings(kind, table)?),
            Kind::Upkeep => Backend::Upkeep(settings(kind, table)?),
            Kind::Limble => Backend::Limble(settings(kind, table)?),
            Kind::Maximo => Backend::Maximo(settings(kind, table)?),
            Kind::Sap => Backend::Sap(settings(kind, table)?),
            Kind::Dynamics => Backend::Dynamics(settings(kind, table)?),
            Kind::Servicenow => Backend::Servicenow(settings(kind, table)?),
        })
    }
}

fn settings<T: DeserializeOwned>(kind: &str, table: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(table).map_err(|e| explain(kind, e))
}

/// A settings error as `at \`key\`: message`, which `config::load` turns into
/// the issue's key path (`backend.key`); a key the kind does not take says so.
fn explain(kind: &str, e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let message = e.into_inner().to_string();
    if let Some(key) = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        return format!(
            "at `{key}`: unknown key for kind = {kind:?}: remove it, or check its spelling and \
             which kind takes it in configs/reference.toml"
        );
    }
    if path.is_empty() || path == "." {
        message
    } else {
        format!("at `{path}`: {message}")
    }
}

/// Reads the table once: `kind` through the deserializer (so a wrong value is
/// reported at `backend.kind` with the allowed values), every other key into
/// a buffer, then the kind's settings from that buffer.
impl<'de> Deserialize<'de> for Backend {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BackendVisitor)
    }
}

struct BackendVisitor;

impl<'de> Visitor<'de> for BackendVisitor {
    type Value = Backend;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of backend settings, e.g. [backend] kind = \"rest\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Backend, A::Error> {
        let mut kind = Kind::Rest;
        let mut table = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "kind" {
                kind = map.next_value()?;
            } else {
                let value: serde_json::Value = map.next_value()?;
                table.insert(key, value);
            }
        }
        kind.settings(serde_json::Value::Object(table)).map_err(de::Error::custom)
    }
}

/// Text values as config-rs read them before the backend table was buffered:
/// a number or boolean where text is expected (`"1" = 3` in `priorities`, an
/// environment override such as `HUMS__BACKEND__CLIENT_ID=1234`) is its text.
mod lenient {
    use serde::de::{self, Deserialize, Deserializer, Visitor};
    use std::collections::BTreeMap;
    use std::fmt;

    struct Text(String);

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct TextVisitor;
            impl<'de> Visitor<'de> for TextVisitor {
                type Value = Text;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<Text, E> {
                    Ok(Text(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
                fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                    Ok(Text(v.to_string()))
                }
            }
            d.deserialize_any(TextVisitor)
        }
    }

    pub fn string_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        Ok(BTreeMap::<String, Text>::deserialize(d)?.into_iter().map(|(k, v)| (k, v.0)).collect())
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
    }

    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<Text>::deserialize(d)? {
            None => Ok(None),
            Some(Text(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("expected an integer, found {s:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Backend, String> {
        let table = text.parse::<toml::Table>().map_err(|e| e.to_string())?;
        let value = serde_json::to_value(table).map_err(|e| e.to_string())?;
        Backend::deserialize(value).map_err(|e| e.to_string())
    }

    #[test]
    fn kind_defaults_to_rest_and_keys_stay_flat() {
        let b = parse("url = \"http://cmms/wo\"\ntimeout = \"3s\"").unwrap();
        assert_eq!(b.name(), "rest");
        assert_eq!(b.common().url, "http://cmms/wo");
        assert_eq!(b.common().timeout, Duration::from_secs(3));
        let b = parse(
            "kind = \"maximo\"\nurl = \"https://h/maximo\"\nsite_id = \
            \"BEDFORD\"\ntoken_env = \"K\"",
        )
        .unwrap();
        let Backend::Maximo(m) = &b else { panic!("{b:?}") };
        assert_eq!(m.site_id.as_deref(), Some("BEDFORD"));
        assert!(m.attachments, "attachments default on");
        assert!(b.check().is_empty(), "{:?}", b.check());
    }

    #[test]
    fn keys_of_another_kind_are_refused_by_name() {
        let e = parse("kind = \"servicenow\"\nsite_id = \"BEDFORD\"").unwrap_err();
        assert!(e.starts_with("at `site_id`: unknown key for kind = \"servicenow\""), "{e}");
        let e = parse("kind = \"servicenow\"\ntimeout = 5").unwrap_err();
        assert!(e.starts_with("at `timeout`:"), "{e}");
    }

    #[test]
    fn numbers_are_text_where_text_is_expected() {
        let b = parse("kind = \"upkeep\"\npriorities = { \"1\" = 3 }").unwrap();
        assert_eq!(b.common().priorities.get("1").map(String::as_str), Some("3"));
        let b = parse("kind = \"maintainx\"\norganization_id = \"42\"").unwrap();
        let Backend::Maintainx(m) = b else { panic!() };
        assert_eq!(m.organization_id, Some(42));
    }

    #[test]
    fn vendor_rules_name_their_keys() {
        let b = Backend::Maximo(MaximoSettings {
            token_env: Some("K".into()),
            ..MaximoSettings::default()
        });
        assert!(b.check().iter().any(|(k, _)| k == "backend.site_id"), "{:?}", b.check());
        let b = Backend::Sap(SapSettings {
            common: Common { url: "https://host".into(), ..Common::default() },
            ..SapSettings::default()
        });
        let keys: Vec<String> = b.check().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["backend.url", "backend.username_env", "backend.password_env"]);
        assert_eq!(impact_urgency(" 3 , 1 "), Some((3, 1)));
    }
}
