//! Modbus RTU over a pseudo-terminal pair made by socat (installed by
//! `.ci/run`): the embedded RTU server on one end, hums's RTU link on the other.

mod common;

use hums::clock::{ManualClock, SharedClock};
use hums::config::modbus::{ByteOrder, DataType, Table, Transport};
use hums::metrics::Metrics;
use hums::sources::modbus::server::{serve_rtu, RegisterBank};
use hums::sources::modbus::{link, resolve};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn rtu_over_a_pty_pair_reads_the_map() {
    let dir = common::temp_dir("rtu");
    let (a, b) = (dir.join("device"), dir.join("hums"));
    let mut socat = std::process::Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", a.display()))
        .arg(format!("pty,raw,echo=0,link={}", b.display()))
        .spawn()
        .expect("socat must be installed (see .ci/run)");
    for _ in 0..50 {
        if a.exists() && b.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bank = RegisterBank::default();
    bank.set(1, Table::Holding, 0, 65_000.0, DataType::U16, ByteOrder::ABCD);
    bank.set(1, Table::Holding, 1, -1234.0, DataType::I16, ByteOrder::ABCD);
    bank.set(1, Table::Holding, 2, 4_000_000_000.0, DataType::U32, ByteOrder::CDAB);
    bank.set(1, Table::Holding, 4, -2_000_000_000.0, DataType::I32, ByteOrder::BADC);
    bank.set(1, Table::Holding, 6, -273.15f32 as f64, DataType::F32, ByteOrder::DCBA);
    bank.set(1, Table::Holding, 8, std::f64::consts::E, DataType::F64, ByteOrder::ABCD);
    bank.set(1, Table::Holding, 12, 9_007_199_254_740_992.0, DataType::U64, ByteOrder::ABCD);
    bank.set(1, Table::Holding, 16, -9_007_199_254_740_992.0, DataType::I64, ByteOrder::ABCD);
    bank.set_words(1, Table::Holding, 20, &[0b1000]);
    bank.set(1, Table::Input, 0, 123.0, DataType::U16, ByteOrder::ABCD);
    bank.set_bit(1, Table::Coil, 0, true);
    let server = serve_rtu(bank.clone(), &a.display().to_string(), 19_200).expect("RTU server on the pty");

    let mut cfg = hums::config::load_files(&["tests/fixtures/modbus.toml".into()]).unwrap();
    let mut l = cfg.modbus.links.remove(0);
    l.transport = Transport::Rtu;
    l.serial.path = b.display().to_string();
    l.serial.baud = 19_200;
    l.timeout = Duration::from_secs(1);
    l.units.truncate(1);
    l.units[0].poll_every = Duration::from_secs(60);
    let units = resolve(&l, &cfg.modbus);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let clock: SharedClock = Arc::new(ManualClock::new(0));
    let task = tokio::spawn(link::run(l, units, clock, metrics.clone(), tx, stop_rx));
    let mut got = std::collections::HashMap::new();
    while got.len() < common::VALUES.len() {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(r)) => {
                got.insert(r.channel.to_string(), r.value);
            }
            _ => break,
        }
    }
    let _ = stop.send(true);
    let _ = task.await;
    server.abort();
    let _ = socat.kill();
    let _ = socat.wait();
    for (ch, want) in common::VALUES {
        let v = got.get(ch).unwrap_or_else(|| panic!("no {ch} over RTU: {got:?} {:?}", metrics.snapshot()));
        assert!((v - want).abs() <= want.abs() * 1e-12, "{ch}: got {v}, want {want}");
    }
    assert_eq!(bank.requests(1), 3, "three coalesced requests on the serial bus");
}
