//! `/metrics`: every counter, the labelled ones (per Modbus link and unit),
//! per-source connection state, per-asset scores and health, alarms by state,
//! the outbox by status and a histogram of evaluation latency, in the
//! OpenMetrics text format Prometheus scrapes (`prometheus-client`).

use super::view::View;
use crate::common::metrics::{Labels, Metrics, HELP, LABELLED_HELP};
use crate::store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// How long each evaluation takes, from 0.1 ms to about 3 s.
pub fn tick_latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
}

/// The registry `/metrics` encodes.
pub fn registry(
    metrics: Arc<Metrics>,
    view: watch::Receiver<Arc<View>>,
    store: Arc<Store>,
    tick: Histogram,
) -> Registry {
    let mut r = Registry::with_prefix("hums");
    r.register("tick_duration_seconds", "Time one evaluation of every asset takes", tick);
    r.register_collector(Box::new(Gathered { metrics, view, store }));
    r
}

/// The registry in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

/// Reads the counters, the view and the outbox at each scrape.
#[derive(Debug)]
struct Gathered {
    metrics: Arc<Metrics>,
    view: watch::Receiver<Arc<View>>,
    store: Arc<Store>,
}

/// Encodes one family of gauges.
fn gauges<N: EncodeGaugeValue + std::fmt::Debug>(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Labels, N)>,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in values {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Gathered {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snapshot = serde_json::to_value(self.metrics.snapshot()).unwrap_or_default();
        for (name, help) in HELP {
            let v = snapshot.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0);
            let m = e.encode_descriptor(name, help.trim(), None, MetricType::Counter)?;
            ConstCounter::new(v).encode(m)?;
        }
        let mut labelled: BTreeMap<&str, Vec<(Labels, u64)>> = BTreeMap::new();
        for (name, labels, v) in self.metrics.labelled.snapshot() {
            labelled.entry(name).or_default().push((labels, v));
        }
        for (name, help) in LABELLED_HELP {
            let mut m = e.encode_descriptor(name, help.trim(), None, MetricType::Counter)?;
            for (labels, v) in labelled.remove(name).unwrap_or_default() {
                ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
            }
        }
        let view = self.view.borrow().clone();
        gauges(
            &mut e,
            "source_connected",
            "1 while the source is connected",
            view.sources.iter().map(|(s, up)| (vec![("source", s.clone())], i64::from(*up))),
        )?;
        gauges(
            &mut e,
            "asset_score",
            "Anomaly score of each asset in [0, 1]; 0.5 is the control limit",
            view.assets.iter().map(|a| (vec![("asset", a.id.clone())], a.score)),
        )?;
        gauges(
            &mut e,
            "asset_health",
            "1 for each asset's health (ok, warning, alarm, critical, learning, stopped, out_of_service)",
            view.assets
                .iter()
                .map(|a| (vec![("asset", a.id.clone()), ("health", a.health.clone())], 1i64)),
        )?;
        let mut alarms: BTreeMap<String, i64> =
            ["pending", "active", "escalated", "clearing", "shelved", "out_of_service"]
                .iter()
                .map(|s| (s.to_string(), 0))
                .collect();
        for a in &view.alarms {
            let state = match &a.suppressed {
                Some(s) => s.kind.as_str().to_string(),
                None => a.state.clone(),
            };
            *alarms.entry(state).or_default() += 1;
        }
        alarms.remove("normal");
        gauges(
            &mut e,
            "alarms",
            "Alarms by state; shelved and out_of_service count suppressed alarms",
            alarms.into_iter().map(|(s, n)| (vec![("state", s)], n)),
        )?;
        let mut outbox: BTreeMap<String, i64> = ["pending", "sending", "held", "delivered", "dead"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        for (status, n) in self.store.counts().unwrap_or_default() {
            outbox.insert(status, n);
        }
        gauges(
            &mut e,
            "outbox_orders",
            "Work-order revisions in the outbox by status",
            outbox.into_iter().map(|(s, n)| (vec![("status", s)], n)),
        )?;
        gauges(
            &mut e,
            "config_reload_failed",
            "1 while the last configuration reload failed (hums runs on the one before)",
            [(Vec::new(), i64::from(view.config.reload_error.is_some()))],
        )?;
        Ok(())
    }
}
