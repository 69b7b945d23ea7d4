//! Semantic checks that serde cannot express. Each returns the key path and a
//! message that says what is expected. The `[backend]` rules, shared and per
//! kind, live beside their settings in `config::backend`.

use super::modbus::{DataType, Field, Link, RegisterMap, Table, Transport, Unit};
use super::schema::*;
use crate::common::types::WorkKind;
use std::collections::{BTreeMap, BTreeSet};

type Found = Vec<(String, String)>;

/// Returns every problem in a deserialized configuration.
pub fn validate(c: &Config) -> Found {
    let mut out = Found::new();
    check_id(&mut out, "gateway.id", &c.gateway.id);
    check_mqtt(&mut out, &c.mqtt);
    check_pipeline(&mut out, c);
    check_iso(&mut out, &c.iso10816);
    check_backend(&mut out, &c.backend);
    check_operate(&mut out, c);
    if c.state.dir.trim().is_empty() {
        push(
            &mut out,
            "state.dir",
            "must name the directory for the state database, e.g. \"/var/lib/hums\"",
        );
    }
    for (key, v) in [
        ("flood.per_asset_per_hour", c.flood.per_asset_per_hour),
        ("flood.per_site_per_hour", c.flood.per_site_per_hour),
        ("flood.storm_assets", c.flood.storm_assets),
    ] {
        if v == 0 {
            push(&mut out, key, "must be at least 1");
        }
    }
    if c.flood.storm_assets < 2 {
        push(&mut out, "flood.storm_assets", "a storm needs at least 2 assets");
    }
    for (name, fm) in &c.instrument {
        check_failure_mode(&mut out, &format!("instrument.{name}"), fm);
    }
    for (name, class) in &c.classes {
        check_class(&mut out, name, class);
    }
    check_assets(&mut out, c);
    check_modbus(&mut out, c);
    out
}

/// The `[modbus]` section: the register maps, then the links and their units.
fn check_modbus(out: &mut Found, c: &Config) {
    for (name, map) in &c.modbus.maps {
        check_register_map(out, &format!("modbus.maps.{name}"), map);
    }
    let mut names = BTreeSet::new();
    for (i, l) in c.modbus.links.iter().enumerate() {
        let p = format!("modbus.links[{i}]");
        if l.name.is_empty() || !names.insert(l.name.as_str()) {
            push(out, format!("{p}.name"), "every link needs a unique name");
        }
        check_link(out, &p, l);
        check_units(out, &p, l, c);
    }
}

/// Where a map's field sits: `len` registers (or bits) of `table` from `start` on the wire.
struct Span {
    table: Table,
    start: u32,
    len: u32,
    bit: Option<u8>,
    /// The field's index in its map.
    field: usize,
}

impl Span {
    /// The span of field `i`, `f`, in a map counting addresses from `address_base`.
    fn of(f: &Field, address_base: u8, i: usize) -> Span {
        let start = u32::from(f.address.saturating_sub(u16::from(address_base)));
        let single = f.table.is_bits() || f.bit.is_some();
        let len = if single { 1 } else { u32::from(f.data_type.registers()) };
        Span { table: f.table, start, len, bit: f.bit, field: i }
    }
}

/// One register map: its address base, then each field and where it sits.
fn check_register_map(out: &mut Found, p: &str, map: &RegisterMap) {
    if map.address_base > 1 {
        push(
            out,
            format!("{p}.address_base"),
            "expected 0 (addresses as sent on the wire) or 1 (manuals counting from 1)",
        );
    }
    let mut spans: Vec<Span> = Vec::new();
    for (i, f) in map.fields.iter().enumerate() {
        let fp = format!("{p}.fields[{i}]");
        check_field(out, &fp, f, map.address_base);
        let span = Span::of(f, map.address_base, i);
        if span.start + span.len > 65_536 {
            push(
                out,
                format!("{fp}.address"),
                format!("a {:?} at {} runs past the last register (65535)", f.data_type, f.address),
            );
        }
        check_overlaps(out, p, &fp, &span, &spans);
        spans.push(span);
    }
}

/// One field of a register map: its channel, type and bit, address, scaling and interval.
fn check_field(out: &mut Found, fp: &str, f: &Field, address_base: u8) {
    if f.channel.is_empty() {
        push(out, format!("{fp}.channel"), "must name the channel this value feeds");
    }
    let is_bool = f.data_type == DataType::Bool;
    if f.table.is_bits() && (!is_bool || f.bit.is_some()) {
        push(
            out,
            format!("{fp}.type"),
            "coils and discrete inputs are single bits: use type = \"bool\" without `bit`",
        );
    }
    if !f.table.is_bits() && is_bool && f.bit.is_none() {
        push(out, format!("{fp}.bit"), "a bool in a register table needs `bit` (0–15)");
    }
    if f.bit.is_some_and(|b| b > 15) || (f.bit.is_some() && !is_bool) {
        push(out, format!("{fp}.bit"), "`bit` (0–15) goes with type = \"bool\" only");
    }
    if u16::from(address_base) > f.address {
        push(
            out,
            format!("{fp}.address"),
            "is below address_base = 1: manuals counting from 1 start at 1",
        );
    }
    if f.scale.is_some_and(|s| !s.is_finite() || s == 0.0) || !f.offset.is_finite() {
        push(
            out,
            format!("{fp}.scale"),
            "scale must be a finite non-zero number and offset finite",
        );
    }
    if f.every.is_some_and(|e| e.is_zero()) {
        push(out, format!("{fp}.every"), "must be longer than 0s");
    }
}

