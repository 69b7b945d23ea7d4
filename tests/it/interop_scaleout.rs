//! Against mosquitto (started by `.ci/run`): the ingest benchmark's smoke run,
//! so `hums bench` cannot rot, and scale-out by a shared subscription: two hums
//! instances in one `$share` group on one stream, each reading judged once.

use crate::common::{publisher, temp_dir};
use hums::common::clock::{SharedClock, SystemClock};
use hums::common::metrics::Metrics;
use hums::demo::bench::{self, Payload};
use rumqttc::QoS;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn mosquitto() -> SocketAddr {
    let addr = std::env::var("HUMS_TEST_MOSQUITTO")
        .expect("HUMS_TEST_MOSQUITTO=host:port must name a running mosquitto (see .ci/run)");
    addr.parse().expect("HUMS_TEST_MOSQUITTO is host:port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_benchmark_runs_and_loses_nothing() {
    for payload in [Payload::Number, Payload::Object] {
        let o = bench::Options {
            broker: mosquitto(),
            payload,
            qos: 1,
            messages: 3000,
            assets: 50,
            rounds: 1,
            timeout: Duration::from_secs(60),
        };
        let rounds = bench::run(&o).await;
        let table = bench::report(&o, &rounds);
        let r = &rounds[0];
        assert_eq!(r.baseline.messages, 3000, "{table}");
        assert_eq!(r.hums.messages, 3000, "{table}");
        assert_eq!((r.hums.lost, r.hums.twice), (0, 0), "{table}");
        assert!(r.hums.rate > 0.0 && r.baseline.rate > 0.0, "{table}");
        eprintln!("{table}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_in_a_shared_subscription_judge_each_reading_once() {
    let broker = mosquitto();
    let mut instances = Vec::new();
    for i in 0..2 {
        let state = temp_dir(&format!("share-{i}")).display().to_string();
        let mut cfg = bench::config(broker, Payload::Number, 20, &state).unwrap();
        cfg.gateway.id = format!("share-{i}");
        cfg.mqtt.client_id = Some(format!("hums-share-{i}-{}", std::process::id()));
        // Its own topics (the benchmark's test may run beside it on the same
        // broker) and its own group (sessions of earlier runs stay in theirs).
        cfg.mqtt.subscriptions[0].filter = format!("$share/hums-{}/share/+/+", std::process::id());
        cfg.mqtt.subscriptions[0].template = "share/{asset}/{channel}".into();
        let metrics = Arc::new(Metrics::default());
        let clock: SharedClock = Arc::new(SystemClock);
        let (stop, rx) = tokio::sync::watch::channel(false);
        let engine = tokio::spawn(hums::runtime::run(cfg, clock, metrics.clone(), rx));
        instances.push((metrics, stop, engine));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while instances.iter().any(|(m, _, _)| m.mqtt_resubscribes.load(Ordering::Relaxed) == 0) {
        assert!(Instant::now() < deadline, "an instance never subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let client = publisher(broker, "share-pub").await;
    const N: u64 = 4000;
    for n in 0..N {
        let topic = format!("share/m{}/{}", n % 20, bench::CHANNELS[(n / 20) as usize % 8]);
        client.publish(topic, QoS::AtLeastOnce, false, format!("{}", n % 7)).await.unwrap();
    }
    let accepted = |i: usize| instances[i].0.readings_accepted.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepted(0) + accepted(1) < N && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // nothing more comes
    let (a, b) = (accepted(0), accepted(1));
    assert_eq!(a + b, N, "each reading handed on exactly once: {a} + {b}");
    assert!(a > 0 && b > 0, "the group shares the stream: {a} and {b}");
    for (m, _, _) in &instances {
        assert_eq!(m.readings_duplicate.load(Ordering::Relaxed), 0);
        assert_eq!(m.topic_unmapped.load(Ordering::Relaxed), 0);
    }
    eprintln!("shared subscription: instance A judged {a} readings, B {b}");
    for (i, (_, stop, engine)) in instances.into_iter().enumerate() {
        let _ = stop.send(true);
        let _ = engine.await;
        bench::forget_session(broker, &format!("hums-share-{i}-{}", std::process::id())).await;
    }
}
