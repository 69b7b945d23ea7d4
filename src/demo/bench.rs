//! `hums bench`: MQTT ingest end to end against a real broker, with a bare
//! rumqttc subscriber on the same broker as the baseline, in the same run.
//!
//! Each round publishes the same stream (the reference plant: 200 assets × 8
//! channels, one topic per channel with bare numbers, or one JSON object per
//! asset) as fast as the broker takes it, once to the bare subscriber and once
//! to hums (the whole runtime: sources, windows, evaluations, alarms, outbox),
//! alternating which goes first. It reports each side's messages per second
//! from first to last message, hums's share of the baseline, readings lost and
//! judged twice, and hums's peak resident memory. Numbers vary with the
//! machine; the ratios are what to compare.

use crate::common::clock::{SharedClock, SystemClock};
use crate::common::metrics::Metrics;
use crate::config::{Config, FsResolver, SourceText};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The channels of each reference asset.
pub const CHANNELS: [&str; 8] =
    ["vib_de", "vib_nde", "temp_de", "temp_nde", "current", "flow", "pressure", "speed"];

/// How the stream is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Payload {
    /// One topic per channel, a bare number each.
    Number,
    /// One topic per asset, a JSON object of its 8 channels.
    Object,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub broker: SocketAddr,
    pub payload: Payload,
    /// QoS of the publisher and of the bare subscriber (hums always subscribes at QoS 1).
    pub qos: u8,
    pub messages: u64,
    pub assets: usize,
    pub rounds: usize,
    /// Give up on a side after this long.
    pub timeout: Duration,
}

/// One side of one round.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub messages: u64,
    pub seconds: f64,
    pub rate: f64,
    /// Readings expected but never handed on (hums only).
    pub lost: u64,
    /// Readings handed on beyond those published (hums only). Counted, so a
    /// loss and a duplicate in one round would cancel; `tests/it/mqtt_acks.rs`
    /// checks each message is handed on once.
    pub twice: u64,
    /// Redeliveries the source recognised and did not hand on again (hums only).
    pub redelivered: u64,
    /// Peak resident memory of the process while hums ran, in MB (hums only).
    pub peak_rss_mb: f64,
}

/// One round: the baseline and hums on the same stream.
#[derive(Debug, Clone)]
pub struct Round {
    pub baseline: Side,
    pub hums: Side,
    pub publish_rate: f64,
}

/// The reference plant as a configuration for `broker`.
pub fn config(
    broker: SocketAddr,
    payload: Payload,
    assets: usize,
    state: &str,
) -> Result<Config, crate::config::ConfigErrors> {
    let text = config_text(broker, payload, assets, state, "http://127.0.0.1:9/workorders");
    crate::config::load(vec![SourceText { origin: "bench".into(), text }], &FsResolver, Vec::new())
}

/// The reference plant's configuration text, delivering to `backend`.
fn config_text(
    broker: SocketAddr,
    payload: Payload,
    assets: usize,
    state: &str,
    backend: &str,
) -> String {
    let subscription = match payload {
        Payload::Number => {
            "[[mqtt.subscriptions]]\nfilter = \"bench/+/+\"\ntemplate = \"bench/{asset}/{channel}\"\n"
        }
        Payload::Object => {
            "[[mqtt.subscriptions]]\nfilter = \"bench/+\"\ntemplate = \"bench/{asset}\"\npayload = \"object\"\n"
        }
    };
    let mut text = format!(
        "[gateway]\nid = \"bench\"\n[mqtt]\nhost = \"{}\"\nport = {}\ninflight = 100\nmax_payload_bytes = 4096\n\
         {subscription}\
         [pipeline]\neval_interval = \"1s\"\nwindow = \"2m\"\nstale_after = \"1h\"\n\
         [backend]\nurl = \"{backend}\"\n\
         [state]\ndir = \"{state}\"\n\
         [classes.machine.vibration]\nchannels = [\"vib_de\", \"vib_nde\"]\nfailure_mode = \"wear\"\n\
         [classes.machine.failure_modes.wear]\ntitle = \"{{asset_name}}: wear\"\npriority = 2\n",
        broker.ip(),
        broker.port()
    );
    for ch in CHANNELS {
        let q = if ch.starts_with("vib") { "vibration_velocity" } else { "other" };
        text.push_str(&format!(
            "[classes.machine.channels.{ch}]\nunit = \"u\"\nquantity = \"{q}\"\n\
             [[classes.machine.limits]]\nchannel = \"{ch}\"\nfailure_mode = \"wear\"\n\
             alarm = {{ set = 1000.0, clear = 900.0 }}\n"
        ));
    }
    for i in 0..assets {
        text.push_str(&format!(
            "[[assets]]\nid = \"m{i}\"\nname = \"Machine {i}\"\nclass = \"machine\"\nlocation = [\"Site\"]\n"
        ));
    }
    text
}

