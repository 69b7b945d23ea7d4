//! Sources turn the outside world into [`crate::model::Reading`]s.

pub mod modbus;
pub mod mqtt;
pub mod payload;
pub mod replay;
pub mod sim;
pub mod topic;
