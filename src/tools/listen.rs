//! `hums listen`: the MQTT counterpart of `probe`, for commissioning. It
//! subscribes to the configured filters (or to everything) for a while, with
//! a clean session of its own so the daemon's queued messages are untouched,
//! and shows per topic which asset and channel it maps to, the decoded
//! values, and why a topic is not used.

use crate::config::Config;
use crate::pipeline::plant::Plant;
use crate::sources::mqtt::topic::Router;
use crate::sources::mqtt::{measured_quantity, options};
use crate::sources::payload::decode_with;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use std::collections::BTreeMap;
use std::time::Duration;

/// What one message on a topic said.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// Mapped: `asset.channel = value` per reading it carries.
    Mapped(Vec<(String, String, f64)>),
    /// Not used, and why (no matching template, an unknown channel, a
    /// payload that does not decode).
    Unused(String),
}

/// One topic over the listening time.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSummary {
    pub topic: String,
    pub messages: u64,
    /// What its last message said.
    pub last: Heard,
}

/// Judges one message as `hums run` would route and decode it.
pub fn judge(router: &Router, plant: &Plant, cfg: &Config, topic: &str, payload: &[u8]) -> Heard {
    let Some(route) = router.route(topic) else {
        return Heard::Unused("no subscription template matches: unmapped".into());
    };
    let sub = router.subscription(route.subscription);
    let quantity_of = |named: Option<&str>| measured_quantity(plant, &route, named);
    let decoded = match decode_with(sub, payload, cfg.mqtt.max_payload_bytes, quantity_of) {
        Ok(d) => d,
        Err(e) => return Heard::Unused(format!("payload refused: {e}")),
    };
    let mut out = Vec::new();
    for d in decoded {
        let Some(ch) = d.channel.as_deref().or(route.channel) else { continue };
        match plant.slot(route.asset, ch).filter(|s| plant.channel(*s).1.derived.is_none()) {
            Some(_) => out.push((route.asset.to_string(), ch.to_string(), d.value)),
            None => {
                return Heard::Unused(format!(
                    "asset {:?} has no measured channel {ch:?}: unmapped",
                    route.asset
                ))
            }
        }
    }
    if out.is_empty() {
        return Heard::Unused("no value in the payload".into());
    }
    Heard::Mapped(out)
}

/// Listens for `duration` (or until `stop` resolves) and summarises every
/// topic heard; `everything` subscribes to `#` instead of the configured
/// filters, so topics outside them show up as unmapped too.
pub async fn listen(
    cfg: &Config,
    plant: &Plant,
    duration: Duration,
    everything: bool,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Vec<TopicSummary>, String> {
    let router = Router::new(&cfg.mqtt.subscriptions, plant)?;
    let mut opts = options(&cfg.mqtt, &cfg.gateway.id).map_err(|e| e.to_string())?;
    opts.set_client_id(format!("hums-listen-{}", std::process::id()))
        .set_clean_session(true)
        .set_manual_acks(false);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let filters: Vec<String> =
        if everything { vec!["#".into()] } else { router.filters().map(String::from).collect() };
    if filters.is_empty() {
        return Err("no [[mqtt.subscriptions]] in the config: nothing to listen to".into());
    }
    let mut heard: BTreeMap<String, TopicSummary> = BTreeMap::new();
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline, stop);
    loop {
        let event = tokio::select! {
            _ = &mut deadline => break,
            _ = &mut stop => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                for f in &filters {
                    client
                        .subscribe(f.clone(), QoS::AtMostOnce)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let last = judge(&router, plant, cfg, &p.topic, &p.payload);
                let entry = heard.entry(p.topic.clone()).or_insert_with(|| TopicSummary {
                    topic: p.topic.clone(),
                    messages: 0,
                    last: last.clone(),
                });
                entry.messages += 1;
                entry.last = last;
            }
            Ok(_) => {}
            Err(e) => return Err(format!("MQTT broker {}:{}: {e}", cfg.mqtt.host, cfg.mqtt.port)),
        }
    }
    let _ = client.disconnect().await;
    Ok(heard.into_values().collect())
}

/// Prints the summary as a table, mapped topics first.
pub fn print(topics: &[TopicSummary]) {
    let (mapped, unused): (Vec<&TopicSummary>, Vec<&TopicSummary>) =
        topics.iter().partition(|t| matches!(t.last, Heard::Mapped(_)));
    println!("{:<48} {:>6}  maps to", "topic", "msgs");
    for t in &mapped {
        if let Heard::Mapped(values) = &t.last {
            let v: Vec<String> = values.iter().map(|(a, c, x)| format!("{a}.{c} = {x}")).collect();
            println!("{:<48} {:>6}  {}", t.topic, t.messages, v.join(", "));
        }
    }
    for t in &unused {
        if let Heard::Unused(why) = &t.last {
            println!("{:<48} {:>6}  - {why}", t.topic, t.messages);
        }
    }
    println!("{} topic(s) mapped, {} not used", mapped.len(), unused.len());
}
