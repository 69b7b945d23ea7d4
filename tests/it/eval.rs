//! `hums eval` on small corpora laid out like SKAB and NAB: file discovery,
//! alignment with the replay outputs, and figures checked against hand counts.

use crate::common;

use common::temp_dir;
use hums::tools::eval::{nab, skab};
use std::path::Path;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const STD_FN: f64 = -1.0;
const STD_FP: f64 = -0.11;

fn stamp(i: i64) -> String {
    chrono::DateTime::from_timestamp(1_600_000_000 + i * 60, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Score file rows as `hums replay` writes them.
fn scores(n: i64, score: impl Fn(i64) -> f64) -> String {
    let mut s = String::from("timestamp,score,anomaly\n");
    for i in 0..n {
        let t = chrono::DateTime::from_timestamp(1_600_000_000 + i * 60, 0).unwrap();
        let x = score(i);
        s.push_str(&format!(
            "{},{x},{}\n",
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            u8::from(x >= 0.5)
        ));
    }
    s
}

#[test]
fn skab_counts_only_test_parts_and_pools_files() {
    let dir = temp_dir("eval-skab");
    let (data, out) = (dir.join("data"), dir.join("scores"));
    // 500 rows (1 per minute), anomaly labelled on rows 450..480, changepoint at 450.
    let mut csv = String::from("datetime;Current;anomaly;changepoint\n");
    for i in 0..500 {
        let a = u8::from((450..480).contains(&i));
        csv.push_str(&format!("{};1.0;{a};{}\n", stamp(i), u8::from(i == 450)));
    }
    write(&data.join("valve1/0.csv"), &csv);
    write(&data.join("valve2/0.csv"), &csv);
    write(&data.join("anomaly-free/anomaly-free.csv"), "datetime;Current\n2020-01-01 00:00:00;1\n");
    // File 1 flags rows 455..490 (25 TP, 10 FP, 5 FN); file 2 flags a training
    // row only, which does not count.
    write(
        &out.join("valve1/0.csv"),
        &scores(500, |i| if (455..490).contains(&i) { 0.9 } else { 0.1 }),
    );
    write(&out.join("valve2/0.csv"), &scores(500, |i| if i == 10 { 0.9 } else { 0.1 }));

    let r = skab::evaluate(&data, &out).unwrap();
    assert_eq!(r.files, 2);
    assert_eq!(r.skipped_unlabelled.len(), 1);
    assert_eq!((r.tp, r.fp, r.fn_), (25, 10, 5 + 30));
    assert_eq!(r.tn, 2 * 100 - 25 - 10 - 35, "two test parts of 100 rows");
    let f1 = 25.0 / (25.0 + (10.0 + 35.0) / 2.0);
    assert!((r.f1 - f1).abs() < 1e-12);
    assert!((r.far - 100.0 * 10.0 / (10.0 + r.tn as f64)).abs() < 1e-12);
    assert_eq!(r.windows, 2);
    // File 1: a detection 5 minutes after its changepoint is past the 60 s
    // window (an FP), and so is the falling edge; file 2 misses its window.
    let std = &r.nab[0];
    let raw = 2.0 * STD_FN + 2.0 * STD_FP;
    assert!((std.score - 100.0 * (raw + 2.0) / 4.0).abs() < 1e-9, "{}", std.score);
}

#[test]
fn nab_sweeps_one_threshold_over_the_corpus() {
    let dir = temp_dir("eval-nab");
    let (root, out) = (dir.join("NAB"), dir.join("scores"));
    let mut labels = serde_json::Map::new();
    for (name, window) in
        [("cat/a.csv", Some((600, 649))), ("cat/b.csv", None), ("other/c.csv", Some((300, 399)))]
    {
        let mut csv = String::from("timestamp,value\n");
        for i in 0..1000 {
            csv.push_str(&format!("{},{}\n", stamp(i), i % 7));
        }
        write(&root.join("data").join(name), &csv);
        let spans: Vec<[String; 2]> = window.iter().map(|&(a, b)| [stamp(a), stamp(b)]).collect();
        labels.insert(name.into(), serde_json::to_value(spans).unwrap());
        // A detector that is certain exactly at each window's start, unsure elsewhere.
        write(
            &out.join(name),
            &scores(1000, |i| {
                if window.is_some_and(|w| w.0 == i) {
                    1.0
                } else {
                    0.2 + (i % 10) as f64 / 100.0
                }
            }),
        );
    }
    write(&root.join("labels/combined_windows.json"), &serde_json::to_string(&labels).unwrap());

    let r = nab::evaluate(&root, &out).unwrap();
    assert_eq!((r.files, r.rows, r.windows), (3, 3000, 2));
    for p in &r.profiles {
        assert_eq!(p.threshold, 1.0, "{p:?}");
        assert!((p.score - 100.0).abs() < 1e-9, "perfect detections score 100: {p:?}");
    }

    // A null detector scores 0 under every profile.
    for name in ["cat/a.csv", "cat/b.csv", "other/c.csv"] {
        write(&out.join(name), &scores(1000, |_| 0.0));
    }
    let r = nab::evaluate(&root, &out).unwrap();
    assert!(r.profiles.iter().all(|p| p.score.abs() < 1e-9), "{:?}", r.profiles);

    // A score file of the wrong length is refused, naming it.
    write(&out.join("cat/b.csv"), &scores(999, |_| 0.0));
    let e = nab::evaluate(&root, &out).unwrap_err().to_string();
    assert!(e.contains("b.csv") && e.contains("999 rows"), "{e}");
}
