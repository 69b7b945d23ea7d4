//! hums: health and usage monitoring for plant-floor machines.
//!
//! The tree is the data flow (README, "Architecture"):
//!
//! - [`common`]: value types, clock, metrics and failure events, backoff, logging.
//! - [`config`]: the TOML schema, layered loading and validation.
//! - [`sources`]: MQTT, Modbus and history files into [`common::types::Reading`]s.
//! - [`pipeline`]: the pure transform chain, readings → windows → features →
//!   detectors → alarms → planned work orders, driven by event time.
//! - [`workorders`]: flood control, delivery and the maintenance backends.
//! - [`store`]: the SQLite outbox and the state kept across restarts.
//! - [`runtime`]: `hums run`, which builds the parts above and connects them.
//! - [`operate`]: what operators see and do: the status view, the HTTP server
//!   (health, metrics, API, status page), MQTT publishing, hot reload,
//!   shelving and the service manager.
//! - [`tools`]: the offline commands (replay, eval, train, probe).
//! - [`demo`] (feature `demo`): the simulated plant, embedded broker,
//!   work-order receiver and Modbus test server.

pub mod common;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod operate;
pub mod pipeline;
pub mod runtime;
pub mod sources;
pub mod store;
pub mod tools;
pub mod workorders;
