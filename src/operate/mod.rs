//! The operator's side of the daemon: what hums sees ([`view`]), served over
//! HTTP ([`server`]: health, Prometheus metrics, a JSON API and the status
//! page, with [`auth`], the [`page`] templates and what they [`shared`]), published to MQTT
//! ([`publish`]), hot reload of the configuration ([`reload`]) and the
//! service manager's readiness and watchdog ([`notify`]).

pub mod actions;
pub mod auth;
pub mod notify;
pub mod page;
pub mod prometheus;
pub mod publish;
pub mod reload;
pub mod server;
pub mod shared;
pub mod tls;
pub mod view;
