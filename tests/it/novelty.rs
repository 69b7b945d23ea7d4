//! A novelty stream survives a restart through the state database: it goes
//! on judging where it was instead of serving its probation again.

use crate::common::{load_config, temp_dir};
use hums::common::metrics::Metrics;
use hums::pipeline::plant::Plant;
use hums::pipeline::Pipeline;
use std::sync::Arc;

fn config(dir: &std::path::Path) -> hums::config::Config {
    load_config(
        dir,
        r#"
[pipeline]
eval_interval = "1s"
window = "1h"
max_window_samples = 1
min_window_samples = 1
[alarms]
on_delay = "0s"
[classes.metric.channels]
value = { unit = "1", quantity = "other" }
[classes.metric.novelty]
channel = "value"
window = 50
probation = 200
failure_mode = "abnormal_behaviour"
[classes.metric.failure_modes.abnormal_behaviour]
title = "{asset_name}: unusual ({severity})"
cause = "The metric moved unusually."
actions = ["Look at it"]
priority = 3
[[assets]]
id = "m1"
name = "Metric 1"
class = "metric"
location = ["Site"]
"#,
    )
}

/// Feeds one reading a second from `from`, with a jump at `jump`; returns
/// the seconds at which an order was planned.
fn feed(p: &mut Pipeline, slot: usize, from: i64, to: i64, jump: Option<i64>) -> Vec<i64> {
    let mut raised = Vec::new();
    for i in from..to {
        let t = i * 1000;
        let x = if Some(i) == jump { 40.0 } else { 10.0 + ((i * 7919) % 101) as f64 / 101.0 };
        p.push_slot(slot, t, x);
        if !p.tick(t).work_orders.is_empty() {
            raised.push(i);
        }
    }
    raised
}

#[test]
fn a_restarted_novelty_stream_goes_on_without_a_new_probation() {
    let dir = temp_dir("novelty-restart");
    let cfg = config(&dir);
    let plant =
        Arc::new(Plant::new(&cfg, &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap()));
    let slot = plant.slot("m1", "value").unwrap();
    let mut first = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    assert!(feed(&mut first, slot, 0, 300, None).is_empty(), "steady noise raises nothing");

    let store = hums::store::Store::open_dir(&dir.join("state")).unwrap();
    let changed = first.novelty().take_changed(&plant);
    assert_eq!(changed.len(), 1);
    assert!(first.novelty().take_changed(&plant).is_empty(), "nothing new since");
    store.save_novelty(&[("m1", &changed[0].1)]).unwrap();
    drop(store);
    let saved = hums::store::Store::open_dir(&dir.join("state")).unwrap().novelty().unwrap();
    assert_eq!(saved.len(), 1);

    // Restored, the stream sees a jump 10 readings after the restart...
    let mut second = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    assert!(second.novelty().restore(&plant, 0, saved[0].1.clone()));
    assert_eq!(feed(&mut second, slot, 300, 320, Some(310)), vec![310]);
    // ...which a stream starting afresh, still on probation, does not.
    let mut fresh = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    assert!(feed(&mut fresh, slot, 300, 320, Some(310)).is_empty());

    // A stream saved under another window is not taken.
    let mut other_cfg = config(&dir);
    other_cfg.classes.get_mut("metric").unwrap().novelty.as_mut().unwrap().window = 60;
    let other_plant = Arc::new(Plant::new(
        &other_cfg,
        &hums::pipeline::models::files::ModelFiles::load(&other_cfg).unwrap(),
    ));
    let mut third = Pipeline::new(&other_cfg, other_plant.clone(), Arc::new(Metrics::default()), 0);
    assert!(!third.novelty().restore(&other_plant, 0, saved[0].1.clone()));
}
