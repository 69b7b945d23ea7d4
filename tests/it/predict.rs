//! Failure prediction through replay: a bearing that runs flat and then
//! degrades exponentially gets a predicted-failure order a day or more before
//! its level reaches the limit, and a due date before it as the trend firms
//! up; while the condition it predicts is raised, no prediction is sent.

use crate::common;

use common::{load_config, temp_dir};
use hums::tools::replay;

const CONFIG: &str = r#"
[gateway]
id = "predict-test"
[pipeline]
eval_interval = "10m"
window = "1h"
stale_after = "2h"
[mqtt]
max_future_skew = "1m"
[alarms]
on_delay = "30m"
[replay]
timestamp_column = "time"

[classes.bearing]
channels.vib = { unit = "g", quantity = "other" }

[[classes.bearing.limits]]
channel = "vib"
failure_mode = "bearing_wear"
alarm = { set = LIMIT, clear = LIMIT }

[[classes.bearing.trends]]
channel = "vib"
limit = 1.0
every = "1h"
history = "3d"
lead = "12h"
failure_mode = "bearing_wear"

[classes.bearing.failure_modes.bearing_wear]
title = "{asset_name}: bearing wear"
priority = 2

[[asset_templates]]
class = "bearing"
location = ["Rig"]
channels.vib = { column = "vib" }
"#;

/// Six days at 10-minute rows: flat 0.2 g for three days, then 0.2·e^(t/1.8 d),
/// which reaches 1.0 g about 2.9 days into the rise.
fn history(dir: &std::path::Path) -> (std::path::PathBuf, i64) {
    series(dir, |days| if days < 3.0 { 0.2 } else { 0.2 * ((days - 3.0) / 1.8).exp() })
}

/// 10-minute rows of `level(days)` plus a little noise, for six days, and
/// when they first reach 1.0.
fn series(dir: &std::path::Path, level: impl Fn(f64) -> f64) -> (std::path::PathBuf, i64) {
    let start = 1_700_000_000i64;
    let mut s = String::from("time,vib\n");
    let mut crossing = None;
    for i in 0..(6 * 144) {
        let t = start + i * 600;
        let days = i as f64 / 144.0;
        let noise = ((i * 7919) % 13) as f64 / 13.0 * 0.01;
        let v = level(days) + noise;
        if v >= 1.0 && crossing.is_none() {
            crossing = Some(t);
        }
        s.push_str(&format!("{t},{v}\n"));
    }
    let path = dir.join("bearing.csv");
    std::fs::write(&path, s).unwrap();
    (path, crossing.expect("the series reaches the limit"))
}

fn orders(dir: &std::path::Path, limit: f64) -> (Vec<serde_json::Value>, i64) {
    orders_for(dir, limit, history)
}

fn orders_for(
    dir: &std::path::Path,
    limit: f64,
    data: impl Fn(&std::path::Path) -> (std::path::PathBuf, i64),
) -> (Vec<serde_json::Value>, i64) {
    let cfg = load_config(dir, &CONFIG.replace("LIMIT", &limit.to_string()));
    let (input, crossing) = data(dir);
    replay::run(&cfg, &[input], &dir.join("out"), 1, false).unwrap();
    let text = std::fs::read_to_string(dir.join("out/workorders.jsonl")).unwrap();
    (text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(), crossing)
}

fn time(w: &serde_json::Value, field: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(w[field].as_str().unwrap()).unwrap().timestamp()
}