/// Each earlier field of the map (`p`) that shares registers with this one (`fp`);
/// distinct bits of one register may share it.
fn check_overlaps(out: &mut Found, p: &str, fp: &str, span: &Span, earlier: &[Span]) {
    for o in earlier {
        let overlap = o.table == span.table
            && span.start < o.start + o.len
            && o.start < span.start + span.len;
        let distinct_bits = o.bit.is_some()
            && span.bit.is_some()
            && o.bit != span.bit
            && o.len == 1
            && span.len == 1;
        if overlap && !distinct_bits {
            let message = format!("overlaps {p}.fields[{}] in the {:?} table", o.field, o.table);
            push(out, format!("{fp}.address"), message);
        }
    }
}

/// One link's transport settings (address or serial line), timeout and backoff.
fn check_link(out: &mut Found, p: &str, l: &Link) {
    match l.transport {
        Transport::Tcp | Transport::RtuOverTcp if !l.address.contains(':') => {
            push(out, format!("{p}.address"), "expected host:port, e.g. \"10.0.0.5:502\"")
        }
        Transport::Rtu if l.serial.path.is_empty() => push(
            out,
            format!("{p}.serial.path"),
            "expected the serial device, e.g. \"/dev/ttyUSB0\"",
        ),
        Transport::Rtu
            if l.serial.baud == 0
                || !(7..=8).contains(&l.serial.data_bits)
                || !(1..=2).contains(&l.serial.stop_bits) =>
        {
            push(
                out,
                format!("{p}.serial"),
                "expected baud > 0, data_bits 7 or 8, stop_bits 1 or 2",
            )
        }
        _ => {}
    }
    if l.timeout.is_zero() {
        push(out, format!("{p}.timeout"), "every call needs a timeout longer than 0s, e.g. \"1s\"");
    }
    if l.backoff_min.is_zero() || l.backoff_max < l.backoff_min {
        push(out, format!("{p}.backoff_min"), "expected 0 < backoff_min <= backoff_max");
    }
}

/// The units of one link (`p`): unique ids, each unit's settings, and the map it reads.
fn check_units(out: &mut Found, p: &str, l: &Link, c: &Config) {
    let mut ids = BTreeSet::new();
    for (j, u) in l.units.iter().enumerate() {
        let up = format!("{p}.units[{j}]");
        if !ids.insert(u.unit) {
            let message = format!("unit id {} appears twice on this link", u.unit);
            push(out, format!("{up}.unit"), message);
        }
        check_unit(out, &up, u, l.transport);
        let Some(map) = c.modbus.maps.get(&u.map) else {
            let known: Vec<&str> = c.modbus.maps.keys().map(String::as_str).collect();
            push(
                out,
                format!("{up}.map"),
                format!("unknown register map {:?} (known: {})", u.map, known.join(", ")),
            );
            continue;
        };
        check_unit_fields(out, &up, u, map, c);
    }
}

/// One unit's id (in range, and not the broadcast address on a serial bus) and poll interval.
fn check_unit(out: &mut Found, up: &str, u: &Unit, transport: Transport) {
    if u.unit > 247 && u.unit != 255 {
        push(out, format!("{up}.unit"), "unit ids are 0–247 (255 for some TCP devices)");
    }
    if u.unit == 0 && transport != Transport::Tcp {
        push(
            out,
            format!("{up}.unit"),
            "unit 0 is the broadcast address on a serial bus and never answers",
        );
    }
    if u.poll_every.is_zero() {
        push(out, format!("{up}.poll_every"), "must be longer than 0s");
    }
}

/// The fields a unit's map feeds: each names a known asset (the unit's, unless the field
/// names its own) and a channel of that asset's class. Stops at the first unknown asset.
fn check_unit_fields(out: &mut Found, up: &str, u: &Unit, map: &RegisterMap, c: &Config) {
    for (k, f) in map.fields.iter().enumerate() {
        let asset_id = f.asset.as_deref().unwrap_or(&u.asset);
        let Some(asset) = c.assets.iter().find(|a| a.id == asset_id) else {
            push(
                out,
                format!("{up}.asset"),
                format!("unknown asset {asset_id:?} (fed by modbus.maps.{}.fields[{k}])", u.map),
            );
            return;
        };
        let Some(class) = c.classes.get(&asset.class) else { continue };
        if !class.channels.contains_key(&f.channel) {
            let (ch, cl) = (&f.channel, &asset.class);
            push(
                out,
                format!("modbus.maps.{}.fields[{k}].channel", u.map),
                format!("{ch:?} is not a channel of class {cl} (asset {asset_id})"),
            );
        }
    }
}

fn push(out: &mut Found, path: impl Into<String>, message: impl Into<String>) {
    out.push((path.into(), message.into()));
}

