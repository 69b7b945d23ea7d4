//! MQTT source (rumqttc): QoS 1, persistent session, stable client id,
//! re-subscribe when the broker lost the session, jittered reconnect backoff,
//! and acknowledgement only after the readings were handed on: every ack, in
//! order of receipt, however full rumqttc's request queue is, and redeliveries
//! of messages already handed on acked without being judged again.

pub mod topic;

use crate::common::backoff::Backoff;
use crate::common::clock::SharedClock;
use crate::common::events::{Events, Failure};
use crate::common::metrics::Metrics;
use crate::common::types::{Millis, Quality, Reading};
use crate::config::schema::{Mqtt, Quantity};
use crate::pipeline::plant::Plant;
use crate::sources::payload::{check_time, decode_with, DecodeError};
use crate::sources::{Batch, Slots};
use rumqttc::{
    AsyncClient, ConnAck, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use topic::{Route, Router};
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
    /// A reload's new plant, to route by from then on.
    plants: Option<watch::Receiver<Arc<Plant>>>,
    subscriptions: Vec<crate::config::schema::Subscription>,
    /// Topics seen, with their routes: one lookup per message instead of
    /// matching every filter and template (bounded: cleared when it grows past
    /// [`ROUTE_CACHE`] topics).
    routes: HashMap<Box<str>, Option<Known>, foldhash::fast::RandomState>,
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
            plants: None,
            subscriptions: cfg.subscriptions.clone(),
            routes: HashMap::default(),
            events: Events::new(metrics),
            max_payload: cfg.max_payload_bytes,
            max_future_ms: cfg.max_future_skew.as_millis() as Millis,
            max_age_ms: cfg.max_age.as_millis() as Millis,
        })
    }

    /// Routes by each plant a reload sends from now on (the topic filters
    /// subscribed stay those of the start).
    pub fn follow(mut self, plants: watch::Receiver<Arc<Plant>>) -> Self {
        self.plants = Some(plants);
        self
    }

    /// Takes up a plant a reload sent.
    fn refresh(&mut self) {
        let Some(rx) = &mut self.plants else { return };
        if !rx.has_changed().unwrap_or(false) {
            return;
        }
        let plant = rx.borrow_and_update().clone();
        match Router::new(&self.subscriptions, &plant) {
            Ok(router) => {
                self.router = router;
                self.plant = plant;
                self.routes.clear();
            }
            Err(e) => warn!(error = %e, "MQTT routes of the reloaded configuration refused; \
                routing as before"),
        }
    }

    /// The topic filters to subscribe to.
    pub fn filters(&self) -> Vec<String> {
        self.router.filters().map(String::from).collect()
    }

    /// Decodes one message; bad input is counted, logged (rate-limited) and skipped.
    pub fn readings(&mut self, topic: &str, payload: &[u8], now: Millis) -> Vec<Reading> {
        self.batch(topic, payload, now).readings
    }

    /// [`Ingest::readings`] with the slot of each reading in the plant.
    pub fn batch(&mut self, topic: &str, payload: &[u8], now: Millis) -> Batch {
        Metrics::inc(&self.events.metrics().mqtt_messages);
        self.refresh();
        let Some(known) = self.known(topic) else {
            self.skip_unmapped(topic, "no subscription template matches");
            return Batch::default();
        };
        let sub = self.router.subscription(known.subscription);
        let plant = &self.plant;
        let route = Route {
            subscription: known.subscription,
            asset: &known.asset,
            channel: known.channel.as_deref(),
        };
        let quantity_of = |named: Option<&str>| measured_quantity(plant, &route, named);
        let decoded = match decode_with(sub, payload, self.max_payload, quantity_of) {
            Ok(d) => d,
            Err(e) => {
                let error = &e;
                self.events.report(match e {
                    DecodeError::Oversized { .. } => Failure::PayloadOversized { topic, error },
                    DecodeError::Malformed(_) => Failure::PayloadMalformed { topic, error },
                    DecodeError::NonFinite => Failure::PayloadNonFinite { topic, error },
                    DecodeError::BadTimestamp(_) => Failure::PayloadBadTimestamp { topic, error },
                });
                return Batch::default();
            }
        };
        let mut readings = Vec::with_capacity(decoded.len());
        let mut slots = Vec::with_capacity(decoded.len());
        for d in decoded {
            let slot = match d.channel.as_deref() {
                Some(named) => self.measured_slot(&known.asset, named),
                None => known.slot,
            };
            let Some(slot) = slot else {
                let ch = d.channel.as_deref().or(known.channel.as_deref()).unwrap_or("?");
                let asset = &known.asset;
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
            readings.push(Reading {
                asset: a.id.clone(),
                channel: c.name.clone(),
                ts,
                value: d.value,
                quality: Quality::Good,
            });
            slots.push(slot);
        }
        Batch { readings, slots: Some(Slots { plant: self.plant.clone(), slots }) }
    }

    /// The route of a topic, from the cache or resolved and cached.
    fn known(&mut self, topic: &str) -> Option<Known> {
        if let Some(k) = self.routes.get(topic) {
            return k.clone();
        }
        let known = self.router.route(topic).map(|r| Known {
            subscription: r.subscription,
            asset: r.asset.into(),
            channel: r.channel.map(Into::into),
            slot: r.channel.and_then(|c| self.measured_slot(r.asset, c)),
        });
        // Routed topics only, and not long ones: a device inventing topics
        // cannot grow the cache past a few MB.
        if known.is_some() && topic.len() <= ROUTE_CACHE_TOPIC {
            if self.routes.len() >= ROUTE_CACHE {
                self.routes.clear();
            }
            self.routes.insert(topic.into(), known.clone());
        }
        known
    }

    /// The slot of a measured (not derived) channel.
    fn measured_slot(&self, asset: &str, channel: &str) -> Option<usize> {
        self.plant.slot(asset, channel).filter(|s| self.plant.channel(*s).1.derived.is_none())
    }

    fn skip_unmapped(&mut self, topic: &str, why: &str) {
        self.events.report(Failure::TopicUnmapped { topic, why });
    }
}

