//! `hums probe`: a commissioning aid. Reads every configured Modbus field once
//! and shows the raw registers, the decoded value and the unit; optionally the
//! value under every byte order, so a swapped float stands out at once.

use crate::config::modbus::{ByteOrder, Link, Modbus};
use crate::config::Config;
use crate::sources::modbus::link::{self, Data, ReadError};
use crate::sources::modbus::plan::Request;
use crate::sources::modbus::{decode, resolve, Field, Unit};

/// One probed field.
#[derive(Debug, Clone)]
pub struct Row {
    pub link: String,
    pub unit: u8,
    pub asset: String,
    pub channel: String,
    pub table: String,
    pub address: u16,
    /// Raw registers as hex (or bits as 0/1), or the error.
    pub raw: String,
    pub value: Option<f64>,
    pub eng_unit: String,
    /// The value under ABCD, DCBA, BADC and CDAB (multi-byte register types only).
    pub all_orders: Vec<(ByteOrder, f64)>,
}

/// Probes every link (or only `device`), one read per coalesced request.
pub async fn probe(cfg: &Config, device: Option<&str>) -> Result<Vec<Row>, String> {
    let links: Vec<_> =
        cfg.modbus.links.iter().filter(|l| device.is_none_or(|d| l.name == d)).collect();
    if links.is_empty() {
        let names: Vec<&str> = cfg.modbus.links.iter().map(|l| l.name.as_str()).collect();
        return Err(format!(
            "no Modbus link {device:?} in the config (links: {})",
            names.join(", ")
        ));
    }
    let mut rows = Vec::new();
    for l in links {
        probe_link(l, &cfg.modbus, &mut rows).await;
    }
    Ok(rows)
}

/// Probes one link's units into `rows`. A failed connection or read becomes error rows; after
/// a transport error the link reconnects, and if it cannot, the unit's other reads are skipped.
async fn probe_link(l: &Link, modbus: &Modbus, rows: &mut Vec<Row>) {
    let units = resolve(l, modbus);
    let mut ctx = match link::connect(l).await {
        Ok(c) => c,
        Err(e) => {
            rows.push(error_row(&l.name, 0, "-", &format!("cannot connect to {}: {e}", l.address)));
            return;
        }
    };
    for u in &units {
        for req in u.groups.iter().flat_map(|g| &g.requests) {
            let data = match link::read(&mut ctx, u.id, req, l.timeout).await {
                Ok(d) => d,
                Err(e) => {
                    push_read_errors(rows, &l.name, u, req, &e);
                    if matches!(e, ReadError::Transport { .. }) {
                        ctx = match link::connect(l).await {
                            Ok(c) => c,
                            Err(_) => break,
                        };
                    }
                    continue;
                }
            };
            for (i, value) in link::values(u, req, &data) {
                rows.push(value_row(&l.name, u, req, &data, i, value));
            }
        }
    }
}

/// An error row for each field a failed request serves.
fn push_read_errors(rows: &mut Vec<Row>, name: &str, u: &Unit, req: &Request, e: &ReadError) {
    for &i in &req.fields {
        let f = &u.fields[i];
        let mut row = error_row(name, u.id, &f.channel, &e.to_string());
        row.asset = f.asset.to_string();
        row.table = format!("{:?}", f.table).to_lowercase();
        row.address = f.address;
        rows.push(row);
    }
}

/// The row of field `i` of unit `u`, which `req` read as `data` and decoded as `value`.
fn value_row(name: &str, u: &Unit, req: &Request, data: &Data, i: usize, value: f64) -> Row {
    let f = &u.fields[i];
    let at = usize::from(f.address - req.start);
    let (raw, all_orders) = match data {
        Data::Bits(b) => (u8::from(b[at]).to_string(), Vec::new()),
        Data::Words(w) => raw_words(f, w, at),
    };
    Row {
        link: name.to_string(),
        unit: u.id,
        asset: f.asset.to_string(),
        channel: f.channel.to_string(),
        table: format!("{:?}", f.table).to_lowercase(),
        address: f.address,
        raw,
        value: Some(value),
        eng_unit: f.unit.clone(),
        all_orders,
    }
}

/// A field's registers (from `at` in `w`) as hex and, for a value over several registers,
/// the value under every byte order.
fn raw_words(f: &Field, w: &[u16], at: usize) -> (String, Vec<(ByteOrder, f64)>) {
    let n = usize::from(f.wire_len()).min(w.len() - at);
    let regs = &w[at..at + n];
    let raw = regs.iter().map(|r| format!("{r:04X}")).collect::<Vec<_>>().join(" ");
    let orders = if f.bit.is_none() && n > 1 {
        ByteOrder::ALL
            .iter()
            .filter_map(|o| decode::decode(regs, f.data_type, *o).map(|v| (*o, f.scaled(v))))
            .collect()
    } else {
        Vec::new()
    };
    (raw, orders)
}

fn error_row(link: &str, unit: u8, channel: &str, error: &str) -> Row {
    Row {
        link: link.into(),
        unit,
        asset: String::new(),
        channel: channel.into(),
        table: String::new(),
        address: 0,
        raw: format!("ERROR: {error}"),
        value: None,
        eng_unit: String::new(),
        all_orders: Vec::new(),
    }
}

/// Prints rows as a table.
pub fn print(rows: &[Row], all_orders: bool) {
    print!(
        "{:<10} {:>4} {:<12} {:<20} {:<8} {:>6}  {:<20} {:>16} {:<6}",
        "link", "unit", "asset", "channel", "table", "addr", "raw", "value", "unit"
    );
    if all_orders {
        print!(" {:>14} {:>14} {:>14} {:>14}", "ABCD", "DCBA", "BADC", "CDAB");
    }
    println!();
    for r in rows {
        let value = r.value.map_or("-".to_string(), |v| format!("{v:.6}"));
        print!(
            "{:<10} {:>4} {:<12} {:<20} {:<8} {:>6}  {:<20} {:>16} {:<6}",
            r.link, r.unit, r.asset, r.channel, r.table, r.address, r.raw, value, r.eng_unit
        );
        if all_orders {
            for o in ByteOrder::ALL {
                let v = r
                    .all_orders
                    .iter()
                    .find(|(x, _)| *x == o)
                    .map_or(String::new(), |(_, v)| format!("{v:.6e}"));
                print!(" {v:>14}");
            }
        }
        println!();
    }
}
