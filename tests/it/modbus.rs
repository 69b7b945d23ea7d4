//! The Modbus source against an in-process tokio-modbus server on loopback:
//! every type and byte order, coalescing, exceptions, timeouts with a silent
//! unit, and a server restart.

use crate::common;

use common::{fill, VALUES};
use hums::common::clock::{ManualClock, SharedClock};
use hums::common::metrics::Metrics;
use hums::common::types::{Quality, Reading};
use hums::config::modbus::{ByteOrder, DataType, Table};
use hums::demo::modbus_server::{serve, RegisterBank, ServerHandle};
use hums::sources::modbus::{link, resolve};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

struct Rig {
    rx: mpsc::Receiver<hums::sources::Batch>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn config(
    addr: SocketAddr,
    adjust: impl FnOnce(&mut hums::config::Config),
) -> hums::config::Config {
    let mut cfg =
        hums::config::load_files(&["tests/fixtures/modbus.toml".into()]).expect("modbus fixture");
    cfg.modbus.links[0].address = addr.to_string();
    adjust(&mut cfg);
    cfg
}

fn start(cfg: &hums::config::Config) -> Rig {
    let link_cfg = cfg.modbus.links[0].clone();
    let units = resolve(&link_cfg, &cfg.modbus);
    let (tx, rx) = mpsc::channel(100_000);
    let (stop, stop_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let clock: SharedClock = Arc::new(ManualClock::new(1_000));
    let task = tokio::spawn(link::run(link_cfg, units, clock, metrics.clone(), tx, stop_rx));
    Rig { rx, metrics, stop, task }
}

impl Rig {
    /// Collects readings for `d`.
    async fn collect(&mut self, d: Duration) -> Vec<Reading> {
        let deadline = tokio::time::Instant::now() + d;
        let mut out = Vec::new();
        while let Ok(Some(b)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            out.extend(b.readings);
        }
        out
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn server(bank: &RegisterBank) -> ServerHandle {
    serve(bank.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn reads_every_type_and_byte_order_in_three_coalesced_requests() {
    let bank = RegisterBank::default();
    fill(&bank, 1);
    let srv = server(&bank).await;
    let cfg = config(srv.addr, |c| {
        c.modbus.links[0].units.truncate(1);
        c.modbus.links[0].units[0].poll_every = Duration::from_secs(60); // exactly one poll
    });
    let mut rig = start(&cfg);
    let got = rig.collect(Duration::from_millis(800)).await;
    let by_channel: HashMap<&str, &Reading> = got.iter().map(|r| (&*r.channel, r)).collect();
    for (ch, want) in VALUES {
        let r = by_channel.get(ch).unwrap_or_else(|| panic!("no reading for {ch}: {got:?}"));
        assert!((r.value - want).abs() <= want.abs() * 1e-12, "{ch}: got {}, want {want}", r.value);
        assert_eq!(r.quality, Quality::Good);
        assert_eq!(&*r.asset, "meter-1");
    }
    assert_eq!(got.len(), VALUES.len(), "one poll");
    assert_eq!(
        bank.requests(1),
        3,
        "holding 0–20, input 0 and coil 0: three requests, \
         not eleven"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_nan_float_is_marked_bad_not_passed_on_as_good() {
    let bank = RegisterBank::default();
    fill(&bank, 1);
    bank.set_words(1, Table::Holding, 6, &[0x0000, 0xC07F]); // NaN in DCBA
    let srv = server(&bank).await;
    let cfg = config(srv.addr, |c| c.modbus.links[0].units.truncate(1));
    let mut rig = start(&cfg);
    let got = rig.collect(Duration::from_millis(300)).await;
    let f32s: Vec<&Reading> = got.iter().filter(|r| &*r.channel == "ch_f32").collect();
    assert!(!f32s.is_empty());
    assert!(f32s.iter().all(|r| r.quality == Quality::Bad && r.value.is_nan()));
    assert!(rig.metrics.modbus_bad_values.load(Ordering::Relaxed) > 0);
    rig.stop().await;
}

#[tokio::test]
async fn exception_replies_are_reported_without_dropping_the_connection() {
    // The map reads coil 0, but this device has no coils: illegal data address.
    let srv = serve_without_coils(&RegisterBank::default()).await;
    let cfg = config(srv.addr, |c| c.modbus.links[0].units.truncate(1));
    let mut rig = start(&cfg);
    let got = rig.collect(Duration::from_millis(600)).await;
    assert!(got.iter().any(|r| &*r.channel == "ch_u16"), "the other requests still read");
    assert!(!got.iter().any(|r| &*r.channel == "ch_coil"), "no fake value for the failed field");
    let m = rig.metrics.snapshot();
    assert!(m.modbus_exceptions >= 2, "{m:?}");
    assert_eq!(m.modbus_connects, 1, "an exception is not a transport error: no reconnect");
    assert_eq!(m.modbus_transport_errors, 0);
    rig.stop().await;
}

/// A device like the meter but without coils.
async fn serve_without_coils(bank: &RegisterBank) -> ServerHandle {
    let h = Table::Holding;
    bank.set(1, h, 0, 65_000.0, DataType::U16, ByteOrder::ABCD);
    bank.set_words(1, h, 1, &[0; 20]);
    bank.set(1, Table::Input, 0, 123.0, DataType::U16, ByteOrder::ABCD);
    server(bank).await
}

#[tokio::test]
async fn a_silent_unit_is_backed_off_while_the_other_keeps_its_poll_rate() {
    let bank = RegisterBank::default();
    fill(&bank, 1);
    fill(&bank, 2);
    bank.set_silent(2, true);
    let srv = server(&bank).await;
    let cfg = config(srv.addr, |_| {});
    let mut rig = start(&cfg);
    let run = Duration::from_secs(3);
    let got = rig.collect(run).await;
    let polls =
        |asset: &str| got.iter().filter(|r| &*r.asset == asset && &*r.channel == "ch_u16").count();
    let (one, two) = (polls("meter-1"), polls("meter-2"));
    let m = rig.metrics.snapshot();
    // 100 ms interval over 3 s is 30 polls; the silent unit costs a 200 ms timeout
    // per attempt, but backoff (200 ms doubling to 1 s) keeps those rare.
    assert!(one >= 20, "meter-1 kept its rate: {one} polls in {run:?} (metrics {m:?})");
    assert_eq!(two, 0, "no values from a silent unit");
    assert!(m.modbus_transport_errors >= 2 && m.modbus_transport_errors <= 8, "backed off: {m:?}");
    eprintln!(
        "silent-unit test: meter-1 polled {one} times in {run:?} (ideal 30); meter-2 attempts {}",
        m.modbus_transport_errors
    );
    rig.stop().await;
}

#[tokio::test]
async fn polling_resumes_after_the_server_restarts() {
    let bank = RegisterBank::default();
    fill(&bank, 1);
    let srv = server(&bank).await;
    let addr = srv.addr;
    let cfg = config(addr, |c| c.modbus.links[0].units.truncate(1));
    let mut rig = start(&cfg);
    assert!(!rig.collect(Duration::from_millis(300)).await.is_empty());

    srv.task.abort(); // the device reboots: listener and connections go away
    let _ = srv.task.await;
    let _ = rig.collect(Duration::from_millis(100)).await; // drain in-flight readings
    let during = rig.collect(Duration::from_millis(700)).await;
    assert!(during.is_empty(), "no values while the device is down: {} readings", during.len());
    assert!(rig.metrics.modbus_transport_errors.load(Ordering::Relaxed) > 0);

    let restarted = Instant::now();
    let _srv = serve(bank.clone(), addr).await.expect("rebind the same port");
    let first = tokio::time::timeout(Duration::from_secs(5), rig.rx.recv()).await;
    assert!(matches!(first, Ok(Some(_))), "polling resumed");
    eprintln!("reconnect after server restart: {:?}", restarted.elapsed());
    assert!(rig.metrics.modbus_connects.load(Ordering::Relaxed) >= 2);
    rig.stop().await;
}
