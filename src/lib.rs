//! hums: health and usage monitoring for plant-floor machines.
//!
//! Sources turn the outside world into [`model::Reading`]s. The transforms
//! (`window`, `features`, `detect`, `alarms`) are pure structs driven by event
//! time, and the sink (`workorders`) plans, delivers and records work orders.
//! [`engine`] wires them together for `hums run` and `hums demo`.

pub mod alarms;
pub mod backends;
pub mod backoff;
pub mod broker;
pub mod charts;
pub mod clock;
pub mod config;
pub mod demo;
pub mod detect;
pub mod engine;
pub mod eval;
pub mod features;
pub mod metrics;
pub mod model;
pub mod models;
pub mod pipeline;
pub mod probe;

pub mod receiver;
pub mod recent;
pub mod replay;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod train;
pub mod usage;
pub mod window;
pub mod workorders;
