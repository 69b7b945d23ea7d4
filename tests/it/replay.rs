//! `hums replay` end to end on files written here: asset templates and
//! configured assets, the outputs' contents, CSV and Parquet giving the same
//! result, and bad files named by file, line and column.

use crate::common;

use common::{load_config, temp_dir};
use hums::config::Config;
use hums::tools::replay::{self, ReplayError};
use std::path::{Path, PathBuf};

/// A pump class with two channels, a 100-sample baseline and a flow limit.
const CONFIG: &str = r#"
[gateway]
id = "replay-test"

[pipeline]
eval_interval = "1s"
window = "5s"
max_window_samples = 16
stale_after = "1h"

[mqtt]
max_future_skew = "5s"

[alarms]
on_delay = "10s"
off_delay = "30s"

[replay]
timestamp_column = "time"
label_columns = ["anomaly"]

[classes.pump]
channels.flow = { unit = "l/min", quantity = "flow" }
channels.temp = { unit = "degC", quantity = "temperature" }

[[classes.pump.limits]]
channel = "temp"
feature = "mean"
failure_mode = "overheating"
alarm = { set = 90.0, clear = 85.0 }

[classes.pump.baseline]
samples = 100
margin = 1.5
failure_mode = "abnormal"

[classes.pump.failure_modes.abnormal]
title = "{asset_name}: abnormal running"
priority = 2

[classes.pump.failure_modes.overheating]
title = "{asset_name}: overheating"
priority = 1

[[asset_templates]]
class = "pump"
location = ["Test site"]
channels.flow = { column = "Flow" }
channels.temp = { column = "Temp" }
"#;

fn config(dir: &Path, extra: &str) -> Config {
    load_config(dir, &format!("{CONFIG}\n{extra}"))
}

/// 400 rows at 1 Hz: steady flow 50 ± 0.3 until row 250, then 40 (a valve
/// closing), labelled from row 250; temperature steady at 60.
fn pump_rows() -> Vec<(String, f64, f64, u8)> {
    (0..400)
        .map(|i| {
            let t = chrono::DateTime::from_timestamp(1_700_000_000 + i, 0).unwrap();
            let noise = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
            let flow = if i < 250 { 50.0 } else { 40.0 } + 0.6 * noise;
            (t.format("%Y-%m-%d %H:%M:%S").to_string(), flow, 60.0 + noise, u8::from(i >= 250))
        })
        .collect()
}

fn write_csv(path: &Path, sep: char) {
    let mut s = format!("time{sep}Flow{sep}Temp{sep}anomaly\n");
    for (t, f, temp, a) in pump_rows() {
        s.push_str(&format!("{t}{sep}{f}{sep}{temp}{sep}{a}\n"));
    }
    std::fs::write(path, s).unwrap();
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn template_asset_learns_its_baseline_and_raises_one_order_for_a_step() {
    let dir = temp_dir("replay-template");
    let input = dir.join("pump-7.csv");
    write_csv(&input, ';');
    let out = dir.join("out");
    let s = replay::run(&config(&dir, ""), std::slice::from_ref(&input), &out, 2, true).unwrap();
    assert_eq!((s.files, s.rows), (1, 400));

    let scores = lines(&out.join("pump-7.csv"));
    assert_eq!(scores[0], "timestamp,score,anomaly");
    assert_eq!(scores.len(), 401, "one row per input row");
    let rows: Vec<(f64, u8)> = scores[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert!(rows[..100].iter().all(|r| r.0 == 0.0), "nothing is judged while learning");
    assert!(
        rows[100..250].iter().all(|r| r.1 == 0),
        "healthy running stays below the control limit"
    );
    assert!(
        rows[260..].iter().all(|r| r.1 == 1 && r.0 >= 0.5),
        "the step is flagged within the window"
    );
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.0)));

    let orders: Vec<serde_json::Value> = lines(&out.join("workorders.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let raised: Vec<_> = orders.iter().filter(|o| o["event"] == "raised").collect();
    assert_eq!(raised.len(), 1, "{orders:#?}");
    let o = raised[0];
    assert_eq!(o["asset"]["id"], "pump-7", "a template asset is named after the file");
    assert_eq!(o["failure_mode"], "pump.abnormal");
    assert_eq!(o["evidence"][0]["channel"], "flow");
    let note = o["evidence"][0]["note"].as_str().unwrap();
    assert!(
        note.contains("control limit") && note.contains("largest contributions: flow.mean"),
        "{o}"
    );

    // Raised after the 10 s on-delay, at event time.
    let detected = chrono::DateTime::parse_from_rfc3339(o["detected_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!((1_700_000_250..=1_700_000_270).contains(&detected), "{detected}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["by_asset"]["pump-7"], orders.len());
    assert_eq!(summary["by_failure_mode"]["pump.abnormal"], orders.len());
    assert_eq!(summary["per_file"][0]["rows"], 400);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg")
            && html.contains("pump-7: anomaly score")
            && html.contains("abnormal running")
    );
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "the report is self-contained"
    );
}

