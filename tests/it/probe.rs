//! `hums probe` against the embedded Modbus server: raw registers, decoded
//! values, every byte order, and a clear error for a dead device.

use crate::common;

use hums::config::modbus::{ByteOrder, DataType, Table};
use hums::demo::modbus_server::{serve, RegisterBank};
use std::process::Command;

fn config_file(addr: std::net::SocketAddr) -> std::path::PathBuf {
    let dir = common::temp_dir("probe");
    let text = std::fs::read_to_string("tests/fixtures/modbus.toml").unwrap();
    let text = text.replace("127.0.0.1:502", &addr.to_string());
    let path = dir.join("probe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_raw_registers_values_and_every_byte_order() {
    let bank = RegisterBank::default();
    for unit in [1, 2] {
        bank.set(unit, Table::Holding, 0, 65_000.0, DataType::U16, ByteOrder::ABCD);
        bank.set(unit, Table::Holding, 1, -1234.0, DataType::I16, ByteOrder::ABCD);
        bank.set(unit, Table::Holding, 2, 4_000_000_000.0, DataType::U32, ByteOrder::CDAB);
        bank.set(unit, Table::Holding, 4, -5.0, DataType::I32, ByteOrder::BADC);
        bank.set(unit, Table::Holding, 6, 21.5, DataType::F32, ByteOrder::DCBA);
        bank.set_words(unit, Table::Holding, 8, &[0; 13]);
        bank.set(unit, Table::Input, 0, 123.0, DataType::U16, ByteOrder::ABCD);
        bank.set_bit(unit, Table::Coil, 0, true);
    }
    let srv = serve(bank, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let path = config_file(srv.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_hums"))
            .args(["probe", "--config"])
            .arg(&path)
            .arg("--all-orders")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = |ch: &str| {
        stdout
            .lines()
            .find(|l| l.contains("meter-1") && l.contains(ch))
            .unwrap_or_else(|| panic!("{ch}:\n{stdout}"))
            .to_string()
    };
    assert!(line("ch_u16").contains("FDE8") && line("ch_u16").contains("65000.000000"));
    // 4e9 = 0xEE6B2800, word-swapped on the wire.
    assert!(
        line("ch_u32").contains("2800 EE6B") && line("ch_u32").contains("4000000000.000000"),
        "{}",
        line("ch_u32")
    );
    // The float under every order: only DCBA gives 21.5.
    let f = line("ch_f32");
    assert!(f.contains("21.500000") && f.contains("2.150000e1"), "{f}");
    assert_eq!(f.matches("2.150000e1").count(), 1, "only one order decodes to 21.5: {f}");
    assert!(line("ch_scaled").contains("12.300000"));
    assert!(line("ch_coil").contains(" 1 "));
}

#[test]
fn probe_of_a_dead_device_says_so_and_fails() {
    let path = config_file(common::free_addr());
    let out = Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["probe", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("ERROR: cannot connect to 127.0.0.1:"), "{stdout}");
}
