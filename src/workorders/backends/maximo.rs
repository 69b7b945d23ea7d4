//! IBM Maximo Manage through its REST/JSON API and the work-order object
//! structure `MXAPIWO`: `{url}/api/os/mxapiwo`, where `url` is the context
//! root (e.g. `https://host/maximo`). Facts from IBM's Maximo REST API guide
//! (ibm-maximo-dev.github.io/maximo-restapi-documentation) unless marked:
//! - auth: an API key in the `apikey` header (the `/api` route) [V]; without
//!   one, native authentication `maxauth: base64(user:password)` [V];
//! - create: `POST …/mxapiwo?lean=1` answers `201` with the record's URI in
//!   `Location` (and the record in the body when `properties` is sent) [V];
//! - the order's key goes into `externalrefid` [K: a WORKORDER attribute; its
//!   length must hold the key (about 60 characters), widen it in Database
//!   Configuration if the site's is shorter];
//! - look-up: `oslc.where` on site, asset and the open statuses, paged with
//!   `oslc.pageSize` and `responseInfo.nextPage.href` [V]; the statuses are the
//!   internal values, site-defined synonyms are not matched [K]; without an
//!   asset number, `externalrefid="<gateway:asset:failure mode>:%"` (a `%`
//!   makes Maximo compare with LIKE) narrows the search [K];
//! - update: `POST {record}?lean=1` with `x-method-override: PATCH` and
//!   `patchtype: MERGE`, so the comment is added as a new `worklog` row
//!   instead of replacing the log [V/K];
//! - attachments: `POST {record}/doclinks` with `slug` (the file name),
//!   `x-document-meta: FILE/Attachments` and the file's Content-Type; the
//!   object structure must include DOCLINKS [V];
//! - `wopriority` is an integer whose meaning each site defines [K]: the
//!   `priorities` map must give integers; `worktype` is `PM` for preventive
//!   work, else `CM` (a `fields` entry overrides it, e.g. `EM`).
//!
//! The remote id is the record's rest id, the last segment of its href (e.g.
//! `_QkVERk9SRC8xMDAx`); record URLs are rebuilt from the configured `url`, so
//! hrefs naming an internal host still work. `fields` are merged over the
//! created body (they may override anything but `externalrefid`).

use super::http::{check, http_client, transport, urlencode, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::common::types::WorkKind;
use crate::config::backend::MaximoSettings;
use crate::workorders::WorkOrder;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use serde_json::{json, Value};
use std::time::Duration;

/// Records per look-up page.
const PAGE: usize = 100;
/// Pages of open orders read per look-up at most.
const MAX_PAGES: usize = 20;
/// Internal values of the statuses an order is open in.
const OPEN: &str = r#"["WAPPR","APPR","INPRG","WMATL","WSCH"]"#;
/// Maximo's `description` (and a work log's) holds 100 characters.
const DESCRIPTION: usize = 100;

/// Work orders in IBM Maximo (object structure MXAPIWO).
pub struct Maximo {
    client: reqwest::Client,
    /// The collection, `{url}/api/os/mxapiwo`.
    collection: String,
    /// The context root (`{url}/`) that relative hrefs are resolved against.
    root: Url,
    /// `apikey` or `maxauth`, and its (sensitive) value.
    auth: (&'static str, HeaderValue),
    site: String,
    cfg: MaximoSettings,
    auth_hold: Duration,
}

fn config_error(key: &str, message: impl Into<String>) -> BackendError {
    BackendError::Config { key: key.into(), message: message.into() }
}

/// The rest id at the end of a record's href (absolute or relative).
fn rest_id(href: &str) -> Option<String> {
    let path = href.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
    path.rsplit('/').next().filter(|id| !id.is_empty() && !id.contains(':')).map(str::to_string)
}

/// A value inside a double-quoted `oslc.where` literal.
fn quoted(v: &str) -> String {
    v.replace('"', "")
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A file name as a header value: printable ASCII only.
fn header_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '_' }).collect()
}

