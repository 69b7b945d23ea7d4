//! Sources turn the outside world into [`crate::common::types::Reading`]s.

pub mod modbus;
pub mod mqtt;
pub mod payload;
pub mod replay;
