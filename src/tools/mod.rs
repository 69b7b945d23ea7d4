//! The offline commands: replay history through the pipeline, score it the way
//! public benchmarks do, train models on it, and probe Modbus devices once.

pub mod eval;
pub mod probe;
pub mod replay;
pub mod train;