/// The `n`th message of the stream: its topic and payload.
fn message(payload: Payload, assets: usize, n: u64) -> (String, String) {
    let asset = (n as usize) % assets;
    let value = 1.0 + (n % 7) as f64 * 0.1;
    match payload {
        Payload::Number => {
            let ch = CHANNELS[(n as usize / assets) % CHANNELS.len()];
            (format!("bench/m{asset}/{ch}"), format!("{value}"))
        }
        Payload::Object => {
            let fields: Vec<String> = CHANNELS.iter().map(|c| format!("\"{c}\":{value}")).collect();
            (format!("bench/m{asset}"), format!("{{{}}}", fields.join(",")))
        }
    }
}

fn qos(q: u8) -> QoS {
    if q == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// Publishes the stream; returns its rate, once the broker has every message
/// (QoS 1: acknowledged; QoS 0: written to the socket).
async fn publish(o: &Options, id: &str) -> f64 {
    let mut opts = MqttOptions::new(id, o.broker.ip().to_string(), o.broker.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(opts, 10_000);
    let done = Arc::new(AtomicU64::new(0));
    let (d, acked) = (done.clone(), o.qos > 0);
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) if acked => {
                    d.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) if !acked => {
                    d.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    let started = Instant::now();
    for n in 0..o.messages {
        let (topic, body) = message(o.payload, o.assets, n);
        if client.publish(topic, qos(o.qos), false, body).await.is_err() {
            break;
        }
    }
    while done.load(Ordering::Relaxed) < o.messages && started.elapsed() < o.timeout {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    rate
}

/// Deletes the persistent session a hums run left on the broker (its
/// subscription would queue every later message for it).
pub async fn forget_session(broker: SocketAddr, id: &str) {
    let mut opts = MqttOptions::new(id, broker.ip().to_string(), broker.port());
    opts.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let forget = async {
        while let Ok(ev) = eventloop.poll().await {
            if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                let _ = client.disconnect().await;
            }
            if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), forget).await;
}

/// The bare subscriber: counts messages until all have come.
async fn baseline(o: &Options, round: usize) -> (Side, f64) {
    let id = format!("bench-bare-{}-{round}", std::process::id());
    let mut opts = MqttOptions::new(&id, o.broker.ip().to_string(), o.broker.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let count = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let (c, f, want) = (count.clone(), first.clone(), o.messages);
    let (sub_tx, sub_rx) = tokio::sync::oneshot::channel();
    let filter = "bench/#".to_string();
    let q = qos(o.qos);
    let reader = tokio::spawn(async move {
        let mut sub_tx = Some(sub_tx);
        let last = loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(filter.clone(), q).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = sub_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    let n = c.fetch_add(1, Ordering::Relaxed) + 1;
                    let now = Instant::now();
                    if n == 1 {
                        *f.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
                    }
                    if n >= want {
                        break now;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let _ = client.disconnect().await;
        Some(last)
    });
    let _ = tokio::time::timeout(Duration::from_secs(10), sub_rx).await;
    let publish_rate = publish(o, &format!("{id}-pub")).await;
    let last = tokio::time::timeout(o.timeout, reader).await.ok().and_then(Result::ok).flatten();
    let messages = count.load(Ordering::Relaxed);
    let start = *first.lock().unwrap_or_else(|p| p.into_inner());
    let seconds = match (start, last) {
        (Some(s), Some(l)) => l.duration_since(s).as_secs_f64().max(1e-6),
        _ => o.timeout.as_secs_f64(),
    };
    (Side { messages, seconds, rate: messages as f64 / seconds, ..Side::default() }, publish_rate)
}

/// Readings each message carries.
fn per_message(payload: Payload) -> u64 {
    match payload {
        Payload::Number => 1,
        Payload::Object => CHANNELS.len() as u64,
    }
}

/// Resident memory of this process now, in MB (Linux; 0 elsewhere).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// hums: the whole runtime on the stream.
async fn hums(o: &Options, round: usize) -> (Side, f64) {
    let state = std::env::temp_dir().join(format!("hums-bench-{}-{round}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let id = format!("bench-hums-{:?}-{}-{}-{round}", o.payload, o.qos, std::process::id());
    let mut cfg = match config(o.broker, o.payload, o.assets, &state.display().to_string()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("the bench's configuration is refused: {e}");
            return (Side::default(), 0.0);
        }
    };
    cfg.mqtt.client_id = Some(id.clone());
    let metrics = Arc::new(Metrics::default());
    let clock: SharedClock = Arc::new(SystemClock);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let m = metrics.clone();
    let engine = tokio::spawn(crate::runtime::run(cfg, clock.clone(), m, stop_rx));
    let subscribed = Instant::now();
    while metrics.mqtt_resubscribes.load(Ordering::Relaxed) == 0 {
        if subscribed.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the SUBACK
    let want = o.messages * per_message(o.payload);
    let peak = Arc::new(std::sync::Mutex::new(0.0f64));
    let watcher = {
        let (m, peak) = (metrics.clone(), peak.clone());
        tokio::spawn(async move {
            let mut first = None;
            loop {
                let n = m.readings_accepted.load(Ordering::Relaxed);
                let now = Instant::now();
                if n > 0 && first.is_none() {
                    first = Some(now);
                }
                let rss = rss_mb();
                {
                    let mut p = peak.lock().unwrap_or_else(|p| p.into_inner());
                    *p = p.max(rss);
                }
                if n >= want {
                    return (first, now);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let publish_rate = publish(o, &format!("{id}-pub")).await;
    let times = tokio::time::timeout(o.timeout, watcher).await.ok().and_then(Result::ok);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), engine).await;
    forget_session(o.broker, &id).await;
    let _ = std::fs::remove_dir_all(&state);
    let accepted = metrics.readings_accepted.load(Ordering::Relaxed);
    let seconds = match times {
        Some((Some(f), l)) => l.duration_since(f).as_secs_f64().max(1e-6),
        _ => o.timeout.as_secs_f64(),
    };
    let twice = metrics.readings_duplicate.load(Ordering::Relaxed);
    let redelivered = metrics.mqtt_duplicates.load(Ordering::Relaxed);
    let messages = accepted / per_message(o.payload);
    let side = Side {
        messages,
        seconds,
        rate: messages as f64 / seconds,
        lost: want.saturating_sub(accepted),
        twice: twice + accepted.saturating_sub(want),
        redelivered,
        peak_rss_mb: *peak.lock().unwrap_or_else(|p| p.into_inner()),
    };
    (side, publish_rate)
}

/// Runs the rounds, alternating which side goes first.
pub async fn run(o: &Options) -> Vec<Round> {
    let mut rounds = Vec::new();
    for r in 0..o.rounds {
        let (baseline, hums, publish_rate) = if r % 2 == 0 {
            let (b, p) = baseline(o, r).await;
            let (h, _) = hums(o, r).await;
            (b, h, p)
        } else {
            let (h, p) = hums(o, r).await;
            let (b, _) = baseline(o, r).await;
            (b, h, p)
        };
        rounds.push(Round { baseline, hums, publish_rate });
    }
    rounds
}

/// The rounds as a table, with the median ratio.
pub fn report(o: &Options, rounds: &[Round]) -> String {
    let mut out = format!(
        "hums bench: {} messages ({:?} payloads, {} assets × {} channels), publisher QoS {}, \
         bare subscriber QoS {}, hums QoS 1\n",
        o.messages,
        o.payload,
        o.assets,
        CHANNELS.len(),
        o.qos,
        o.qos
    );
    out.push_str(
        "round  publish msg/s  bare msg/s  hums msg/s  hums/bare  lost  twice  redelivered  \
         process peak RSS MB\n",
    );
    let mut ratios = Vec::new();
    for (i, r) in rounds.iter().enumerate() {
        let ratio = r.hums.rate / r.baseline.rate.max(1e-9);
        ratios.push(ratio);
        out.push_str(&format!(
            "{:>5}  {:>13.0}  {:>10.0}  {:>10.0}  {:>9.2}  {:>4}  {:>5}  {:>11}  {:>19.0}\n",
            i + 1,
            r.publish_rate,
            r.baseline.rate,
            r.hums.rate,
            ratio,
            r.hums.lost,
            r.hums.twice,
            r.hums.redelivered,
            r.hums.peak_rss_mb
        ));
    }
    ratios.sort_by(f64::total_cmp);
    if let Some(m) = ratios.get(ratios.len() / 2) {
        out.push_str(&format!("median hums/bare: {m:.2}\n"));
    }
    out
}

/// The cost of evaluating the reference plant, without MQTT: `assets` × 8
/// channels with 2-minute windows at 1 Hz, one evaluation per 10 s of readings.
#[derive(Debug, Clone)]
pub struct TickCost {
    pub channels: usize,
    /// Mean wall time of one evaluation (features, detectors, alarms), in µs.
    pub tick_us: f64,
    /// Of it, per channel, in ns.
    pub per_channel_ns: f64,
    /// Readings pushed into the windows per second of wall time, on one core.
    pub push_per_s: f64,
    /// Whole loop (push 10 s of readings, then evaluate), readings per second.
    pub readings_per_s: f64,
    /// Resident memory the filled pipeline added, per sample its windows retain, in bytes.
    pub bytes_per_sample: f64,
    /// The windows' buffers (capacity included) per sample they retain, in bytes.
    pub buffer_bytes_per_sample: f64,
}

/// Measures [`TickCost`] for `assets` assets over `evaluations` evaluations.
pub fn tick_cost(
    assets: usize,
    evaluations: usize,
) -> Result<TickCost, crate::config::ConfigErrors> {
    use crate::common::types::{Quality, Reading};
    let unused = SocketAddr::from(([127, 0, 0, 1], 1883));
    let cfg = config(unused, Payload::Number, assets, "unused")?;
    let models = crate::pipeline::models::files::ModelFiles::load(&cfg)?;
    let plant = Arc::new(crate::pipeline::plant::Plant::new(&cfg, &models));
    let rss_before = rss_mb();
    let mut p = crate::pipeline::Pipeline::new(&cfg, plant, Arc::new(Metrics::default()), 0);
    let ids: Vec<Arc<str>> = (0..assets).map(|i| Arc::from(format!("m{i}"))).collect();
    let chans: Vec<Arc<str>> = CHANNELS.iter().map(|c| Arc::from(*c)).collect();
    let batch = |t0: i64| -> Vec<Reading> {
        let mut out = Vec::with_capacity(assets * CHANNELS.len() * 10);
        for s in 0..10i64 {
            for a in &ids {
                for (k, c) in chans.iter().enumerate() {
                    out.push(Reading {
                        asset: a.clone(),
                        channel: c.clone(),
                        ts: t0 + s * 1000,
                        value: 1.0 + 0.1 * ((s as usize * 7 + k) % 5) as f64,
                        quality: Quality::Good,
                    });
                }
            }
        }
        out
    };
    // Fill the 2-minute windows first.
    let mut t = 0i64;
    for _ in 0..12 {
        for r in batch(t) {
            p.push(&r);
        }
        t += 10_000;
        p.tick(t);
    }
    use crate::pipeline::window::Window;
    let retained = p.windows().iter().map(Window::len).sum::<usize>().max(1) as f64;
    let bytes_per_sample = (rss_mb() - rss_before) * 1024.0 * 1024.0 / retained;
    let buffers = p.windows().iter().map(Window::buffer_bytes).sum::<usize>() as f64;
    let (mut push, mut tick, mut readings) = (Duration::ZERO, Duration::ZERO, 0usize);
    for _ in 0..evaluations.max(1) {
        let rs = batch(t);
        readings += rs.len();
        let started = Instant::now();
        for r in &rs {
            p.push(r);
        }
        push += started.elapsed();
        t += 10_000;
        let started = Instant::now();
        std::hint::black_box(p.tick(t));
        tick += started.elapsed();
    }
    let channels = assets * CHANNELS.len();
    let n = evaluations.max(1) as f64;
    let tick_us = tick.as_secs_f64() * 1e6 / n;
    Ok(TickCost {
        channels,
        tick_us,
        per_channel_ns: tick_us * 1e3 / channels as f64,
        push_per_s: readings as f64 / push.as_secs_f64().max(1e-9),
        readings_per_s: readings as f64 / (push + tick).as_secs_f64().max(1e-9),
        bytes_per_sample,
        buffer_bytes_per_sample: buffers / retained,
    })
}

/// Trip → order latency: `trips` assets of the reference plant each get one
/// reading past their current limit, one after the other, and each time the
/// wall time from publishing it to the order's receipt at an HTTP receiver
/// on loopback is taken. The alarms have no on-delay, so this is what hums
/// adds: MQTT in, the judgement on arrival, the commit, the delivery.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    /// Milliseconds per trip whose order came, in trip order.
    pub ms: Vec<f64>,
    /// Of each, milliseconds from the publish to the judgement (the order's
    /// `detected_at`, wall clock at millisecond resolution).
    pub judged_ms: Vec<f64>,
    /// Trips whose order did not come within the timeout.
    pub missing: usize,
}

/// The `q` quantile (0..=1) of `values`.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round().max(0.0) as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

/// Measures [`Latency`] against the broker at `broker`.
pub async fn latency(
    broker: SocketAddr,
    trips: usize,
    timeout: Duration,
) -> std::io::Result<Latency> {
    let receiver = crate::demo::receiver::Receiver::start(None, false).await?;
    let state = std::env::temp_dir().join(format!("hums-bench-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let id = format!("bench-latency-{}", std::process::id());
    let mut text =
        config_text(broker, Payload::Number, trips, &state.display().to_string(), &receiver.url());
    // No on-delay, and no flood control in the way of one order per asset.
    text.push_str(
        "[alarms]\non_delay = \"0s\"\n\
         [flood]\nper_site_per_hour = 1000000\nstorm_assets = 1000000\n",
    );
    let cfg = crate::config::load(
        vec![SourceText { origin: "bench".into(), text }],
        &FsResolver,
        Vec::new(),
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut cfg = cfg;
    cfg.mqtt.client_id = Some(id.clone());
    let metrics = Arc::new(Metrics::default());
    let clock: SharedClock = Arc::new(SystemClock);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let engine = tokio::spawn(crate::runtime::run(cfg, clock, metrics.clone(), stop_rx));
    let subscribed = Instant::now();
    while metrics.mqtt_resubscribes.load(Ordering::Relaxed) == 0
        && subscribed.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the SUBACK

    let mut opts = MqttOptions::new(format!("{id}-pub"), broker.ip().to_string(), broker.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    eventloop.network_options.set_tcp_nodelay(true);
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    // Normal readings first: each window needs a few before it is judged.
    for k in 0..4 {
        for i in 0..trips {
            let value = format!("{}", 1.0 + k as f64 * 0.1);
            let _ =
                client.publish(format!("bench/m{i}/current"), QoS::AtLeastOnce, false, value).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut out = Latency::default();
    for i in 0..trips {
        match trip(&client, &receiver, &format!("m{i}"), timeout).await {
            Some((ms, judged)) => {
                out.ms.push(ms);
                out.judged_ms.extend(judged);
            }
            None => out.missing += 1,
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), engine).await;
    forget_session(broker, &id).await;
    let _ = std::fs::remove_dir_all(&state);
    Ok(out)
}

/// Publishes one reading past the limit for `asset` and waits for its order:
/// (publish → receipt, publish → `detected_at`) in ms, or `None` on timeout.
async fn trip(
    client: &AsyncClient,
    receiver: &crate::demo::receiver::Receiver,
    asset: &str,
    timeout: Duration,
) -> Option<(f64, Option<f64>)> {
    let sent = Instant::now();
    let sent_wall = crate::common::clock::wall_ms();
    let _ = client.publish(format!("bench/{asset}/current"), QoS::AtLeastOnce, false, "5000").await;
    loop {
        if let Some(r) = receiver.received().into_iter().find(|r| r.body["asset"]["id"] == asset) {
            let detected = r.body["detected_at"].as_str().and_then(|d| {
                chrono::DateTime::parse_from_rfc3339(d).ok().map(|d| d.timestamp_millis())
            });
            let ms = r.at.duration_since(sent).as_secs_f64() * 1000.0;
            return Some((ms, detected.map(|d| (d - sent_wall) as f64)));
        }
        if sent.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
