//! Payload decoding: bytes in, values out. Pure functions with golden tests;
//! every failure is a typed error the source counts and skips.

use crate::common::types::Millis;
use crate::config::schema::{PayloadFormat, Quantity, Subscription, TimestampFormat};
use serde_json::Value;

/// Why a payload was skipped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("payload of {len} bytes exceeds the {max}-byte limit")]
    Oversized { len: usize, max: usize },
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("value is not finite (NaN or infinity)")]
    NonFinite,
    #[error("bad timestamp: {0}")]
    BadTimestamp(String),
}

/// One value found in a payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Channel named by the payload (object form); `None` when the topic names it.
    pub channel: Option<String>,
    pub value: f64,
    /// Event time from the payload, if it carried one.
    pub ts: Option<Millis>,
}

/// Decodes a payload as the subscription describes, for channels none of which
/// is a `state`: a boolean makes the payload malformed.
pub fn decode(
    sub: &Subscription,
    payload: &[u8],
    max_bytes: usize,
) -> Result<Vec<Decoded>, DecodeError> {
    decode_with(sub, payload, max_bytes, |_| Some(Quantity::Other))
}

/// Decodes a payload as the subscription describes. `quantity_of(channel)` is
/// the declared quantity of the channel a value is for (`channel`: the one an
/// object payload names, `None` for the topic's), `None` if it is not
/// configured. A JSON boolean reads as 1 or 0 for a `state` channel and for an
/// unconfigured one (which the caller reports as unmapped, as it does numbers);
/// for any other channel it makes the payload malformed.
pub fn decode_with(
    sub: &Subscription,
    payload: &[u8],
    max_bytes: usize,
    quantity_of: impl Fn(Option<&str>) -> Option<Quantity>,
) -> Result<Vec<Decoded>, DecodeError> {
    if payload.len() > max_bytes {
        return Err(DecodeError::Oversized { len: payload.len(), max: max_bytes });
    }
    let text =
        std::str::from_utf8(payload).map_err(|_| DecodeError::Malformed("not UTF-8".into()))?;
    match sub.payload {
        PayloadFormat::Number => {
            let value: f64 = text.trim().parse().map_err(|_| {
                DecodeError::Malformed(format!("expected a number, got {:?}", snippet(text)))
            })?;
            Ok(vec![Decoded { channel: None, value: finite(value)?, ts: None }])
        }
        PayloadFormat::Json => {
            let doc = parse_json(text)?;
            let ts = timestamp(&doc, sub)?;
            let v = doc.pointer(&sub.value_pointer).ok_or_else(|| {
                DecodeError::Malformed(format!("no value at {}", sub.value_pointer))
            })?;
            let what = || format!("the value at {}", sub.value_pointer);
            let value = number(v, || quantity_of(None), what)?.ok_or_else(|| {
                DecodeError::Malformed(format!(
                    "value at {} is not a number: {}",
                    sub.value_pointer,
                    snippet(&v.to_string())
                ))
            })?;
            Ok(vec![Decoded { channel: None, value: finite(value)?, ts }])
        }
        PayloadFormat::Object => {
            let doc = parse_json(text)?;
            let ts = timestamp(&doc, sub)?;
            object_values(&doc, sub, ts, quantity_of)
        }
    }
}

/// The channel values of an object payload, one per numeric member.
fn object_values(
    doc: &Value,
    sub: &Subscription,
    ts: Option<Millis>,
    quantity_of: impl Fn(Option<&str>) -> Option<Quantity>,
) -> Result<Vec<Decoded>, DecodeError> {
    let obj = doc.pointer(&sub.values_pointer).and_then(Value::as_object).ok_or_else(|| {
        DecodeError::Malformed(format!("no JSON object at {:?}", sub.values_pointer))
    })?;
    let ts_key = sub
        .timestamp_pointer
        .as_deref()
        .filter(|p| {
            p.rsplit_once('/').map(|(parent, _)| parent) == Some(sub.values_pointer.as_str())
        })
        .and_then(|p| p.rsplit('/').next());
    let mut out = Vec::with_capacity(obj.len());
    let mut refused = None;
    for (key, v) in obj {
        if Some(key.as_str()) == ts_key {
            continue;
        }
        // Non-numeric members (status strings, nested objects) are not channels;
        // a refused boolean loses only its own member, not its neighbours.
        let what = || format!("member {key:?}");
        match number(v, || quantity_of(Some(key.as_str())), what) {
            Ok(Some(value)) => {
                out.push(Decoded { channel: Some(key.clone()), value: finite(value)?, ts })
            }
            Ok(None) => {}
            Err(e) => refused = refused.or(Some(e)),
        }
    }
    if out.is_empty() {
        return Err(refused.unwrap_or_else(|| {
            DecodeError::Malformed("object holds no numeric channel values".into())
        }));
    }
    Ok(out)
}

