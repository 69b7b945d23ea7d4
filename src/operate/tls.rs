//! HTTPS for the operator's server: a rustls acceptor from PEM files, and a
//! listener that runs each handshake in its own task (with a deadline), so a
//! slow or silent client never holds up the others.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// An acceptor for the certificate chain and key in these PEM files.
pub fn acceptor(cert_file: &str, key_file: &str) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|i| i.collect())
        .map_err(|e| format!("http.tls_cert_file {cert_file}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("http.tls_cert_file {cert_file}: no certificate in it"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("http.tls_key_file {key_file}: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("http.tls_cert_file and tls_key_file do not fit together: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepted connections whose handshake finished.
pub struct Listener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl Listener {
    /// Accepts on `tcp` in the background, handing on connections after their handshake.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        let addr = tcp.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = tx.closed() => break,
                    r = tcp.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::debug!(error = %e, "HTTPS accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    match tokio::time::timeout(Duration::from_secs(10), handshake).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self { ready, addr }
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept task only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_https_with_the_configured_certificate_past_a_silent_client() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let dir = std::env::temp_dir().join(format!("hums-https-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let missing = acceptor(&cert, "/nonexistent/key.pem").err().unwrap();
        assert!(missing.contains("http.tls_key_file"), "{missing}");
        let tls = acceptor(&cert, &key).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(Listener::new(tcp, tls), app).await });
        // A client that connects and says nothing holds up no one.
        let _silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let root = reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap();
        #[allow(clippy::disallowed_methods)] // a client trusting the test's own CA
        let client = reqwest::Client::builder()
            .add_root_certificate(root)
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let res = client.get(format!("https://localhost:{port}/healthz")).send().await.unwrap();
        assert_eq!(res.text().await.unwrap(), "ok");
        let plain = client.get(format!("http://localhost:{port}/healthz")).send().await;
        assert!(plain.is_err(), "plain HTTP answered on the HTTPS port");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