#[test]
fn configured_assets_read_asset_dot_channel_columns_and_limits_trip() {
    let dir = temp_dir("replay-assets");
    let cfg = config(
        &dir,
        r#"
[[assets]]
id = "p1"
name = "Pump 1"
class = "pump"
location = ["Test site", "Hall"]
"#,
    );
    // Only the configured asset's columns: the template does not apply.
    let mut s = String::from("time,p1.flow,p1.temp\n");
    for i in 0..200 {
        let temp = if i < 120 { 60.0 } else { 95.0 };
        s.push_str(&format!("{},50,{temp}\n", 1_700_000_000 + i));
    }
    let input = dir.join("history.csv");
    std::fs::write(&input, s).unwrap();
    let out = dir.join("out");
    let summary = replay::run(&cfg, &[input], &out, 1, false).unwrap();
    let orders = std::fs::read_to_string(out.join("workorders.jsonl")).unwrap();
    assert_eq!(summary.by_failure_mode.get("pump.overheating"), Some(&1), "{orders}");
    // The learned baseline sees the same jump (far past its threshold: critical, priority 1).
    assert_eq!(summary.by_failure_mode.get("pump.abnormal"), Some(&1), "{orders}");
    assert_eq!(summary.by_priority.get("1"), Some(&2), "{orders}");

    assert!(!out.join("report.html").exists(), "no report when not asked for");
    let last = lines(&out.join("history.csv")).pop().unwrap();
    assert!(last.ends_with(",1"), "95 degC is past the alarm limit: {last}");
}

#[test]
fn parquet_input_replays_like_the_same_csv() {
    use polars::prelude::*;
    let dir = temp_dir("replay-parquet");
    let rows = pump_rows();
    let ts: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut df = DataFrame::new(
        rows.len(),
        vec![
            Column::new("time".into(), ts),
            Column::new("Flow".into(), rows.iter().map(|r| r.1).collect::<Vec<f64>>()),
            Column::new("Temp".into(), rows.iter().map(|r| r.2).collect::<Vec<f64>>()),
            Column::new("anomaly".into(), rows.iter().map(|r| r.3 as i64).collect::<Vec<i64>>()),
        ],
    )
    .unwrap();
    let pq = dir.join("a").join("pump.parquet");
    std::fs::create_dir_all(pq.parent().unwrap()).unwrap();
    polars_io::prelude::ParquetWriter::new(std::fs::File::create(&pq).unwrap())
        .finish(&mut df)
        .unwrap();
    let csv = dir.join("b").join("pump.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    write_csv(&csv, ',');

    let cfg = config(&dir, "");
    replay::run(&cfg, &[pq], &dir.join("out-pq"), 1, false).unwrap();
    replay::run(&cfg, &[csv], &dir.join("out-csv"), 1, false).unwrap();
    for f in ["pump.csv", "workorders.jsonl"] {
        assert_eq!(lines(&dir.join("out-pq").join(f)), lines(&dir.join("out-csv").join(f)), "{f}");
    }
    assert!(!lines(&dir.join("out-pq/workorders.jsonl")).is_empty());
}

fn replay_err(dir: &Path, name: &str, content: &str) -> String {
    let input = dir.join(name);
    std::fs::write(&input, content).unwrap();
    match replay::run(&config(dir, ""), &[input], &dir.join("out"), 1, false) {
        Err(e) => e.to_string(),
        Ok(s) => panic!("{name} replayed: {s:?}"),
    }
}

#[test]
fn bad_files_are_refused_naming_file_line_and_column() {
    let dir = temp_dir("replay-bad");
    let header = "time,Flow,Temp\n";
    let good = "2024-01-01 00:00:00,50,60\n";

    let e = replay_err(&dir, "value.csv", &format!("{header}{good}2024-01-01 00:00:01,fifty,60\n"));
    assert!(
        e.contains("value.csv:3") && e.contains("column \"Flow\"") && e.contains("\"fifty\""),
        "{e}"
    );

    let e = replay_err(&dir, "time.csv", &format!("{header}{good}yesterday,50,60\n"));
    assert!(
        e.contains("time.csv:3") && e.contains("column \"time\"") && e.contains("timestamp_format"),
        "{e}"
    );

    let e = replay_err(&dir, "short.csv", &format!("{header}{good}2024-01-01 00:00:01,50\n"));
    assert!(e.contains("short.csv:3") && e.contains("expected 3 fields"), "{e}");

    let e = replay_err(&dir, "other.csv", "time,Pressure\n2024-01-01 00:00:00,1\n");
    assert!(
        e.contains("other.csv") && e.contains("Pressure") && e.contains("also needs Flow, Temp"),
        "{e}"
    );

    // Empty cells are missing values, not errors, and NaN is skipped.
    let input = dir.join("gaps.csv");
    std::fs::write(
        &input,
        format!("{header}{good}2024-01-01 00:00:01,,NaN\n2024-01-01 00:00:02,50,60\n"),
    )
    .unwrap();
    let s = replay::run(&config(&dir, ""), &[input], &dir.join("out-gaps"), 1, false).unwrap();
    assert_eq!(s.rows, 3);
}

#[test]
fn inputs_with_the_same_stem_are_refused_before_anything_runs() {
    let dir = temp_dir("replay-stems");
    let (a, b): (PathBuf, PathBuf) = (dir.join("x/0.csv"), dir.join("y/0.csv"));
    for p in [&a, &b] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_csv(p, ',');
    }
    let out = dir.join("out");
    let e = replay::run(&config(&dir, ""), &[a, b], &out, 1, false).unwrap_err();
    assert!(matches!(e, ReplayError::SameStem(..)), "{e}");
    assert!(e.to_string().contains("separate --out"), "{e}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn the_command_line_reports_a_bad_file_and_exits_65() {
    let dir = temp_dir("replay-cli");
    std::fs::write(dir.join("hums.toml"), CONFIG).unwrap();
    std::fs::write(dir.join("bad.csv"), "time,Flow,Temp\n2024-01-01 00:00:00,x,1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hums"))
        .args(["replay", "--config"])
        .arg(dir.join("hums.toml"))
        .arg("--input")
        .arg(dir.join("bad.csv"))
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "EX_DATAERR");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:2: column \"Flow\": cannot read \"x\" as a number"), "{err}");
}

