//! Semantic checks that serde cannot express. Each returns the key path and a
//! message that says what is expected. The `[backend]` rules, shared and per
//! kind, live beside their settings in `config::backend`.

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
    if c.state.dir.trim().is_empty() {
        push(&mut out, "state.dir", "must name the directory for the state database, e.g. \"/var/lib/hums\"");
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

fn check_modbus(out: &mut Found, c: &Config) {
    use super::modbus::{DataType, Transport};
    let m = &c.modbus;
    for (name, map) in &m.maps {
        let p = format!("modbus.maps.{name}");
        if map.address_base > 1 {
            push(
                out,
                format!("{p}.address_base"),
                "expected 0 (addresses as sent on the wire) or 1 (manuals counting from 1)",
            );
        }
        let mut spans: Vec<(super::modbus::Table, u32, u32, Option<u8>, usize)> = Vec::new();
        for (i, f) in map.fields.iter().enumerate() {
            let fp = format!("{p}.fields[{i}]");
            if f.channel.is_empty() {
                push(out, format!("{fp}.channel"), "must name the channel this value feeds");
            }
            if f.table.is_bits() && (f.data_type != DataType::Bool || f.bit.is_some()) {
                push(
                    out,
                    format!("{fp}.type"),
                    "coils and discrete inputs are single bits: use type = \"bool\" without `bit`",
                );
            }
            if !f.table.is_bits() && f.data_type == DataType::Bool && f.bit.is_none() {
                push(out, format!("{fp}.bit"), "a bool in a register table needs `bit` (0–15)");
            }
            if f.bit.is_some_and(|b| b > 15) || (f.bit.is_some() && f.data_type != DataType::Bool) {
                push(out, format!("{fp}.bit"), "`bit` (0–15) goes with type = \"bool\" only");
            }
            if u16::from(map.address_base) > f.address {
                push(out, format!("{fp}.address"), "is below address_base = 1: manuals counting from 1 start at 1");
            }
            if f.scale.is_some_and(|s| !s.is_finite() || s == 0.0) || !f.offset.is_finite() {
                push(out, format!("{fp}.scale"), "scale must be a finite non-zero number and offset finite");
            }
            if f.every.is_some_and(|e| e.is_zero()) {
                push(out, format!("{fp}.every"), "must be longer than 0s");
            }
            let start = u32::from(f.address.saturating_sub(u16::from(map.address_base)));
            let len = if f.table.is_bits() || f.bit.is_some() { 1 } else { u32::from(f.data_type.registers()) };
            if start + len > 65_536 {
                push(
                    out,
                    format!("{fp}.address"),
                    format!("a {:?} at {} runs past the last register (65535)", f.data_type, f.address),
                );
            }
            for &(t, s, l, bit, j) in &spans {
                let overlap = t == f.table && start < s + l && s < start + len;
                let distinct_bits = bit.is_some() && f.bit.is_some() && bit != f.bit && l == 1 && len == 1;
                if overlap && !distinct_bits {
                    push(out, format!("{fp}.address"), format!("overlaps {p}.fields[{j}] in the {:?} table", t));
                }
            }
            spans.push((f.table, start, len, f.bit, i));
        }
    }
    let mut names = BTreeSet::new();
    for (i, l) in m.links.iter().enumerate() {
        let p = format!("modbus.links[{i}]");
        if l.name.is_empty() || !names.insert(l.name.as_str()) {
            push(out, format!("{p}.name"), "every link needs a unique name");
        }
        match l.transport {
            Transport::Tcp | Transport::RtuOverTcp if !l.address.contains(':') => {
                push(out, format!("{p}.address"), "expected host:port, e.g. \"10.0.0.5:502\"")
            }
            Transport::Rtu if l.serial.path.is_empty() => {
                push(out, format!("{p}.serial.path"), "expected the serial device, e.g. \"/dev/ttyUSB0\"")
            }
            Transport::Rtu
                if l.serial.baud == 0
                    || !(7..=8).contains(&l.serial.data_bits)
                    || !(1..=2).contains(&l.serial.stop_bits) =>
            {
                push(out, format!("{p}.serial"), "expected baud > 0, data_bits 7 or 8, stop_bits 1 or 2")
            }
            _ => {}
        }
        if l.timeout.is_zero() {
            push(out, format!("{p}.timeout"), "every call needs a timeout longer than 0s, e.g. \"1s\"");
        }
        if l.backoff_min.is_zero() || l.backoff_max < l.backoff_min {
            push(out, format!("{p}.backoff_min"), "expected 0 < backoff_min <= backoff_max");
        }
        let mut ids = BTreeSet::new();
        for (j, u) in l.units.iter().enumerate() {
            let up = format!("{p}.units[{j}]");
            if !ids.insert(u.unit) {
                push(out, format!("{up}.unit"), format!("unit id {} appears twice on this link", u.unit));
            }
            if u.unit > 247 && u.unit != 255 {
                push(out, format!("{up}.unit"), "unit ids are 0–247 (255 for some TCP devices)");
            }
            if u.unit == 0 && l.transport != Transport::Tcp {
                push(out, format!("{up}.unit"), "unit 0 is the broadcast address on a serial bus and never answers");
            }

            if u.poll_every.is_zero() {
                push(out, format!("{up}.poll_every"), "must be longer than 0s");
            }
            let Some(map) = m.maps.get(&u.map) else {
                let known: Vec<&str> = m.maps.keys().map(String::as_str).collect();
                push(
                    out,
                    format!("{up}.map"),
                    format!("unknown register map {:?} (known: {})", u.map, known.join(", ")),
                );
                continue;
            };
            for (k, f) in map.fields.iter().enumerate() {
                let asset_id = f.asset.as_deref().unwrap_or(&u.asset);
                let Some(asset) = c.assets.iter().find(|a| a.id == asset_id) else {
                    push(
                        out,
                        format!("{up}.asset"),
                        format!("unknown asset {asset_id:?} (fed by modbus.maps.{}.fields[{k}])", u.map),
                    );
                    break;
                };
                let known = c.classes.get(&asset.class).is_some_and(|cl| cl.channels.contains_key(&f.channel));
                if !known && c.classes.contains_key(&asset.class) {
                    push(
                        out,
                        format!("modbus.maps.{}.fields[{k}].channel", u.map),
                        format!("{:?} is not a channel of class {} (asset {asset_id})", f.channel, asset.class),
                    );
                }
            }
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
            push(out, "mqtt.tls.client_cert_file", "set both client_cert_file and client_key_file, or neither");
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
                    push(out, format!("{p}.template"), "must contain {channel} unless payload = \"object\"");
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
            push(out, format!("{p}.values_pointer"), "must be empty (the whole object) or a JSON pointer");
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
                    "must be at least pipeline.eval_interval: a history point is the mean of several evaluations",
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
    if p.max_window_samples < 1 {
        push(out, "pipeline.max_window_samples", "must be at least 1");
    }
    if p.min_window_samples < 1 || p.min_window_samples > p.max_window_samples {
        push(out, "pipeline.min_window_samples", "must be at least 1 and at most pipeline.max_window_samples");
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
                "must not be longer than pipeline.window ({}): lower it, e.g. max_future_skew = \"{}\"",
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
            push(out, format!("iso10816.boundaries.{key}"), "expected a key like group2_rigid or group1_flexible");
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

/// The shared rules and the kind's own (`config::backend`).
fn check_backend(out: &mut Found, b: &super::backend::Backend) {
    out.extend(b.check());
}

fn check_failure_mode(out: &mut Found, p: &str, fm: &FailureMode) {
    if fm.title.trim().is_empty() {
        push(out, format!("{p}.title"), "must not be empty: it becomes the work order's title");
    }
    if !(1..=4).contains(&fm.priority) {
        push(out, format!("{p}.priority"), "expected 1 (critical), 2 (high), 3 (medium) or 4 (low)");
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

fn check_class(out: &mut Found, name: &str, class: &AssetClass) {
    let p = format!("classes.{name}");
    check_id(out, &p, name);
    for (fm_name, fm) in &class.failure_modes {
        check_failure_mode(out, &format!("{p}.failure_modes.{fm_name}"), fm);
    }
    for (ch, spec) in &class.channels {
        if spec.unit.is_empty() {
            push(out, format!("{p}.channels.{ch}.unit"), "must not be empty, e.g. \"mm/s\" or \"degC\"");
        }
    }
    for (d, spec) in &class.derived {
        let dp = format!("{p}.derived.{d}");
        if class.channels.contains_key(d) {
            push(out, dp.clone(), "a derived channel may not share a name with a measured channel");
        }
        if spec.difference.len() != 2 {
            push(out, format!("{dp}.difference"), "expected two channel names: [minuend, subtrahend]");
        }
        for ch in &spec.difference {
            if !class.channels.contains_key(ch) {
                push(out, format!("{dp}.difference"), format!("{ch:?} is not a channel of class {name}"));
            }
        }
    }
    let known: BTreeSet<&str> = class.channels.keys().chain(class.derived.keys()).map(String::as_str).collect();
    check_limits(out, &format!("{p}.limits"), &class.limits, &known, &class.failure_modes, name);
    if let Some(v) = &class.vibration {
        for ch in &v.channels {
            match class.channels.get(ch) {
                None => {
                    push(out, format!("{p}.vibration.channels"), format!("{ch:?} is not a channel of class {name}"))
                }
                Some(s) if s.quantity != Quantity::VibrationVelocity => push(
                    out,
                    format!("{p}.vibration.channels"),
                    format!("{ch:?} must have quantity = \"vibration_velocity\" for the ISO 10816 check"),
                ),
                _ => {}
            }
        }
        if !class.failure_modes.contains_key(&v.failure_mode) {
            push(out, format!("{p}.vibration.failure_mode"), unknown_fm(&v.failure_mode, name, &class.failure_modes));
        }
    }
    if let Some(b) = &class.baseline {
        check_baseline(out, &format!("{p}.baseline"), b, class, name, &known);
    }
    check_usage(out, &p, class, name);
    if let Some(n) = &class.novelty {
        let np = format!("{p}.novelty");
        if !class.channels.contains_key(&n.channel) {
            push(out, format!("{np}.channel"), format!("{:?} is not a measured channel of class {name}", n.channel));
        }
        if !class.failure_modes.contains_key(&n.failure_mode) {
            push(out, format!("{np}.failure_mode"), unknown_fm(&n.failure_mode, name, &class.failure_modes));
        }
        if n.window < 2 {
            push(out, format!("{np}.window"), "expected at least 2 readings, e.g. 200");
        }
        if !(n.range_tolerance.is_finite() && n.range_tolerance >= 0.0) {
            push(out, format!("{np}.range_tolerance"), "expected a share of the range >= 0, e.g. 0.02");
        }
        if n.probation_fraction.is_some_and(|f| !(f > 0.0 && f <= 1.0)) {
            push(out, format!("{np}.probation_fraction"), "expected a share of the rows in (0, 1]");
        }
    }
    if let Some(l) = &class.life {
        let lp = format!("{p}.life");
        for ch in &l.channels {
            if !class.channels.contains_key(ch) {
                push(out, format!("{lp}.channels"), format!("{ch:?} is not a measured channel of class {name}"));
            }
        }
        if !class.failure_modes.contains_key(&l.failure_mode) {
            push(out, format!("{lp}.failure_mode"), unknown_fm(&l.failure_mode, name, &class.failure_modes));
        }
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
            push(out, format!("{lp}.cap"), "expected the longest remaining life worth learning, e.g. \"125h\"");
        }
        if l.horizon >= l.cap {
            push(
                out,
                format!("{lp}.horizon"),
                "must be shorter than cap: the model cannot tell lives longer than cap apart",
            );
        }
    }
    for (i, t) in class.trends.iter().enumerate() {
        let tp = format!("{p}.trends[{i}]");
        if !known.contains(t.channel.as_str()) {
            push(out, format!("{tp}.channel"), format!("{:?} is not a channel of class {name}", t.channel));
        }
        if !t.limit.is_finite() {
            push(out, format!("{tp}.limit"), "set the level at which the failure is due, e.g. the alarm limit");
        }
        if !class.failure_modes.contains_key(&t.failure_mode) {
            push(out, format!("{tp}.failure_mode"), unknown_fm(&t.failure_mode, name, &class.failure_modes));
        }
        if t.every.is_zero() || t.history < t.every * 3 {
            push(out, format!("{tp}.history"), "must hold at least three `every` periods");
        } else if t.min_points as u128 > t.history.as_millis() / t.every.as_millis() {
            push(out, format!("{tp}.min_points"), "is more points than `history` holds at one per `every`");
        }
        if class.trends[..i].iter().any(|o| o.failure_mode == t.failure_mode) {
            push(
                out,
                format!("{tp}.failure_mode"),
                "another trend of this class already predicts it: one trend per failure mode",
            );
        }
        if class.trends[..i].iter().any(|o| o.channel == t.channel && o.feature == t.feature) {
            push(out, format!("{tp}.channel"), "another trend of this class already follows this channel and feature");
        }
        if !(t.min_t.is_finite() && t.min_t > 0.0) {
            push(out, format!("{tp}.min_t"), "must be a positive number of standard errors, e.g. 4.0");
        }
    }
}

fn check_baseline(out: &mut Found, p: &str, b: &Baseline, class: &AssetClass, name: &str, known: &BTreeSet<&str>) {
    for ch in &b.channels {
        if !known.contains(ch.as_str()) {
            push(out, format!("{p}.channels"), format!("{ch:?} is not a channel of class {name}"));
        }
    }
    if b.features.is_empty() {
        push(out, format!("{p}.features"), "name at least one window feature, e.g. [\"mean\", \"std\"]");
    }
    if b.samples < 2 {
        push(out, format!("{p}.samples"), "a baseline needs at least 2 rows to learn from, e.g. 1000");
    }
    if !(b.false_alarm_rate > 0.0 && b.false_alarm_rate < 1.0) {
        push(out, format!("{p}.false_alarm_rate"), "must be in (0, 1), e.g. 0.001");
    }
    if !(b.margin.is_finite() && b.margin > 0.0) {
        push(out, format!("{p}.margin"), "must be a positive number, e.g. 1.5");
    }
    if b.clusters == 0 {
        push(out, format!("{p}.clusters"), "must be at least 1");
    }
    let inputs = if b.channels.is_empty() { class.channels.len() } else { b.channels.len() } * b.features.len();
    if b.model == crate::config::schema::ModelKind::Pca && inputs < 2 {
        push(out, format!("{p}.model"), "PCA needs at least two inputs (channels × features); use model = \"zscore\"");
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
        push(out, format!("{p}.failure_mode"), unknown_fm(&b.failure_mode, name, &class.failure_modes));
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
                format!("{:?} is not a channel of class {class} (known: {})", l.channel, names.join(", ")),
            );
        }
        if !fms.contains_key(&l.failure_mode) {
            push(out, format!("{lp}.failure_mode"), unknown_fm(&l.failure_mode, class, fms));
        }
        let levels = [("warning", l.warning), ("alarm", l.alarm), ("critical", l.critical)];
        if levels.iter().all(|(_, v)| v.is_none()) {
            push(out, lp.clone(), "set at least one of warning, alarm or critical = { set = …, clear = … }");
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
                    format!("must be {side} set ({}) so the alarm can clear (hysteresis)", level.set),
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
                            "is less severe than {prev_name}.set ({prev}); levels must go warning → alarm → critical"
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
    let templates = c.asset_templates.iter().enumerate().map(|(i, a)| (format!("asset_templates[{i}]"), a, true));
    for (p, a, template) in
        c.assets.iter().enumerate().map(|(i, a)| (format!("assets[{i}]"), a, false)).chain(templates)
    {
        if template {
            if !a.id.is_empty() {
                push(out, format!("{p}.id"), "remove it: a template's asset id is the input file's stem");
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

        if a.location.is_empty() {
            push(
                out,
                format!("{p}.location"),
                "expected the location path, e.g. [\"Site A\", \"Building 1\", \"Boiler room\", \"Loop 2\"]",
            );
        }
        if let Some(m) = &a.iso10816 {
            if !(1..=4).contains(&m.group) {
                push(out, format!("{p}.iso10816.group"), "ISO 10816-3 machine group must be 1, 2, 3 or 4");
            }
        }
        let Some(class) = c.classes.get(&a.class) else {
            let names: Vec<&str> = c.classes.keys().map(String::as_str).collect();
            push(
                out,
                format!("{p}.class"),
                format!("unknown class {:?} (known: {}); include its class library", a.class, names.join(", ")),
            );
            continue;
        };
        for (ch, spec) in &a.channels {
            if !class.channels.contains_key(ch) {
                push(out, format!("{p}.channels.{ch}"), format!("{ch:?} is not a channel of class {}", a.class));
            }
            if template && spec.topic.is_some() {
                push(out, format!("{p}.channels.{ch}.topic"), "remove it: templates are for replay files only");
                continue;
            }
            if let Some(t) = &spec.topic {
                if !c.mqtt.subscriptions.iter().any(|s| rumqttc::matches(t, &s.filter)) {
                    push(
                        out,
                        format!("{p}.channels.{ch}.topic"),
                        format!("no mqtt.subscriptions filter covers {t:?}, so it would never be received"),
                    );
                }
                if t.is_empty() || t.contains(['+', '#']) {
                    push(out, format!("{p}.channels.{ch}.topic"), "expected an exact topic without wildcards");
                } else if let Some(other) = topics.insert(t, format!("{p}.channels.{ch}")) {
                    push(out, format!("{p}.channels.{ch}.topic"), format!("topic {t:?} is already used by {other}"));
                }
            }
        }
        let known: BTreeSet<&str> = class.channels.keys().chain(class.derived.keys()).map(String::as_str).collect();
        check_limits(out, &format!("{p}.limits"), &a.limits, &known, &class.failure_modes, &a.class);
        if !(a.usage.run_hours.is_finite() && a.usage.run_hours >= 0.0) {
            push(out, format!("{p}.usage.run_hours"), "expected the machine's hour meter reading, >= 0");
        }
    }
}

/// The usage meter and the preventive tasks of a class.
fn check_usage(out: &mut Found, p: &str, class: &AssetClass, name: &str) {
    if let Some(u) = &class.usage {
        if !class.channels.contains_key(&u.channel) {
            let names: Vec<&str> = class.channels.keys().map(String::as_str).collect();
            push(
                out,
                format!("{p}.usage.channel"),
                format!("{:?} is not a measured channel of class {name} (known: {})", u.channel, names.join(", ")),
            );
        }
        if !u.running_above.is_finite() {
            push(out, format!("{p}.usage.running_above"), "set the reading at which the machine runs, e.g. 2.0 (A)");
        } else if u.stopped_below.is_some_and(|s| !(s.is_finite() && s <= u.running_above)) {
            push(out, format!("{p}.usage.stopped_below"), "expected a number no higher than running_above");
        }
        if u.max_gap.is_zero() {
            push(out, format!("{p}.usage.max_gap"), "must be longer than zero, e.g. \"5m\"");
        }
    }
    for (i, t) in class.preventive.iter().enumerate() {
        let tp = format!("{p}.preventive[{i}]");
        match class.failure_modes.get(&t.failure_mode) {
            None => push(out, format!("{tp}.failure_mode"), unknown_fm(&t.failure_mode, name, &class.failure_modes)),
            Some(fm) if fm.kind != WorkKind::Preventive => push(
                out,
                format!("{tp}.failure_mode"),
                format!("set kind = \"preventive\" in failure mode {:?}", t.failure_mode),
            ),
            _ => {}
        }
        let usage_based = t.every_run_hours.is_some() || t.every_starts.is_some();
        match [t.every_run_hours.is_some(), t.every_starts.is_some(), t.every.is_some()].iter().filter(|x| **x).count()
        {
            1 => {}
            0 => push(out, tp.clone(), "set one interval: every_run_hours, every_starts or every (calendar)"),
            _ => push(out, tp.clone(), "set only one of every_run_hours, every_starts and every: one task per trigger"),
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
                format!("counting run hours or starts needs [classes.{name}.usage] (the channel that shows running)"),
            );
        }
    }
}
