//! The replay source: history files, CSV (any delimiter) or Parquet, read
//! into one column-oriented table of timestamps, channel values and
//! ground-truth labels.

use crate::common::types::Millis;
use crate::config::schema::{Replay, TimestampFormat};
use crate::sources::payload::parse_timestamp_text;
use std::fmt;
use std::path::{Path, PathBuf};

/// A bad input file, with where the problem is.
#[derive(Debug)]
pub struct InputError {
    pub file: PathBuf,
    /// 1-based line of a CSV file.
    pub line: Option<u64>,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(c) = &self.column {
            write!(f, ": column {c:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

/// One history file in memory, rows sorted by time.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub timestamps: Vec<Millis>,
    /// Requested value columns: name and one value per row (NaN where empty).
    pub columns: Vec<(String, Vec<f64>)>,
    /// Ground-truth label columns present in the file: name and 0/1 per row.
    pub labels: Vec<(String, Vec<bool>)>,
}

impl Table {
    /// The values of a column by name.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    /// The file's stem (`valve1/3.csv` → `3`), used as the id of template assets.
    pub fn stem(&self) -> String {
        stem(&self.path)
    }
}

/// A path's file stem.
pub fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn err(
    file: &Path,
    line: Option<u64>,
    column: Option<&str>,
    message: impl Into<String>,
) -> InputError {
    InputError { file: file.into(), line, column: column.map(Into::into), message: message.into() }
}

fn is_parquet(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet") || e.eq_ignore_ascii_case("pq"))
}

/// The column names of a file, in order.
pub fn header(path: &Path, cfg: &Replay) -> Result<Vec<String>, InputError> {
    if is_parquet(path) {
        let df = parquet_frame(path)?;
        return Ok(df.get_column_names().iter().map(|n| n.to_string()).collect());
    }
    let mut rdr = csv_reader(path, cfg)?;
    let h = rdr.headers().map_err(|e| csv_err(path, &e))?;
    Ok(h.iter().map(|s| s.to_string()).collect())
}

/// Reads the timestamp, the `wanted` value columns and the configured label
/// columns. Rows are sorted by time (stably) if the file is not.
pub fn read(path: &Path, cfg: &Replay, wanted: &[String]) -> Result<Table, InputError> {
    let mut t = if is_parquet(path) {
        read_parquet(path, cfg, wanted)?
    } else {
        read_csv(path, cfg, wanted)?
    };
    if let Some(i) = t.timestamps.windows(2).position(|w| w[1] < w[0]) {
        tracing::warn!(
            file = %path.display(),
            row = i + 2,
            "rows are not in time order (row {} goes back in time); replaying them sorted",
            i + 2
        );

        let mut order: Vec<usize> = (0..t.timestamps.len()).collect();
        order.sort_by_key(|&i| t.timestamps[i]);
        t.timestamps = order.iter().map(|&i| t.timestamps[i]).collect();
        for (_, v) in &mut t.columns {
            *v = order.iter().map(|&i| v[i]).collect();
        }
        for (_, v) in &mut t.labels {
            *v = order.iter().map(|&i| v[i]).collect();
        }
    }
    Ok(t)
}

fn csv_reader(path: &Path, cfg: &Replay) -> Result<csv::Reader<std::fs::File>, InputError> {
    let delimiter = match cfg.delimiter {
        Some(c) => c,
        None => {
            use std::io::BufRead;
            let f = std::fs::File::open(path).map_err(|e| err(path, None, None, e.to_string()))?;
            let mut first = String::new();
            std::io::BufReader::new(f)
                .read_line(&mut first)
                .map_err(|e| err(path, Some(1), None, e.to_string()))?;
            [';', '\t']
                .into_iter()
                .find(|&d| first.contains(d) && !first.contains(','))
                .unwrap_or(',')
        }
    };
    if !delimiter.is_ascii() {
        return Err(err(
            path,
            None,
            None,
            format!("delimiter {delimiter:?} must be a single ASCII character"),
        ));
    }
    let f = std::fs::File::open(path).map_err(|e| err(path, None, None, e.to_string()))?;
    Ok(csv::ReaderBuilder::new().delimiter(delimiter as u8).trim(csv::Trim::All).from_reader(f))
}

fn csv_err(path: &Path, e: &csv::Error) -> InputError {
    let line = e.position().map(|p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("expected {expected_len} fields like the header, found {len}")
        }
        _ => e.to_string(),
    };
    err(path, line, None, message)
}

/// Index of the timestamp column: the configured one, or the first.
fn timestamp_index(path: &Path, names: &[String], cfg: &Replay) -> Result<usize, InputError> {
    match &cfg.timestamp_column {
        None if names.is_empty() => Err(err(path, Some(1), None, "the file has no header")),
        None => Ok(0),
        Some(c) => names.iter().position(|n| n == c).ok_or_else(|| {
            err(
                path,
                Some(1),
                Some(c),
                format!("timestamp column not found (columns: {})", names.join(", ")),
            )
        }),
    }
}

fn parse_value(cell: &str) -> Option<f64> {
    if cell.is_empty() {
        return Some(f64::NAN);
    }
    cell.parse::<f64>().ok()
}

fn read_csv(path: &Path, cfg: &Replay, wanted: &[String]) -> Result<Table, InputError> {
    let mut rdr = csv_reader(path, cfg)?;
    let names: Vec<String> =
        rdr.headers().map_err(|e| csv_err(path, &e))?.iter().map(str::to_string).collect();
    let ts_col = timestamp_index(path, &names, cfg)?;
    let find = |n: &String| names.iter().position(|h| h == n);
    let value_cols: Vec<(String, usize)> = wanted
        .iter()
        .map(|w| {
            find(w)
                .map(|i| (w.clone(), i))
                .ok_or_else(|| err(path, Some(1), Some(w), "column not found"))
        })
        .collect::<Result<_, _>>()?;
    let label_cols: Vec<(String, usize)> =
        cfg.label_columns.iter().filter_map(|l| find(l).map(|i| (l.clone(), i))).collect();

    let mut t = Table {
        path: path.into(),
        timestamps: Vec::new(),
        columns: value_cols.iter().map(|(n, _)| (n.clone(), Vec::new())).collect(),
        labels: label_cols.iter().map(|(n, _)| (n.clone(), Vec::new())).collect(),
    };
    let mut rec = csv::StringRecord::new();
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_err(path, &e)),
        }
        let line = rec.position().map(|p| p.line());
        let cell = |i: usize| rec.get(i).unwrap_or("");
        let ts = parse_timestamp_text(cell(ts_col), cfg.timestamp_format).map_err(|e| {
            err(
                path,
                line,
                Some(&names[ts_col]),
                format!(
                    "{e} (set replay.timestamp_format if it is not {:?})",
                    cfg.timestamp_format
                ),
            )
        })?;
        t.timestamps.push(ts);
        for ((name, i), (_, out)) in value_cols.iter().zip(&mut t.columns) {
            let v = parse_value(cell(*i)).ok_or_else(|| {
                err(path, line, Some(name), format!("cannot read {:?} as a number", cell(*i)))
            })?;
            out.push(v);
        }
        for ((name, i), (_, out)) in label_cols.iter().zip(&mut t.labels) {
            let v = parse_value(cell(*i)).ok_or_else(|| {
                err(path, line, Some(name), format!("cannot read label {:?} as 0 or 1", cell(*i)))
            })?;
            out.push(v > 0.5);
        }
    }
    Ok(t)
}

