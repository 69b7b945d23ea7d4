//! QoS 1 acknowledgements under a burst: the MQTT source hands every message's
//! readings on exactly once and acknowledges them all, in order, however full
//! rumqttc's request queue gets, so after a clean stop the broker holds
//! nothing unacknowledged to redeliver.

use crate::common;

use hums::common::clock::{SharedClock, SystemClock};
use hums::common::metrics::Metrics;
use hums::pipeline::models::files::ModelFiles;
use hums::pipeline::plant::Plant;
use hums::sources::mqtt::{self, Ingest};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Messages in the burst, each with its own value.
const BURST: usize = 2_000;

/// Waits until `pred` holds or `timeout` passes; returns whether it held.
async fn wait_until(timeout: Duration, pred: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pred() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pred()
}

/// The messages a new connection with `client_id` and `clean_session = false`
/// receives within `window`, and whether the broker still had the session.
async fn redelivered(
    broker: std::net::SocketAddr,
    client_id: &str,
    window: Duration,
) -> (Option<bool>, Vec<String>) {
    let mut opts = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    opts.set_clean_session(false);
    let (_client, mut eventloop) = AsyncClient::new(opts, 10);
    let mut session_present = None;
    let mut got = Vec::new();
    let deadline = Instant::now() + window;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, eventloop.poll()).await {
            Err(_) => break,
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                session_present = Some(ack.session_present);
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                got.push(String::from_utf8_lossy(&p.payload).into_owned());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("second connection failed: {e}"),
        }
    }
    (session_present, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_handed_on_once_and_every_message_acknowledged() {
    let broker = hums::demo::broker::start().expect("embedded broker");
    let mut cfg = common::fixture("tests/fixtures/e2e.toml", broker, "http://127.0.0.1:9/");
    let client_id = format!("hums-acks-{}", std::process::id());
    cfg.mqtt.client_id = Some(client_id.clone());
    // rumqttc's request queue then holds inflight × 2 + 16 = 18 requests, while
    // the broker sends up to 100 unacknowledged messages: acks must wait their turn.
    cfg.mqtt.inflight = 1;
    let plant = Arc::new(Plant::new(&cfg, &ModelFiles::load(&cfg).unwrap()));
    let metrics = Arc::new(Metrics::default());
    let ingest = Ingest::new(&cfg.mqtt, plant, metrics.clone()).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    // A reading queue of one, read with pauses: the source is slow to hand on.
    let (tx, mut rx) = mpsc::channel(1);
    let (stop, stop_rx) = watch::channel(false);
    let (mqtt_cfg, gateway) = (cfg.mqtt.clone(), cfg.gateway.id.clone());
    let source =
        tokio::spawn(mqtt::run(mqtt_cfg, gateway, ingest, clock, metrics.clone(), tx, stop_rx));
    let got: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let sink = got.clone();
    let consumer = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            let b: hums::sources::Batch = b;
            let n = {
                let mut seen = sink.lock().unwrap();
                seen.extend(b.readings.iter().map(|r| (r.asset.to_string(), r.value)));
                seen.len()
            };
            if n % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let count = |asset: &str| got.lock().unwrap().iter().filter(|(a, _)| a == asset).count();

    let connected = || metrics.mqtt_resubscribes.load(Ordering::Relaxed) > 0;
    assert!(wait_until(Duration::from_secs(10), connected).await, "the source never connected");
    let plant_client = common::publisher(broker, "acks-plant").await;
    // Probe pump-b until the subscription is in place; the burst goes to pump-a.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count("pump-b") == 0 {
        assert!(Instant::now() < deadline, "the source never subscribed");
        plant_client.publish("plant/t/pump-b/flow", QoS::AtLeastOnce, false, "1").await.unwrap();
        wait_until(Duration::from_millis(200), || count("pump-b") > 0).await;
    }
    let topic = "plant/t/pump-a/flow";
    for i in 0..BURST {
        plant_client.publish(topic, QoS::AtLeastOnce, false, i.to_string()).await.unwrap();
    }
    let all = wait_until(Duration::from_secs(60), || count("pump-a") >= BURST).await;

    let _ = stop.send(true);
    let stopped = tokio::time::timeout(Duration::from_secs(15), source).await;
    stopped.expect("the source stops within 15 s").expect("source task").expect("source run");
    consumer.await.unwrap();

    let m = metrics.snapshot();
    let mut times_seen = vec![0u32; BURST];
    let mut probes = 0u64;
    for (asset, v) in got.lock().unwrap().iter() {
        match asset.as_str() {
            "pump-a" => times_seen[*v as usize] += 1,
            _ => probes += 1,
        }
    }
    let not_once: Vec<(usize, u32)> =
        times_seen.iter().copied().enumerate().filter(|&(_, n)| n != 1).collect();
    assert!(
        all && not_once.is_empty(),
        "{} of {BURST} messages were not handed on exactly once, e.g. (message, times) {:?}; \
         metrics: {m:?}",
        not_once.len(),
        &not_once[..not_once.len().min(10)]
    );
    assert_eq!(m.readings_accepted, BURST as u64 + probes, "{m:?}");
    assert_eq!(m.mqtt_acks_unsent, 0, "{m:?}");

    // The broker keeps the stopped source's session: had it any message still
    // unacknowledged, it would hand it to the next connection with that id.
    // rumqttd reads the source's last acks and DISCONNECT on its own threads and
    // shows nothing we could wait for; a new connection with the same id before
    // then would cut those off, so give it a moment first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (session, again) = redelivered(broker, &client_id, Duration::from_secs(3)).await;
    assert_eq!(session, Some(true), "the broker kept the session (else this proves nothing)");
    assert!(
        again.is_empty(),
        "the broker redelivered {} messages never acknowledged, e.g. {:?}; metrics: {m:?}",
        again.len(),
        &again[..again.len().min(10)]
    );
}