fn check_id(out: &mut Found, path: &str, id: &str) {
    if id.is_empty() {
        push(out, path, "must not be empty");
    } else if !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        push(out, path, format!("{id:?} may only use letters, digits, '-', '_' and '.'"));
    }
}

fn check_mqtt(out: &mut Found, m: &Mqtt) {
    if m.host.trim().is_empty() {
        push(out, "mqtt.host", "must name the broker host, e.g. \"localhost\"");
    }
    if m.port == 0 {
        push(out, "mqtt.port", "must be a TCP port between 1 and 65535");
    }
    if m.max_payload_bytes == 0 {
        push(out, "mqtt.max_payload_bytes", "must be greater than 0");
    }
    if m.reconnect_min.is_zero() || m.reconnect_max < m.reconnect_min {
        push(out, "mqtt.reconnect_min", "expected 0 < reconnect_min <= reconnect_max");
    }
    if m.tls.enabled {
        match &m.tls.ca_file {
            None => push(out, "mqtt.tls.ca_file", "required when mqtt.tls.enabled = true"),
            Some(f) if !std::path::Path::new(f).is_file() => {
                push(out, "mqtt.tls.ca_file", format!("file {f:?} does not exist"))
            }
            _ => {}
        }
        if m.tls.client_cert_file.is_some() != m.tls.client_key_file.is_some() {
            push(
                out,
                "mqtt.tls.client_cert_file",
                "set both client_cert_file and client_key_file, or neither",
            );
        }
    }
    for (i, s) in m.subscriptions.iter().enumerate() {
        let p = format!("mqtt.subscriptions[{i}]");
        if let Err(e) = super::topic::check_filter(&s.filter) {
            push(out, format!("{p}.filter"), e);
        }
        match super::topic::Template::parse(&s.template) {
            Err(e) => push(out, format!("{p}.template"), e),
            Ok(t) => {
                if s.payload != PayloadFormat::Object && !t.has_channel() {
                    push(
                        out,
                        format!("{p}.template"),
                        "must contain {channel} unless payload = \"object\"",
                    );
                }
            }
        }
        if s.payload == PayloadFormat::Json && !s.value_pointer.starts_with('/') {
            push(out, format!("{p}.value_pointer"), "must be a JSON pointer such as \"/value\"");
        }
        if s.timestamp_pointer.as_deref().is_some_and(|t| !t.starts_with('/')) {
            push(out, format!("{p}.timestamp_pointer"), "must be a JSON pointer such as \"/ts\"");
        }
        if !s.values_pointer.is_empty() && !s.values_pointer.starts_with('/') {
            push(
                out,
                format!("{p}.values_pointer"),
                "must be empty (the whole object) or a JSON pointer",
            );
        }
    }
}

fn check_pipeline(out: &mut Found, c: &Config) {
    for (name, class) in &c.classes {
        for (i, t) in class.trends.iter().enumerate() {
            if t.every < c.pipeline.eval_interval {
                push(
                    out,
                    format!("classes.{name}.trends[{i}].every"),
                    "must be at least pipeline.eval_interval: a history point is the mean of \
                        several evaluations",
                );
            }
        }
    }
    let p = &c.pipeline;
    if p.eval_interval.is_zero() {
        push(out, "pipeline.eval_interval", "must be longer than 0s, e.g. \"10s\"");
    }
    if p.window < p.eval_interval {
        push(out, "pipeline.window", "must be at least as long as pipeline.eval_interval");
    }
    if p.window.as_millis() > crate::config::schema::MAX_WINDOW_MS as u128 {
        push(
            out,
            "pipeline.window",
            "must be at most 24 days (a window holds recent samples; slow changes are for \
             [[classes.<c>.trends]]), e.g. \"24d\"",
        );
    }
    if p.max_window_samples < 1 {
        push(out, "pipeline.max_window_samples", "must be at least 1");
    }
    if p.min_window_samples < 1 || p.min_window_samples > p.max_window_samples {
        push(
            out,
            "pipeline.min_window_samples",
            "must be at least 1 and at most pipeline.max_window_samples",
        );
    }
    if p.stale_after.is_zero() {
        push(out, "pipeline.stale_after", "must be longer than 0s");
    }
    if p.queue_capacity == 0 {
        push(out, "pipeline.queue_capacity", "must be greater than 0");
    }
    if c.mqtt.max_future_skew > p.window {
        // One reading stamped that far ahead would make every correct reading
        // of its channel look late for the length of the window.
        push(
            out,
            "mqtt.max_future_skew",
            format!(
                "must not be longer than pipeline.window ({}): lower it, e.g. max_future_skew = \
                    \"{}\"",
                humantime::format_duration(p.window),
                humantime::format_duration(p.window)
            ),
        );
    }
    if c.flood.storm_window.is_zero() {
        push(out, "flood.storm_window", "must be longer than 0s, e.g. \"1m\"");
    }
}

