//! MQTT source (rumqttc): QoS 1, persistent session, stable client id,
//! re-subscribe when the broker lost the session, jittered reconnect backoff,
//! and acknowledgement only after the readings were handed on.

pub mod topic;

use crate::common::backoff::Backoff;
use crate::common::clock::SharedClock;
use crate::common::events::{Events, Failure};
use crate::common::metrics::Metrics;
use crate::common::types::{Millis, Quality, Reading};
use crate::config::schema::Mqtt;
use crate::pipeline::plant::Plant;
use crate::sources::payload::{check_time, decode, DecodeError};
use rumqttc::{
    AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration, Transport,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use topic::Router;
use tracing::{debug, info, warn};

/// Problems that stop the MQTT source from starting.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("cannot read {what} {path}: {source}")]
    File { what: &'static str, path: String, source: std::io::Error },
    #[error("invalid subscription: {0}")]
    Subscription(String),
}

/// Builds the rumqttc options: credentials from the environment, TLS from files.
pub fn options(cfg: &Mqtt, gateway_id: &str) -> Result<MqttOptions, MqttError> {
    let client_id = cfg.client_id.clone().unwrap_or_else(|| format!("hums-{gateway_id}"));
    let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port);
    opts.set_keep_alive(cfg.keep_alive.max(Duration::from_secs(5)))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_inflight(cfg.inflight.max(1))
        .set_request_channel_capacity(usize::from(cfg.inflight) * 2 + 16)
        .set_max_packet_size(incoming_packet_limit(cfg.max_payload_bytes), 64 * 1024);
    if let Ok(user) = std::env::var(&cfg.username_env) {
        let pass = std::env::var(&cfg.password_env).unwrap_or_default();
        opts.set_credentials(user, pass);
    }
    if cfg.tls.enabled {
        let read =
            |what: &'static str, path: &Option<String>| -> Result<Option<Vec<u8>>, MqttError> {
                path.as_ref()
                    .map(|p| {
                        std::fs::read(p).map_err(|source| MqttError::File {
                            what,
                            path: p.clone(),
                            source,
                        })
                    })
                    .transpose()
            };
        let ca = read("CA file", &cfg.tls.ca_file)?.unwrap_or_default();
        let cert = read("client certificate", &cfg.tls.client_cert_file)?;
        let key = read("client key", &cfg.tls.client_key_file)?;
        let client_auth = cert.zip(key);
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }));
    }
    Ok(opts)
}

/// The largest packet rumqttc accepts. Well above `max_payload_bytes`, so an
/// oversized payload reaches the decoder and is counted and skipped instead of
/// dropping the connection (which would make the broker redeliver it forever).
fn incoming_packet_limit(max_payload: usize) -> usize {
    max_payload.max(1024 * 1024).saturating_mul(4)
}

/// Turns MQTT messages into readings: routing, decoding, time checks, counting.
pub struct Ingest {
    router: Router,
    plant: Arc<Plant>,
    events: Events,
    max_payload: usize,
    max_future_ms: Millis,
    max_age_ms: Millis,
}

impl Ingest {
    pub fn new(cfg: &Mqtt, plant: Arc<Plant>, metrics: Arc<Metrics>) -> Result<Self, MqttError> {
        Ok(Self {
            router: Router::new(&cfg.subscriptions, &plant).map_err(MqttError::Subscription)?,
            plant,
            events: Events::new(metrics),
            max_payload: cfg.max_payload_bytes,
            max_future_ms: cfg.max_future_skew.as_millis() as Millis,
            max_age_ms: cfg.max_age.as_millis() as Millis,
        })
    }

    /// The topic filters to subscribe to.
    pub fn filters(&self) -> Vec<String> {
        self.router.filters().map(String::from).collect()
    }

