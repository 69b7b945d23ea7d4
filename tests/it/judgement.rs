//! Judgement that holds on machines hums was not tuned on: only departures
//! the physics calls faults raise orders, a window still refilling after a
//! gap is not judged, and a model trained at another sample rate is refused
//! and the asset learns its own normal instead.
use crate::common::{load_config, temp_dir};
use hums::common::metrics::Metrics;
use hums::pipeline::detect::baseline::Phase;
use hums::pipeline::plant::Plant;
use hums::pipeline::Pipeline;
use hums::workorders::{WorkEvent, WorkOrder};
use std::sync::Arc;

/// One bearing whose vibration learns its own normal from its first 60 readings.
fn config(extra: &str) -> hums::config::Config {
    let dir = temp_dir("judgement");
    load_config(
        &dir,
        &format!(
            r#"
[pipeline]
eval_interval = "10s"
window = "1m"
stale_after = "1h"

[alarms]
on_delay = "30s"
off_delay = "2m"

[classes.rig.channels.vib]
unit = "mm/s"
quantity = "vibration_velocity"

[classes.rig.baseline]
samples = 60
min_change = 0.05
failure_mode = "wear"
{extra}

[classes.rig.failure_modes.wear]
title = "{{asset_name}}: vibration rising above its normal ({{severity}})"
priority = 2

[classes.rig.failure_modes.sensor_check]
title = "{{asset_name}}: vibration fell below its normal: check the sensor mount"
kind = "instrument"
priority = 4

[[assets]]
id = "b1"
name = "Bearing 1"
class = "rig"
location = ["Lab"]
"#
        ),
    )
}

fn pipeline(cfg: &hums::config::Config) -> Pipeline {
    let models = hums::pipeline::models::files::ModelFiles::load(cfg).unwrap();
    let plant = Arc::new(Plant::new(cfg, &models));
    Pipeline::new(cfg, plant, Arc::new(Metrics::default()), 0)
}

/// Feeds one reading per `every` seconds from `from` (inclusive) to `to`
/// (exclusive) at `level` with a little deterministic noise, ticking every
/// 10 s; returns the work orders planned.
fn feed(p: &mut Pipeline, (from, to, every): (i64, i64, i64), level: f64) -> Vec<WorkOrder> {
    let slot = p.plant().slot("b1", "vib").unwrap();
    let mut orders = Vec::new();
    let mut t = from;
    while t < to {
        let noise = ((t * 7919) % 101) as f64 / 101.0 - 0.5;
        p.push_slot(slot, t * 1000, level + 0.02 * noise);
        if t % 10 == 0 {
            orders.extend(p.tick(t * 1000).work_orders);
        }
        t += every;
    }
    orders
}

fn learned(p: &mut Pipeline) {
    assert!(feed(p, (0, 600, 5), 2.0).is_empty(), "nothing while learning");
    assert!(matches!(p.baseline_phase(0), Phase::Fitted { .. }), "{:?}", p.baseline_phase(0));
}

#[test]
fn vibration_falling_below_its_normal_is_no_wear_and_rising_is() {
    let mut p = pipeline(&config(""));
    learned(&mut p);
    let fell = feed(&mut p, (600, 1200, 5), 1.4);
    assert!(fell.is_empty(), "a fall of 30 % is no wear: {fell:?}");
    assert!(feed(&mut p, (1200, 1500, 5), 2.0).is_empty(), "back to normal");
    // A rise of 3 % is within min_change, however tight the learned spread.
    assert!(feed(&mut p, (1500, 2100, 5), 2.06).is_empty(), "repeatability is no wear");
    let rose = feed(&mut p, (2100, 2700, 5), 2.6);
    assert_eq!(rose.len(), 1, "{rose:?}");
    let wo = &rose[0];
    assert_eq!(wo.event, WorkEvent::Raised);
    assert_eq!(wo.failure_mode, "rig.wear");
    assert!(wo.title.contains("rising above"), "{}", wo.title);
    // The words agree with the priority; the text says what tripped, by how much, for how long.
    assert!(wo.title.ends_with(&format!("({})", wo.priority_label)), "{}", wo.title);
    assert!(wo.description.contains("against its learned normal 1.99"), "{}", wo.description);
    assert!(wo.description.contains("σ, +"), "the rise in per cent: {}", wo.description);
    assert!(wo.description.contains("for 30 s"), "{}", wo.description);
    let due = wo.due_by.unwrap() - wo.detected_at;
    let hours = if wo.priority == 1 { 1 } else { 24 };
    assert_eq!(due, chrono::TimeDelta::hours(hours), "due by the priority's response time");
}

