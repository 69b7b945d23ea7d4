//! `kill -9` of a real `hums run` process at random moments, then restarts:
//! exactly one work order per alarm episode reaches the backend.

use crate::common;

use common::{per_key, publish_fleet, publisher};
use hums::demo::receiver::{Fault, Receiver};
use rand::{RngExt, SeedableRng};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn_hums(broker: std::net::SocketAddr, receiver: &Receiver, state: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["run", "--config", "tests/fixtures/fleet.toml"])
        .env("HUMS__MQTT__HOST", broker.ip().to_string())
        .env("HUMS__MQTT__PORT", broker.port().to_string())
        .env("HUMS__MQTT__CLIENT_ID", "hums-crash-test")
        .env("HUMS__BACKEND__URL", receiver.url())
        .env("HUMS__BACKEND__LOOKUP_URL", receiver.lookup_url())
        .env("HUMS__BACKEND__TIMEOUT", "300ms")
        .env("HUMS__STATE__DIR", state)
        // Real time: evaluate every second, raise after two.
        .env("HUMS__PIPELINE__EVAL_INTERVAL", "1s")
        .env("HUMS__PIPELINE__WINDOW", "5s")
        .env("HUMS__MQTT__MAX_FUTURE_SKEW", "5s")
        .env("HUMS__ALARMS__ON_DELAY", "2s")
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hums")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_delivery_then_restart_delivers_each_order_exactly_once() {
    const ASSETS: usize = 4;
    let broker = hums::demo::broker::start().unwrap();
    let receiver = Receiver::start(None, false).await.unwrap();
    // A slow, flaky backend widens the window in which a kill lands mid-send.
    receiver.inject((0..60).map(|i| match i % 3 {
        0 => Fault::Delay(Duration::from_millis(500)),
        1 => Fault::Status(500, None),
        _ => Fault::Delay(Duration::from_millis(100)),
    }));
    let state = common::temp_dir("crash").display().to_string();
    let fleet = (1..=ASSETS).map(|i| (format!("pump-{i}"), true)).collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(publish_fleet(
        publisher(broker, "crash-plant").await,
        fleet,
        Duration::from_millis(100),
        stop_rx,
    ));

    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    let mut kills = 0;
    for _ in 0..8 {
        let mut child = spawn_hums(broker, &receiver, &state);
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2500))).await;
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        child.wait().unwrap();
        kills += 1;
    }

    // A last run that is left alone until everything is delivered.
    let mut child = spawn_hums(broker, &receiver, &state);
    let deadline = Instant::now() + Duration::from_secs(40);
    let db = std::path::Path::new(&state).join(hums::store::DB_FILE);
    let done = loop {
        let drained = hums::store::Store::open(&db)
            .ok()
            .and_then(|s| s.counts().ok())
            .is_some_and(|c| !c.iter().any(|(s, n)| (s == "pending" || s == "sending") && *n > 0));
        if per_key(&receiver).len() >= ASSETS && drained {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = stop_tx.send(true);
    let _ = task.await;

    let got = per_key(&receiver);
    assert_eq!(kills, 8);
    assert!(done, "not everything was delivered: {got:?}");
    assert_eq!(got.len(), ASSETS, "one alarm episode per faulty pump: {got:?}");
    assert!(got.values().all(|n| *n == 1), "duplicates after kill -9: {got:?}");
}