/// The declared quantity of the measured channel a value is for: the one the
/// payload `named`, else the route's; `None` if the asset has no such channel.
pub(crate) fn measured_quantity(
    plant: &Plant,
    route: &Route<'_>,
    named: Option<&str>,
) -> Option<Quantity> {
    let (_, c) = plant.channel(plant.slot(route.asset, named.or(route.channel)?)?);
    c.derived.is_none().then_some(c.quantity)
}

/// A topic's route, resolved once.
#[derive(Debug, Clone)]
struct Known {
    subscription: usize,
    asset: Box<str>,
    channel: Option<Box<str>>,
    /// The slot of `channel`, when the asset measures it.
    slot: Option<usize>,
}

/// Most topics whose routes are cached.
const ROUTE_CACHE: usize = 65_536;

/// Longest topic whose route is cached, in bytes.
const ROUTE_CACHE_TOPIC: usize = 256;

/// How long a clean stop may take to send the acks still waiting, then DISCONNECT.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Packet ids of messages handed on that are remembered to recognise redeliveries.
const RECENT_PKIDS: usize = 4096;

/// Runs the MQTT source until `shutdown` turns true or the reading queue closes.
///
/// Messages rumqttc has already read ahead are handed on together, as one
/// batch of up to [`HOLD_MESSAGES`]. It never stops polling the broker because
/// the engine is busy: a batch the queue cannot take yet waits in a backlog,
/// in order, and its messages are acknowledged only once handed on (so the
/// broker, at its own in-flight limit, sends no more QoS 1 messages
/// meanwhile). Only a backlog of [`BACKLOG_PER_INFLIGHT`] × `inflight`
/// entries (single messages, or one batch read ahead) stops reading from the
/// socket: a QoS 0 flood, or a
/// broker whose in-flight limit (mosquitto's `max_inflight_messages`) is above
/// that, which MQTT 3.1.1 gives it no way to learn from us.
#[allow(clippy::too_many_lines)]
pub async fn run(
    cfg: Mqtt,
    gateway_id: String,
    mut ingest: Ingest,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Batch>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), MqttError> {
    let opts = options(&cfg, &gateway_id)?;
    let filters = ingest.filters();
    let (client, mut eventloop) = AsyncClient::new(opts, usize::from(cfg.inflight) * 2 + 16);
    // Acks and subscriptions go out at once, not batched behind Nagle's delay.
    eventloop.network_options.set_tcp_nodelay(true);
    let mut backoff = Backoff::new(cfg.reconnect_min, cfg.reconnect_max);
    let events = Events::new(metrics.clone());
    let mut session = Session::new(client, metrics.clone());
    let mut backlog: VecDeque<(Batch, Acks)> = VecDeque::new();
    // Messages rumqttc had already read when this one came are handed on
    // with it, in one batch: one wake of the engine for many messages.
    let mut held: Option<Held> = None;
    let backlog_max = usize::from(cfg.inflight.max(1)) * BACKLOG_PER_INFLIGHT;
    info!(host = %cfg.host, port = cfg.port, "MQTT source starting");
    loop {
        let event = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            permit = tx.reserve(), if !backlog.is_empty() => {
                let Ok(permit) = permit else { break };
                if let Some((batch, acks)) = backlog.pop_front() {
                    hand_on(permit, batch, &metrics);
                    session.ack(acks);
                }
                continue;
            }
            ev = eventloop.poll(), if backlog.len() < backlog_max => ev,
        };
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                metrics.connected.set("mqtt", false);
                session.connection_lost();
                backlog.extend(held.take().map(|h| (h.batch, h.acks)));
                // Their acks went with the connection: the broker redelivers them.
                backlog.iter_mut().for_each(|(_, acks)| acks.clear());
                let delay = backoff.next_delay();
                events.report(Failure::MqttConnection { error: &e, retry_in: delay });
                tokio::select! {
                    _ = shutdown.changed() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        // Each poll may have made room in rumqttc's request queue: send waiting acks.
        session.saw(&event);
        session.flush();
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                metrics.connected.set("mqtt", true);
                backoff.reset();
                session.connected(&ack, &filters);
            }
            Event::Incoming(Packet::SubAck(ack))
                if ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure)) =>
            {
                warn!(codes = ?ack.return_codes, "broker refused a subscription: check the \
                    filters and the broker's ACL");
            }
            Event::Incoming(Packet::Publish(p)) => {
                let ack = (p.qos != QoS::AtMostOnce).then_some((p.qos, p.pkid));
                let batch = if session.recent.is_redelivery(&p) {
                    Metrics::inc(&metrics.mqtt_duplicates);
                    Batch::default()
                } else {
                    ingest.batch(&p.topic, &p.payload, clock.now())
                };
                // Acks go in the order messages came: behind a backlog, wait in it.
                if !backlog.is_empty() {
                    Metrics::inc(&metrics.mqtt_backlogged);
                    backlog.push_back((batch, ack.into_iter().collect()));
                    continue;
                }
                let h = held.get_or_insert_with(Held::default);
                h.batch.append(batch);
                h.acks.extend(ack);
                h.messages += 1;
            }
            _ => {}
        }
        // Hand on what is held once rumqttc has no message read ahead.
        let more = !eventloop.state.events.is_empty();
        if let Some(Held { batch, acks, messages }) =
            held.take_if(|h| !more || h.messages >= HOLD_MESSAGES)
        {
            // Nothing to hand on (redeliveries, unusable messages): ack at once.
            if batch.is_empty() {
                session.ack(acks);
                continue;
            }
            match tx.try_reserve() {
                Ok(permit) => {
                    hand_on(permit, batch, &metrics);
                    session.ack(acks);
                }
                Err(mpsc::error::TrySendError::Full(())) => {
                    metrics.mqtt_backlogged.fetch_add(messages, Ordering::Relaxed);
                    backlog.push_back((batch, acks));
                }
                // The pipeline stopped; these messages stay unacked.
                Err(mpsc::error::TrySendError::Closed(())) => break,
            }
        }
    }
    if !backlog.is_empty() {
        debug!(
            messages = backlog.len(),
            "MQTT messages not handed on before stopping; \
            unacknowledged, the broker redelivers them"
        );
    }
    session.stop(&mut eventloop).await;
    metrics.connected.set("mqtt", false);
    info!("MQTT source stopped");
    Ok(())
}

