//! hums's integration tests, in one binary so the suite links once.
//!
//! Each module is one area; `interop_*` run against peers nobody here wrote
//! (mosquitto, pymodbus, Prism) and only with `--features interop`, which
//! `.ci/run` sets after starting them.

// Tests and benches may unwrap, and a test may read as one long scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

mod backend_dynamics;
mod backend_limble;
mod backend_maximo;
mod backend_sap;
mod backend_servicenow;
mod backend_upkeep;
mod backend_webhook;
mod closing_loop;
mod config;
mod crash;
mod delivery;
mod demo;
mod e2e;
mod eval;
mod evidence;
mod faults;
#[cfg(feature = "interop")]
mod interop_maintainx;
#[cfg(feature = "interop")]
mod interop_mosquitto;
#[cfg(feature = "interop")]
mod interop_pymodbus;
#[cfg(feature = "interop")]
mod interop_rtu;
#[cfg(feature = "interop")]
mod interop_scaleout;
mod judgement;
mod life;
mod listen;
mod modbus;
mod mqtt_acks;
mod novelty;
mod operate;
mod outbox;
mod predict;
mod probe;
mod replay;
mod tls;
mod train;
mod usage;