fn check_iso(out: &mut Found, iso: &Iso10816) {
    if !(1..=4).contains(&iso.group) {
        push(out, "iso10816.group", "ISO 10816-3 machine group must be 1, 2, 3 or 4");
    }
    if !(0.0..0.5).contains(&iso.hysteresis) {
        push(out, "iso10816.hysteresis", "expected a fraction between 0 and 0.5, e.g. 0.05");
    }
    for (key, b) in &iso.boundaries {
        let valid_key = ["1", "2", "3", "4"]
            .iter()
            .flat_map(|g| ["rigid", "flexible"].map(move |f| format!("group{g}_{f}")))
            .any(|k| &k == key);
        if !valid_key {
            push(
                out,
                format!("iso10816.boundaries.{key}"),
                "expected a key like group2_rigid or group1_flexible",
            );
        }
        if !(b[0] > 0.0 && b[0] < b[1] && b[1] < b[2]) {
            push(
                out,
                format!("iso10816.boundaries.{key}"),
                "expected ascending A/B, B/C, C/D boundaries in mm/s, e.g. [1.4, 2.8, 4.5]",
            );
        }
    }
}

/// `[http]`, `[publish]`, `[reload]`, and state-based suppression's running signal.
fn check_operate(out: &mut Found, c: &Config) {
    let h = &c.http;
    if h.enabled {
        if h.listen.parse::<std::net::SocketAddr>().is_err() {
            push(out, "http.listen", "must be an address and port, e.g. \"127.0.0.1:9890\"");
        }
        if h.tokens.is_empty() {
            push(
                out,
                "http.tokens",
                "the server needs at least one token: add [[http.tokens]] with role = \"viewer\" \
                 or \"operator\" and token_env or token_file",
            );
        }
        if h.tls_cert_file.is_some() != h.tls_key_file.is_some() {
            push(out, "http.tls_cert_file", "HTTPS needs both tls_cert_file and tls_key_file");
        }
    }
    for (i, t) in h.tokens.iter().enumerate() {
        if t.token_env.is_some() == t.token_file.is_some() {
            push(
                out,
                format!("http.tokens[{i}]"),
                "set exactly one of token_env (a variable holding the token) or token_file",
            );
        }
    }
    if h.history < 2 {
        push(out, "http.history", "must keep at least 2 evaluations for a plot");
    }
    if c.publish.enabled && c.publish.topic_prefix.trim_matches('/').is_empty() {
        push(out, "publish.topic_prefix", "must not be empty, e.g. \"hums\"");
    }
    if c.reload.interval.is_zero() {
        push(out, "reload.interval", "must be longer than 0, e.g. \"2s\"");
    }
    for (name, class) in &c.classes {
        for (fm, spec) in &class.failure_modes {
            if spec.when_stopped == WhenStopped::Suppress && class.usage.is_none() {
                push(
                    out,
                    format!("classes.{name}.failure_modes.{fm}.when_stopped"),
                    "\"suppress\" needs the class's running signal: add [classes.NAME.usage] \
                     with the channel that shows the machine running",
                );
            }
        }
    }
}

/// The shared rules and the kind's own (`config::backend`).
fn check_backend(out: &mut Found, b: &super::backend::Backend) {
    out.extend(b.check());
}

fn check_failure_mode(out: &mut Found, p: &str, fm: &FailureMode) {
    if fm.title.trim().is_empty() {
        push(out, format!("{p}.title"), "must not be empty: it becomes the work order's title");
    }
    if !(1..=4).contains(&fm.priority) {
        push(
            out,
            format!("{p}.priority"),
            "expected 1 (critical), 2 (high), 3 (medium) or 4 (low)",
        );
    }
    if !(fm.estimated_hours.is_finite() && fm.estimated_hours >= 0.0) {
        push(out, format!("{p}.estimated_hours"), "expected a number of hours >= 0");
    }
    for (i, part) in fm.parts.iter().enumerate() {
        if part.sku.is_empty() {
            push(out, format!("{p}.parts[{i}].sku"), "must not be empty");
        }
        if !(part.qty.is_finite() && part.qty > 0.0) {
            push(out, format!("{p}.parts[{i}].qty"), "expected a quantity > 0");
        }
    }
}

/// One asset class: its id and failure modes, then each part that refers to them.
fn check_class(out: &mut Found, name: &str, class: &AssetClass) {
    let p = format!("classes.{name}");
    check_id(out, &p, name);
    for (fm_name, fm) in &class.failure_modes {
        check_failure_mode(out, &format!("{p}.failure_modes.{fm_name}"), fm);
    }
    check_channels(out, &p, class);
    check_derived(out, &p, class, name);
    let known: BTreeSet<&str> =
        class.channels.keys().chain(class.derived.keys()).map(String::as_str).collect();
    check_limits(out, &format!("{p}.limits"), &class.limits, &known, &class.failure_modes, name);
    if let Some(v) = &class.vibration {
        check_vibration(out, &format!("{p}.vibration"), v, class, name);
    }
    if let Some(b) = &class.baseline {
        check_baseline(out, &format!("{p}.baseline"), b, class, name, &known);
    }
    check_usage(out, &p, class, name);
    check_preventive(out, &p, class, name);
    if let Some(n) = &class.novelty {
        check_novelty(out, &format!("{p}.novelty"), n, class, name);
    }
    if let Some(l) = &class.life {
        check_life(out, &format!("{p}.life"), l, class, name);
    }
    check_trends(out, &p, class, name, &known);
}

