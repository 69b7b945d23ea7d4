//! hums's judgement on MQTT, in thin-edge.io's spirit, so SCADA, Grafana or
//! another gateway can use it and notice when hums dies. Topics, under
//! `<topic_prefix>/<gateway.id>/`:
//!
//! - `status`: retained `{"status":"up",…}`; the last will sets it to
//!   `{"status":"down"}` when hums's connection dies, and a clean stop too.
//! - `assets/<asset>/health`: retained health, score, zone, learning state and
//!   open alarms of each asset, when they change and every `interval`.
//! - `alarms/<asset>`: each alarm transition once committed (QoS 1, not retained).
//!
//! A separate MQTT client on the `[mqtt]` broker (client id `<id>-publish`);
//! it never slows ingest or evaluation: the engine hands it views and events
//! without waiting, and what a dead broker cannot take is dropped and counted
//! (`mqtt_publish_dropped`): retained health is sent again at reconnect.

use super::view::{AssetView, View};
use crate::common::metrics::Metrics;
use crate::common::types::{Millis, Severity};
use crate::config::Config;
use rumqttc::{AsyncClient, Event, LastWill, Packet, QoS};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// An alarm transition to publish.
#[derive(Debug, Clone, Serialize)]
pub struct AlarmNote {
    pub asset: String,
    pub failure_mode: String,
    pub title: String,
    pub priority: u8,
    /// `raised`, `escalated` or `cleared`.
    pub transition: &'static str,
    pub severity: Option<Severity>,
    pub episode: Millis,
    pub at: Millis,
}

/// The topics of one gateway.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

impl Topics {
    pub fn new(prefix: &str, gateway: &str) -> Self {
        Self { base: format!("{}/{gateway}", prefix.trim_matches('/')) }
    }
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }
    pub fn health(&self, asset: &str) -> String {
        format!("{}/assets/{asset}/health", self.base)
    }
    pub fn alarms(&self, asset: &str) -> String {
        format!("{}/alarms/{asset}", self.base)
    }
}

/// An asset's retained health message.
fn health(a: &AssetView, view: &View) -> serde_json::Value {
    let alarms: Vec<_> = view
        .alarms
        .iter()
        .filter(|al| al.asset == a.id && al.state != "normal")
        .map(|al| {
            json!({
                "failure_mode": al.failure_mode,
                "state": al.state,
                "severity": al.severity,
                "since": al.since,
                "suppressed": al.suppressed.as_ref().map(|s| s.kind.as_str()),
            })
        })
        .collect();
    json!({
        "asset": a.id,
        "health": a.health,
        "score": (a.score * 1000.0).round() / 1000.0,
        "zone": a.zone,
        "learning": a.learning,
        "running": a.running,
        "alarms": alarms,
        "at": view.at,
    })
}

/// Publishes each asset's health that changed, or all with `full`, or any
/// not published for `every`.
fn publish_health(
    client: &AsyncClient,
    metrics: &Metrics,
    topics: &Topics,
    view: &View,
    sent: &mut BTreeMap<String, (serde_json::Value, Instant)>,
    full: bool,
    every: Duration,
) {
    for a in &view.assets {
        let msg = health(a, view);
        // The evaluation time changes every tick: compare without it.
        let mut key = msg.clone();
        key["at"] = serde_json::Value::Null;
        let due = match sent.get(&a.id) {
            Some((last, at)) => full || *last != key || at.elapsed() >= every,
            None => true,
        };
        if due {
            send(client, metrics, topics.health(&a.id), true, msg.to_string());
            sent.insert(a.id.clone(), (key, Instant::now()));
        }
    }
}

/// Queues a message without waiting; a full queue (a broker down) drops it, counted.
fn send(client: &AsyncClient, metrics: &Metrics, topic: String, retain: bool, body: String) {
    if client.try_publish(topic, QoS::AtLeastOnce, retain, body).is_err() {
        Metrics::inc(&metrics.mqtt_publish_dropped);
    }
}

/// Publishes until `shutdown` turns true, then marks the gateway down.
pub async fn run(
    cfg: Config,
    metrics: Arc<Metrics>,
    mut views: watch::Receiver<Arc<View>>,
    mut notes: mpsc::Receiver<AlarmNote>,
    mut shutdown: watch::Receiver<bool>,
) {
    let topics = Topics::new(&cfg.publish.topic_prefix, &cfg.gateway.id);
    let mut opts = match crate::sources::mqtt::options(&cfg.mqtt, &cfg.gateway.id) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "MQTT publishing off: cannot build its connection");
            return;
        }
    };
    let client_id = format!("{}-publish", opts.client_id());
    opts.set_client_id(client_id);
    opts.set_clean_session(true);
    let down = json!({"status": "down"}).to_string();
    opts.set_last_will(LastWill::new(topics.status(), down.clone(), QoS::AtLeastOnce, true));
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    eventloop.network_options.set_tcp_nodelay(true);
    let (connected_tx, mut connected) = watch::channel(0u64);
    let poller = tokio::spawn(async move {
        let mut connects = 0u64;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connects += 1;
                    let _ = connected_tx.send(connects);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "MQTT publishing: connection lost; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
    let up = json!({
        "status": "up",
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
    })
    .to_string();
    let mut sent: BTreeMap<String, (serde_json::Value, Instant)> = BTreeMap::new();
    let every = cfg.publish.interval;
    let mut refresh = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        let full = tokio::select! {
            _ = shutdown.changed() => break,
            r = connected.changed() => {
                if r.is_err() { break; }
                send(&client, &metrics, topics.status(), true, up.clone());
                true
            }
            r = views.changed() => {
                if r.is_err() { break; }
                false
            }
            _ = refresh.tick() => true,
            n = notes.recv() => match n {
                Some(n) => {
                    let body = serde_json::to_string(&n).unwrap_or_default();
                    send(&client, &metrics, topics.alarms(&n.asset), false, body);
                    continue;
                }
                None => break,
            },
        };
        let view = views.borrow_and_update().clone();
        publish_health(&client, &metrics, &topics, &view, &mut sent, full, every);
    }
    // A clean stop: say so, then disconnect (the will is not sent then).
    let down = client.publish(topics.status(), QoS::AtLeastOnce, true, down);
    let _ = tokio::time::timeout(Duration::from_secs(2), down).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    poller.abort();
}