#[test]
fn a_fall_raises_the_instrument_check_when_the_class_names_one() {
    let mut p = pipeline(&config(r#"opposite_failure_mode = "sensor_check""#));
    learned(&mut p);
    let fell = feed(&mut p, (600, 1200, 5), 1.4);
    assert_eq!(fell.len(), 1, "{fell:?}");
    assert_eq!(fell[0].failure_mode, "rig.sensor_check");
    assert_eq!(fell[0].priority, 4, "{:?}", fell[0]);
}

#[test]
fn a_window_refilling_after_a_gap_is_not_judged_until_full() {
    let mut p = pipeline(&config(""));
    learned(&mut p);
    // The data stops for ten minutes and resumes 30 % higher, and stays there.
    let orders = feed(&mut p, (1200, 1800, 5), 2.6);
    assert_eq!(orders.len(), 1, "{orders:?}");
    let raised = orders[0].detected_at.timestamp();
    // A full window (60 s) of the new running, then the on-delay (30 s).
    assert!(raised >= 1200 + 60 + 30, "raised at {raised}");
    assert!(raised <= 1200 + 60 + 30 + 10, "raised at {raised}");
}

#[test]
fn a_model_trained_at_another_rate_is_refused_and_the_asset_learns_its_own() {
    // Learned at one reading per 5 s (12 per window)...
    let mut same = pipeline(&config(""));
    learned(&mut same);
    let mut slower = pipeline(&config(""));
    learned(&mut slower);
    let fitted = slower.baseline().take_fitted();
    let trained = fitted[0].1.training.samples_per_window.unwrap();
    assert!((11.0..=13.0).contains(&trained), "{trained}");
    // ...the same rate goes on being judged...
    assert!(feed(&mut same, (600, 1800, 5), 2.0).is_empty());
    assert!(matches!(same.baseline_phase(0), Phase::Fitted { .. }));
    // ...and so does a denser one, whose window means only get steadier...
    let mut denser = pipeline(&config(""));
    learned(&mut denser);
    assert!(feed(&mut denser, (600, 1800, 1), 2.0).is_empty());
    assert!(matches!(denser.baseline_phase(0), Phase::Fitted { .. }));
    // ...while one reading per 20 s (3 per window) is refused, raising no
    // order, and the asset learns its own normal at that rate.
    let orders = feed(&mut slower, (600, 1800, 20), 2.0);
    assert!(orders.is_empty(), "{orders:?}");
    assert!(matches!(slower.baseline_phase(0), Phase::Learning { .. }));
    feed(&mut slower, (1800, 4000, 20), 2.0);
    assert!(matches!(slower.baseline_phase(0), Phase::Fitted { .. }));
    let relearned = slower.baseline().take_fitted();
    let rate = relearned[0].1.training.samples_per_window.unwrap();
    assert!((2.5..=4.5).contains(&rate), "{rate}");
}

/// Judging on arrival only raises: a reading past the limit raises between
/// evaluations, readings back to normal clear nothing until the evaluation,
/// which judges the whole window and every detector.
#[test]
fn judging_on_arrival_raises_between_evaluations_and_leaves_clearing_to_them() {
    let dir = temp_dir("arrival");
    let cfg = load_config(
        &dir,
        r#"
[pipeline]
eval_interval = "10s"
window = "1m"
stale_after = "1h"

[alarms]
on_delay = "0s"
off_delay = "0s"

[classes.tank.channels.level]
unit = "m"

[[classes.tank.limits]]
channel = "level"
feature = "max"
failure_mode = "overfill"
alarm = { set = 9.0, clear = 8.5 }

[classes.tank.failure_modes.overfill]
title = "{asset_name}: overfill"
priority = 1

[[assets]]
id = "t1"
name = "Tank 1"
class = "tank"
location = ["Yard"]
"#,
    );
    let mut p = pipeline(&cfg);
    p.judge_on_arrival();
    let slot = p.plant().slot("t1", "level").unwrap();
    for i in 0..4 {
        p.push_slot(slot, i * 1_000, 5.0 + i as f64 * 0.1);
    }
    assert!(p.judge_arrivals(3_500).is_none(), "nothing near the limit: nothing to judge");
    assert!(p.tick(4_000).events.is_empty());

    p.push_slot(slot, 5_000, 9.5);
    let out = p.judge_arrivals(5_100).expect("a reading past the limit is judged on arrival");
    assert_eq!(out.events.len(), 1, "{:?}", out.events);
    assert_eq!(out.work_orders.len(), 1);
    assert_eq!(out.work_orders[0].event, WorkEvent::Raised);
    p.push_slot(slot, 6_000, 9.8);
    assert!(p.judge_arrivals(6_100).is_none(), "already raised at that level: nothing new");

    // Back to normal: the maximum of the window stays past the limit until
    // the high readings leave it, and only an evaluation clears.
    p.push_slot(slot, 7_000, 5.0);
    assert!(p.judge_arrivals(7_100).is_none());
    assert!(p.tick(14_000).events.is_empty(), "the window still holds 9.8");
    for t in 8..=70 {
        p.push_slot(slot, t * 1_000, 5.0);
    }
    assert!(p.judge_arrivals(70_000).is_none());
    let cleared = p.tick(70_000);
    assert_eq!(cleared.events.len(), 1, "{:?}", cleared.events);
    assert!(cleared.work_orders.iter().all(|o| o.event != WorkEvent::Raised));
}
