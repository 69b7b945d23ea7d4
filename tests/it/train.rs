//! Learned models end to end: `hums simulate` → `hums train` → a model file
//! that the config accepts only for the features it was trained on; learned
//! baselines that survive a restart through the state database; background
//! fits that give the same model as inline ones.

use crate::common;

use common::{load_config, temp_dir};
use hums::common::metrics::Metrics;
use hums::config::load_files;
use hums::pipeline::detect::baseline::Phase;
use hums::pipeline::plant::Plant;
use hums::pipeline::Pipeline;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

fn hums(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hums")).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_writes_a_model_the_config_accepts_only_for_its_own_features() {
    let dir = temp_dir("train");
    let sim = dir.join("healthy.csv");
    let out = hums(&["simulate", "--hours", "6", "--every", "10", "--out", s(&sim)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model_path = dir.join("models/pump.json");
    let out = hums(&[
        "train",
        "--config",
        "configs/demo.toml",
        "--input",
        s(&sim),
        "--asset-class",
        "pump",
        "--out",
        s(&model_path),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("expected false-alarm rate on the training data"), "{stdout}");

    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    assert_eq!(m["format"], 1);
    assert_eq!(m["params"]["kind"], "pca");
    assert_eq!(m["features"][0], "vib_de.mean");
    assert_eq!(m["scaler"]["mean"].as_array().unwrap().len(), 6);
    // Three pumps × (6 h at 10 s, one vector per 10 s evaluation, less the first).
    let rows = m["training"]["rows"].as_u64().unwrap();
    assert!((3 * 2100..=3 * 2160).contains(&rows), "{rows}");
    assert!(m["training"]["false_alarm_rate"].as_f64().unwrap() <= 0.002);
    assert!(m["limit"].as_f64().unwrap() > m["center"].as_f64().unwrap());
    assert_eq!(m["config_hash"].as_str().unwrap().len(), 24);

    // A class that computes other features refuses the model, naming the key and the fix.
    let cfg = dir.join("site.toml");
    let classes = std::fs::canonicalize("configs/classes/pump.toml").unwrap();
    std::fs::write(
        &cfg,
        format!(
            r#"include = [{classes:?}]
[classes.pump.baseline]
channels = ["vib_de", "flow"]
model = "pca"
model_file = "models/pump.json"

failure_mode = "abnormal_behaviour"
[[assets]]
id = "p1"
name = "Pump 1"
class = "pump"
location = ["Site"]
"#
        ),
    )
    .unwrap();
    let out = hums(&["check-config", s(&cfg)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "EX_CONFIG: {err}");
    assert!(
        err.contains("classes.pump.baseline.model_file")
            && err.contains("retrain it with hums train"),
        "{err}"
    );
    // The same model with the features it was trained on is accepted
    // (path relative to the config file).
    let all = r#"channels = ["vib_de", "vib_nde", "bearing_temp", "motor_current", "flow",
        "discharge_pressure"]"#;
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap().replace(r#"channels = ["vib_de", "flow"]"#, all),
    )
    .unwrap();
    let out = hums(&["check-config", s(&cfg)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let loaded = load_files(&[cfg]).unwrap();
    let plant =
        Plant::new(&loaded, &hums::pipeline::models::files::ModelFiles::load(&loaded).unwrap());
    assert!(
        plant.assets[0].baseline.as_ref().unwrap().model.is_some(),
        "the shipped model is used"
    );
}

/// A pump config whose assets learn their own PCA normal from 200 rows.
fn learning_config(dir: &Path) -> hums::config::Config {
    let classes = std::fs::canonicalize("configs/classes/pump.toml").unwrap();
    load_config(
        dir,
        &format!(
            r#"include = [{classes:?}]
[pipeline]
eval_interval = "10s"
window = "1m"
[classes.pump.baseline]
channels = ["motor_current", "flow"]
model = "pca"
samples = 200
failure_mode = "abnormal_behaviour"
[[assets]]
id = "p1"
name = "Pump 1"
class = "pump"
location = ["Site"]
"#
        ),
    )
}

/// Feeds `rows` rows at 5 s (current follows flow) and ticks every 10 s.
fn feed(p: &mut Pipeline, from: i64, rows: i64) -> Vec<f64> {
    let plant = Arc::new(p.plant().clone());
    let (cur, flow) =
        (plant.slot("p1", "motor_current").unwrap(), plant.slot("p1", "flow").unwrap());
    let mut scores = Vec::new();
    for i in from..from + rows {
        let t = i * 5_000;
        let load = ((i % 97) as f64) / 97.0;
        p.push_slot(flow, t, 80.0 + 60.0 * load + ((i * 31) % 7) as f64 * 0.1);
        p.push_slot(cur, t, 28.0 + 14.0 * load + ((i * 17) % 5) as f64 * 0.05);
        if i % 2 == 1 {
            scores.push(p.tick(t).scores[0]);
        }
    }
    scores
}

#[test]
fn a_learned_baseline_is_saved_and_a_restart_does_not_relearn() {
    let dir = temp_dir("baseline-restart");
    let cfg = learning_config(&dir);
    let plant =
        Arc::new(Plant::new(&cfg, &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap()));
    let mut first = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    feed(&mut first, 0, 150);
    assert!(
        matches!(first.baseline_phase(0), Phase::Learning { samples: 150, of: 200 }),
        "{:?}",
        first.baseline_phase(0)
    );
    assert_eq!(first.learning(), [("p1".to_string(), 150, 200)], "the status reports it learning");

    feed(&mut first, 150, 100);
    assert!(
        matches!(first.baseline_phase(0), Phase::Fitted { .. }),
        "{:?}",
        first.baseline_phase(0)
    );
    let fitted = first.baseline().take_fitted();
    assert_eq!(fitted.len(), 1);
    assert!(first.baseline().take_fitted().is_empty(), "handed out once");

    let store = hums::store::Store::open_dir(&dir.join("state")).unwrap();
    store.save_baseline("p1", &fitted[0].1, 1).unwrap();
    drop(store);
    let store = hums::store::Store::open_dir(&dir.join("state")).unwrap();
    let saved = store.baselines().unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(&saved[0].1, fitted[0].1.as_ref(), "the model survives the database exactly");

    // After a restart the asset does not learn again: it judges the same way
    // once its windows are full and the stream's rate is known.
    let mut second = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    assert!(second.baseline().restore(&plant, 0, saved[0].1.clone()));
    assert!(matches!(second.baseline_phase(0), Phase::Fitted { .. }));
    // Both then see the same gap in the data before judging the same rows.
    feed(&mut second, 249, 1);
    let a = feed(&mut first, 1000, 40);
    let b = feed(&mut second, 1000, 40);
    // A full window, then six evaluations to know the rate.
    assert!(b[..11].iter().all(|&x| x == 0.0), "nothing judged on a partial window: {b:?}");
    assert_eq!(a[11..], b[11..]);
    assert!(b.iter().any(|&x| x > 0.0), "judging, not learning");

    // A model for other features is not taken: the asset learns again.
    let mut other = saved[0].1.clone();
    other.features.reverse();
    let mut third = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    assert!(!third.baseline().restore(&plant, 0, other));
    assert!(matches!(third.baseline_phase(0), Phase::Learning { .. }));
}

#[test]
fn a_background_fit_gives_the_inline_model_without_holding_up_evaluations() {
    let dir = temp_dir("baseline-background");
    let cfg = learning_config(&dir);
    let plant =
        Arc::new(Plant::new(&cfg, &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap()));
    let mut inline = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    let mut live = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    live.baseline().fit_in_background();
    feed(&mut inline, 0, 260);
    feed(&mut live, 0, 260);
    // The background fit lands within a few evaluations.
    let mut from = 260;
    while !matches!(live.baseline_phase(0), Phase::Fitted { .. }) && from < 400 {
        feed(&mut live, from, 2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        from += 2;
    }
    assert!(matches!(live.baseline_phase(0), Phase::Fitted { .. }), "{:?}", live.baseline_phase(0));
    let (a, b) = (inline.baseline().take_fitted(), live.baseline().take_fitted());
    assert_eq!(a[0].1, b[0].1, "same rows, same model");
}

#[test]
fn the_shipped_models_raise_nothing_on_healthy_running_they_never_saw() {
    let dir = temp_dir("shipped-healthy");
    let sim = dir.join("healthy.csv");
    let out = hums(&[
        "simulate",
        "--hours",
        "6",
        "--every",
        "5",
        "--seed",
        "9",
        "--start",
        "2026-03-01T00:00:00Z",
        "--out",
        s(&sim),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed = dir.join("out");
    let out = hums(&[
        "replay",
        "--config",
        "configs/demo.toml",
        "--input",
        s(&sim),
        "--out",
        s(&replayed),
        "--no-report",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(replayed.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["rows"], 4320);
    assert_eq!(summary["work_orders"], 0, "{summary}");
}

#[test]
fn after_a_restart_a_joined_diagnosis_keeps_updating_the_order_it_joined() {
    use hums::common::types::Severity;
    use hums::pipeline::alarms::{AlarmEvent, State, Transition};
    use hums::pipeline::planner::Planner;
    use hums::store::outbox::{NewEntry, Status};
    use hums::store::Store;
    let dir = temp_dir("joined-restart");
    let cfg = hums::demo::config().unwrap();
    let plant =
        Arc::new(Plant::new(&cfg, &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap()));
    let a = plant.asset_index("pump-02").unwrap();
    let fm = |id: &str| plant.assets[a].failure_modes.iter().position(|f| f.id == id).unwrap();
    let (early, wear) = (fm("pump.abnormal_behaviour"), fm("pump.bearing_wear"));
    let ev = |f, transition| AlarmEvent {
        asset: a,
        failure_mode: f,
        transition,
        at: 5_000,
        evidence: Vec::new(),
    };

    // First run: the early warning opens an order, the diagnosis updates it;
    // both are committed with the alarm states, then the early warning clears.
    let mut planner = Planner::default();
    let raise = |episode| Transition::Raised { severity: Severity::Alarm, episode };
    let opened = planner.plan(&plant, &ev(early, raise(1_000))).unwrap();
    let diagnosed = planner.plan(&plant, &ev(wear, raise(2_000))).unwrap();
    let store = Store::open_dir(&dir).unwrap();
    let entry = |order| NewEntry { order, status: Status::Pending, note: None };
    let wear_state = State::Active { severity: Severity::Alarm, episode: 2_000, escalated: false };
    store
        .commit(
            &[entry(opened.clone()), entry(diagnosed)],
            &[("pump-02".into(), "pump.bearing_wear".into(), wear_state)],
            None,
        )
        .unwrap();

    // Restart with only the diagnosis open: its escalation goes to the same order, next revision.
    let mut pipeline = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    pipeline.restore(store.alarms().unwrap(), &store).unwrap();
    // The bearing gets worse (vibration in ISO zone D): the escalation updates the joined order.
    let (de, nde) =
        (plant.slot("pump-02", "vib_de").unwrap(), plant.slot("pump-02", "vib_nde").unwrap());
    for i in 0..12 {
        pipeline.push_slot(de, 10_000 + i * 5_000, 9.5);
        pipeline.push_slot(nde, 10_000 + i * 5_000, 9.0);
    }
    let out = pipeline.tick(70_000);
    let next =
        out.work_orders.iter().find(|w| w.failure_mode == "pump.bearing_wear").expect("an update");
    assert_eq!(next.idempotency_key, opened.idempotency_key, "{:?}", out.work_orders);
    assert_eq!((next.revision, next.severity), (3, Severity::Critical));
    assert_eq!(pipeline.alarm_states().len(), 1, "the diagnosis alarm is back");
}
