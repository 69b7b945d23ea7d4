//! Remaining-life prediction end to end: synthetic turbofan engines in the
//! C-MAPSS file format go through `hums eval cmapss` (training per fold with
//! the `hums train --life` code, replaying held-out engines), and an
//! engine's own baseline and age survive a restart through the state store.

use crate::common;

use hums::common::metrics::Metrics;
use hums::pipeline::Pipeline;
use hums::tools::eval::cmapss;
use std::sync::Arc;

/// Informative sensors: (column index among s1..s21, level, noise σ, direction of wear).
const SENSORS: [(usize, f64, f64, f64); 14] = [
    (2, 642.5, 0.5, 1.0),
    (3, 1590.0, 6.0, 1.0),
    (4, 1409.0, 9.0, 1.0),
    (7, 553.4, 0.9, -1.0),
    (8, 2388.1, 0.07, 1.0),
    (9, 9065.0, 22.0, 1.0),
    (11, 47.5, 0.27, 1.0),
    (12, 521.4, 0.74, -1.0),
    (13, 2388.1, 0.07, 1.0),
    (14, 8143.0, 19.0, 1.0),
    (15, 8.44, 0.04, 1.0),
    (17, 393.0, 1.5, 1.0),
    (20, 38.8, 0.18, -1.0),
    (21, 23.3, 0.11, -1.0),
];

/// Deterministic noise in [-1, 1].
fn noise(a: u64, b: u64, c: u64) -> f64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ c.wrapping_mul(0x1656_67B1_9E37_79F9);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x % 2_000_001) as f64 / 1_000_000.0 - 1.0
}

/// One synthetic engine's 21 sensor values at a cycle: an engine-specific
/// level, noise, and wear that grows exponentially towards the failure.
fn sensors(unit: u32, cycle: u32, life: u32) -> [f64; 21] {
    let mut s = [1.0; 21];
    let x = f64::from(cycle) / f64::from(life);
    let wear = ((4.0 * x).exp() - 1.0) / (4.0f64.exp() - 1.0);
    for &(i, level, sigma, dir) in &SENSORS {
        let offset = noise(u64::from(unit), i as u64, 7) * sigma;
        let n = noise(u64::from(unit), u64::from(cycle), i as u64) * sigma * 1.7;
        s[i - 1] = level + offset + dir * 6.0 * sigma * wear + n;
    }
    s
}

/// A C-MAPSS-format file of `lives.len()` engines.
fn write_fd001(path: &std::path::Path, lives: &[u32]) {
    let mut text = String::new();
    for (u, &life) in lives.iter().enumerate() {
        let unit = u as u32 + 1;
        for c in 1..=life {
            let s: Vec<String> = sensors(unit, c, life).iter().map(|v| format!("{v:.4}")).collect();
            text.push_str(&format!("{unit} {c} 0.0001 -0.0002 100.0 {}\n", s.join(" ")));
        }
    }
    std::fs::write(path, text).unwrap();
}

