//! `hums eval`: the public benchmarks' scoring, exactly as their protocols
//! define it (see `../shared/datasets/README.md`), over the score files that
//! `hums replay` writes.

pub mod cmapss;
pub mod nab;
pub mod skab;

use crate::config::schema::Replay;
use crate::sources::replay::{self as input, InputError, Table};
use std::path::{Path, PathBuf};

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{0}: {1}")]
    Data(PathBuf, String),
}

/// The CSV files under `dir`, recursively, sorted.
pub fn csv_files(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| EvalError::Data(d.clone(), e.to_string()))?;
        for e in entries {
            let p = e.map_err(|e| EvalError::Data(d.clone(), e.to_string()))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "csv") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A replay score file for a data file: `scores/<path relative to data>`,
/// or `scores/<file name>` for a flat directory.
pub fn scores_for(data_root: &Path, data_file: &Path, scores: &Path) -> Result<Table, EvalError> {
    let rel = data_file.strip_prefix(data_root).unwrap_or(data_file);
    let nested = scores.join(rel);
    let path =
        if nested.exists() { nested } else { scores.join(rel.file_name().unwrap_or_default()) };
    if !path.exists() {
        return Err(EvalError::Data(
            data_file.into(),
            format!("no score file at {} (run hums replay for it)", scores.join(rel).display()),
        ));
    }
    let cfg = Replay {
        timestamp_column: Some("timestamp".into()),
        label_columns: vec!["anomaly".into()],
        ..Replay::default()
    };
    Ok(input::read(&path, &cfg, &["score".into()])?)
}

/// Checks that a score file has one row per data row, at the same times.
pub fn check_aligned(data: &Table, scores: &Table) -> Result<(), EvalError> {
    if data.timestamps.len() != scores.timestamps.len() {
        return Err(EvalError::Data(
            scores.path.clone(),
            format!(
                "{} rows, but {} has {}",
                scores.timestamps.len(),
                data.path.display(),
                data.timestamps.len()
            ),
        ));
    }
    if let Some(i) =
        (0..data.timestamps.len()).find(|&i| data.timestamps[i] != scores.timestamps[i])
    {
        return Err(EvalError::Data(
            scores.path.clone(),
            format!("row {} is at a different time than the data", i + 1),
        ));
    }
    Ok(())
}
