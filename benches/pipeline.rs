//! Throughput of window → features → detect → alarms at 200 assets × 8 channels.
//!
//! Each iteration feeds 10 s of event time at 1 Hz per channel (16,000
//! readings) and runs one evaluation tick over 2-minute windows, as the demo
//! config does. `baseline_sum` touches the same readings and nothing else, so
//! the ratio full/baseline is comparable across noisy machines.

// Tests and benches may unwrap, and a test may read as one long scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hums::common::metrics::Metrics;
use hums::common::types::{Millis, Quality, Reading};
use hums::config::{load, FsResolver, SourceText};
use hums::pipeline::Pipeline;
use std::hint::black_box;
use std::sync::Arc;

const ASSETS: usize = 200;
const CHANNELS: [&str; 8] =
    ["vib_de", "vib_nde", "temp_de", "temp_nde", "current", "flow", "pressure", "speed"];
const STEP: Millis = 10_000;

fn config() -> hums::config::Config {
    let mut text = String::from(
        r#"
[pipeline]
eval_interval = "10s"
window = "2m"
stale_after = "5m"
[classes.machine.vibration]
channels = ["vib_de", "vib_nde"]
failure_mode = "wear"
[classes.machine.failure_modes.wear]
title = "{asset_name}: wear"
priority = 2
"#,
    );
    for ch in CHANNELS {
        let q = if ch.starts_with("vib") { "vibration_velocity" } else { "other" };
        text.push_str(&format!(
            "[classes.machine.channels.{ch}]\nunit = \"u\"\nquantity = \"{q}\"\n"
        ));
        text.push_str(&format!(
            "[[classes.machine.limits]]\nchannel = \"{ch}\"\nfailure_mode = \"wear\"\nalarm = {{ \
                set = 1000.0, clear = 900.0 }}\n"
        ));
    }
    for i in 0..ASSETS {
        text.push_str(&format!(
            "[[assets]]\nid = \"m{i}\"\nname = \"Machine {i}\"\nclass = \"machine\"\nlocation = \
                [\"Site\"]\n"
        ));
    }
    load(vec![SourceText { origin: "bench".into(), text }], &FsResolver, Vec::new())
        .expect("bench config")
}

/// 10 s of readings starting at `t0`, interleaved across channels like a live feed.
fn readings(t0: Millis) -> Vec<Reading> {
    let ids: Vec<(Arc<str>, Vec<Arc<str>>)> = (0..ASSETS)
        .map(|i| (Arc::from(format!("m{i}")), CHANNELS.iter().map(|c| Arc::from(*c)).collect()))
        .collect();
    let mut out = Vec::with_capacity(ASSETS * CHANNELS.len() * 10);
    for s in 0..10 {
        for (a, chans) in &ids {
            for (k, c) in chans.iter().enumerate() {
                let value = 1.0 + 0.1 * ((s * 7 + k) % 5) as f64;
                out.push(Reading {
                    asset: a.clone(),
                    channel: c.clone(),
                    ts: t0 + s as Millis * 1000,
                    value,
                    quality: Quality::Good,
                });
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    let plant = Arc::new(hums::pipeline::plant::Plant::new(
        &cfg,
        &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap(),
    ));
    let batch = readings(0);
    let mut g = c.benchmark_group("pipeline_200x8");
    g.throughput(Throughput::Elements(batch.len() as u64));

    g.bench_function("baseline_sum", |b| {
        b.iter(|| black_box(batch.iter().map(|r| r.value + r.ts as f64).sum::<f64>()))
    });

    // A pipeline whose 2-minute windows are already full, and the time it reached.
    let warmed = || {
        let mut p = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
        let mut t: Millis = 0;
        for _ in 0..12 {
            for r in readings(t) {
                p.push(&r);
            }
            t += STEP;
            p.tick(t);
        }
        (p, t)
    };

    g.bench_function("windows_only", |b| {
        let (mut p, mut t) = warmed();
        b.iter_batched(
            || {
                t += STEP;
                readings(t - STEP)
            },
            |rs| {
                for r in &rs {
                    p.push(r);
                }
            },
            BatchSize::LargeInput,
        )
    });

    g.bench_function("full_tick", |b| {
        let (mut p, mut t) = warmed();
        b.iter_batched(
            || {
                t += STEP;
                (readings(t - STEP), t)
            },
            |(rs, now)| {
                for r in &rs {
                    p.push(r);
                }
                black_box(p.tick(now))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

// Figures only: criterion's plots would need a font registered with plotters,
// whose `ab_glyph` feature hums enables for its own charts.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