#[test]
fn a_degrading_bearing_gets_a_predicted_failure_order_due_before_it_fails() {
    let dir = temp_dir("predict");
    // The condition limit sits at the failure level, so only the prediction can warn early.
    let (orders, crossing) = orders(&dir, 1.0);
    let start = 1_700_000_000 + 3 * 86_400;
    assert!(
        orders.iter().all(|w| time(w, "detected_at") > start),
        "nothing while flat: {orders:#?}"
    );
    let predicted = orders.iter().find(|w| w["kind"] == "predicted_failure").expect("a prediction");
    assert_eq!(predicted["event"], "raised");
    assert_eq!(predicted["failure_mode"], "bearing.bearing_wear.predicted");
    assert!(predicted["title"].as_str().unwrap().starts_with("Predicted: "));
    assert!(crossing - time(predicted, "detected_at") >= 86_400, "raised a day or more ahead");
    // Early estimates are uncertain; as the trend firms up, the order's due
    // date moves before the failure, at least 12 hours ahead of it.
    let firm = orders
        .iter()
        .filter(|w| w["idempotency_key"] == predicted["idempotency_key"])
        .find(|w| time(w, "due_by") < crossing)
        .expect("a due date before the failure");
    assert!(crossing - time(firm, "detected_at") >= 12 * 3600, "{firm:#}");
    assert!(time(firm, "due_by") > time(firm, "detected_at"));
    let note = predicted["evidence"][0]["note"].as_str().unwrap();
    assert!(note.contains("trend over") && note.contains("crosses 1"), "{note}");
    // Each revision of the order has its trend chart as a PNG, ready to attach.
    let revisions =
        orders.iter().filter(|w| w["idempotency_key"] == predicted["idempotency_key"]).count();
    for r in 1..=revisions {
        let path = dir.join(format!("out/charts/bearing.bearing.bearing_wear.predicted.r{r}.png"));
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let info = png::Decoder::new(std::io::Cursor::new(png)).read_info().unwrap().info().clone();
        assert_eq!((info.width, info.height), hums::tools::replay::output::CHART_SIZE);
    }
}

#[test]
fn no_prediction_is_raised_while_its_condition_is_already_raised() {
    let dir = temp_dir("predict-suppressed");
    // A low condition limit trips as soon as the rise starts.
    let (orders, _) = orders(&dir, 0.3);
    let condition = orders
        .iter()
        .find(|w| w["failure_mode"] == "bearing.bearing_wear")
        .expect("the condition trips");
    let after = orders.iter().filter(|w| {
        w["kind"] == "predicted_failure" && time(w, "detected_at") >= time(condition, "detected_at")
    });
    assert_eq!(after.count(), 0, "{orders:#?}");
}

#[test]
fn a_prediction_that_becomes_more_urgent_updates_its_order_with_the_new_due_date() {
    let dir = temp_dir("predict-moves");
    // A slow rise that turns fast: the predicted date moves earlier while still days away.
    let (orders, crossing) = orders_for(&dir, 1.0, |d| {
        series(d, |days| match days {
            x if x < 2.0 => 0.2,
            x if x < 3.5 => 0.2 * ((x - 2.0) / 3.0).exp(),
            x => 0.2 * (1.5f64 / 3.0).exp() * ((x - 3.5) / 0.8).exp(),
        })
    });
    let predicted: Vec<&serde_json::Value> =
        orders.iter().filter(|w| w["kind"] == "predicted_failure").collect();
    let first = predicted.first().expect("a prediction");
    let moved = predicted
        .iter()
        .find(|w| w["event"] == "escalated" && w["severity"] == first["severity"])
        .unwrap_or_else(|| panic!("an update at the same severity: {predicted:#?}"));
    assert_eq!(moved["idempotency_key"], first["idempotency_key"], "the same order");
    assert!(time(moved, "due_by") < time(first, "due_by"), "the new date is earlier");
    assert!(time(moved, "detected_at") < crossing);
}

#[test]
fn indicator_histories_survive_a_restart_through_the_state_database() {
    use hums::common::metrics::Metrics;
    use hums::pipeline::Pipeline;
    use std::sync::Arc;
    let dir = temp_dir("predict-restart");
    let text = CONFIG
        .replace("LIMIT", "5.0")
        .replace("[[asset_templates]]", "[[assets]]\nid = \"b1\"\nname = \"Bearing 1\"\n#");
    let cfg = load_config(&dir, &text);
    let plant = Arc::new(hums::pipeline::plant::Plant::new(
        &cfg,
        &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap(),
    ));
    let slot = plant.slot("b1", "vib").unwrap();
    let mut first = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    for i in 0..(2 * 144) {
        let t = i * 600_000;
        first.push_slot(slot, t, 0.2 + i as f64 * 0.001);
        first.tick(t);
    }
    let store = hums::store::Store::open_dir(&dir.join("state")).unwrap();
    let changed = first.trends().take_changed();
    assert_eq!(changed.len(), 1);
    let (a, r, points) = &changed[0];
    assert!(points.len() >= 40, "hourly points over two days: {}", points.len());
    store.save_trend("b1", &plant.assets[*a].trends[*r].name(&plant.assets[*a]), points).unwrap();
    assert!(first.trends().take_changed().is_empty(), "handed out once");

    let saved = store.trends().unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].1, "vib.mean");
    let mut second = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    second.trends().restore(&plant, 0, 0, saved[0].2.clone());
    let restored: Vec<_> = second.trends().history(0, 0).copied().collect();
    assert_eq!(&restored, points);
}