/// Messages the source may hold for a busy engine, per message in flight.
const BACKLOG_PER_INFLIGHT: usize = 4;

/// Messages at most in one batch of messages read ahead together.
const HOLD_MESSAGES: u64 = 32;

/// The acks of the messages in one batch, in the order they came.
type Acks = Vec<(QoS, u16)>;

/// Messages read ahead together, handed on as one batch.
#[derive(Default)]
struct Held {
    batch: Batch,
    acks: Acks,
    messages: u64,
}

/// Hands a batch's readings on (an empty batch only frees its place).
fn hand_on(permit: mpsc::Permit<'_, Batch>, batch: Batch, metrics: &Metrics) {
    if batch.is_empty() {
        return;
    }
    metrics.readings_accepted.fetch_add(batch.len() as u64, Ordering::Relaxed);
    permit.send(batch);
}

/// The source's side of the MQTT session: the acks still to send and the
/// messages recently handed on. MQTT 3.1.1 acknowledges QoS 1 in order of
/// receipt, and rumqttc's request queue is bounded; the task that would wait
/// for room in it is the one that polls the event loop, so acks that do not
/// fit wait here, in order, and go out as the event loop makes room.
struct Session {
    client: AsyncClient,
    metrics: Arc<Metrics>,
    /// Acks the request queue has not taken yet, oldest first: (QoS, packet id).
    waiting: VecDeque<(QoS, u16)>,
    /// Acks in the request queue, not yet seen written.
    queued: u64,
    connected: bool,
    recent: Recent,
}

