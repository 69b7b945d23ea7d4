//! Durable outbox figures (a bench command, run with `cargo bench --bench outbox`):
//! - sustained commit throughput, one order per transaction (as the engine
//!   commits a tick with one raise), on disk with `synchronous = FULL`, against
//!   the same on tmpfs (`/dev/shm`, where fsync is free) in the same run;
//! - the same with 50 orders per transaction (a storm tick);
//! - delivery latency from commit (the trip) to receipt by an HTTP backend on
//!   loopback, p50 and p99 over 300 orders.

// Tests and benches may unwrap, and a test may read as one long scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use hums::common::metrics::Metrics;
use hums::config::backend::{Common, RestSettings};
use hums::demo::receiver::Receiver;
use hums::store::outbox::{NewEntry, Status};
use hums::store::Store;
use hums::workorders::backends::rest::RestBackend;
use hums::workorders::{delivery, WorkOrder};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn order(i: usize) -> WorkOrder {
    serde_json::from_value(serde_json::json!({
        "idempotency_key": format!("bench:pump-{i}:pump.bearing_wear:{i}"),
        "event": "raised", "revision": 1,
        "kind": "condition", "failure_mode": "pump.bearing_wear", "title": "Pump: bearing wear \
            suspected",
        "description": "Pump (Site A › Building 1) is at alarm severity.\nEvidence:\n- vib_de \
            mean: 3.1 mm/s (limit 2.8 mm/s)",
        "priority": 2, "priority_label": "high", "severity": "alarm",
        "asset": {"id": format!("pump-{i}"), "name": "Pump", "class": "pump", "backend_id": "MX-1",
                  "location": ["Site A", "Building 1", "Boiler room", "Loop 1"]},
        "evidence": [{"channel": "vib_de", "feature": "mean", "value": 3.1, "limit": 2.8,
                      "unit": "mm/s", "zone": "C", "since": "2026-11-25T08:14:00Z", "note": ""}],
        "cause": "Bearing wear", "actions": ["Check lubrication", "Take a spectrum"],
        "parts": [{"sku": "SKF-6309-2Z", "description": "Bearing", "qty": 1.0}],
        "skills": ["mechanical"],
        "safety": ["lockout-tagout"], "estimated_hours": 4.0, "detected_at": "2026-11-25T08:15:30Z",
        "due_by": null, "gateway_id": "bench"
    }))
    .expect("valid order")
}

fn dir(base: &str, name: &str) -> PathBuf {
    let d = PathBuf::from(base).join(format!("hums-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Orders per second committing `total` orders, `per_tx` per transaction.
fn commit_rate(base: &str, name: &str, total: usize, per_tx: usize) -> f64 {
    let d = dir(base, name);
    let store = Store::open_dir(&d).expect("store");
    let orders: Vec<NewEntry> = (0..total)
        .map(|i| NewEntry { order: order(i), status: Status::Pending, note: None })
        .collect();
    let t = Instant::now();
    for chunk in orders.chunks(per_tx) {
        store.commit(chunk, &[], None).expect("commit");
    }
    let rate = total as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&d);
    rate
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let disk = std::env::temp_dir().display().to_string();
    let shm = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".to_string()
    } else {
        disk.clone()
    };
    let one_disk = commit_rate(&disk, "disk1", 500, 1);
    let one_shm = commit_rate(&shm, "shm1", 500, 1);
    let batch_disk = commit_rate(&disk, "disk50", 5000, 50);
    println!("outbox commit, 1 order/tx, disk (synchronous=FULL): {one_disk:>9.0} orders/s");
    println!(
        "outbox commit, 1 order/tx, tmpfs (fsync free):     {one_shm:>9.0} orders/s  (disk/tmpfs \
            = {:.2})",
        one_disk / one_shm
    );
    println!(
        "outbox commit, 50 orders/tx, disk:                 {batch_disk:>9.0} orders/s  ({:.1}x \
            one per tx)",
        batch_disk / one_disk
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let receiver = Receiver::start(None, false).await.expect("receiver");
        let d = dir(&disk, "latency");
        let store = Arc::new(Store::open_dir(&d).expect("store"));
        let cfg = RestSettings {
            common: Common { url: receiver.url(), ..Common::default() },
            lookup_url: Some(receiver.lookup_url()),
            ..RestSettings::default()
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(delivery::run(
            store.clone(),
            RestBackend::new(&cfg).unwrap(),
            cfg.common,
            Arc::new(Metrics::default()),
            wake.clone(),
            stop_rx,
        ));
        const N: usize = 300;
        let mut tripped = Vec::with_capacity(N);
        for i in 0..N {
            tripped.push(Instant::now());
            store
                .commit(
                    &[NewEntry { order: order(i), status: Status::Pending, note: None }],
                    &[],
                    None,
                )
                .expect("commit");
            wake.notify_one();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while receiver.received().len() < N {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop_tx.send(true);
        let _ = task.await;
        let mut lat: Vec<Duration> = receiver
            .received()
            .iter()
            .zip(&tripped)
            .map(|(r, t)| r.at.duration_since(*t))
            .collect();
        lat.sort();
        println!(
            "trip → backend receipt over loopback ({N} orders): p50 {:.2} ms, p99 {:.2} ms, max \
                {:.2} ms",
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
        );
        let _ = std::fs::remove_dir_all(&d);
    });
}
