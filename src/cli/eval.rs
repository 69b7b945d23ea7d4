//! `hums eval`: public benchmarks' scores, printed as a table or JSON.

use super::args::Benchmark;
use hums::tools::eval::{cmapss, nab, skab};
use std::path::Path;

/// `hums eval`: scores replay outputs the way each benchmark's protocol does.
pub fn eval(b: Benchmark) -> anyhow::Result<()> {
    match b {
        Benchmark::Skab { data, scores, json } => {
            let r = skab::evaluate(&data, &scores)?;
            if json {
                return print_json(&r);
            }
            print_skab(&r);
        }
        Benchmark::Nab { data, scores, json } => {
            let r = nab::evaluate(&data, &scores)?;
            if json {
                return print_json(&r);
            }
            print_nab(&r);
        }
        Benchmark::Cmapss { data, config, folds, seed, work, json } => {
            let cfg = hums::config::load_files(&[config]).map_err(|e| anyhow::anyhow!("{e}"))?;
            let work = work.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("hums-cmapss-{}", std::process::id()))
            });
            let quiet = json;
            let r = cmapss::evaluate(&cfg, &data, &work, folds, seed, &|m| {
                if !quiet {
                    eprintln!("{m}");
                }
            })?;
            if json {
                return print_json(&r);
            }
            print_cmapss(&r, &work);
        }
    }
    Ok(())
}

/// Prints a result as pretty JSON.
fn print_json<T: serde::Serialize>(r: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(r)?);
    Ok(())
}

/// Prints the SKAB figures as a table.
fn print_skab(r: &skab::Report) {
    println!("SKAB: {} files, test parts (rows after the first 400)", r.files);
    println!("  F1 {:.3}   FAR {:.2} %   MAR {:.2} %", r.f1, r.far, r.mar);
    println!("  TP {}  FP {}  TN {}  FN {}", r.tp, r.fp, r.tn, r.fn_);
    let nab: Vec<String> = r.nab.iter().map(|n| format!("{} {:.2}", n.profile, n.score)).collect();
    println!("  changepoint NAB ({} windows): {}", r.windows, nab.join("   "));
    for s in &r.skipped_unlabelled {
        println!("  skipped (no labels): {s}");
    }
}

/// Prints the NAB figures as a table, one line per profile.
fn print_nab(r: &nab::Report) {
    println!("NAB: {} files, {} rows, {} windows", r.files, r.rows, r.windows);
    for p in &r.profiles {
        println!(
            "  {:<20} {:>6.2}   (threshold {:.4}, raw {:.2})",
            p.profile, p.score, p.threshold, p.raw
        );
    }
}

/// Prints the C-MAPSS figures as a table; `work` holds the engine files and fold models.
fn print_cmapss(r: &cmapss::CmapssResult, work: &Path) {
    println!(
        "C-MAPSS FD001: {} engines, {}-fold over units (seed {}); \
         engine files and fold models in {}",
        r.engines,
        r.folds,
        r.seed,
        work.display()
    );
    println!(
        "  held out, {} cut-offs ({} per engine): RMSE {:.2} cycles, \
         PHM08 {:.0} ({:.2} per prediction)",
        r.predictions,
        cmapss::CUTOFFS,
        r.rmse,
        r.phm08,
        r.phm08_mean
    );
    println!("  held out, every cycle against the capped life left: RMSE {:.2}", r.rmse_all_cycles);
    for f in &r.per_fold {
        println!("  fold {}: RMSE {:.2}, PHM08 {:.0}", f.fold + 1, f.rmse, f.phm08);
    }
    let median = r.median_lead.map_or("-".into(), |m| format!("{m:.0}"));
    println!(
        "  first work order before the failure on {} of {} engines \
         (median {median} cycles ahead); due before the failure on {}",
        r.engines_with_order, r.engines, r.due_before_failure
    );
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let rows: Vec<String> = r
        .per_engine
        .iter()
        .map(|e| format!("{}:{}/{}/{}", e.unit, e.life, cell(e.first_order_lead), cell(e.due_lead)))
        .collect();
    println!("  per engine (unit:life/first order cycles ahead/due cycles ahead):");
    for chunk in rows.chunks(8) {
        println!("    {}", chunk.join("  "));
    }
}
