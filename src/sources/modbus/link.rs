//! The runtime of one physical link: owns the connection, switches unit ids,
//! serialises requests, puts every call under a timeout, drops the connection
//! after a timeout or transport error (so a stale response can never match a
//! later request), and backs off units that stop answering on their own.

use super::{decode, exception_meaning, plan::Request, Unit};
use crate::common::backoff::Backoff;
use crate::common::clock::SharedClock;
use crate::common::events::{Events, Failure};
use crate::common::metrics::Metrics;
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
                    .stop_bits(if s.stop_bits == 2 {
                        tokio_serial::StopBits::Two
                    } else {
                        tokio_serial::StopBits::One
                    })
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
    tokio::net::lookup_host(address).await?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("{address} does not resolve"))
    })
}

/// One read under a timeout. Only read functions exist here: hums never writes.
pub async fn read(
    ctx: &mut Context,
    unit: u8,
    req: &Request,
    timeout: Duration,
) -> Result<Data, ReadError> {
    ctx.set_slave(Slave(unit));
    let call = async {
        match req.table {
            Table::Holding => {
                ctx.read_holding_registers(req.start, req.count).await.map(|r| r.map(Data::Words))
            }
            Table::Input => {
                ctx.read_input_registers(req.start, req.count).await.map(|r| r.map(Data::Words))
            }
            Table::Coil => ctx.read_coils(req.start, req.count).await.map(|r| r.map(Data::Bits)),
            Table::Discrete => {
                ctx.read_discrete_inputs(req.start, req.count).await.map(|r| r.map(Data::Bits))
            }
        }
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => {
            Err(ReadError::Transport { unit, reason: format!("no answer within {timeout:?}") })
        }
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

/// Where a unit stands: its own backoff and when each of its poll groups is due.
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
    tx: mpsc::Sender<crate::sources::Batch>,
    mut shutdown: watch::Receiver<bool>,
) {
    info!(link = %link.name, units = units.len(), "Modbus link starting");
    let mut poller = Poller::new(link, units, clock, metrics);
    while let Some((at, u, g)) = poller.next_due() {
        if at > Instant::now() {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep_until(at) => {}
            }
        } else if *shutdown.borrow() {
            // Already due: going through the timer would cost a millisecond tick.
            break;
        }
        if !poller.connected().await {
            continue;
        }
        let (readings, failed) = poller.poll(u, g).await;
        poller.settle(u, g, failed);
        let labels = vec![("link", poller.link.name.clone())];
        poller.events.metrics().labelled.add("modbus_readings", labels, readings.len() as u64);
        if readings.is_empty() {
            continue;
        }
        let n = readings.len() as u64;
        if tx.send(crate::sources::Batch::named(readings)).await.is_err() {
            return;
        }
        let accepted = &poller.events.metrics().readings_accepted;
        accepted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    info!(link = %poller.link.name, "Modbus link stopped");
}

/// One link's connection, its units' states and what it reports.
struct Poller {
    link: Link,
    units: Vec<Unit>,
    states: Vec<UnitState>,
    ctx: Option<Context>,
    link_backoff: Backoff,
    link_next_try: Instant,
    clock: SharedClock,
    events: Events,
}

impl Poller {
    fn new(link: Link, units: Vec<Unit>, clock: SharedClock, metrics: Arc<Metrics>) -> Self {
        let now = Instant::now();
        let states = units
            .iter()
            .map(|u| UnitState {
                backoff: Backoff::new(link.backoff_min, link.backoff_max),
                next_try: now,
                down: false,
                due: vec![now; u.groups.len()],
            })
            .collect();
        Self {
            link_backoff: Backoff::new(link.backoff_min, link.backoff_max),
            link_next_try: now,
            link,
            units,
            states,
            ctx: None,
            clock,
            events: Events::new(metrics),
        }
    }

    /// The earliest due poll group of a unit that is not backed off, as (when, unit, group).
    fn next_due(&self) -> Option<(Instant, usize, usize)> {
        let (at, u, g) = (self.states.iter().enumerate())
            .flat_map(|(u, s)| {
                s.due.iter().enumerate().map(move |(g, d)| ((*d).max(s.next_try), u, g))
            })
            .min()?;
        Some((if self.ctx.is_none() { at.max(self.link_next_try) } else { at }, u, g))
    }

    /// Connects when there is no connection; false when that failed (backed off).
    async fn connected(&mut self) -> bool {
        if self.ctx.is_some() {
            return true;
        }
        match connect(&self.link).await {
            Ok(c) => {
                self.ctx = Some(c);
                self.link_backoff.reset();
                self.events.metrics().connected.set(&format!("modbus:{}", self.link.name), true);
                Metrics::inc(&self.events.metrics().modbus_connects);
                true
            }
            Err(e) => {
                self.events.metrics().connected.set(&format!("modbus:{}", self.link.name), false);
                let delay = self.link_backoff.next_delay();
                self.link_next_try = Instant::now() + delay;
                self.events.report(Failure::ModbusConnect {
                    link: &self.link.name,
                    error: &e,
                    retry_in: delay,
                });
                false
            }
        }
    }

    /// Sends a poll group's requests in turn: the readings, and the transport
    /// error that stopped it, if one did (exceptions are reported and skipped).
    async fn poll(&mut self, u: usize, g: usize) -> (Vec<Reading>, Option<ReadError>) {
        let Some(c) = self.ctx.as_mut() else { return (Vec::new(), None) };
        let unit = &self.units[u];
        let mut readings = Vec::new();
        for (k, req) in unit.groups[g].requests.iter().enumerate() {
            if k > 0 && !self.link.pause.is_zero() {
                tokio::time::sleep(self.link.pause).await;
            }
            Metrics::inc(&self.events.metrics().modbus_requests);
            match read(c, unit.id, req, self.link.timeout).await {
                Ok(data) => {
                    let ts = self.clock.now();
                    for (i, v) in values(unit, req, &data) {
                        let f = &unit.fields[i];
                        let quality = if v.is_finite() { Quality::Good } else { Quality::Bad };
                        if quality == Quality::Bad {
                            Metrics::inc(&self.events.metrics().modbus_bad_values);
                        }
                        let (asset, channel) = (f.asset.clone(), f.channel.clone());
                        readings.push(Reading { asset, channel, ts, value: v, quality });
                    }
                }
                Err(e @ ReadError::Exception { .. }) => {
                    self.events.report(Failure::ModbusException {
                        link: &self.link.name,
                        unit: unit.id,
                        table: &req.table,
                        start: req.start,
                        count: req.count,
                        error: &e,
                    })
                }
                Err(e @ ReadError::Transport { .. }) => return (readings, Some(e)),
            }
        }
        (readings, None)
    }

    /// After a poll: a unit that failed is backed off (and the connection
    /// dropped, so a late answer never matches the next request); one that
    /// answered is due again one interval on.
    fn settle(&mut self, u: usize, g: usize, failed: Option<ReadError>) {
        let (unit, st) = (&self.units[u], &mut self.states[u]);
        match failed {
            Some(e) => {
                self.ctx = None;
                let delay = st.backoff.next_delay();
                st.next_try = Instant::now() + delay;
                st.down = true;
                let link = &self.link.name;
                self.events.report(Failure::ModbusUnitDown {
                    link,
                    unit: unit.id,
                    error: &e,
                    retry_in: delay,
                });
            }
            None => {
                if st.down {
                    info!(link = %self.link.name, unit = unit.id, "Modbus unit answering again");
                }
                st.down = false;
                st.backoff.reset();
                // Intervals are in the clock's time (the demo runs faster than real time).
                let every = unit.groups[g].every.div_f64(self.clock.speed().max(1e-9));
                let due = st.due[g] + every;
                st.due[g] = if due < Instant::now() { Instant::now() + every } else { due };
            }
        }
    }
}
