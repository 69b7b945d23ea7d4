//! An embedded MQTT broker (rumqttd) on loopback, for the demo and tests.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Why the embedded broker did not come up.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no free port: {0}")]
    Port(#[from] std::io::Error),
    #[error("broker config: {0}")]
    Config(String),
    #[error("broker did not accept connections on {0} within 5 s")]
    NotListening(SocketAddr),
}

/// TLS files for the embedded broker's listener (PEM paths).
#[derive(Debug, Clone)]
pub struct BrokerTls {
    pub cert: String,
    pub key: String,
    /// CA that client certificates must chain to; `None` accepts any client.
    pub client_ca: Option<String>,
}

/// Starts rumqttd on `127.0.0.1` at a free port and waits until it listens.
/// The broker runs on its own threads for the rest of the process.
pub fn start() -> Result<SocketAddr, BrokerError> {
    start_with(None)
}

/// Like [`start`], with a TLS listener when `tls` is given.
pub fn start_with(tls: Option<BrokerTls>) -> Result<SocketAddr, BrokerError> {
    let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 1000
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 1000
dynamic_filters = true
"#
    );
    if let Some(t) = tls {
        text.push_str(&format!("[v4.1.tls]\ncertpath = {:?}\nkeypath = {:?}\n", t.cert, t.key));
        if let Some(ca) = t.client_ca {
            text.push_str(&format!("capath = {ca:?}\n"));
        }
    }
    let config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| BrokerError::Config(e.to_string()))?;
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Port)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(addr))
}