/// Reports `fm` at `path` unless it is a failure mode of the class.
fn check_fm_known(out: &mut Found, path: String, fm: &str, class: &AssetClass, name: &str) {
    if !class.failure_modes.contains_key(fm) {
        push(out, path, unknown_fm(fm, name, &class.failure_modes));
    }
}

/// Every measured channel of a class names its unit.
fn check_channels(out: &mut Found, p: &str, class: &AssetClass) {
    for (ch, spec) in &class.channels {
        if spec.unit.is_empty() {
            push(
                out,
                format!("{p}.channels.{ch}.unit"),
                "must not be empty, e.g. \"mm/s\" or \"degC\"",
            );
        }
        if let Some([lo, hi]) = spec.valid_range {
            let max = super::plausible::MAX_MAGNITUDE;
            if !(lo < hi && lo >= -max && hi <= max) {
                push(
                    out,
                    format!("{p}.channels.{ch}.valid_range"),
                    format!("expected [low, high] with low < high, within ±{max:e}"),
                );
            }
        }
    }
}

/// Derived channels: a name of their own and the two measured channels they subtract.
fn check_derived(out: &mut Found, p: &str, class: &AssetClass, name: &str) {
    for (d, spec) in &class.derived {
        let dp = format!("{p}.derived.{d}");
        if class.channels.contains_key(d) {
            push(out, dp.clone(), "a derived channel may not share a name with a measured channel");
        }
        if spec.difference.len() != 2 {
            push(
                out,
                format!("{dp}.difference"),
                "expected two channel names: [minuend, subtrahend]",
            );
        }
        for ch in &spec.difference {
            if !class.channels.contains_key(ch) {
                let message = format!("{ch:?} is not a channel of class {name}");
                push(out, format!("{dp}.difference"), message);
            }
        }
    }
}

/// The ISO 10816 check (`vp`): vibration-velocity channels and a known failure mode.
fn check_vibration(out: &mut Found, vp: &str, v: &VibrationCheck, class: &AssetClass, name: &str) {
    for ch in &v.channels {
        match class.channels.get(ch) {
            None => push(
                out,
                format!("{vp}.channels"),
                format!("{ch:?} is not a channel of class {name}"),
            ),
            Some(s) if s.quantity != Quantity::VibrationVelocity => push(
                out,
                format!("{vp}.channels"),
                format!(
                    "{ch:?} must have quantity = \"vibration_velocity\" \
                     for the ISO 10816 check"
                ),
            ),
            _ => {}
        }
    }
    check_fm_known(out, format!("{vp}.failure_mode"), &v.failure_mode, class, name);
}

/// Reading-by-reading novelty (`np`): a measured channel, a known failure mode and tuning
/// in range.
fn check_novelty(out: &mut Found, np: &str, n: &Novelty, class: &AssetClass, name: &str) {
    if !class.channels.contains_key(&n.channel) {
        let message = format!("{:?} is not a measured channel of class {name}", n.channel);
        push(out, format!("{np}.channel"), message);
    }
    check_fm_known(out, format!("{np}.failure_mode"), &n.failure_mode, class, name);
    if n.window < 2 {
        push(out, format!("{np}.window"), "expected at least 2 readings, e.g. 200");
    }
    if !(n.range_tolerance.is_finite() && n.range_tolerance >= 0.0) {
        push(out, format!("{np}.range_tolerance"), "expected a share of the range >= 0, e.g. 0.02");
    }
    if n.probation_fraction.is_some_and(|f| !(f > 0.0 && f <= 1.0)) {
        push(out, format!("{np}.probation_fraction"), "expected a share of the rows in (0, 1]");
    }
    if let Some(pt) = n.pattern {
        if pt.length < 2 || pt.step == 0 || pt.history < pt.length || pt.history > 100_000 {
            push(
                out,
                format!("{np}.pattern"),
                "expected length >= 2, step >= 1 and length <= history <= 100000, e.g. \
                    { length = 24, history = 1000, step = 2 }",
            );
        }
    }
}

/// The remaining-life model (`lp`): measured channels, a known failure mode that no trend
/// predicts, and a baseline, cap and horizon that fit together.
fn check_life(out: &mut Found, lp: &str, l: &Life, class: &AssetClass, name: &str) {
    for ch in &l.channels {
        if !class.channels.contains_key(ch) {
            let message = format!("{ch:?} is not a measured channel of class {name}");
            push(out, format!("{lp}.channels"), message);
        }
    }
    check_fm_known(out, format!("{lp}.failure_mode"), &l.failure_mode, class, name);
    if class.trends.iter().any(|t| t.failure_mode == l.failure_mode) {
        push(
            out,
            format!("{lp}.failure_mode"),
            "a trend of this class already predicts it: one predictor per failure mode",
        );
    }
    if l.baseline == 0 {
        push(out, format!("{lp}.baseline"), "expected a number of evaluations > 0, e.g. 20");
    }
    if l.cap.is_zero() {
        push(
            out,
            format!("{lp}.cap"),
            "expected the longest remaining life worth learning, e.g. \"125h\"",
        );
    }
    if l.horizon >= l.cap {
        push(
            out,
            format!("{lp}.horizon"),
            "must be shorter than cap: the model cannot tell lives longer than cap apart",
        );
    }
}