#[test]
fn after_a_restart_a_raised_prediction_still_updates_its_order_when_the_date_moves() {
    use hums::common::metrics::Metrics;
    use hums::pipeline::Pipeline;
    use hums::store::outbox::{NewEntry, Status};
    use hums::store::Store;
    use hums::workorders::WorkEvent;
    use std::sync::Arc;
    let dir = temp_dir("predict-restart-moves");
    let text = CONFIG
        .replace("LIMIT", "1.0")
        .replace("[[asset_templates]]", "[[assets]]\nid = \"b1\"\nname = \"Bearing 1\"\n#");
    let cfg = load_config(&dir, &text);
    let plant = Arc::new(hums::pipeline::plant::Plant::new(
        &cfg,
        &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap(),
    ));
    let slot = plant.slot("b1", "vib").unwrap();
    // The slow rise that turns fast, every 10 minutes.
    let level = |i: i64| {
        let days = i as f64 / 144.0;
        let v = match days {
            x if x < 2.0 => 0.2,
            x if x < 3.5 => 0.2 * ((x - 2.0) / 3.0).exp(),
            x => 0.2 * (1.5f64 / 3.0).exp() * ((x - 3.5) / 0.8).exp(),
        };
        v + ((i * 7919) % 13) as f64 / 13.0 * 0.01
    };
    let step = |p: &mut Pipeline, i: i64| {
        let t = i * 600_000;
        p.push_slot(slot, t, level(i));
        p.tick(t).work_orders
    };
    let store = Store::open_dir(&dir.join("state")).unwrap();
    let mut first = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    let mut i = 0;
    let raised = loop {
        let orders = step(&mut first, i);
        i += 1;
        if let Some(o) =
            orders.into_iter().find(|o| o.kind == hums::common::types::WorkKind::PredictedFailure)
        {
            break o;
        }
        assert!(i < 6 * 144, "no prediction raised");
    };
    assert_eq!(raised.event, WorkEvent::Raised);
    // What a stop would leave behind: the order in the outbox, the alarm states and the history.
    store
        .commit(
            &[NewEntry { order: raised.clone(), status: Status::Pending, note: None }],
            &first.alarm_rows(),
            None,
        )
        .unwrap();
    for (a, r, points) in first.trends().take_changed() {
        store.save_trend("b1", &plant.assets[a].trends[r].name(&plant.assets[a]), &points).unwrap();
    }

    let mut second = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), i * 600_000);
    second.restore(store.alarms().unwrap(), &store).unwrap();
    for (_, indicator, points) in store.trends().unwrap() {
        assert_eq!(indicator, "vib.mean");
        second.trends().restore(&plant, 0, 0, points);
    }
    let mut after = Vec::new();
    while i < 6 * 144 {
        after.extend(
            step(&mut second, i).into_iter().filter(|o| o.failure_mode == raised.failure_mode),
        );
        i += 1;
    }
    assert!(
        after.iter().all(|o| o.event == WorkEvent::Escalated),
        "the episode goes on, not raised again: {after:#?}"
    );
    let moved = after
        .iter()
        .find(|o| o.severity == raised.severity)
        .unwrap_or_else(|| panic!("an update at the same severity after the restart: {after:#?}"));
    assert_eq!(
        (moved.idempotency_key.as_str(), moved.revision),
        (raised.idempotency_key.as_str(), 2)
    );
    assert!(
        moved.due_by < raised.due_by,
        "the new date is earlier: {:?} then {:?}",
        raised.due_by,
        moved.due_by
    );
}
