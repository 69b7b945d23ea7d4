//! Faults found from outside (issue 15): an over-range reading must not hide
//! an over-limit condition, silence must not clear an alarm, and a pending
//! alarm's on-delay goes on across restarts.

use crate::common::{load_config, temp_dir};
use hums::common::metrics::Metrics;
use hums::pipeline::alarms::Transition;
use hums::pipeline::models::files::ModelFiles;
use hums::pipeline::plant::Plant;
use hums::pipeline::Pipeline;
use hums::store::Store;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One temperature channel with an alarm limit of 80 on its mean; 1 s
/// evaluations over 10 s windows, a 3 s on-delay and a 5 s off-delay, and
/// data declared stale only after a minute.
fn config(dir: &std::path::Path) -> hums::config::Config {
    load_config(
        dir,
        r#"
[pipeline]
eval_interval = "1s"
window = "10s"
min_window_samples = 1
stale_after = "1m"
[mqtt]
max_future_skew = "5s"
[alarms]
on_delay = "3s"
off_delay = "5s"
[classes.tank.channels]
temp = { unit = "degC", quantity = "temperature" }
level = { unit = "%", quantity = "other" }
[[classes.tank.limits]]
channel = "temp"
feature = "mean"
direction = "high"
failure_mode = "overheat"
alarm = { set = 80.0, clear = 77.0 }
[classes.tank.failure_modes.overheat]
title = "{asset_name}: overheating"
cause = "Too hot."
actions = ["Cool it"]
priority = 2
[[assets]]
id = "t1"
name = "Tank 1"
class = "tank"
location = ["Site"]
"#,
    )
}

struct Rig {
    plant: Arc<Plant>,
    cfg: hums::config::Config,
    metrics: Arc<Metrics>,
}

impl Rig {
    fn new(what: &str) -> Self {
        let cfg = config(&temp_dir(what));
        let plant = Arc::new(Plant::new(&cfg, &ModelFiles::load(&cfg).unwrap()));
        Self { plant, cfg, metrics: Arc::new(Metrics::default()) }
    }

    fn pipeline(&self, start: i64) -> Pipeline {
        Pipeline::new(&self.cfg, self.plant.clone(), self.metrics.clone(), start)
    }
}

/// Pushes `values` one per 100 ms from `from` ms and ticks each second;
/// returns the transitions seen with their times.
fn run(p: &mut Pipeline, from: i64, values: &[f64]) -> Vec<(i64, Transition)> {
    let mut seen = Vec::new();
    let temp = p.plant().slot("t1", "temp").unwrap();
    for (i, v) in values.iter().enumerate() {
        let t = from + i as i64 * 100;
        p.push_slot(temp, t, *v);
        if t % 1000 == 0 {
            seen.extend(p.tick(t).events.into_iter().map(|e| (t, e.transition)));
        }
    }
    seen
}

fn raised(events: &[(i64, Transition)]) -> Vec<i64> {
    events.iter().filter(|(_, t)| matches!(t, Transition::Raised { .. })).map(|(t, _)| *t).collect()
}

#[test]
fn an_over_range_reading_never_hides_an_over_limit_condition() {
    // (what, the sentinel, one reading in how many is it)
    let cases = [
        ("every other reading 1e308", 1e308, 2),
        ("one 1e308 per second", 1e308, 10),
        ("every other reading -1e308", -1e308, 2),
    ];
    for (what, sentinel, every) in cases {
        let value = |i: usize| if i % every == every - 1 { sentinel } else { 90.0 };
        let rig = Rig::new("faults-range");
        let mut p = rig.pipeline(0);
        let values: Vec<f64> = (0..200).map(value).collect();
        let events = run(&mut p, 0, &values);
        assert!(!raised(&events).is_empty(), "{what}: 90 °C against a limit of 80 raised nothing");
        assert!(
            rig.metrics.readings_out_of_range.load(Ordering::Relaxed) > 0,
            "{what}: not counted"
        );
    }
}

