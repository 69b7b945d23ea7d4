//! The replay report: one self-contained HTML page (inline SVG, no scripts).
use super::{FileRun, ReplayError, Summary};
use crate::config::Config;
use std::path::Path;

/// Writes the report.
pub fn write(path: &Path, _cfg: &Config, _runs: &[FileRun], _summary: &Summary) -> Result<(), ReplayError> {
    std::fs::write(path, "<!doctype html><title>hums replay</title>").map_err(|e| ReplayError::Output(path.into(), e))
}