/// Trends: each follows a known channel (`known`) to a finite limit over enough history,
/// and predicts a known failure mode, one trend per failure mode and per channel and feature.
fn check_trends(out: &mut Found, p: &str, class: &AssetClass, name: &str, known: &BTreeSet<&str>) {
    for (i, t) in class.trends.iter().enumerate() {
        let tp = format!("{p}.trends[{i}]");
        if !known.contains(t.channel.as_str()) {
            let message = format!("{:?} is not a channel of class {name}", t.channel);
            push(out, format!("{tp}.channel"), message);
        }
        if !t.limit.is_finite() {
            push(
                out,
                format!("{tp}.limit"),
                "set the level at which the failure is due, e.g. the alarm limit",
            );
        }
        check_fm_known(out, format!("{tp}.failure_mode"), &t.failure_mode, class, name);
        if t.every.is_zero() || t.history < t.every * 3 {
            push(out, format!("{tp}.history"), "must hold at least three `every` periods");
        } else if t.min_points as u128 > t.history.as_millis() / t.every.as_millis() {
            push(
                out,
                format!("{tp}.min_points"),
                "is more points than `history` holds at one per `every`",
            );
        }
        let earlier = &class.trends[..i];
        if earlier.iter().any(|o| o.failure_mode == t.failure_mode) {
            push(
                out,
                format!("{tp}.failure_mode"),
                "another trend of this class already predicts it: one trend per failure mode",
            );
        }
        if earlier.iter().any(|o| o.channel == t.channel && o.feature == t.feature) {
            push(
                out,
                format!("{tp}.channel"),
                "another trend of this class already follows this channel and feature",
            );
        }
        if t.relative_limit.is_some_and(|r| !(r.is_finite() && r > 1.0)) {
            push(
                out,
                format!("{tp}.relative_limit"),
                "must be a factor above 1 of the learned level, e.g. 2.5",
            );
        }
        if !(t.min_t.is_finite() && t.min_t > 0.0) {
            push(
                out,
                format!("{tp}.min_t"),
                "must be a positive number of standard errors, e.g. 4.0",
            );
        }
    }
}

fn check_baseline(
    out: &mut Found,
    p: &str,
    b: &Baseline,
    class: &AssetClass,
    name: &str,
    known: &BTreeSet<&str>,
) {
    for ch in &b.channels {
        if !known.contains(ch.as_str()) {
            push(out, format!("{p}.channels"), format!("{ch:?} is not a channel of class {name}"));
        }
    }
    if b.features.is_empty() {
        push(
            out,
            format!("{p}.features"),
            "name at least one window feature, e.g. [\"mean\", \"std\"]",
        );
    }
    if b.samples < 2 {
        push(
            out,
            format!("{p}.samples"),
            "a baseline needs at least 2 rows to learn from, e.g. 1000",
        );
    }
    if !(b.false_alarm_rate > 0.0 && b.false_alarm_rate < 1.0) {
        push(out, format!("{p}.false_alarm_rate"), "must be in (0, 1), e.g. 0.001");
    }
    if !(b.false_orders_per_year.is_finite() && b.false_orders_per_year > 0.0) {
        push(
            out,
            format!("{p}.false_orders_per_year"),
            "must be a positive number of false orders per asset-year, e.g. 1",
        );
    }
    if !(b.margin.is_finite() && b.margin > 0.0) {
        push(out, format!("{p}.margin"), "must be a positive number, e.g. 1.5");
    }
    if b.clusters == 0 {
        push(out, format!("{p}.clusters"), "must be at least 1");
    }
    let inputs = if b.channels.is_empty() { class.channels.len() } else { b.channels.len() }
        * b.features.len();
    if b.model == crate::config::schema::ModelKind::Pca && inputs < 2 {
        push(
            out,
            format!("{p}.model"),
            "PCA needs at least two inputs (channels × features); use model = \"zscore\"",
        );
    }
    if !(b.pca_variance > 0.0 && b.pca_variance <= 1.0) {
        push(out, format!("{p}.pca_variance"), "must be in (0, 1], e.g. 0.9");
    }
    if let Some(f) = b.input_fraction {
        if !(f > 0.0 && f <= 1.0) {
            push(out, format!("{p}.input_fraction"), "must be in (0, 1], e.g. 0.15");
        }
    }
    if !class.failure_modes.contains_key(&b.failure_mode) {
        push(
            out,
            format!("{p}.failure_mode"),
            unknown_fm(&b.failure_mode, name, &class.failure_modes),
        );
    }
    if let Some(fm) = b.opposite_failure_mode.as_deref() {
        if !class.failure_modes.contains_key(fm) {
            push(
                out,
                format!("{p}.opposite_failure_mode"),
                unknown_fm(fm, name, &class.failure_modes),
            );
        }
    }
    if !(b.min_change.is_finite() && (0.0..1.0).contains(&b.min_change)) {
        push(out, format!("{p}.min_change"), "must be a share in [0, 1), e.g. 0.05 for 5 %");
    }
}

fn unknown_fm(fm: &str, class: &str, known: &BTreeMap<String, FailureMode>) -> String {
    let names: Vec<&str> = known.keys().map(String::as_str).collect();
    format!("{fm:?} is not a failure mode of class {class} (known: {})", names.join(", "))
}

