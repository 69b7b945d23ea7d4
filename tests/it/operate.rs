//! Operating hums as a newcomer would, with the `hums` binary itself: start
//! `hums run` against a broker (mosquitto under `--features interop`, else the
//! embedded one), see the assets on the status page (in headless chromium
//! under interop) and in `hums status`, change a threshold and send SIGHUP,
//! shelve an alarm and see it expire, take an asset out of service, break the
//! config and see hums keep running, and stop it. Tokens, roles, secrets in
//! logs and pages, MQTT publishing with its last will, state-based
//! suppression and the service manager's notifications are checked on the way.

use crate::common::{free_addr, publisher, temp_dir};
use hums::demo::receiver::Receiver;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VIEWER: &str = "viewer-token-4f9c2a7e1b";
const OPERATOR: &str = "operator-token-8d3e6b0c5a";
const BACKEND: &str = "backend-token-2b7f9e4d1c";

/// `hums run` as a child process, with its config and log.
struct Daemon {
    child: Child,
    config: PathBuf,
    log: PathBuf,
    http: String,
    template: String,
    fill: Vec<(&'static str, String)>,
}

impl Daemon {
    fn start(dir: &Path, broker: SocketAddr, backend_url: &str, notify: Option<&Path>) -> Self {
        let http = free_addr().to_string();
        let token_file = dir.join("operator.token");
        std::fs::write(&token_file, format!("{OPERATOR}\n")).unwrap();
        let template = std::fs::read_to_string("tests/fixtures/operate.toml").unwrap();
        let fill = vec![
            ("@MQTT_HOST@", broker.ip().to_string()),
            ("@MQTT_PORT@", broker.port().to_string()),
            ("@BACKEND_URL@", backend_url.to_string()),
            ("@STATE_DIR@", dir.join("state").display().to_string()),
            ("@HTTP_ADDR@", http.clone()),
            ("@OPERATOR_TOKEN_FILE@", token_file.display().to_string()),
            ("@OVERLOAD_SET@", "55.0".into()),
            ("@OVERLOAD_CLEAR@", "52.0".into()),
        ];
        let config = dir.join("hums.toml");
        let log = dir.join("hums.log");
        let mut d = Self { child: spawn_placeholder(), config, log, http, template, fill };
        d.write_config(&[]);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hums"));
        cmd.args(["run", "--log-level", "info,hums=debug", "-c"])
            .arg(&d.config)
            .env("HUMS_OP_VIEWER_TOKEN", VIEWER)
            .env("HUMS_OP_BACKEND_TOKEN", BACKEND)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&d.log).unwrap());
        if let Some(socket) = notify {
            cmd.env("NOTIFY_SOCKET", socket).env("WATCHDOG_USEC", "1000000");
        }
        let _ = d.child.kill();
        d.child = cmd.spawn().expect("start hums run");
        d
    }

    /// Writes the config with some placeholders filled differently.
    fn write_config(&self, over: &[(&str, &str)]) {
        let mut text = self.template.clone();
        for (k, v) in &self.fill {
            let v = over.iter().find(|(o, _)| o == k).map_or(v.as_str(), |(_, v)| v);
            text = text.replace(k, v);
        }
        std::fs::write(&self.config, text).unwrap();
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_placeholder() -> Child {
    Command::new("true").spawn().unwrap()
}

/// The test's broker: mosquitto under interop (CI starts it), else the embedded one.
fn broker() -> SocketAddr {
    if cfg!(feature = "interop") {
        let addr = std::env::var("HUMS_TEST_MOSQUITTO")
            .expect("HUMS_TEST_MOSQUITTO (the interop tests need .ci/run's mosquitto)");
        return addr.parse().unwrap();
    }
    hums::demo::broker::start().expect("embedded broker")
}

/// Publishes the three skids every 200 ms: skid-a hot, skid-b drawing 45 A,
/// skid-c stopped with no flow.
async fn publish_skids(client: AsyncClient, mut stop: tokio::sync::watch::Receiver<bool>) {
    let skids =
        [("skid-a", 86.0, 40.0, 50.0), ("skid-b", 50.0, 45.0, 50.0), ("skid-c", 30.0, 0.5, 0.0)];
    let mut i = 0u32;
    loop {
        let wobble = f64::from(i % 5) * 0.01;
        for (asset, temp, current, flow) in skids {
            for (ch, v) in [("temp", temp), ("current", current), ("flow", flow)] {
                let topic = format!("plant/o/{asset}/{ch}");
                let _ =
                    client.publish(topic, QoS::AtLeastOnce, false, format!("{}", v + wobble)).await;
            }
        }
        i += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Collects every message on `filter`, as (topic, payload, retained).
fn subscribe(
    broker: SocketAddr,
    id: &str,
    filter: &str,
) -> Arc<Mutex<Vec<(String, String, bool)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut opts = MqttOptions::new(id, broker.ip().to_string(), broker.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 100);
    let (filter, out) = (filter.to_string(), seen.clone());
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let payload = String::from_utf8_lossy(&p.payload).to_string();
                    out.lock().unwrap().push((p.topic.clone(), payload, p.retain));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    seen
}

async fn wait_until<F: Fn() -> bool>(timeout: Duration, what: &str, f: F) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(f(), "timed out waiting for {what}");
}

async fn get(http: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

async fn status(http: &reqwest::Client, d: &Daemon) -> Value {
    let (code, body) = get(http, &d.url("/api/status"), Some(VIEWER)).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn alarm<'a>(view: &'a Value, asset: &str, fm: &str) -> Option<&'a Value> {
    view["alarms"].as_array()?.iter().find(|a| a["asset"] == asset && a["failure_mode"] == fm)
}

fn orders(receiver: &Receiver, asset: &str, fm: &str) -> usize {
    receiver
        .received()
        .iter()
        .filter(|r| r.body["asset"]["id"] == asset && r.body["failure_mode"] == fm)
        .filter(|r| r.body["event"] == "raised")
        .count()
}

/// The notifications a fake service manager got.
fn notifications(socket: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_runs_sees_reloads_shelves_and_stops_hums() {
    let dir = temp_dir("operate");
    let broker = broker();
    let receiver = Receiver::start(None, false).await.unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let published = subscribe(broker, "op-test-watch", "hums/op-gw/#");
    let d = Daemon::start(&dir, broker, &receiver.url(), Some(&socket_path));
    let http =
        hums::workorders::backends::http::http_client(Duration::from_secs(10), false).unwrap();

    // Ready once connected; the probes need no token.
    let mut d = d;
    for _ in 0..300 {
        if std::net::TcpStream::connect(&d.http).is_ok() {
            break;
        }
        if let Ok(Some(exit)) = d.child.try_wait() {
            panic!("hums run exited ({exit}): {}", d.log_text());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let client = publisher(broker, "op-test-pub").await;
    tokio::spawn(publish_skids(client, stop_rx));
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&http, &d.url("/readyz"), None).await.0 != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(&http, &d.url("/readyz"), None).await.0, 200, "{}", d.log_text());
    assert_eq!(get(&http, &d.url("/healthz"), None).await.0, 200);

    // Tokens: none is 401 everywhere but the probes; a viewer reads but cannot act.
    for path in ["/", "/api/status", "/metrics", "/outbox", "/assets/skid-a"] {
        assert_eq!(get(&http, &d.url(path), None).await.0, 401, "{path}");
        assert_eq!(get(&http, &d.url(path), Some("wrong-token-0000000000")).await.0, 401);
    }
    let shelve = serde_json::json!({"action": "shelve", "asset": "skid-b",
        "failure_mode": "skid.overload", "for": "8s", "reason": "motor swap, permit 4711"});
    let as_viewer =
        http.post(d.url("/api/actions")).bearer_auth(VIEWER).json(&shelve).send().await.unwrap();
    assert_eq!(as_viewer.status().as_u16(), 403);
    // The page's forms carry the cookie: another site's form is refused (CSRF).
    let form = [("action", "unshelve"), ("asset", "skid-c"), ("reason", "test")];
    let cookie = format!("hums_token={OPERATOR}");
    for origin in ["http://evil.example", ""] {
        let mut req = http.post(d.url("/actions")).header("Cookie", &cookie).form(&form);
        req = if origin.is_empty() {
            req.header("Sec-Fetch-Site", "cross-site")
        } else {
            req.header("Origin", origin)
        };
        assert_eq!(req.send().await.unwrap().status().as_u16(), 403, "origin {origin:?}");
    }
    let same = http
        .post(d.url("/actions"))
        .header("Cookie", &cookie)
        .header("Origin", format!("http://{}", d.http))
        .form(&form)
        .send()
        .await
        .unwrap();
    // Let through, and refused only for what it asks: skid-c has no shelf.
    assert_eq!(same.status().as_u16(), 400, "{}", same.text().await.unwrap());

    // skid-a runs hot: its order arrives; skid-b is fine; skid-c stands still
    // with no flow, a process alarm suppressed while it is stopped.
    let r = &receiver;
    wait_until(Duration::from_secs(30), "skid-a's overheating order", || {
        orders(r, "skid-a", "skid.overheating") == 1
    })
    .await;
    let view = status(&http, &d).await;
    let health: Vec<(String, String)> = view["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap().into(), a["health"].as_str().unwrap().into()))
        .collect();
    assert!(health.contains(&("skid-a".into(), "alarm".into())), "{health:?}");
    assert!(health.contains(&("skid-b".into(), "ok".into())), "{health:?}");
    assert!(health.contains(&("skid-c".into(), "stopped".into())), "{health:?}");
    assert!(alarm(&view, "skid-c", "skid.low_flow").is_none());
    assert!(view["metrics"]["findings_while_stopped"].as_u64().unwrap() > 0);

    // The page, the metrics and the terminal show it.
    let (code, page) = get(&http, &d.url("/"), Some(VIEWER)).await;
    assert_eq!(code, 200);
    for id in ["skid-a", "skid-b", "skid-c", "Skid A: overheating"] {
        assert!(page.contains(id), "the page lacks {id}");
    }
    let (_, metrics) = get(&http, &d.url("/metrics"), Some(VIEWER)).await;
    assert!(metrics.contains("hums_asset_score{asset=\"skid-a\"}"), "{metrics}");
    assert!(metrics.contains("hums_alarms{state=\"active\"} 1"), "{metrics}");
    assert!(metrics.contains("hums_tick_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("hums_source_connected{source=\"mqtt\"} 1"), "{metrics}");
    let status_cmd = Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["status", "-c"])
        .arg(&d.config)
        .env("HUMS_TOKEN", VIEWER)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status_cmd.stdout);
    assert!(status_cmd.status.success(), "{table}");
    assert!(table.lines().any(|l| l.starts_with("skid-a") && l.contains("alarm")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("skid-c") && l.contains("stopped")), "{table}");
    browser_check(&d, &dir).await;

    // An operator shelves skid-b's overload for 8 s, then lowers the overload
    // limit under skid-b's current and sends SIGHUP: the alarm trips while
    // shelved (recorded, no order), skid-a's open alarm stays open, and the
    // order comes once the shelf has expired.
    let res =
        http.post(d.url("/api/actions")).bearer_auth(OPERATOR).json(&shelve).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "{}", res.text().await.unwrap());
    let shelved_at = Instant::now();
    let pid = d.child.id();
    d.write_config(&[("@OVERLOAD_SET@", "42.0"), ("@OVERLOAD_CLEAR@", "40.0")]);
    d.signal("-HUP");
    let mut withheld = false;
    while shelved_at.elapsed() < Duration::from_secs(7) {
        let view = status(&http, &d).await;
        if let Some(a) = alarm(&view, "skid-b", "skid.overload") {
            withheld |= a["withheld"].as_u64() == Some(1) && a["suppressed"]["kind"] == "shelved";
        }
        assert_eq!(orders(r, "skid-b", "skid.overload"), 0, "an order while shelved");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(withheld, "the shelved alarm was not recorded as withheld: {}", d.log_text());
    wait_until(Duration::from_secs(15), "skid-b's overload order after the shelf", || {
        orders(r, "skid-b", "skid.overload") == 1
    })
    .await;
    let view = status(&http, &d).await;
    assert_eq!(view["config"]["reloads"], 1);
    assert_eq!(alarm(&view, "skid-a", "skid.overheating").unwrap()["state"], "active");
    assert_eq!(orders(r, "skid-a", "skid.overheating"), 1, "skid-a's alarm was raised again");
    assert_eq!(d.child.id(), pid);

    // Out of service from the command line, seen by the daemon within seconds.
    let oos = Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["out-of-service", "skid-a", "--reason", "overhaul", "-c"])
        .arg(&d.config)
        .output()
        .unwrap();
    assert!(oos.status.success(), "{}", String::from_utf8_lossy(&oos.stderr));
    let mut seen = false;
    for _ in 0..50 {
        let view = status(&http, &d).await;
        let a = view["assets"].as_array().unwrap().iter().find(|a| a["id"] == "skid-a").cloned();
        if a.is_some_and(|a| a["health"] == "out_of_service") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen, "skid-a never showed out of service");
    let no_reason = Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["shelve", "skid-a", "--for", "1h", "--reason", "", "-c"])
        .arg(&d.config)
        .output()
        .unwrap();
    assert_eq!(no_reason.status.code(), Some(2), "a shelf without a reason");

    // A broken config: hums keeps running on the one before and says why.
    std::fs::write(&d.config, "this is = = not toml").unwrap();
    d.signal("-HUP");
    let mut failed = Value::Null;
    for _ in 0..50 {
        failed = status(&http, &d).await["config"]["reload_error"].clone();
        if !failed.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed.as_str().is_some_and(|e| e.contains("hums.toml")), "{failed}");
    let (_, metrics) = get(&http, &d.url("/metrics"), Some(VIEWER)).await;
    assert!(metrics.contains("hums_config_reload_failed 1"), "{metrics}");
    assert!(status(&http, &d).await["assets"].as_array().unwrap().len() == 3);

    // Published: retained status up, per-asset health, alarm events.
    let msgs = published.lock().unwrap().clone();
    let has =
        |topic: &str, needle: &str| msgs.iter().any(|(t, p, _)| t == topic && p.contains(needle));
    assert!(has("hums/op-gw/status", "\"up\""), "{msgs:?}");
    assert!(has("hums/op-gw/assets/skid-a/health", "\"alarm\""), "{msgs:?}");
    assert!(has("hums/op-gw/alarms/skid-b", "\"raised\""), "{msgs:?}");

    // Nothing secret anywhere.
    let (_, page) = get(&http, &d.url("/"), Some(VIEWER)).await;
    let (_, api) = get(&http, &d.url("/api/status"), Some(VIEWER)).await;
    let (_, metrics) = get(&http, &d.url("/metrics"), Some(VIEWER)).await;
    let log = d.log_text();
    for secret in [VIEWER, OPERATOR, BACKEND] {
        for (what, text) in [("page", &page), ("api", &api), ("metrics", &metrics), ("log", &log)] {
            assert!(!text.contains(secret), "a token in the {what}");
        }
    }

    // A clean stop: exit 0, status "down" retained, the service manager told.
    let _ = stop_tx.send(true);
    d.signal("-TERM");
    let code = tokio::task::spawn_blocking(move || {
        let c = d.child.wait().unwrap();
        (c, d)
    })
    .await
    .unwrap();
    assert!(code.0.success(), "{}", code.1.log_text());
    let p = published.clone();
    wait_until(Duration::from_secs(5), "status down", move || {
        p.lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(t, _, _)| t == "hums/op-gw/status")
            .is_some_and(|(_, m, _)| m.contains("down"))
    })
    .await;
    let told = notifications(&socket);
    for state in ["READY=1", "WATCHDOG=1", "RELOADING=1", "STOPPING=1"] {
        assert!(told.iter().any(|n| n.contains(state)), "no {state} in {told:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Under interop: the status page in headless chromium, as a browser shows it.
async fn browser_check(d: &Daemon, dir: &Path) {
    if !cfg!(feature = "interop") {
        return;
    }
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("chromium (the interop tests need it; .ci/run installs it)");
    let url = d.url(&format!("/?token={VIEWER}"));
    let shot = dir.join("status-page.png");
    let common = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"];
    let dom = Command::new(chromium).args(common).arg("--dump-dom").arg(&url).output().unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    for needle in [
        "data-asset=\"skid-a\" data-health=\"alarm\"",
        "data-asset=\"skid-c\" data-health=\"stopped\"",
        "<svg class=\"spark\"",
    ] {
        assert!(dom.contains(needle), "the page in chromium lacks {needle}: {dom}");
    }
    let out = Command::new(chromium)
        .args(common)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,800")
        .arg(&url)
        .output()
        .unwrap();
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let keep = std::env::var_os("HUMS_KEEP_SCREENSHOT");
    if let Some(path) = keep {
        std::fs::copy(&shot, path).unwrap();
    }
    // The screenshot shows the health colours: orange for skid-a's alarm, grey for the stopped skid.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let count = |rgb: [u8; 3]| {
        buf[..info.buffer_size()]
            .chunks(px)
            .filter(|p| p.len() >= 3 && p[..3].iter().zip(rgb).all(|(a, b)| a.abs_diff(b) <= 8))
            .count()
    };
    assert!(count([0xe8, 0x70, 0x0a]) > 20, "no alarm-orange in the screenshot");
    assert!(count([0x8a, 0x94, 0xa3]) > 20, "no stopped-grey in the screenshot");
}

/// An alarm raised while shelved, with an order from an earlier episode of the
/// same failure mode and a restart in between: when the shelf expires, it
/// opens an order of its own, and its escalation updates that order (not the
/// earlier episode's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_raised_while_shelved_gets_its_own_order_after_a_restart() {
    use hums::pipeline::suppress::Kind;
    use hums::store::suppress::NewSuppression;
    use std::sync::atomic::{AtomicU8, Ordering};
    let broker = hums::demo::broker::start().expect("embedded broker");
    let state = temp_dir("shelf").display().to_string();
    let receiver = Receiver::start(None, false).await.unwrap();
    let st = state.clone();
    let fixture = "tests/fixtures/shelf.toml";
    let hums =
        crate::common::Harness::launch(fixture, broker, 60.0, receiver, move |c| c.state.dir = st)
            .await;
    // 0 cool, 1 hot (alarm), 2 very hot (critical).
    let hot = Arc::new(AtomicU8::new(1));
    let client = publisher(broker, "shelf-pub").await;
    let h = hot.clone();
    tokio::spawn(async move {
        loop {
            let temp = [50.0, 86.0, 99.0][usize::from(h.load(Ordering::Relaxed).min(2))];
            for (ch, v) in [("temp", temp), ("current", 40.0), ("flow", 50.0)] {
                let topic = format!("plant/s/skid-a/{ch}");
                let _ = client.publish(topic, QoS::AtLeastOnce, false, v.to_string()).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let raised = |r: &Receiver| -> Vec<Value> {
        r.received()
            .into_iter()
            .map(|o| o.body)
            .filter(|b| b["failure_mode"] == "skid.overheating")
            .collect()
    };
    let r = &hums.receiver;
    wait_until(Duration::from_secs(20), "the first episode's order", || raised(r).len() == 1).await;
    let first = raised(r)[0]["idempotency_key"].as_str().unwrap().to_string();

    // Cool down until the alarm clears (off-delay 2 min, 2 s here), then shelve the asset.
    hot.store(0, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let store = hums::store::Store::inspect_dir(Path::new(&state)).unwrap();
    let now = hums.clock.now();
    store
        .suppress(&NewSuppression {
            asset: "skid-a",
            failure_mode: None,
            kind: Kind::Shelved,
            reason: "cooling water work",
            by: "test",
            since: now,
            until: Some(now + 8 * 60_000),
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await; // the engine reads shelves every 5 s

    // Hot again while shelved: withheld, no order; then a restart.
    hot.store(1, Ordering::Relaxed);
    let withheld = || store.withheld(false, 100).unwrap().iter().any(|w| w.transition == "raised");
    wait_until(Duration::from_secs(20), "the raise withheld", withheld).await;
    assert_eq!(raised(r).len(), 1, "an order while shelved");
    let (_, receiver) = hums.stop_keeping_receiver().await;
    let st = state.clone();
    let hums =
        crate::common::Harness::launch(fixture, broker, 60.0, receiver, move |c| c.state.dir = st)
            .await;

    // The shelf expires: a new order, raised, under its own key.
    let r = &hums.receiver;
    wait_until(Duration::from_secs(40), "the released order", || raised(r).len() >= 2).await;
    let orders = raised(r);
    let second = &orders[1];
    assert_eq!(second["event"], "raised", "{second}");
    assert_ne!(second["idempotency_key"], first.as_str(), "{second}");
    let key = second["idempotency_key"].as_str().unwrap().to_string();

    // Worse: the escalation updates the released order.
    hot.store(2, Ordering::Relaxed);
    let escalated = |r: &Receiver| raised(r).into_iter().find(|o| o["event"] == "escalated");
    wait_until(Duration::from_secs(20), "the escalation", || escalated(r).is_some()).await;
    let update = escalated(r).unwrap();
    assert_eq!(update["idempotency_key"], key.as_str(), "escalated the wrong order: {update}");
    assert!(raised(r).iter().all(|o| o["idempotency_key"] != first.as_str() || o["revision"] == 1));
    hums.stop().await;
}
