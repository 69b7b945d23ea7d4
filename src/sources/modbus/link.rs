//! The runtime of one physical link: owns the connection, switches unit ids,
//! serialises requests, puts every call under a timeout, drops the connection
//! after a timeout or transport error (so a stale response can never match a
//! later request), and backs off units that stop answering on their own.

use super::{decode, exception_meaning, plan::Request, Unit};
use crate::common::backoff::Backoff;
use crate::common::clock::SharedClock;
use crate::common::metrics::Metrics;
use crate::common::events::{Events, Failure};
use crate::common::types::{Quality, Reading};
use crate::config::modbus::{Link, Parity, Table, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::Slave;
use tracing::info;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The device answered with an exception: a device or config problem.
    #[error("unit {unit}: {meaning}")]
    Exception { unit: u8, meaning: String },
    /// No answer in time, or the transport broke: reconnect.
    #[error("unit {unit}: {reason}")]
    Transport { unit: u8, reason: String },
}

/// Raw data of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

/// Opens the link's connection.
pub async fn connect(link: &Link) -> std::io::Result<Context> {
    let timeout = link.timeout.max(Duration::from_millis(100));
    let fut = async {
        match link.transport {
            Transport::Tcp => {
                let addr = resolve(&link.address).await?;
                tokio_modbus::client::tcp::connect(addr).await
            }
            Transport::RtuOverTcp => {
                let stream = tokio::net::TcpStream::connect(resolve(&link.address).await?).await?;
                Ok(tokio_modbus::client::rtu::attach(stream))
            }
            Transport::Rtu => {
                use tokio_serial::SerialPortBuilderExt;
                let s = &link.serial;
                let port = tokio_serial::new(&s.path, s.baud)
                    .parity(match s.parity {
                        Parity::None => tokio_serial::Parity::None,
                        Parity::Even => tokio_serial::Parity::Even,
                        Parity::Odd => tokio_serial::Parity::Odd,
                    })
                    .data_bits(if s.data_bits == 7 {
                        tokio_serial::DataBits::Seven
                    } else {
                        tokio_serial::DataBits::Eight
                    })
                    .stop_bits(if s.stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One })
                    .open_native_async()
                    .map_err(std::io::Error::other)?;
                Ok(tokio_modbus::client::rtu::attach(port))
            }
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

async fn resolve(address: &str) -> std::io::Result<std::net::SocketAddr> {
    tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{address} does not resolve")))
}

/// One read under a timeout. Only read functions exist here: hums never writes.
pub async fn read(ctx: &mut Context, unit: u8, req: &Request, timeout: Duration) -> Result<Data, ReadError> {
    ctx.set_slave(Slave(unit));
    let call = async {
        match req.table {
            Table::Holding => ctx.read_holding_registers(req.start, req.count).await.map(|r| r.map(Data::Words)),
            Table::Input => ctx.read_input_registers(req.start, req.count).await.map(|r| r.map(Data::Words)),
            Table::Coil => ctx.read_coils(req.start, req.count).await.map(|r| r.map(Data::Bits)),
            Table::Discrete => ctx.read_discrete_inputs(req.start, req.count).await.map(|r| r.map(Data::Bits)),
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(ReadError::Transport { unit, reason: format!("no answer within {timeout:?}") }),
        Ok(Err(e)) => Err(ReadError::Transport { unit, reason: e.to_string() }),
        Ok(Ok(Err(code))) => Err(ReadError::Exception { unit, meaning: exception_meaning(code) }),
        Ok(Ok(Ok(data))) => Ok(data),
    }
}

/// Decodes the fields a request served: (field index, value). Non-finite
/// values (a float sensor reporting NaN) come back as NaN for the caller to
/// mark bad.
pub fn values(unit: &Unit, req: &Request, data: &Data) -> Vec<(usize, f64)> {
    req.fields
        .iter()
        .filter_map(|&i| {
            let f = &unit.fields[i];
            let at = usize::from(f.address - req.start);
            let raw = match data {
                Data::Bits(bits) => f64::from(u8::from(*bits.get(at)?)),
                Data::Words(words) => match f.bit {
                    Some(b) => decode::bit(*words.get(at)?, b),
                    None => decode::decode(words.get(at..)?, f.data_type, f.byte_order)?,
                },
            };
            Some((i, f.scaled(raw)))
        })
        .collect()
}

struct UnitState {
    backoff: Backoff,
    next_try: Instant,
    down: bool,
    due: Vec<Instant>,
}

/// Polls a link until `shutdown` turns true.
pub async fn run(
    link: Link,
    units: Vec<Unit>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Reading>,
    mut shutdown: watch::Receiver<bool>,
) {
    let now = Instant::now();
    let mut states: Vec<UnitState> = units
        .iter()
        .map(|u| UnitState {
            backoff: Backoff::new(link.backoff_min, link.backoff_max),
            next_try: now,
            down: false,
            due: vec![now; u.groups.len()],
        })
        .collect();
    let mut ctx: Option<Context> = None;
    let mut link_backoff = Backoff::new(link.backoff_min, link.backoff_max);
    let mut link_next_try = now;
    let events = Events::new(metrics.clone());
    info!(link = %link.name, units = units.len(), "Modbus link starting");
    loop {
        // The earliest due poll group of a unit that is not backed off.
        let next = states
            .iter()
            .enumerate()
            .flat_map(|(u, s)| s.due.iter().enumerate().map(move |(g, d)| ((*d).max(s.next_try), u, g)))
            .min();
        let Some((at, u, g)) = next else { break };
        let at = at.max(if ctx.is_none() { link_next_try } else { at });
        if at > Instant::now() {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep_until(at) => {}
            }
        } else if *shutdown.borrow() {
            // Already due: going through the timer would cost a millisecond tick.
            break;
        }

        if ctx.is_none() {
            match connect(&link).await {
                Ok(c) => {
                    ctx = Some(c);
                    link_backoff.reset();
                    Metrics::inc(&metrics.modbus_connects);
                }
                Err(e) => {
                    let delay = link_backoff.next_delay();
                    link_next_try = Instant::now() + delay;
                    events.report(Failure::ModbusConnect { link: &link.name, error: &e, retry_in: delay });
                    continue;
                }
            }
        }
        let Some(c) = ctx.as_mut() else { continue };
        let unit = &units[u];
        let group = &unit.groups[g];
        let mut readings = Vec::new();
        let mut failed = None;
        for (k, req) in group.requests.iter().enumerate() {
            if k > 0 && !link.pause.is_zero() {
                tokio::time::sleep(link.pause).await;
            }
            Metrics::inc(&metrics.modbus_requests);
            match read(c, unit.id, req, link.timeout).await {
                Ok(data) => {
                    let ts = clock.now();
                    for (i, v) in values(unit, req, &data) {
                        let f = &unit.fields[i];
                        let quality = if v.is_finite() { Quality::Good } else { Quality::Bad };
                        if quality == Quality::Bad {
                            Metrics::inc(&metrics.modbus_bad_values);
                        }
                        readings.push(Reading {
                            asset: f.asset.clone(),
                            channel: f.channel.clone(),
                            ts,
                            value: v,
                            quality,
                        });
                    }
                }
                Err(e @ ReadError::Exception { .. }) => events.report(Failure::ModbusException {
                    link: &link.name,
                    unit: unit.id,
                    table: &req.table,
                    start: req.start,
                    count: req.count,
                    error: &e,
                }),
                Err(e @ ReadError::Transport { .. }) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let st = &mut states[u];
        match failed {
            Some(e) => {
                // Drop the connection: a late answer must never match the next request.
                ctx = None;
                let delay = st.backoff.next_delay();
                st.next_try = Instant::now() + delay;
                st.down = true;
                events.report(Failure::ModbusUnitDown { link: &link.name, unit: unit.id, error: &e, retry_in: delay });
            }
            None => {
                if st.down {
                    info!(link = %link.name, unit = unit.id, "Modbus unit answering again");
                }
                st.down = false;
                st.backoff.reset();
                // Intervals are in the clock's time (the demo runs faster than real time).
                let every = group.every.div_f64(clock.speed().max(1e-9));
                let due = st.due[g] + every;
                st.due[g] = if due < Instant::now() { Instant::now() + every } else { due };
            }
        }
        for r in readings {
            if tx.send(r).await.is_err() {
                return;
            }
            Metrics::inc(&metrics.readings_accepted);
        }
    }
    info!(link = %link.name, "Modbus link stopped");
}