    /// Decodes one message; bad input is counted, logged (rate-limited) and skipped.
    pub fn readings(&mut self, topic: &str, payload: &[u8], now: Millis) -> Vec<Reading> {
        Metrics::inc(&self.events.metrics().mqtt_messages);
        let Some(route) = self.router.route(topic) else {
            self.skip_unmapped(topic, "no subscription template matches");
            return Vec::new();
        };
        let sub = self.router.subscription(route.subscription);
        let decoded = match decode(sub, payload, self.max_payload) {
            Ok(d) => d,
            Err(e) => {
                let error = &e;
                self.events.report(match e {
                    DecodeError::Oversized { .. } => Failure::PayloadOversized { topic, error },
                    DecodeError::Malformed(_) => Failure::PayloadMalformed { topic, error },
                    DecodeError::NonFinite => Failure::PayloadNonFinite { topic, error },
                    DecodeError::BadTimestamp(_) => Failure::PayloadBadTimestamp { topic, error },
                });
                return Vec::new();
            }
        };
        let asset = route.asset.to_string();
        let channel = route.channel.map(String::from);
        let mut out = Vec::with_capacity(decoded.len());
        for d in decoded {
            let Some(ch) = d.channel.as_deref().or(channel.as_deref()) else {
                continue;
            };
            let Some(slot) =
                self.plant.slot(&asset, ch).filter(|s| self.plant.channel(*s).1.derived.is_none())
            else {
                self.skip_unmapped(
                    topic,
                    &format!("asset {asset:?} has no measured channel {ch:?}"),
                );
                continue;
            };

            let ts = match check_time(d.ts.unwrap_or(now), now, self.max_future_ms, self.max_age_ms)
            {
                Ok(ts) => ts,
                Err(e) => {
                    self.events.report(Failure::PayloadBadTimestamp { topic, error: &e });
                    continue;
                }
            };
            let (a, c) = self.plant.channel(slot);
            out.push(Reading {
                asset: a.id.clone(),
                channel: c.name.clone(),
                ts,
                value: d.value,
                quality: Quality::Good,
            });
        }
        out
    }

    fn skip_unmapped(&mut self, topic: &str, why: &str) {
        self.events.report(Failure::TopicUnmapped { topic, why });
    }
}

/// Runs the MQTT source until `shutdown` turns true or the reading queue closes.
pub async fn run(
    cfg: Mqtt,
    gateway_id: String,
    mut ingest: Ingest,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Reading>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), MqttError> {
    let opts = options(&cfg, &gateway_id)?;
    let filters = ingest.filters();
    let (client, mut eventloop) = AsyncClient::new(opts, usize::from(cfg.inflight) * 2 + 16);
    let mut backoff = Backoff::new(cfg.reconnect_min, cfg.reconnect_max);
    let events = Events::new(metrics.clone());
    info!(host = %cfg.host, port = cfg.port, "MQTT source starting");
    loop {
        let event = tokio::select! {
            _ = shutdown.changed() => break,
            ev = eventloop.poll() => ev,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff.reset();
                info!(session_present = ack.session_present, "MQTT connected");
                if !ack.session_present {
                    Metrics::inc(&metrics.mqtt_resubscribes);
                }
                // Subscribe on every connect: harmless when the broker kept the
                // session, and it repairs a subscription lost or refused earlier.
                let subs = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(subs) {
                    warn!(error = %e, "could not queue MQTT subscribe; will retry on reconnect");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) {
                    warn!(codes = ?ack.return_codes, "broker refused a subscription: check the \
                        filters and the broker's ACL");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let readings = ingest.readings(&p.topic, &p.payload, clock.now());
                for r in readings {
                    if tx.send(r).await.is_err() {
                        return Ok(()); // pipeline stopped
                    }
                    Metrics::inc(&metrics.readings_accepted);
                }
                // Ack only now: a crash before this point makes the broker redeliver.
                if let Err(e) = client.try_ack(&p) {
                    debug!(error = %e, "MQTT ack not queued; broker will redeliver");
                }
            }
            Ok(_) => {}
            Err(e) => {
                let delay = backoff.next_delay();
                events.report(Failure::MqttConnection { error: &e, retry_in: delay });
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    // Send DISCONNECT so the broker keeps our session cleanly; give it a moment.
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(ev) = eventloop.poll().await {
                if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        })
        .await;
    }
    info!("MQTT source stopped");
    Ok(())
}
