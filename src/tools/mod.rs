//! The offline commands: replay history through the pipeline, score it the way
//! public benchmarks do, train models on it, probe Modbus devices once and
//! listen to MQTT topics for a while.

pub mod eval;
pub mod listen;
pub mod probe;
pub mod replay;
pub mod train;
