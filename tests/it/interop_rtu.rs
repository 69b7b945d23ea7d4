//! Modbus RTU over a pseudo-terminal pair made by socat (installed by
//! `.ci/run`): the embedded RTU server on one end, hums's RTU link on the other.

use crate::common;

use hums::config::modbus::Transport;
use hums::demo::modbus_server::{serve_rtu, RegisterBank};
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
    common::fill(&bank, 1);
    let server =
        serve_rtu(bank.clone(), &a.display().to_string(), 19_200).expect("RTU server on the pty");

    let path = b.display().to_string();
    let got = common::read_meter_once(|l| {
        l.transport = Transport::Rtu;
        l.serial.path = path;
        l.serial.baud = 19_200;
        l.timeout = Duration::from_secs(1);
    })
    .await;
    server.abort();
    let _ = socat.kill();
    let _ = socat.wait();
    common::assert_values(&got);
    assert_eq!(bank.requests(1), 3, "three coalesced requests on the serial bus");
}