fn check_limits(
    out: &mut Found,
    p: &str,
    limits: &[Limit],
    channels: &BTreeSet<&str>,
    fms: &BTreeMap<String, FailureMode>,
    class: &str,
) {
    for (i, l) in limits.iter().enumerate() {
        let lp = format!("{p}[{i}]");
        if !channels.contains(l.channel.as_str()) {
            let names: Vec<&str> = channels.iter().copied().collect();
            push(
                out,
                format!("{lp}.channel"),
                format!(
                    "{:?} is not a channel of class {class} (known: {})",
                    l.channel,
                    names.join(", ")
                ),
            );
        }
        if !fms.contains_key(&l.failure_mode) {
            push(out, format!("{lp}.failure_mode"), unknown_fm(&l.failure_mode, class, fms));
        }
        let levels = [("warning", l.warning), ("alarm", l.alarm), ("critical", l.critical)];
        if levels.iter().all(|(_, v)| v.is_none()) {
            push(
                out,
                lp.clone(),
                "set at least one of warning, alarm or critical = { set = …, clear = … }",
            );
        }
        let mut previous: Option<(&str, f64)> = None;
        for (name, level) in levels {
            let Some(level) = level else { continue };
            if !(level.set.is_finite() && level.clear.is_finite()) {
                push(out, format!("{lp}.{name}"), "set and clear must be finite numbers");
                continue;
            }
            let (clear_ok, side) = match l.direction {
                Direction::High => (level.clear <= level.set, "at or below"),
                Direction::Low => (level.clear >= level.set, "at or above"),
            };
            if !clear_ok {
                push(
                    out,
                    format!("{lp}.{name}.clear"),
                    format!(
                        "must be {side} set ({}) so the alarm can clear (hysteresis)",
                        level.set
                    ),
                );
            }
            if let Some((prev_name, prev)) = previous {
                let ordered = match l.direction {
                    Direction::High => level.set >= prev,
                    Direction::Low => level.set <= prev,
                };
                if !ordered {
                    push(
                        out,
                        format!("{lp}.{name}.set"),
                        format!(
                            "is less severe than {prev_name}.set ({prev}); levels must go warning \
                                → alarm → critical"
                        ),
                    );
                }
            }
            previous = Some((name, level.set));
        }
    }
}

fn check_assets(out: &mut Found, c: &Config) {
    if c.assets.is_empty() && c.asset_templates.is_empty() {
        push(out, "assets", "no assets configured: add at least one [[assets]] table");
    }
    let mut ids = BTreeSet::new();
    let mut topics: BTreeMap<&str, String> = BTreeMap::new();
    let templates = c
        .asset_templates
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("asset_templates[{i}]"), a, true));
    for (p, a, template) in c
        .assets
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("assets[{i}]"), a, false))
        .chain(templates)
    {
        check_asset_identity(out, &p, a, template, &mut ids);
        check_location_and_iso_group(out, &p, a);
        let Some(class) = c.classes.get(&a.class) else {
            push(out, format!("{p}.class"), unknown_class(&a.class, c));
            continue;
        };
        check_asset_channels(out, c, &p, a, class, template, &mut topics);
        let known: BTreeSet<&str> =
            class.channels.keys().chain(class.derived.keys()).map(String::as_str).collect();
        check_limits(
            out,
            &format!("{p}.limits"),
            &a.limits,
            &known,
            &class.failure_modes,
            &a.class,
        );
        if !(a.usage.run_hours.is_finite() && a.usage.run_hours >= 0.0) {
            push(
                out,
                format!("{p}.usage.run_hours"),
                "expected the machine's hour meter reading, >= 0",
            );
        }
    }
}

/// An asset's id (valid and unique; `ids` holds those seen so far) and name, or that a
/// template has no id.
fn check_asset_identity<'c>(
    out: &mut Found,
    p: &str,
    a: &'c Asset,
    template: bool,
    ids: &mut BTreeSet<&'c str>,
) {
    if template {
        if !a.id.is_empty() {
            push(
                out,
                format!("{p}.id"),
                "remove it: a template's asset id is the input file's stem",
            );
        }
    } else {
        check_id(out, &format!("{p}.id"), &a.id);
        if !ids.insert(a.id.as_str()) {
            push(out, format!("{p}.id"), format!("duplicate asset id {:?}", a.id));
        }
        if a.name.trim().is_empty() {
            push(out, format!("{p}.name"), "must not be empty: it is shown in work orders");
        }
    }
}

/// An asset's location path and, if set, its ISO 10816-3 machine group.
fn check_location_and_iso_group(out: &mut Found, p: &str, a: &Asset) {
    if a.location.is_empty() {
        push(
            out,
            format!("{p}.location"),
            "expected the location path, e.g. [\"Site A\", \"Building 1\", \"Boiler room\", \
                \"Loop 2\"]",
        );
    }
    if let Some(m) = &a.iso10816 {
        if !(1..=4).contains(&m.group) {
            push(
                out,
                format!("{p}.iso10816.group"),
                "ISO 10816-3 machine group must be 1, 2, 3 or 4",
            );
        }
    }
}

