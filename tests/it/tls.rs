//! MQTT over TLS against the embedded broker (built with client-certificate
//! verification) with test CAs made at run time: mutual TLS works, and a
//! missing client certificate or an untrusted server are refused.

use crate::common;

use common::Harness;
use hums::demo::broker::BrokerTls;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rumqttc::{AsyncClient, MqttOptions, QoS, TlsConfiguration, Transport};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, a server certificate for `localhost` and a client certificate.
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("hums-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["localhost".into()]);
        let (client_cert, client_key) = leaf(vec!["hums-client".into()]);
        for (file, pem) in [
            ("ca.pem", ca_cert.pem()),
            ("server.pem", server_cert),
            ("server.key", server_key),
            ("client.pem", client_cert),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.join(file), pem).unwrap();
        }
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn broker(&self) -> SocketAddr {
        hums::demo::broker::start_with(Some(BrokerTls {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: Some(self.path("ca.pem")),
        }))
        .expect("TLS broker")
    }

    /// A TLS publisher (with the client certificate, which a mutual-TLS broker needs).
    fn publisher(&self, broker: SocketAddr) -> AsyncClient {
        let mut opts = MqttOptions::new("tls-plant", "localhost", broker.port());
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: std::fs::read(self.path("ca.pem")).unwrap(),
            alpn: None,
            client_auth: Some((
                std::fs::read(self.path("client.pem")).unwrap(),
                std::fs::read(self.path("client.key")).unwrap(),
            )),
        }));
        common::client(opts)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs hums against `broker`, trusting `trust`'s CA, with or without `pki`'s client certificate.
async fn readings_over_tls(
    pki: &Pki,
    trust: &Pki,
    broker: SocketAddr,
    with_client_cert: bool,
) -> (u64, u64) {
    let hums = Harness::start_with(broker, 1.0, |cfg| {
        cfg.mqtt.host = "localhost".into();
        cfg.mqtt.client_id = Some(format!("hums-tls-{with_client_cert}"));
        cfg.mqtt.reconnect_min = Duration::from_millis(100);
        cfg.mqtt.reconnect_max = Duration::from_millis(200);
        cfg.mqtt.tls.enabled = true;
        cfg.mqtt.tls.ca_file = Some(trust.path("ca.pem"));
        if with_client_cert {
            cfg.mqtt.tls.client_cert_file = Some(pki.path("client.pem"));
            cfg.mqtt.tls.client_key_file = Some(pki.path("client.key"));
        }
    })
    .await;
    hums.wait_for(Duration::from_secs(3), |h| {
        h.metrics.mqtt_resubscribes.load(Ordering::Relaxed) > 0
    })
    .await;
    let client = pki.publisher(broker);
    for i in 0..20 {
        client
            .publish("plant/t/pump-a/flow", QoS::AtLeastOnce, false, format!("{}", 100 + i))
            .await
            .unwrap();
    }
    hums.wait_for(Duration::from_secs(3), |h| {
        h.metrics.readings_accepted.load(Ordering::Relaxed) >= 20
    })
    .await;
    let m = hums.stop().await.metrics;
    (m.readings_accepted, m.mqtt_connection_errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_delivers_readings() {
    let pki = Pki::new("mutual");
    let broker = pki.broker();
    let (readings, _) = readings_over_tls(&pki, &pki, broker, true).await;
    assert_eq!(readings, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_certificate_is_refused() {
    let pki = Pki::new("nocert");
    let broker = pki.broker();
    let (readings, errors) = readings_over_tls(&pki, &pki, broker, false).await;
    assert_eq!(readings, 0, "the broker refuses us");
    assert!(errors > 0, "and the source reports connection errors instead of crashing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_broker_is_refused() {
    let pki = Pki::new("server");
    let other = Pki::new("other");
    let broker = pki.broker();
    let (readings, errors) = readings_over_tls(&pki, &other, broker, true).await;
    assert_eq!(readings, 0, "hums does not trust a broker its CA did not sign");
    assert!(errors > 0);
}