fn parquet_frame(path: &Path) -> Result<polars::prelude::DataFrame, InputError> {
    use polars_io::prelude::{ParquetReader, SerReader};
    let f = std::fs::File::open(path).map_err(|e| err(path, None, None, e.to_string()))?;
    ParquetReader::new(f)
        .finish()
        .map_err(|e| err(path, None, None, format!("not a readable Parquet file: {e}")))
}

fn read_parquet(path: &Path, cfg: &Replay, wanted: &[String]) -> Result<Table, InputError> {
    use polars::prelude::*;
    let df = parquet_frame(path)?;
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let ts_name = names[timestamp_index(path, &names, cfg)?].clone();
    let col = |n: &str| df.column(n).map_err(|_| err(path, None, Some(n), "column not found"));
    let floats = |n: &str| -> Result<Vec<f64>, InputError> {
        let c = col(n)?
            .cast(&DataType::Float64)
            .map_err(|e| err(path, None, Some(n), format!("not numeric: {e}")))?;
        let ca = c.f64().map_err(|e| err(path, None, Some(n), e.to_string()))?;
        Ok(ca.iter().map(|x| x.unwrap_or(f64::NAN)).collect())
    };

    let ts_col = col(&ts_name)?;
    let timestamps: Vec<Millis> = match ts_col.dtype() {
        DataType::String => {
            let ca = ts_col.str().map_err(|e| err(path, None, Some(&ts_name), e.to_string()))?;
            ca.iter()
                .enumerate()
                .map(|(row, s)| {
                    parse_timestamp_text(s.unwrap_or(""), cfg.timestamp_format).map_err(|e| {
                        err(path, None, Some(&ts_name), format!("row {}: {e}", row + 1))
                    })
                })
                .collect::<Result<_, _>>()?
        }
        DataType::Datetime(unit, _) => {
            let per_ms = match unit {
                TimeUnit::Milliseconds => 1,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Nanoseconds => 1_000_000,
            };
            let ints = ts_col
                .cast(&DataType::Int64)
                .map_err(|e| err(path, None, Some(&ts_name), e.to_string()))?;
            let ca = ints.i64().map_err(|e| err(path, None, Some(&ts_name), e.to_string()))?;
            ca.iter()
                .enumerate()
                .map(|(row, x)| {
                    x.map(|x| x / per_ms).ok_or_else(|| {
                        err(
                            path,
                            None,
                            Some(&ts_name),
                            format!("row {}: missing timestamp", row + 1),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        }
        _ => floats(&ts_name)?
            .into_iter()
            .enumerate()
            .map(|(row, x)| {
                parse_timestamp_text(&x.to_string(), TimestampFormat::Auto)
                    .map_err(|e| err(path, None, Some(&ts_name), format!("row {}: {e}", row + 1)))
            })
            .collect::<Result<_, _>>()?,
    };
    let columns =
        wanted.iter().map(|w| Ok((w.clone(), floats(w)?))).collect::<Result<_, InputError>>()?;
    let labels = cfg
        .label_columns
        .iter()
        .filter(|l| names.contains(l))
        .map(|l| Ok((l.clone(), floats(l)?.into_iter().map(|v| v > 0.5).collect())))
        .collect::<Result<_, InputError>>()?;
    Ok(Table { path: path.into(), timestamps, columns, labels })
}
