//! Cost of each learned model of normal: fitting on 1,000 rows of 12 features
//! (a pump's 6 channels × mean and std) and judging one feature vector.
//! PCA is the baseline each figure is read against, in the same run.

// Tests and benches may unwrap, and a test may read as one long scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

use criterion::{criterion_group, criterion_main, Criterion};
use hums::config::schema::{FitSpec, ModelKind};
use hums::pipeline::models::Model;
use std::hint::black_box;

const ROWS: usize = 1000;
const FEATURES: usize = 12;

/// Rows from two operating points with correlated channels and some noise.
fn rows() -> Vec<Vec<f64>> {
    (0..ROWS)
        .map(|i| {
            let load = if i % 3 == 0 { 0.6 } else { 1.0 };
            (0..FEATURES)
                .map(|j| {
                    let noise = ((i * 7919 + j * 104_729) % 1000) as f64 / 1000.0 - 0.5;
                    load * (1.0 + j as f64) + 0.05 * noise
                })
                .collect()
        })
        .collect()
}

fn spec(kind: ModelKind) -> FitSpec {
    FitSpec {
        kind,
        false_alarm_rate: 0.001,
        margin: 1.5,
        clusters: 3,
        pca_variance: 0.9,
        false_orders_per_year: 1.0,
        evaluations_per_year: 3.0e6,
        on_delay_evaluations: 6,
    }
}

fn bench(c: &mut Criterion) {
    let rows = rows();
    let names: Vec<String> = (0..FEATURES).map(|j| format!("c{j}.mean")).collect();
    let kinds =
        [ModelKind::Pca, ModelKind::Zscore, ModelKind::Gmm, ModelKind::Kmeans, ModelKind::Ocsvm];
    let mut fit = c.benchmark_group("model_fit_1000x12");
    fit.sample_size(10);
    for kind in kinds {
        fit.bench_function(format!("{kind:?}").to_lowercase(), |b| {
            b.iter(|| {
                Model::fit(
                    &spec(kind),
                    names.clone(),
                    black_box(&rows),
                    (None, None),
                    String::new(),
                )
                .is_ok()
            })
        });
    }
    fit.finish();
    let mut judge = c.benchmark_group("model_judge_12");
    let x: Vec<f64> = rows[1].iter().map(|v| v * 1.02).collect();
    for kind in kinds {
        let Ok(model) = Model::fit(&spec(kind), names.clone(), &rows, (None, None), String::new())
        else {
            continue;
        };
        judge.bench_function(format!("{kind:?}").to_lowercase(), |b| {
            b.iter(|| model.judge(black_box(&x)).score)
        });
    }
    judge.finish();
}

// Figures only: criterion's plots would need a font registered with plotters.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