impl Session {
    fn new(client: AsyncClient, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            metrics,
            waiting: VecDeque::new(),
            queued: 0,
            connected: false,
            recent: Recent::default(),
        }
    }

    /// After CONNACK: forget what a lost session will not redeliver, and subscribe.
    fn connected(&mut self, ack: &ConnAck, filters: &[String]) {
        info!(session_present = ack.session_present, "MQTT connected");
        self.connected = true;
        if !ack.session_present {
            Metrics::inc(&self.metrics.mqtt_resubscribes);
            self.recent.clear();
        }
        // Subscribe on every connect: harmless when the broker kept the
        // session, and it repairs a subscription lost or refused earlier.
        let subs =
            filters.iter().map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        if let Err(e) = self.client.try_subscribe_many(subs) {
            warn!(error = %e, "could not queue MQTT subscribe; will retry on reconnect");
        }
    }

    /// Queues the acks of messages handed on behind those still waiting, and
    /// sends what the request queue takes (none for QoS 0 messages, or for
    /// acks the connection took with it).
    fn ack(&mut self, acks: Acks) {
        if acks.is_empty() {
            return;
        }
        self.waiting.extend(acks);
        self.flush();
        if !self.waiting.is_empty() {
            Metrics::inc(&self.metrics.mqtt_acks_deferred);
        }
    }

    /// Moves waiting acks, oldest first, into the request queue until it is full.
    fn flush(&mut self) {
        while let Some(&(qos, pkid)) = self.waiting.front() {
            let mut ack = Publish::new("", qos, Vec::<u8>::new());
            ack.pkid = pkid;
            if self.client.try_ack(&ack).is_err() {
                break;
            }
            self.waiting.pop_front();
            self.queued += 1;
        }
    }

    /// Notes an event of the event loop: an ack written leaves the queue.
    fn saw(&mut self, event: &Event) {
        if matches!(event, Event::Outgoing(Outgoing::PubAck(_) | Outgoing::PubRec(_))) {
            self.queued = self.queued.saturating_sub(1);
        }
    }

    /// The connection dropped, and rumqttc with it the acks it held; the broker
    /// redelivers those messages (then recognised by `recent`).
    fn connection_lost(&mut self) {
        self.connected = false;
        let unsent = self.give_up();
        if unsent > 0 {
            debug!(unsent, "MQTT acks lost with the connection; the broker will redeliver");
        }
    }

    /// Counts the acks not sent as unsent and forgets them; returns how many.
    fn give_up(&mut self) -> u64 {
        let unsent = self.waiting.len() as u64 + self.queued;
        self.waiting.clear();
        self.queued = 0;
        self.metrics.mqtt_acks_unsent.fetch_add(unsent, Ordering::Relaxed);
        unsent
    }

    /// At a clean stop: sends the acks still waiting, then DISCONNECT (the
    /// broker keeps the session), polling the event loop for at most [`STOP_GRACE`].
    async fn stop(&mut self, eventloop: &mut EventLoop) {
        // Not connected: rumqttc dropped the acks with the connection, and
        // `connection_lost` counted them.
        let mut disconnected = false;
        if self.connected {
            let drain = tokio::time::timeout(STOP_GRACE, self.drain(eventloop));
            disconnected = drain.await.unwrap_or(false);
        }
        let unsent = self.give_up();
        if unsent > 0 {
            warn!(unsent, "MQTT acks not sent before stopping; the broker will redeliver them");
        } else if !disconnected {
            debug!("MQTT source stopped without a clean DISCONNECT");
        }
    }

    /// Sends the waiting acks, then DISCONNECT; `true` once DISCONNECT is written
    /// (after every ack queued before it: the request queue is FIFO).
    async fn drain(&mut self, eventloop: &mut EventLoop) -> bool {
        let mut disconnecting = false;
        loop {
            self.flush();
            if self.waiting.is_empty() && !disconnecting {
                disconnecting = self.client.try_disconnect().is_ok();
            }
            // Messages arriving now are not handed on, so not acked: the broker redelivers.
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return true,
                Ok(event) => self.saw(&event),
                Err(_) => return false,
            }
        }
    }
}

/// The QoS 1 messages handed on in this session, by packet id, to recognise
/// the broker's redeliveries (`dup`) of messages already judged.
#[derive(Debug, Default)]
struct Recent {
    /// Packet id → (hash of topic and payload, sequence number).
    by_pkid: HashMap<u16, (u64, u64)>,
    /// Packet ids with their sequence numbers, oldest first; at most [`RECENT_PKIDS`].
    order: VecDeque<(u16, u64)>,
    seq: u64,
}