/// Checks an event time against the gateway clock.
pub fn check_time(
    ts: Millis,
    now: Millis,
    max_future_ms: Millis,
    max_age_ms: Millis,
) -> Result<Millis, DecodeError> {
    if ts > now.saturating_add(max_future_ms) {
        return Err(DecodeError::BadTimestamp(format!(
            "{} is {} s in the future",
            crate::common::types::to_datetime(ts),
            ts.saturating_sub(now) / 1000
        )));
    }
    if ts < now.saturating_sub(max_age_ms) {
        return Err(DecodeError::BadTimestamp(format!(
            "{} is {} s old",
            crate::common::types::to_datetime(ts),
            now.saturating_sub(ts) / 1000
        )));
    }
    Ok(ts)
}

fn parse_json(text: &str) -> Result<Value, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::Malformed(format!("invalid JSON: {e}")))
}

/// Why a boolean is refused for a channel that is not a `state`.
const BOOLEAN_REFUSED: &str = "a boolean where a number is expected; declare the channel with \
    quantity = \"state\" to accept on/off readings";

/// A JSON value as a number: a boolean reads as 1 or 0 if its channel (of
/// quantity `quantity()`) takes booleans (see [`decode_with`]), and is refused
/// naming `what()` if not. `Ok(None)` for anything else that is not a number.
fn number(
    v: &Value,
    quantity: impl FnOnce() -> Option<Quantity>,
    what: impl FnOnce() -> String,
) -> Result<Option<f64>, DecodeError> {
    match v {
        Value::Number(n) => Ok(n.as_f64()),
        Value::Bool(b) => match quantity() {
            None | Some(Quantity::State) => Ok(Some(f64::from(u8::from(*b)))),
            Some(_) => Err(DecodeError::Malformed(format!("{} is {BOOLEAN_REFUSED}", what()))),
        },
        _ => Ok(None),
    }
}

fn finite(v: f64) -> Result<f64, DecodeError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(DecodeError::NonFinite)
    }
}

fn snippet(s: &str) -> String {
    s.chars().take(40).collect()
}

fn timestamp(doc: &Value, sub: &Subscription) -> Result<Option<Millis>, DecodeError> {
    let Some(pointer) = &sub.timestamp_pointer else {
        return Ok(None);
    };
    let Some(v) = doc.pointer(pointer) else {
        return Err(DecodeError::BadTimestamp(format!("no timestamp at {pointer}")));
    };
    parse_timestamp(v, sub.timestamp_format).map(Some)
}

