//! Interop against a real mosquitto broker (Debian package), started by `.ci/run`
//! and passed in `HUMS_TEST_MOSQUITTO=host:port`.

use crate::common;

use common::{publish_pumps, publisher, Harness};
use rumqttc::QoS;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn mosquitto() -> SocketAddr {
    let addr = std::env::var("HUMS_TEST_MOSQUITTO")
        .expect("HUMS_TEST_MOSQUITTO=host:port must name a running mosquitto (see .ci/run)");
    addr.parse().expect("HUMS_TEST_MOSQUITTO is host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_through_mosquitto() {
    let broker = mosquitto();
    let hums = Harness::start(broker, 300.0, "hums-interop-e2e").await;
    assert!(
        hums.wait_for(Duration::from_secs(5), |h| h
            .metrics
            .mqtt_resubscribes
            .load(Ordering::Relaxed)
            > 0)
            .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = publisher(broker, "interop-plant").await;
    client.publish("plant/t/pump-b/vib_de", QoS::AtLeastOnce, false, "garbage").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(publish_pumps(client, Duration::from_millis(20), stop_rx));
    let raised =
        hums.wait_for(Duration::from_secs(30), |h| !h.orders_for("pump-a").is_empty()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_tx.send(true);
    let _ = task.await;
    assert!(raised, "no work order via mosquitto: {:?}", hums.metrics.snapshot());
    assert_eq!(hums.orders_for("pump-a").len(), 1);
    assert!(hums.orders_for("pump-b").is_empty());
    let m = hums.stop().await.metrics;
    assert!(m.payload_malformed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_keeps_messages_published_while_hums_was_down() {
    let broker = mosquitto();
    let id = format!("hums-interop-session-{}", std::process::id());
    // First run: creates the session and the subscription.
    let first = Harness::start(broker, 1.0, &id).await;
    assert!(
        first
            .wait_for(Duration::from_secs(5), |h| h
                .metrics
                .mqtt_resubscribes
                .load(Ordering::Relaxed)
                > 0)
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.stop().await;

    // hums is down: these 50 QoS 1 messages must wait in the broker for us.
    let client = publisher(broker, "interop-offline-plant").await;
    for i in 0..50 {
        client
            .publish("plant/t/pump-b/flow", QoS::AtLeastOnce, false, format!("{}", 100 + i))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let second = Harness::start(broker, 1.0, &id).await;
    let got = second
        .wait_for(Duration::from_secs(10), |h| {
            h.metrics.readings_accepted.load(Ordering::Relaxed) >= 50
        })
        .await;
    let m = second.stop().await.metrics;
    assert!(got, "messages published while offline were not delivered: {m:?}");
    assert_eq!(
        m.mqtt_resubscribes, 0,
        "the broker kept the session, so no re-subscribe was needed"
    );
}
