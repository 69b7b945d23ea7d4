//! Interop against a Modbus server nobody here wrote: pymodbus (PyPI), started
//! by `.ci/run` with tests/interop/pymodbus_server.py and passed in
//! `HUMS_TEST_PYMODBUS=host:port`. hums reads known values of every type.

mod common;

use hums::clock::{ManualClock, SharedClock};
use hums::metrics::Metrics;
use hums::model::Quality;
use hums::sources::modbus::{link, resolve};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn reads_every_type_and_byte_order_from_pymodbus() {
    let addr = std::env::var("HUMS_TEST_PYMODBUS")
        .expect("HUMS_TEST_PYMODBUS=host:port must name a running pymodbus server (see .ci/run)");
    let mut cfg = hums::config::load_files(&["tests/fixtures/modbus.toml".into()]).unwrap();
    let mut l = cfg.modbus.links.remove(0);
    l.address = addr;
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
                assert_eq!(r.quality, Quality::Good, "{r:?}");
                got.insert(r.channel.to_string(), r.value);
            }
            _ => break,
        }
    }
    let _ = stop.send(true);
    let _ = task.await;
    for (ch, want) in common::VALUES {
        let v = got.get(ch).unwrap_or_else(|| panic!("no {ch} from pymodbus: {got:?} {:?}", metrics.snapshot()));
        assert!((v - want).abs() <= want.abs() * 1e-12, "{ch}: got {v}, want {want}");
    }
}
