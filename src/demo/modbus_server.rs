//! An embedded, read-only Modbus TCP server (tokio-modbus) over a register
//! bank. The demo serves its simulated chiller with it; tests use it to
//! inject silence, exceptions and restarts. Write requests are refused.

use crate::config::modbus::{ByteOrder, DataType, Table};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

#[derive(Default)]
struct Bank {
    words: HashMap<(u8, Table, u16), u16>,
    bits: HashMap<(u8, Table, u16), bool>,
    /// Units that never answer.
    silent: HashSet<u8>,
    /// How long every answer takes (a device's processing time).
    latency: std::time::Duration,
    /// Reads served per unit.
    requests: HashMap<u8, u64>,
}

/// Registers and bits per unit, shared between the server and whoever fills it.
#[derive(Clone, Default)]
pub struct RegisterBank(Arc<Mutex<Bank>>);

impl RegisterBank {
    fn lock(&self) -> std::sync::MutexGuard<'_, Bank> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a value in a register table, encoded in a byte order.
    pub fn set(
        &self,
        unit: u8,
        table: Table,
        address: u16,
        value: f64,
        data_type: DataType,
        order: ByteOrder,
    ) {
        let regs = crate::sources::modbus::decode::encode(value, data_type, order);
        let mut b = self.lock();
        for (i, r) in regs.into_iter().enumerate() {
            b.words.insert((unit, table, address.wrapping_add(i as u16)), r);
        }
    }

    /// Stores raw registers.
    pub fn set_words(&self, unit: u8, table: Table, address: u16, words: &[u16]) {
        let mut b = self.lock();
        for (i, w) in words.iter().enumerate() {
            b.words.insert((unit, table, address.wrapping_add(i as u16)), *w);
        }
    }

    /// Stores a coil or discrete input.
    pub fn set_bit(&self, unit: u8, table: Table, address: u16, on: bool) {
        self.lock().bits.insert((unit, table, address), on);
    }

    /// Makes a unit stop answering (or answer again).
    pub fn set_silent(&self, unit: u8, silent: bool) {
        let mut b = self.lock();
        if silent {
            b.silent.insert(unit);
        } else {
            b.silent.remove(&unit);
        }
    }

    /// Makes every answer take `latency`, like a real device.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.lock().latency = latency;
    }

    /// Reads served to a unit so far.
    pub fn requests(&self, unit: u8) -> u64 {
        self.lock().requests.get(&unit).copied().unwrap_or(0)
    }

    /// Answers a request. Addresses never set are an illegal data address,
    /// as on a real device; units never set are a gateway target failure.
    fn answer(&self, unit: u8, req: &Request<'_>) -> Option<Result<Response, ExceptionCode>> {
        let mut b = self.lock();
        if b.silent.contains(&unit) {
            return None;
        }
        *b.requests.entry(unit).or_default() += 1;
        let words = |b: &Bank, t: Table, a: u16, n: u16| -> Result<Vec<u16>, ExceptionCode> {
            (0..n)
                .map(|i| {
                    b.words
                        .get(&(unit, t, a.wrapping_add(i)))
                        .copied()
                        .ok_or(ExceptionCode::IllegalDataAddress)
                })
                .collect()
        };
        let bits = |b: &Bank, t: Table, a: u16, n: u16| -> Result<Vec<bool>, ExceptionCode> {
            (0..n)
                .map(|i| {
                    b.bits
                        .get(&(unit, t, a.wrapping_add(i)))
                        .copied()
                        .ok_or(ExceptionCode::IllegalDataAddress)
                })
                .collect()
        };
        Some(match *req {
            Request::ReadHoldingRegisters(a, n) => {
                words(&b, Table::Holding, a, n).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(a, n) => {
                words(&b, Table::Input, a, n).map(Response::ReadInputRegisters)
            }
            Request::ReadCoils(a, n) => bits(&b, Table::Coil, a, n).map(Response::ReadCoils),
            Request::ReadDiscreteInputs(a, n) => {
                bits(&b, Table::Discrete, a, n).map(Response::ReadDiscreteInputs)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

#[derive(Clone)]
struct Service(RegisterBank);

impl tokio_modbus::server::Service for Service {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let latency = self.0.lock().latency;
        match self.0.answer(req.slave, &req.request) {
            Some(answer) if latency.is_zero() => Box::pin(std::future::ready(answer)),
            Some(answer) => Box::pin(async move {
                tokio::time::sleep(latency).await;
                answer
            }),
            None => Box::pin(std::future::pending()),
        }
    }
}

/// Serves `bank` as an RTU device on a serial port (or one end of a pty pair).
pub fn serve_rtu(
    bank: RegisterBank,
    path: &str,
    baud: u32,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let server = tokio_modbus::server::rtu::Server::new_from_path(path, baud)?;
    Ok(tokio::spawn(async move {
        if let Err(e) = server.serve_forever(Service(bank)).await {
            tracing::warn!(error = %e, "embedded Modbus RTU server stopped");
        }
    }))
}

/// A running server; dropping or aborting the handle stops it and its connections.
pub struct ServerHandle {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Serves `bank` over Modbus TCP on `addr` (port 0 picks a free one).
pub async fn serve(bank: RegisterBank, addr: SocketAddr) -> std::io::Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let server = tokio_modbus::server::tcp::Server::new(listener);
    let task = tokio::spawn(async move {
        let service = Service(bank);
        let on_connected = |stream, socket_addr| {
            let service = service.clone();
            async move {
                tokio_modbus::server::tcp::accept_tcp_connection(stream, socket_addr, |_| {
                    Ok(Some(service.clone()))
                })
            }
        };
        if let Err(e) = server
            .serve(&on_connected, |e| tracing::debug!(error = %e, "Modbus server connection ended"))
            .await
        {
            tracing::warn!(error = %e, "embedded Modbus server stopped");
        }
    });
    Ok(ServerHandle { addr, task })
}