#[test]
fn silence_longer_than_the_off_delay_clears_nothing_and_the_fault_keeps_its_order() {
    let rig = Rig::new("faults-silence");
    let mut p = rig.pipeline(0);
    let first = run(&mut p, 0, &[90.0; 100]);
    assert_eq!(raised(&first).len(), 1, "raised once: {first:?}");
    // 30 s of silence: longer than the off-delay (5 s) and the window (10 s),
    // shorter than stale_after (1 min).
    let mut silent = Vec::new();
    for t in (10_000..40_000).step_by(1000) {
        silent.extend(p.tick(t).events.into_iter().map(|e| (t, e.transition)));
    }
    assert!(silent.is_empty(), "silence changed the alarm: {silent:?}");
    // The data comes back with the fault unchanged: the same episode, no new order.
    let back = run(&mut p, 40_000, &[90.0; 100]);
    assert!(back.is_empty(), "a second episode for the same fault: {back:?}");
    // Readings that show it gone clear it.
    let gone = run(&mut p, 50_000, &[60.0; 300]);
    assert!(gone.iter().any(|(_, t)| matches!(t, Transition::Cleared { .. })), "{gone:?}");
}

#[test]
fn a_restart_with_no_data_does_not_clear_an_active_alarm() {
    let rig = Rig::new("faults-restart-silence");
    let dir = temp_dir("faults-restart-silence-state");
    let store = Store::open_dir(&dir).unwrap();
    let mut first = rig.pipeline(0);
    assert_eq!(raised(&run(&mut first, 0, &[90.0; 100])).len(), 1);
    store.commit(&[], &first.alarm_rows(), None).unwrap();
    drop(first); // kill -9

    let mut second = rig.pipeline(12_000);
    second.restore(store.alarms().unwrap(), &store).unwrap();
    let mut events = Vec::new();
    for t in (12_000..30_000).step_by(1000) {
        events.extend(second.tick(t).events.into_iter().map(|e| (t, e.transition)));
    }
    assert!(events.is_empty(), "the restart cleared the alarm with no data: {events:?}");
    assert_eq!(second.alarm_states().len(), 1);
}

#[test]
fn a_pending_alarm_keeps_its_onset_across_restarts() {
    // 90 °C from t = 0 with a restart every 2 s (a 3 s on-delay): the alarm
    // is raised once the condition has lasted 3 s in all, with its onset.
    let rig = Rig::new("faults-pending");
    let dir = temp_dir("faults-pending-state");
    let store = Store::open_dir(&dir).unwrap();
    let mut all = Vec::new();
    for run_start in (0..12_000).step_by(2000) {
        let mut p = rig.pipeline(run_start);
        p.restore(store.alarms().unwrap(), &store).unwrap();
        all.extend(run(&mut p, run_start, &[90.0; 20]));
        store.commit(&[], &p.alarm_rows(), None).unwrap();
    }
    let first = all.iter().find(|(_, t)| matches!(t, Transition::Raised { .. }));
    assert!(
        matches!(first, Some((at, Transition::Raised { episode: 0, .. })) if *at <= 4000),
        "raised late or with a new onset: {all:?}"
    );
}

#[test]
fn a_silent_channel_keeps_its_alarm_while_the_asset_s_other_channels_report() {
    let rig = Rig::new("faults-partial-silence");
    let (temp, level) =
        (rig.plant.slot("t1", "temp").unwrap(), rig.plant.slot("t1", "level").unwrap());
    let mut p = rig.pipeline(0);
    let mut events = Vec::new();
    // 10 s of 90 °C (raised), then 30 s where only the level reports.
    for i in 0..400 {
        let t = i * 100;
        if t < 10_000 {
            p.push_slot(temp, t, 90.0);
        }
        p.push_slot(level, t, 50.0);
        if t % 1000 == 0 {
            events.extend(p.tick(t).events.into_iter().map(|e| (t, e.transition)));
        }
    }
    assert_eq!(raised(&events).len(), 1, "{events:?}");
    assert!(
        !events.iter().any(|(_, t)| matches!(t, Transition::Cleared { .. })),
        "the temperature's silence cleared its alarm: {events:?}"
    );
}

#[test]
fn a_channel_sending_only_over_range_readings_raises_the_instrument_order() {
    let rig = Rig::new("faults-range-stale");
    let mut p = rig.pipeline(0);
    let events: Vec<_> = (0..900)
        .flat_map(|i| {
            let t = i * 100;
            p.push_slot(p.plant().slot("t1", "temp").unwrap(), t, 1e308);
            p.push_slot(p.plant().slot("t1", "level").unwrap(), t, 50.0);
            if t % 1000 == 0 {
                p.tick(t).events
            } else {
                Vec::new()
            }
        })
        .collect();
    let asset = &rig.plant.assets[0];
    let raised: Vec<&str> = events
        .iter()
        .filter(|e| matches!(e.transition, Transition::Raised { .. }))
        .map(|e| asset.failure_modes[e.failure_mode].id.as_str())
        .collect();
    assert_eq!(raised, ["instrument.stale_data"], "over-range readings are no valid data");
}