#[test]
fn replay_scores_equal_ticking_the_live_pipeline_one_evaluation_at_a_time() {
    use hums::common::metrics::Metrics;
    use hums::pipeline::Pipeline;
    use std::sync::Arc;
    let dir = temp_dir("replay-live");
    // 10,000 rows at 1 Hz, more than one replay batch, judged every 3 s; a
    // slow drift and a step so scores vary.
    let mut s = String::from("time,Flow,Temp\n");
    let rows: Vec<(i64, f64, f64)> = (0..10_000)
        .map(|i| {
            let noise = ((i * 7919) % 13) as f64 / 13.0 - 0.5;
            let flow = 50.0 + noise + if i > 6_000 { 3.0 } else { i as f64 / 5_000.0 };
            (1_700_000_000 + i, flow, 60.0 + noise)
        })
        .collect();
    for (t, f, temp) in &rows {
        s.push_str(&format!("{t},{f},{temp}\n"));
    }
    let input = dir.join("long.csv");
    std::fs::write(&input, s).unwrap();
    let cfg =
        load_config(&dir, &CONFIG.replace("eval_interval = \"1s\"", "eval_interval = \"3s\""));
    assert_eq!(cfg.pipeline.eval_interval, std::time::Duration::from_secs(3));

    replay::run(&cfg, std::slice::from_ref(&input), &dir.join("out"), 1, false).unwrap();
    let replayed: Vec<String> = lines(&dir.join("out/long.csv"))[1..]
        .iter()
        .map(|l| l.split(',').nth(1).unwrap().to_string())
        .collect();

    let file_cfg =
        replay::config_for(&cfg, &input, &["time".into(), "Flow".into(), "Temp".into()]).unwrap();
    let plant = Arc::new(hums::pipeline::plant::Plant::new(
        &file_cfg,
        &hums::pipeline::models::files::ModelFiles::load(&file_cfg).unwrap(),
    ));
    let start = rows[0].0 * 1000;
    let mut live = Pipeline::new(&file_cfg, plant.clone(), Arc::new(Metrics::default()), start);
    let (flow, temp) = (plant.slot("long", "flow").unwrap(), plant.slot("long", "temp").unwrap());
    let (mut next, mut score) = (i64::MIN, 0.0);
    let mut expected = Vec::new();
    for &(t, f, tp) in &rows {
        let ts = t * 1000;
        live.push_slot(flow, ts, f);
        live.push_slot(temp, ts, tp);
        if ts >= next {
            next = ts + 3000;
            score = live.tick(ts).scores[0];
        }
        expected.push(format!("{score:.6}"));
    }
    assert_eq!(replayed.len(), expected.len());
    let differ = (0..expected.len()).filter(|&i| replayed[i] != expected[i]).count();
    assert_eq!(
        differ,
        0,
        "first difference at row {:?}",
        (0..expected.len()).find(|&i| replayed[i] != expected[i])
    );
    assert!(expected.iter().any(|s| s.parse::<f64>().unwrap() >= 0.5), "the step is seen");
}
