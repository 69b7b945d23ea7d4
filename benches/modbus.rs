//! Bus overhead of hums's Modbus poll cycle against a bare tokio-modbus read
//! loop over the same registers (the test meter map: holding 0–20, input 0,
//! coil 0, i.e. three requests per cycle), both against the embedded server on
//! loopback, in one run. `cargo bench --bench modbus`

// Tests and benches may unwrap, and a test may read as one long scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use hums::common::clock::{ManualClock, SharedClock};
use hums::common::metrics::Metrics;
use hums::config::modbus::{ByteOrder, DataType, Table};
use hums::demo::modbus_server::{serve, RegisterBank};
use hums::sources::modbus::{link, resolve};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_modbus::client::Reader;

const RUN: Duration = Duration::from_secs(3);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for latency in [Duration::ZERO, Duration::from_millis(1)] {
        println!("device answer latency {latency:?}:");
        rt.block_on(measure(latency));
    }
}

async fn measure(latency: Duration) {
    {
        let bank = RegisterBank::default();
        bank.set_latency(latency);
        bank.set_words(1, Table::Holding, 0, &[0x1234; 21]);
        bank.set(1, Table::Input, 0, 123.0, DataType::U16, ByteOrder::ABCD);
        bank.set_bit(1, Table::Coil, 0, true);
        let srv = serve(bank.clone(), "127.0.0.1:0".parse().expect("addr")).await.expect("server");

        // Bare loop: the same three reads, nothing else, as a task like hums's link.
        let addr = srv.addr;
        let (bare, elapsed) = tokio::spawn(async move {
            let mut ctx = tokio_modbus::client::tcp::connect_slave(addr, tokio_modbus::Slave(1))
                .await
                .expect("connect");
            let t = Instant::now();
            let mut bare = 0u64;
            while t.elapsed() < RUN {
                ctx.read_holding_registers(0, 21).await.expect("io").expect("read");
                ctx.read_input_registers(0, 1).await.expect("io").expect("read");
                ctx.read_coils(0, 1).await.expect("io").expect("read");
                bare += 1;
            }
            (bare, t.elapsed())
        })
        .await
        .expect("bare loop");
        let bare_rate = bare as f64 / elapsed.as_secs_f64();

        let served_bare = bank.requests(1);

        // hums: the link task polling as fast as it can, decoding and handing on readings.
        let mut cfg =
            hums::config::load_files(&["tests/fixtures/modbus.toml".into()]).expect("fixture");
        let mut l = cfg.modbus.links.remove(0);
        l.address = srv.addr.to_string();
        l.units.truncate(1);
        l.units[0].poll_every = Duration::from_nanos(1);
        let units = resolve(&l, &cfg.modbus);
        let fields = units[0].fields.len() as u64;
        let (tx, mut rx) = tokio::sync::mpsc::channel(100_000);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let clock: SharedClock = Arc::new(ManualClock::new(0));
        let task =
            tokio::spawn(link::run(l, units, clock, Arc::new(Metrics::default()), tx, stop_rx));
        let t = Instant::now();
        let mut readings = 0u64;
        while t.elapsed() < RUN {
            if let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                let b: hums::sources::Batch = b;
                readings += b.len() as u64;
            }
        }
        let hums_rate = readings as f64 / fields as f64 / t.elapsed().as_secs_f64();
        let _ = stop.send(true);
        let _ = task.await;
        let served_hums = bank.requests(1) - served_bare;
        println!(
            "requests served: bare {served_bare} ({bare} cycles), hums {served_hums} ({} cycles)",
            readings / fields
        );

        println!("bare tokio-modbus loop: {bare_rate:>8.0} cycles/s (3 requests each)");
        println!("hums poll cycle:        {hums_rate:>8.0} cycles/s ({fields} readings each)");
        println!(
            "hums / bare:            {:>8.3}  (overhead {:.1}%)",
            hums_rate / bare_rate,
            (bare_rate / hums_rate - 1.0) * 100.0
        );
    }
}
