//! Modbus source (tokio-modbus): one task per physical link polls its units'
//! register maps, read-only. Decoding and request planning are pure
//! functions; `link` is the runtime. The embedded test server lives in
//! `demo::modbus_server`.

pub mod decode;
pub mod link;
pub mod plan;

use crate::config::modbus::{ByteOrder, DataType, Link, Modbus, Table};
use plan::{PollGroup, Span};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A field resolved against its map and unit, with its wire address.
#[derive(Debug, Clone)]
pub struct Field {
    pub asset: Arc<str>,
    pub channel: Arc<str>,
    pub table: Table,
    /// 0-based address as sent on the wire.
    pub address: u16,
    pub data_type: DataType,
    pub bit: Option<u8>,
    pub byte_order: ByteOrder,
    pub scale: f64,
    pub offset: f64,
    pub unit: String,
}

impl Field {
    /// Registers (or bits) the field occupies on the wire.
    pub fn wire_len(&self) -> u16 {
        if self.table.is_bits() || self.bit.is_some() {
            1
        } else {
            self.data_type.registers()
        }
    }

    /// Engineering value from the raw decoded number.
    pub fn scaled(&self, raw: f64) -> f64 {
        raw * self.scale + self.offset
    }
}

/// A unit with its fields and poll groups.
#[derive(Debug, Clone)]
pub struct Unit {
    pub id: u8,
    pub fields: Vec<Field>,
    pub groups: Vec<PollGroup>,
}

/// Resolves a validated link's units against the maps.
pub fn resolve(link: &Link, cfg: &Modbus) -> Vec<Unit> {
    link.units
        .iter()
        .filter_map(|u| {
            let map = cfg.maps.get(&u.map)?;
            let base = u16::from(map.address_base);
            let fields: Vec<Field> = map
                .fields
                .iter()
                .map(|f| Field {
                    asset: f.asset.as_deref().unwrap_or(&u.asset).into(),
                    channel: f.channel.as_str().into(),
                    table: f.table,
                    address: f.address.saturating_sub(base),
                    data_type: f.data_type,
                    bit: f.bit,
                    byte_order: f.byte_order.unwrap_or(map.byte_order),
                    scale: f.scale.unwrap_or(1.0),
                    offset: f.offset,
                    unit: f.unit.clone(),
                })
                .collect();
            let mut by_every: BTreeMap<Duration, Vec<Span>> = BTreeMap::new();
            for (i, (f, spec)) in fields.iter().zip(&map.fields).enumerate() {
                let every = spec.every.unwrap_or(u.poll_every);
                by_every.entry(every).or_default().push(Span {
                    table: f.table,
                    start: f.address,
                    len: f.wire_len(),
                    field: i,
                });
            }
            let groups = by_every
                .into_iter()
                .map(|(every, spans)| PollGroup {
                    every,
                    requests: plan::coalesce(spans, link.max_gap),
                })
                .collect();
            Some(Unit { id: u.unit, fields, groups })
        })
        .collect()
}

/// What a Modbus exception code means for the engineer reading the log.
pub fn exception_meaning(code: tokio_modbus::ExceptionCode) -> String {
    use tokio_modbus::ExceptionCode as E;
    match code {
        E::IllegalFunction => {
            "illegal function: the device does not support this table; check the fields' `table`"
                .into()
        }
        E::IllegalDataAddress => {
            "illegal data address: check the map's addresses/address_base".into()
        }
        E::IllegalDataValue => {
            "illegal data value: check the register count and the field types".into()
        }
        E::ServerDeviceFailure => {
            "server device failure: the device reports an internal error".into()
        }
        E::Acknowledge => {
            "acknowledge: the device accepted but has not finished; slow down polling".into()
        }
        E::ServerDeviceBusy => "device busy: raise the link's `pause` or the poll interval".into(),
        E::MemoryParityError => "memory parity error in the device".into(),
        E::GatewayPathUnavailable => {
            "gateway path unavailable: check the gateway's routing for this unit id".into()
        }
        E::GatewayTargetDevice => {
            "gateway target failed to respond: the unit behind the gateway is not answering".into()
        }
        other => format!("exception {other:?}"),
    }
}