impl Recent {
    /// Whether `p` redelivers a message already handed on; remembers `p` if not.
    fn is_redelivery(&mut self, p: &Publish) -> bool {
        if p.qos == QoS::AtMostOnce {
            return false;
        }
        let hash = fingerprint(p);
        if p.dup && self.by_pkid.get(&p.pkid).is_some_and(|&(h, _)| h == hash) {
            return true;
        }
        self.seq += 1;
        self.by_pkid.insert(p.pkid, (hash, self.seq));
        self.order.push_back((p.pkid, self.seq));
        while self.order.len() > RECENT_PKIDS {
            let Some((pkid, seq)) = self.order.pop_front() else {
                break;
            };
            if self.by_pkid.get(&pkid).is_some_and(|&(_, s)| s == seq) {
                self.by_pkid.remove(&pkid);
            }
        }
        false
    }

    /// Forgets everything: a broker without our session redelivers nothing.
    fn clear(&mut self) {
        self.by_pkid.clear();
        self.order.clear();
    }
}

/// A hash of a message's topic and payload.
fn fingerprint(p: &Publish) -> u64 {
    let mut h = DefaultHasher::new();
    p.topic.hash(&mut h);
    h.write(&p.payload);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::Request;

    fn publish(pkid: u16, dup: bool, payload: &str) -> Publish {
        let mut p = Publish::new("plant/t/pump-a/flow", QoS::AtLeastOnce, payload);
        p.pkid = pkid;
        p.dup = dup;
        p
    }

    #[test]
    fn a_redelivery_of_a_message_handed_on_is_recognised() {
        let mut recent = Recent::default();
        assert!(!recent.is_redelivery(&publish(7, false, "1.5")));
        assert!(recent.is_redelivery(&publish(7, true, "1.5")), "same id and content, dup");
        assert!(!recent.is_redelivery(&publish(7, false, "1.5")), "not dup: a new message");
        assert!(!recent.is_redelivery(&publish(8, true, "2.5")), "never handed on");
        assert!(!recent.is_redelivery(&publish(9, false, "3.5")));
        assert!(!recent.is_redelivery(&publish(9, true, "3.6")), "the id reused for another");
        recent.clear();
        assert!(!recent.is_redelivery(&publish(7, true, "1.5")), "forgotten with the session");
    }

    #[test]
    fn the_memory_of_packet_ids_is_bounded() {
        let mut recent = Recent::default();
        for pkid in 1..=20_000u16 {
            recent.is_redelivery(&publish(pkid, false, &pkid.to_string()));
        }
        assert_eq!(recent.order.len(), RECENT_PKIDS);
        assert_eq!(recent.by_pkid.len(), RECENT_PKIDS);
        assert!(recent.is_redelivery(&publish(20_000, true, "20000")));
        assert!(!recent.is_redelivery(&publish(1, true, "1")), "the oldest are forgotten");
    }

    /// The packet ids of the acks the request queue took so far (`clean`
    /// moves them into `pending`, keeping PUBRECs).
    fn taken(eventloop: &mut EventLoop) -> Vec<u16> {
        eventloop.clean();
        let mut taken = Vec::new();
        for r in &eventloop.pending {
            if let Request::PubRec(a) = r {
                taken.push(a.pkid);
            }
        }
        taken
    }

    #[test]
    fn acks_that_do_not_fit_wait_and_go_out_in_order() {
        let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("t", "localhost", 1), 2);
        let metrics = Arc::new(Metrics::default());
        let mut session = Session::new(client, metrics.clone());
        session.ack(Vec::new());
        for pkid in 1..=5 {
            // QoS 2 here only so that `taken` can see the acks (PUBRECs) in order.
            session.ack(vec![(QoS::ExactlyOnce, pkid)]);
        }
        assert_eq!(metrics.mqtt_acks_deferred.load(Ordering::Relaxed), 3, "a queue of 2");
        assert_eq!(taken(&mut eventloop), [1, 2]);
        session.flush();
        assert_eq!(taken(&mut eventloop), [1, 2, 3, 4]);
        session.flush();
        assert_eq!(taken(&mut eventloop), [1, 2, 3, 4, 5]);
        assert!(session.waiting.is_empty());
        session.saw(&Event::Outgoing(Outgoing::PubRec(1)));
        assert_eq!(session.give_up(), 4, "four not seen written");
        assert_eq!(metrics.mqtt_acks_unsent.load(Ordering::Relaxed), 4);
    }
}