/// The problem with an asset whose class is not defined: the classes that are.
fn unknown_class(class: &str, c: &Config) -> String {
    let names: Vec<&str> = c.classes.keys().map(String::as_str).collect();
    format!("unknown class {class:?} (known: {}); include its class library", names.join(", "))
}

/// An asset's channels, in order: each one of its class, with no topic in a template;
/// `topics` holds the exact topics seen so far.
fn check_asset_channels<'c>(
    out: &mut Found,
    c: &Config,
    p: &str,
    a: &'c Asset,
    class: &AssetClass,
    template: bool,
    topics: &mut BTreeMap<&'c str, String>,
) {
    for (ch, spec) in &a.channels {
        if !class.channels.contains_key(ch) {
            push(
                out,
                format!("{p}.channels.{ch}"),
                format!("{ch:?} is not a channel of class {}", a.class),
            );
        }
        if template && spec.topic.is_some() {
            push(
                out,
                format!("{p}.channels.{ch}.topic"),
                "remove it: templates are for replay files only",
            );
            continue;
        }
        if let Some(t) = &spec.topic {
            check_topic(out, c, &format!("{p}.channels.{ch}"), t, topics);
        }
    }
}

/// A channel's exact MQTT topic (`cp` is the channel's key path): covered by a subscription,
/// without wildcards, and not already used by another channel.
fn check_topic<'c>(
    out: &mut Found,
    c: &Config,
    cp: &str,
    t: &'c str,
    topics: &mut BTreeMap<&'c str, String>,
) {
    if !c
        .mqtt
        .subscriptions
        .iter()
        .any(|s| rumqttc::matches(t, super::topic::shared_topic_filter(&s.filter)))
    {
        push(
            out,
            format!("{cp}.topic"),
            format!("no mqtt.subscriptions filter covers {t:?}, so it would never be received"),
        );
    }
    if t.is_empty() || t.contains(['+', '#']) {
        push(out, format!("{cp}.topic"), "expected an exact topic without wildcards");
    } else if let Some(other) = topics.insert(t, cp.to_string()) {
        push(out, format!("{cp}.topic"), format!("topic {t:?} is already used by {other}"));
    }
}

/// The usage meter of a class: a measured channel, a running threshold and a gap limit.
fn check_usage(out: &mut Found, p: &str, class: &AssetClass, name: &str) {
    if let Some(u) = &class.usage {
        if !class.channels.contains_key(&u.channel) {
            let names: Vec<&str> = class.channels.keys().map(String::as_str).collect();
            push(
                out,
                format!("{p}.usage.channel"),
                format!(
                    "{:?} is not a measured channel of class {name} (known: {})",
                    u.channel,
                    names.join(", ")
                ),
            );
        }
        if !u.running_above.is_finite() {
            push(
                out,
                format!("{p}.usage.running_above"),
                "set the reading at which the machine runs, e.g. 2.0 (A)",
            );
        } else if u.stopped_below.is_some_and(|s| !(s.is_finite() && s <= u.running_above)) {
            push(
                out,
                format!("{p}.usage.stopped_below"),
                "expected a number no higher than running_above",
            );
        }
        if u.max_gap.is_zero() {
            push(out, format!("{p}.usage.max_gap"), "must be longer than zero, e.g. \"5m\"");
        }
    }
}

/// The preventive tasks of a class: a preventive failure mode and exactly one interval;
/// counting run hours or starts needs the class's usage meter.
fn check_preventive(out: &mut Found, p: &str, class: &AssetClass, name: &str) {
    for (i, t) in class.preventive.iter().enumerate() {
        let tp = format!("{p}.preventive[{i}]");
        match class.failure_modes.get(&t.failure_mode) {
            None => push(
                out,
                format!("{tp}.failure_mode"),
                unknown_fm(&t.failure_mode, name, &class.failure_modes),
            ),
            Some(fm) if fm.kind != WorkKind::Preventive => push(
                out,
                format!("{tp}.failure_mode"),
                format!("set kind = \"preventive\" in failure mode {:?}", t.failure_mode),
            ),
            _ => {}
        }
        let usage_based = t.every_run_hours.is_some() || t.every_starts.is_some();
        match [t.every_run_hours.is_some(), t.every_starts.is_some(), t.every.is_some()]
            .iter()
            .filter(|x| **x)
            .count()
        {
            1 => {}
            0 => push(
                out,
                tp.clone(),
                "set one interval: every_run_hours, every_starts or every (calendar)",
            ),
            _ => push(
                out,
                tp.clone(),
                "set only one of every_run_hours, every_starts and every: one task per trigger",
            ),
        }
        if t.every_run_hours.is_some_and(|h| !(h.is_finite() && h > 0.0)) {
            push(out, format!("{tp}.every_run_hours"), "expected a number of hours > 0");
        }
        if t.every_starts == Some(0) {
            push(out, format!("{tp}.every_starts"), "expected a number of starts > 0");
        }
        if t.every.is_some_and(|d| d.is_zero()) {
            push(out, format!("{tp}.every"), "expected a calendar interval, e.g. \"90d\"");
        }
        if usage_based && class.usage.is_none() {
            push(
                out,
                tp.clone(),
                format!(
                    "counting run hours or starts needs [classes.{name}.usage] (the channel \
                    that shows running)"
                ),
            );
        }
    }
}
