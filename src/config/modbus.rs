//! Modbus configuration: links (TCP, RTU on a serial line, RTU over TCP), the
//! units behind them, and register maps shared per device model.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Modbus {
    /// Physical links; one task owns each.
    pub links: Vec<Link>,
    /// Register maps by name, referenced by units.
    pub maps: BTreeMap<String, RegisterMap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Tcp,
    /// RTU framing on a serial line.
    Rtu,
    /// RTU framing tunnelled over a TCP socket (serial device servers).
    RtuOverTcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

/// Serial line settings for `transport = "rtu"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Serial {
    pub path: String,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: u8,
    pub stop_bits: u8,
}

impl Default for Serial {
    fn default() -> Self {
        Self { path: String::new(), baud: 9600, parity: Parity::None, data_bits: 8, stop_bits: 1 }
    }
}

/// One physical link and the units (slave ids) behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Link {
    pub name: String,
    pub transport: Transport,
    /// `host:port` for `tcp` and `rtu_over_tcp`.
    pub address: String,
    pub serial: Serial,
    /// Every request is abandoned after this long (and the connection dropped).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Pause between requests, for slow devices.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
    /// Backoff for reconnecting and for units that stopped answering.
    #[serde(with = "humantime_serde")]
    pub backoff_min: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Largest gap (registers, or bits for coils) read across to save a request.
    pub max_gap: u16,
    pub units: Vec<Unit>,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            name: String::new(),
            transport: Transport::Tcp,
            address: String::new(),
            serial: Serial::default(),
            timeout: Duration::from_secs(1),
            pause: Duration::ZERO,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_gap: 8,
            units: Vec::new(),
        }
    }
}

/// A device (unit id) on a link.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Unit {
    /// Modbus unit (slave) id, 0–247 (255 for some TCP devices).
    pub unit: u8,
    /// Name of the register map in `[modbus.maps]`.
    pub map: String,
    /// The asset its fields feed (a field may name another).
    pub asset: String,
    /// Default poll interval of its fields.
    #[serde(with = "humantime_serde")]
    pub poll_every: Duration,
}

impl Default for Unit {
    fn default() -> Self {
        Self {
            unit: 1,
            map: String::new(),
            asset: String::new(),
            poll_every: Duration::from_secs(5),
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    #[default]
    Holding,
    Input,
    Coil,
    Discrete,
}

impl Table {
    /// Whether the table holds single bits (coils, discrete inputs).
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    /// A coil or discrete input; or with `bit`, one bit of a register.
    Bool,
    #[default]
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DataType {
    /// Registers (or bits, for a coil/discrete bool) the type occupies.
    pub fn registers(self) -> u16 {
        match self {
            DataType::Bool | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
}

/// Byte order of multi-byte values, named by where bytes A (most significant)
/// to D land on the wire: ABCD is big-endian (the Modbus convention), CDAB
/// swaps words, BADC swaps bytes within words, DCBA is little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ByteOrder {
    #[default]
    ABCD,
    DCBA,
    BADC,
    CDAB,
}

impl ByteOrder {
    pub const ALL: [ByteOrder; 4] =
        [ByteOrder::ABCD, ByteOrder::DCBA, ByteOrder::BADC, ByteOrder::CDAB];
}

/// A register map, shared by every unit of one device model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RegisterMap {
    pub description: String,
    /// `1` when the manual counts registers from 1 (40001-style); addresses
    /// below are then one more than what goes on the wire.
    pub address_base: u8,
    /// Default byte order of the map's fields.
    pub byte_order: ByteOrder,
    pub fields: Vec<Field>,
}

/// One value in a register map.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Field {
    /// The channel it feeds.
    pub channel: String,
    /// Overrides the unit's asset.
    pub asset: Option<String>,
    pub table: Table,
    pub address: u16,
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// For `type = "bool"` in a register table: the bit (0 = least significant).
    pub bit: Option<u8>,
    pub byte_order: Option<ByteOrder>,
    /// value = raw × scale + offset
    pub scale: Option<f64>,
    pub offset: f64,
    pub unit: String,
    /// Overrides the unit's poll interval.
    #[serde(with = "humantime_serde")]
    pub every: Option<Duration>,
}
