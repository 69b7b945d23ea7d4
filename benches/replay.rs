//! Replay throughput on the benchmark configs, as rows per second.
//!
//! - `nab/*`: a 20,000-row single-channel file (5-minute rows, a NAB file's
//!   shape) with `configs/benchmarks/nab.toml`: every row is judged.
//! - `skab/*`: a 10,000-row, 8-channel file with `configs/benchmarks/skab.toml`.
//!
//! `read_only` parses the same file and does nothing else, so the ratio
//! replay/read_only is comparable across noisy machines.

// Tests and benches may unwrap, and a test may read as one long scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hums::config::load_files;
use hums::sources::replay as input;
use hums::tools::replay::replay_file;
use std::hint::black_box;
use std::path::{Path, PathBuf};

fn write_nab(dir: &Path, rows: usize) -> PathBuf {
    let mut s = String::from("timestamp,value\n");
    for i in 0..rows {
        let t = chrono::DateTime::from_timestamp(1_400_000_000 + i as i64 * 300, 0).unwrap();
        let v = 50.0
            + 10.0 * (i as f64 / 288.0 * std::f64::consts::TAU).sin()
            + ((i * 7919) % 17) as f64 / 17.0;
        s.push_str(&format!("{},{v:.4}\n", t.format("%Y-%m-%d %H:%M:%S")));
    }
    let p = dir.join("nab_like.csv");
    std::fs::write(&p, s).unwrap();
    p
}

fn write_skab(dir: &Path, rows: usize) -> PathBuf {
    let cols = [
        "Accelerometer1RMS",
        "Accelerometer2RMS",
        "Current",
        "Pressure",
        "Temperature",
        "Thermocouple",
        "Voltage",
        "Volume Flow RateRMS",
    ];
    let mut s = format!("datetime;{}\n", cols.join(";"));
    for i in 0..rows {
        let t = chrono::DateTime::from_timestamp(1_580_000_000 + i as i64, 0).unwrap();
        s.push_str(&t.format("%Y-%m-%d %H:%M:%S").to_string());
        for c in 0..cols.len() {
            s.push_str(&format!(";{:.5}", 1.0 + c as f64 + ((i * 31 + c * 7) % 23) as f64 / 230.0));
        }
        s.push('\n');
    }
    let p = dir.join("skab_like.csv");
    std::fs::write(&p, s).unwrap();
    p
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("hums-bench-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("nab", "configs/benchmarks/nab.toml", write_nab(&dir, 20_000), 20_000u64, "value"),
        ("skab", "configs/benchmarks/skab.toml", write_skab(&dir, 10_000), 10_000, "Current"),
    ];
    for (name, config, file, rows, column) in cases {
        let cfg = load_files(&[PathBuf::from(config)]).unwrap();
        let models = hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap();
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(rows));
        g.sample_size(10);
        g.bench_function("read_only", |b| {
            b.iter(|| black_box(input::read(&file, &cfg.replay, &[column.to_string()]).unwrap()))
        });
        g.bench_function("replay", |b| {
            b.iter(|| black_box(replay_file(&cfg, &models, &file, false, &|_, _| {}).unwrap()))
        });
        g.finish();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// Figures only: criterion's plots would need a font registered with plotters,
// whose `ab_glyph` feature hums enables for its own charts.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