/// Parses a timestamp written as text (a CSV cell): a number or a date string.
pub fn parse_timestamp_text(s: &str, format: TimestampFormat) -> Result<Millis, DecodeError> {
    let v = match s.trim().parse::<f64>() {
        Ok(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
        Err(_) => Value::String(s.to_string()),
    };
    parse_timestamp(&v, format)
}

/// Parses a JSON timestamp in the given format. `Auto` also reads date-times
/// without an offset (`2024-03-01 12:00:00`) as UTC.
pub fn parse_timestamp(v: &Value, format: TimestampFormat) -> Result<Millis, DecodeError> {
    let bad = || {
        DecodeError::BadTimestamp(format!("cannot read {} as {format:?}", snippet(&v.to_string())))
    };
    // Beyond ±100,000 years is garbage, not a time (and would overflow later arithmetic).
    const LIMIT_MS: f64 = 3.2e18;
    let ms =
        |x: f64| (x.is_finite() && x.abs() < LIMIT_MS).then(|| x.round() as Millis).ok_or_else(bad);
    let from_secs = |s: f64| ms(s * 1000.0);
    match (format, v) {
        (TimestampFormat::Rfc3339, Value::String(s)) => {
            chrono::DateTime::parse_from_rfc3339(s).map(|d| d.timestamp_millis()).map_err(|_| bad())
        }
        (TimestampFormat::Auto, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|d| d.timestamp_millis())
            .or_else(|_| {
                // Without an offset, as history exports often are: read as UTC.
                ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"]
                    .iter()
                    .find_map(|f| chrono::NaiveDateTime::parse_from_str(s.trim(), f).ok())
                    .map(|d| d.and_utc().timestamp_millis())
                    .ok_or(())
            })
            .map_err(|_| bad()),

        (TimestampFormat::Auto, Value::Number(n)) => {
            let x = n.as_f64().ok_or_else(bad)?;
            if x.abs() < 1e11 {
                from_secs(x)
            } else {
                ms(x)
            }
        }
        (TimestampFormat::EpochSeconds, Value::Number(n)) => from_secs(n.as_f64().ok_or_else(bad)?),
        (TimestampFormat::EpochMillis, Value::Number(n)) => ms(n.as_f64().ok_or_else(bad)?),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(payload: PayloadFormat) -> Subscription {
        Subscription { payload, ..Subscription::default() }
    }

    fn with_ts(mut s: Subscription, p: &str) -> Subscription {
        s.timestamp_pointer = Some(p.into());
        s
    }

    const TS: Millis = 1_764_058_500_000; // 2025-11-25T08:15:00Z

    #[test]
    fn golden_bare_number() {
        let s = sub(PayloadFormat::Number);
        assert_eq!(
            decode(&s, b"4.25", 64).unwrap(),
            vec![Decoded { channel: None, value: 4.25, ts: None }]
        );
        assert_eq!(decode(&s, b" -3\n", 64).unwrap()[0].value, -3.0);
        assert_eq!(decode(&s, b"1e3", 64).unwrap()[0].value, 1000.0);
    }

    #[test]
    fn golden_json_pointer_with_timestamp() {
        let s = with_ts(
            Subscription { value_pointer: "/data/v".into(), ..sub(PayloadFormat::Json) },
            "/ts",
        );
        let got = decode(&s, br#"{"ts":"2025-11-25T08:15:00Z","data":{"v":7.5}}"#, 256).unwrap();
        assert_eq!(got, vec![Decoded { channel: None, value: 7.5, ts: Some(TS) }]);
        let epoch_s = decode(&s, br#"{"ts":1764058500,"data":{"v":1}}"#, 256).unwrap();
        assert_eq!(epoch_s[0].ts, Some(TS));
        let epoch_ms = decode(&s, br#"{"ts":1764058500000,"data":{"v":1}}"#, 256).unwrap();
        assert_eq!(epoch_ms[0].ts, Some(TS));
        let no_ts = Subscription { value_pointer: "/value".into(), ..sub(PayloadFormat::Json) };
        assert_eq!(
            decode(&no_ts, br#"{"value":2}"#, 64).unwrap()[0],
            Decoded { channel: None, value: 2.0, ts: None }
        );
    }

    #[test]
    fn golden_object_with_several_channels() {
        let s = with_ts(sub(PayloadFormat::Object), "/ts");
        let got = decode(
            &s,
            br#"{"ts":"2025-11-25T08:15:00Z","supply":6.5,"return":12.0,"state":"run"}"#,
            256,
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Decoded { channel: Some("return".into()), value: 12.0, ts: Some(TS) },
                Decoded { channel: Some("supply".into()), value: 6.5, ts: Some(TS) },
            ]
        );
        let nested = with_ts(
            Subscription { values_pointer: "/values".into(), ..sub(PayloadFormat::Object) },
            "/ts",
        );
        let got = decode(&nested, br#"{"ts":1764058500,"values":{"a":1}}"#, 256).unwrap();
        assert_eq!(got, vec![Decoded { channel: Some("a".into()), value: 1.0, ts: Some(TS) }]);
    }

    #[test]
    fn bad_payloads_are_typed_errors() {
        let num = sub(PayloadFormat::Number);
        assert!(matches!(decode(&num, b"abc", 64), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode(&num, b"", 64), Err(DecodeError::Malformed(_))));
        assert_eq!(decode(&num, b"NaN", 64), Err(DecodeError::NonFinite));
        assert_eq!(decode(&num, b"inf", 64), Err(DecodeError::NonFinite));
        assert_eq!(decode(&num, b"12345", 4), Err(DecodeError::Oversized { len: 5, max: 4 }));
        assert!(matches!(decode(&num, &[0xff, 0xfe], 64), Err(DecodeError::Malformed(_))));
        let json = with_ts(sub(PayloadFormat::Json), "/ts");
        assert!(matches!(decode(&json, b"{\"value\":", 64), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            decode(&json, br#"{"ts":1,"other":1}"#, 64),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode(&json, br#"{"ts":1,"value":"high"}"#, 64),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(decode(&json, br#"{"value":1}"#, 64), Err(DecodeError::BadTimestamp(_))));
        assert!(matches!(
            decode(&json, br#"{"ts":"yesterday","value":1}"#, 64),
            Err(DecodeError::BadTimestamp(_))
        ));
        assert!(matches!(
            decode(&json, br#"{"ts":1,"value":1e999}"#, 64),
            Err(DecodeError::Malformed(_))
        ));
        let obj = sub(PayloadFormat::Object);
        assert!(matches!(decode(&obj, br#"[1,2]"#, 64), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode(&obj, br#"{"state":"run"}"#, 64), Err(DecodeError::Malformed(_))));
    }

    fn state(_: Option<&str>) -> Option<Quantity> {
        Some(Quantity::State)
    }

    /// `running` is a state, `temp` a temperature; nothing else is configured.
    fn plant_channels(channel: Option<&str>) -> Option<Quantity> {
        match channel? {
            "running" => Some(Quantity::State),
            "temp" => Some(Quantity::Temperature),
            _ => None,
        }
    }

    #[test]
    fn booleans_are_refused_for_a_channel_that_is_not_a_state() {
        let json = sub(PayloadFormat::Json);
        let refused = decode(&json, br#"{"value":true}"#, 64).expect_err("a boolean read as 1");
        assert!(matches!(refused, DecodeError::Malformed(_)), "{refused:?}");
        let m = refused.to_string();
        assert!(m.contains("boolean") && m.contains("quantity = \"state\""), "{m}");
        let temperature = |_: Option<&str>| Some(Quantity::Temperature);
        assert!(matches!(
            decode_with(&json, br#"{"value":false}"#, 64, temperature),
            Err(DecodeError::Malformed(_))
        ));
        let obj = sub(PayloadFormat::Object);
        let err = decode_with(&obj, br#"{"temp":false}"#, 64, plant_channels)
            .expect_err("a boolean for the temperature");
        assert!(err.to_string().contains("\"temp\""), "names the member: {err}");
        // A refused boolean loses only its own member.
        let kept = decode_with(&obj, br#"{"running":true,"temp":false}"#, 64, plant_channels);
        assert_eq!(
            kept.unwrap(),
            vec![Decoded { channel: Some("running".into()), value: 1.0, ts: None }]
        );
    }

    #[test]
    fn booleans_read_as_one_and_zero_for_a_state_channel() {
        let json = sub(PayloadFormat::Json);
        assert_eq!(
            decode_with(&json, br#"{"value":true}"#, 64, state).unwrap(),
            vec![Decoded { channel: None, value: 1.0, ts: None }]
        );
        assert_eq!(decode_with(&json, br#"{"value":false}"#, 64, state).unwrap()[0].value, 0.0);
        // Object payloads: each member's own channel decides.
        let obj = sub(PayloadFormat::Object);
        assert_eq!(
            decode_with(&obj, br#"{"running":true,"temp":50}"#, 64, plant_channels).unwrap(),
            vec![
                Decoded { channel: Some("running".into()), value: 1.0, ts: None },
                Decoded { channel: Some("temp".into()), value: 50.0, ts: None },
            ]
        );
        // A member no channel is configured for reads, for the caller to report as unmapped.
        let spare = decode_with(&obj, br#"{"spare":false,"temp":1}"#, 64, plant_channels);
        assert_eq!(spare.unwrap().len(), 2);
    }

    #[test]
    fn timestamps_outside_the_accepted_span_are_refused() {
        assert_eq!(check_time(TS, TS, 1000, 1000), Ok(TS));
        assert!(check_time(TS + 5000, TS, 1000, 1000).is_err());
        assert!(check_time(TS - 5000, TS, 1000, 1000).is_err());
        assert!(check_time(Millis::MIN, TS, 1000, 1000).is_err(), "no overflow on absurd times");
        assert!(check_time(Millis::MAX, TS, 1000, 1000).is_err());
        let s = with_ts(sub(PayloadFormat::Json), "/ts");
        assert!(matches!(
            decode(&s, br#"{"ts":-1e300,"value":1}"#, 64),
            Err(DecodeError::BadTimestamp(_))
        ));
    }
}