impl Maximo {
    /// Reads the API key (or user name and password) and checks the site and priorities.
    pub fn new(cfg: &MaximoSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        let url = cfg.common.url.trim_end_matches('/');
        let root = Url::parse(&format!("{url}/"))
            .map_err(|e| config_error("url", format!("not a URL: {e}")))?;
        let (name, credential, key) = match super::secret(&cfg.token_env, &cfg.token_file, "token")?
        {
            Some(api_key) => ("apikey", api_key, "token_env"),
            None => {
                let user =
                    super::secret(&cfg.login.username_env, &cfg.login.username_file, "username")?;
                let password =
                    super::secret(&cfg.login.password_env, &cfg.login.password_file, "password")?;
                match (user, password) {
                    (Some(u), Some(p)) => (
                        "maxauth",
                        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")),
                        "username_env",
                    ),
                    _ => return Err(config_error(
                        "token_env",
                        "set an API key (token_env or token_file), or a user name and password \
                             (username_env/username_file, password_env/password_file) for native \
                             authentication",
                    )),
                }
            }
        };
        let mut value = HeaderValue::from_str(&credential).map_err(|_| {
            config_error(key, "the credential holds characters an HTTP header cannot carry")
        })?;
        value.set_sensitive(true);
        let site = cfg
            .site_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                config_error("site_id", "Maximo needs the site of the assets (e.g. BEDFORD)")
            })?
            .to_string();
        Ok(Self {
            client: http_client(cfg.common.timeout, false)?,
            collection: format!("{url}/api/os/mxapiwo"),
            root,
            auth: (name, value),
            site,
            cfg: cfg.clone(),
            auth_hold: cfg.common.retry_max,
        })
    }

    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header(self.auth.0, self.auth.1.clone())
            .header("accept", "application/json")
    }

    /// The URL of the record with this rest id.
    fn record(&self, id: &str) -> String {
        format!("{}/{id}", self.collection)
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value, DeliveryError> {
        let resp = check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        resp.json().await.map_err(|e| DeliveryError::Transient {
            reason: format!("Maximo answer is not JSON: {e}"),
            retry_after: None,
            maybe_delivered: true,
        })
    }

    /// The order's `wopriority` (validated as an integer in `new`).
    fn wopriority(&self, wo: &WorkOrder) -> Value {
        let p = super::priority(&self.cfg.common, wo.priority, ["1", "2", "3", "4"]);
        p.trim().parse::<i64>().map_or_else(|_| json!(p), |n| json!(n))
    }

    fn body(&self, wo: &WorkOrder) -> Value {
        let mut b = json!({
            "description": truncate(&wo.title, DESCRIPTION),
            "description_longdescription": super::text(wo),
            "siteid": self.site,
            "wopriority": self.wopriority(wo),
            "worktype": if wo.kind == WorkKind::Preventive { "PM" } else { "CM" },
            "externalrefid": super::reference(wo),
        });
        if let Some(asset) = wo.asset.backend_id.as_deref().filter(|a| !a.is_empty()) {
            b["assetnum"] = json!(asset);
        }
        if let Some(loc) = super::location(&self.cfg.common, wo) {
            b["location"] = json!(loc);
        }
        if let Some(o) = b.as_object_mut() {
            for (k, v) in self.cfg.fields.iter().filter(|(k, _)| k.as_str() != "externalrefid") {
                o.insert(k.clone(), v.clone());
            }
        }
        b
    }

    /// The first page of the open orders that may be this order or an earlier episode of its fault.
    fn open_orders(&self, wo: &WorkOrder) -> String {
        let mut filter = format!(r#"siteid="{}""#, quoted(&self.site));
        match wo.asset.backend_id.as_deref().filter(|a| !a.is_empty()) {
            Some(asset) => filter.push_str(&format!(r#" and assetnum="{}""#, quoted(asset))),
            None => {
                let key = super::reference(wo);
                let fault = key.rsplit_once(':').map_or(key, |(p, _)| p);
                filter.push_str(&format!(r#" and externalrefid="{}:%""#, quoted(fault)));
            }
        }
        filter.push_str(&format!(" and status in {OPEN}"));
        format!(
            "{}?lean=1&oslc.select=wonum,externalrefid,status,href\
             &oslc.where={}&oslc.pageSize={PAGE}",
            self.collection,
            urlencode(&filter)
        )
    }
}

impl Adapter for Maximo {
    fn name(&self) -> &'static str {
        "maximo"
    }

    async fn find(&self, wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        let mut next = Some(self.open_orders(wo));
        let mut open = None;
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else { break };
            let page = self.json(self.request(Method::GET, &url)).await?;
            for m in page["member"].as_array().into_iter().flatten() {
                let (Some(r), Some(id)) =
                    (m["externalrefid"].as_str(), m["href"].as_str().and_then(rest_id))
                else {
                    continue;
                };
                if r == super::reference(wo) {
                    return Ok(Some(Found::Same(id)));
                }
                if open.is_none() && super::same_fault(r, wo) {
                    open = Some(Found::Open(id));
                }
            }
            next = page["responseInfo"]["nextPage"]["href"]
                .as_str()
                .and_then(|h| self.root.join(h).ok())
                .map(String::from)
                .filter(|n| *n != url);
        }
        Ok(open)
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        let req = self
            .request(Method::POST, &format!("{}?lean=1", self.collection))
            .header("properties", "*")
            .json(&self.body(wo));
        let resp = check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        let location =
            resp.headers().get("location").and_then(|v| v.to_str().ok()).and_then(rest_id);
        if location.is_some() {
            return Ok(location);
        }
        // Without a Location header, the record's href in the body; else a
        // later revision finds the order by its key.
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok(body["href"].as_str().and_then(rest_id))
    }

    async fn update(&self, wo: &WorkOrder, remote: &str) -> Result<(), DeliveryError> {
        let comment = super::comment(wo);
        let first = truncate(comment.lines().next().unwrap_or_default(), DESCRIPTION);
        let patch = json!({
            "wopriority": self.wopriority(wo),
            "worklog": [{
                "description": first, "description_longdescription": comment, "logtype": "WORK"
            }],
        });
        let req = self
            .request(Method::POST, &format!("{}?lean=1", self.record(remote)))
            .header("x-method-override", "PATCH")
            .header("patchtype", "MERGE")
            .json(&patch);
        check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        Ok(())
    }

    /// Whether the order's work log has this revision's entry.
    async fn landed(&self, wo: &WorkOrder, remote: &str) -> Result<bool, DeliveryError> {
        if remote.is_empty() {
            return Ok(false);
        }
        let url = format!(
            "{}?lean=1&oslc.select={}",
            self.record(remote),
            urlencode("worklog{description}")
        );
        let marker = format!("hums update (revision {}):", wo.revision);
        match self.json(self.request(Method::GET, &url)).await {
            Ok(v) => Ok(v["worklog"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|w| w["description"].as_str().is_some_and(|d| d.starts_with(&marker)))),
            // The object structure may not expose the work log: cannot tell.
            Err(DeliveryError::Permanent { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn attach(&self, remote: &str, name: &str, png: &[u8]) -> Result<bool, DeliveryError> {
        if !self.cfg.attachments {
            return Ok(false);
        }
        let req = self
            .request(Method::POST, &format!("{}/doclinks", self.record(remote)))
            .header("slug", header_safe(name))
            .header("x-document-meta", "FILE/Attachments")
            .header("content-type", "image/png")
            .body(png.to_vec());
        check(req.send().await.map_err(transport)?, self.auth_hold).await?;
        Ok(true)
    }

    async fn status(&self, remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        let url = format!("{}?lean=1&oslc.select=status,actfinish", self.record(remote));
        let v = self.json(self.request(Method::GET, &url)).await?;
        let finished = v["actfinish"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        Ok(Some(match v["status"].as_str().unwrap_or_default() {
            "COMP" | "CLOSE" => RemoteStatus::Done(finished),
            "CAN" => RemoteStatus::Cancelled,
            _ => RemoteStatus::Open,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::rest_id;

    #[test]
    fn rest_ids_come_from_hrefs() {
        assert_eq!(
            rest_id("http://h/maximo/api/os/mxapiwo/_QkVERk9SRC8xMDAx").as_deref(),
            Some("_QkVERk9SRC8xMDAx")
        );
        assert_eq!(
            rest_id("oslc/os/mxapiwo/_QkVERk9SRC8xMDAx?lean=1").as_deref(),
            Some("_QkVERk9SRC8xMDAx")
        );
        assert_eq!(
            rest_id("http://h/maximo/api/os/mxapiwo/_QkVERk9SRC8xMDAx/").as_deref(),
            Some("_QkVERk9SRC8xMDAx")
        );
        assert_eq!(rest_id(""), None);
    }
}