fn cmapss_config() -> hums::config::Config {
    hums::config::load_files(&["configs/benchmarks/cmapss.toml".into()])
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn held_out_engines_get_their_life_predicted_and_an_order_before_they_fail() {
    let dir = common::temp_dir("cmapss");
    let data = dir.join("train_FD001.txt");
    let lives: Vec<u32> = (0..15).map(|i| 130 + (i * 37) % 150).collect();
    write_fd001(&data, &lives);
    let r = cmapss::evaluate(&cmapss_config(), &data, &dir.join("work"), 3, 1, &|_| {}).unwrap();

    assert_eq!((r.engines, r.folds, r.per_fold.len()), (15, 3, 3));
    assert_eq!(
        r.predictions,
        15 * cmapss::CUTOFFS,
        "every engine ran long enough for all its cut-offs"
    );
    let held: usize = r.per_fold.iter().map(|f| f.held_out.len()).sum();
    assert_eq!(held, 15, "each engine is held out exactly once");
    // Guessing one life left for every cut-off (drawn from 5 to 150 cycles) is off by about 40.
    assert!(r.rmse < 20.0, "RMSE {:.1} at the cut-offs", r.rmse);
    assert!(r.rmse_all_cycles < r.rmse + 5.0 && r.rmse_all_cycles < 20.0, "{r:?}");
    assert!(r.phm08_mean.is_finite() && r.phm08_mean > 0.0);
    // Every held-out engine gets its predicted-failure order before it fails, within about the
    // 40-cycle horizon.
    for e in &r.per_engine {
        let lead =
            e.first_order_lead.unwrap_or_else(|| panic!("no order for engine {}: {e:?}", e.unit));
        assert!(lead > 0.0 && lead <= 60.0, "{e:?}");
    }
    assert!(r.due_before_failure >= 10, "{} of 15 due before the failure", r.due_before_failure);
    // The engine files are there for `hums replay` and `hums train --life`.
    assert!(dir.join("work/engines/engine_015.csv").exists());

    // A malformed line is named, not skipped.
    std::fs::write(&data, "1 1 0.0 0.0 100.0 1 2 3\n").unwrap();
    let e = cmapss::evaluate(&cmapss_config(), &data, &dir.join("work2"), 3, 1, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1: expected 26 fields"), "{e}");
}

#[test]
fn a_restart_keeps_each_engines_own_baseline_and_age() {
    let dir = common::temp_dir("life-restart");
    let cmapss = std::fs::canonicalize("configs/benchmarks/cmapss.toml").unwrap();
    let cfg = common::load_config(
        &dir,
        &format!(
            r#"include = ["{}"]
[[assets]]
id = "e1"
name = "Engine 1"
class = "turbofan"
location = ["Test cell"]
"#,
            cmapss.display()
        ),
    );
    let plant = Arc::new(hums::pipeline::plant::Plant::new(
        &cfg,
        &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap(),
    ));
    assert!(
        plant.assets[0].life.as_ref().is_some_and(|l| l.model.is_some()),
        "the shipped model is loaded"
    );
    let slots: Vec<(usize, usize)> =
        SENSORS.iter().map(|&(i, ..)| (i, plant.slot("e1", &format!("s{i}")).unwrap())).collect();
    let hour = 3_600_000;
    let feed = |p: &mut Pipeline, cycles: std::ops::RangeInclusive<u32>| {
        for c in cycles {
            let values = sensors(1, c, 200);
            for &(i, slot) in &slots {
                p.push_slot(slot, i64::from(c) * hour, values[i - 1]);
            }
            p.tick(i64::from(c) * hour);
        }
    };
    let new = || {
        let mut p = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), hour);
        p.life().keep_log();
        p
    };
    let left = |p: &mut Pipeline| p.life().log(0).last().and_then(|r| r.hours_left).unwrap();

    // One run through 170 cycles of a 200-cycle engine...
    let mut whole = new();
    feed(&mut whole, 1..=170);
    let expected = left(&mut whole);

    // ...and one stopped at cycle 90 and restarted from the state store.
    let mut first = new();
    feed(&mut first, 1..=90);
    let store = hums::store::Store::open_dir(&dir.join("state")).unwrap();
    for (a, state) in first.life().take_changed() {
        store.save_life(&plant.assets[a].id, &state).unwrap();
    }
    drop(store);
    let store = hums::store::Store::open_dir(&dir.join("state")).unwrap();
    let saved = store.life().unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!((saved[0].1.count, saved[0].1.first), (20, Some(hour)), "{saved:?}");
    let mut second = new();
    assert!(second.life().restore(&plant, 0, saved[0].1.clone()));
    feed(&mut second, 91..=170);
    // Its windows refill within 10 cycles: from then on it judges as if never stopped.
    assert_eq!(left(&mut second), expected);

    // Without the saved state it would take cycle 91 as a new engine's first.
    let mut forgot = new();
    feed(&mut forgot, 91..=170);
    let by_time = |p: &mut Pipeline| -> std::collections::BTreeMap<i64, f64> {
        p.life().log(0).iter().filter_map(|r| Some((r.at, r.hours_left?))).collect()
    };
    let (truth, guess) = (by_time(&mut whole), by_time(&mut forgot));
    let worst = guess.iter().map(|(t, g)| (g - truth[t]).abs()).fold(0.0, f64::max);
    assert!(worst > 10.0, "predictions differ by at most {worst:.1} h");
    let age = forgot.life().log(0).last().unwrap().inputs.last().copied().unwrap();
    assert_eq!(age, 79.0, "age counted from the restart");
}
