//! A webhook for any system that takes an HTTP POST: the request body is a
//! user template (minijinja) over the work order's fields, so the order can
//! be shaped to what the receiving system expects. Every revision is posted;
//! the template sees `event` and `revision` and can tell a raise from an
//! update. Webhooks cannot be asked what they hold, so nothing is looked up.
//!
//! In the template: every work-order field (`title`, `asset.id`,
//! `evidence[0].value`, …), plus `text` (the order as text), `comment` (a
//! revision as text), `backend_priority` (the `priorities` mapping) and
//! `location_id`. `|tojson` quotes a value for a JSON body.

use super::http::{check, http_client, transport, DeliveryError};
use super::{Adapter, BackendError, Found, RemoteStatus};
use crate::config::backend::WebhookSettings;
use crate::workorders::WorkOrder;
use std::time::Duration;

/// The webhook backend.
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    env: minijinja::Environment<'static>,
    cfg: WebhookSettings,
    auth_hold: Duration,
}

const BODY: &str = "body";

impl Webhook {
    /// Compiles the template and checks it renders a sample order (as JSON
    /// when the content type says so).
    pub fn new(cfg: &WebhookSettings) -> Result<Self, BackendError> {
        super::refuse(cfg.check())?;
        let err = |key: &str, message: String| BackendError::Config { key: key.into(), message };
        let source = match (&cfg.template, &cfg.template_file) {
            (Some(t), None) => t.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| err("template_file", format!("cannot read {path}: {e}")))?,
            _ => {
                return Err(err(
                    "template",
                    "set template (inline) or template_file, one of them".into(),
                ))
            }
        };
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_template_owned(BODY, source).map_err(|e| err("template", e.to_string()))?;
        let hook = Self {
            client: http_client(cfg.common.timeout, false)?,
            url: cfg.common.url.clone(),
            token: super::secret(&cfg.token_env, &cfg.token_file, "token")?,
            env,
            cfg: cfg.clone(),
            auth_hold: cfg.common.retry_max,
        };
        // A misspelt field would render as nothing: every name the template
        // reads must be one the work order has.
        let sample =
            sample_order().map_err(|e| err("template", format!("the sample order: {e}")))?;
        let context = hook.context(&sample).map_err(|e| err("template", e))?;
        let template = hook.env.get_template(BODY).map_err(|e| err("template", e.to_string()))?;
        let mut unknown: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| {
                let mut v = &context;
                path.split('.').any(|k| match v.get(k) {
                    Some(next) => {
                        v = next;
                        false
                    }
                    None => v.is_object() || v.is_null(),
                })
            })
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            return Err(err(
                "template",
                format!("unknown work-order field(s): {}", unknown.join(", ")),
            ));
        }
        let sample = hook.render(&sample).map_err(|e| err("template", e))?;
        if cfg.content_type.contains("json") {
            serde_json::from_str::<serde_json::Value>(&sample).map_err(|e| {
                err(
                    "template",
                    format!("renders a body that is not JSON ({e}); quote values with |tojson"),
                )
            })?;
        }
        Ok(hook)
    }

    /// What a template sees of an order.
    fn context(&self, wo: &WorkOrder) -> Result<serde_json::Value, String> {
        let mut ctx = serde_json::to_value(wo).map_err(|e| e.to_string())?;
        ctx["text"] = super::text(wo).into();
        ctx["comment"] = super::comment(wo).into();
        ctx["backend_priority"] =
            super::priority(&self.cfg.common, wo.priority, ["1", "2", "3", "4"]).into();
        ctx["location_id"] = super::location(&self.cfg.common, wo).into();
        Ok(ctx)
    }

    /// The request body for an order.
    pub fn render(&self, wo: &WorkOrder) -> Result<String, String> {
        let ctx = self.context(wo)?;
        let template = self.env.get_template(BODY).map_err(|e| e.to_string())?;
        template.render(minijinja::value::Serde(&ctx)).map_err(|e| e.to_string())
    }

    async fn post(&self, wo: &WorkOrder) -> Result<(), DeliveryError> {
        let body = self.render(wo).map_err(|e| DeliveryError::Permanent {
            status: reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            body: format!("the webhook template cannot render this order: {e}"),
        })?;
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", &self.cfg.content_type)
            .header("Idempotency-Key", format!("{}:r{}", wo.idempotency_key, wo.revision))
            .body(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        check(req.send().await.map_err(transport)?, self.auth_hold).await.map(|_| ())
    }
}

impl Adapter for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn looks_up_first(&self) -> bool {
        false
    }

    async fn find(&self, _wo: &WorkOrder) -> Result<Option<Found>, DeliveryError> {
        Ok(None)
    }

    async fn create(&self, wo: &WorkOrder) -> Result<Option<String>, DeliveryError> {
        self.post(wo).await.map(|()| None)
    }

    async fn update(&self, wo: &WorkOrder, _remote: &str) -> Result<(), DeliveryError> {
        self.post(wo).await
    }

    async fn attach(&self, _remote: &str, _name: &str, _png: &[u8]) -> Result<bool, DeliveryError> {
        Ok(false)
    }

    async fn status(&self, _remote: &str) -> Result<Option<RemoteStatus>, DeliveryError> {
        Ok(None)
    }
}

/// A complete order to try a template on.
fn sample_order() -> serde_json::Result<WorkOrder> {
    serde_json::from_value(serde_json::json!({
        "idempotency_key": "gw:pump-01:pump.bearing_wear:1", "event": "raised", "revision": 1,
        "kind": "condition", "failure_mode": "pump.bearing_wear", "title": "Pump 1: \"bearing\" \
            wear",
        "description": "line 1\nline 2", "priority": 2, "priority_label": "high",
        "severity": "alarm",
        "asset": {
            "id": "pump-01", "name": "Pump 1", "class": "pump", "backend_id": "A-1",
            "location": ["Site", "Hall"]
        },
        "evidence": [{ "channel": "vib_de", "feature": "mean", "value": 7.3, "limit": 4.5,
                       "unit": "mm/s", "zone": "D", "since": "2026-01-01T00:00:00Z",
                       "note": "above alarm limit" }],
        "cause": "wear", "actions": ["a"],
        "parts": [{ "sku": "S", "description": "d", "qty": 1.0 }],
        "skills": ["m"], "safety": ["s"], "estimated_hours": 1.0,
        "detected_at": "2026-01-01T00:00:00Z", "due_by": null, "gateway_id": "gw"
    }))
}
