//! `hums replay`: history files through the live pipeline (windows → features
//! → detectors → alarms → planner → flood control) in event time, as fast as
//! the CPU allows. Nothing is sent; the result is per-row anomaly scores, the
//! work orders that would have been raised, a summary and an HTML report.

pub mod output;
pub mod report;

use crate::common::metrics::Metrics;
use crate::common::types::Millis;
use crate::config::schema::{Asset, AssetChannel};
use crate::config::Config;
use crate::pipeline::alarms::{AlarmEvent, Transition};
use crate::pipeline::models::files::ModelFiles;
use crate::pipeline::plant::Plant;
use crate::pipeline::Pipeline;
use crate::sources::replay::{self as input, InputError, Table};
use crate::store::outbox::{NewEntry, Status};
use crate::workorders::flood::FloodControl;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Input(#[from] InputError),
    #[error("{file}: no asset or asset template matches its columns ({columns}); {hint}")]
    Unmatched { file: PathBuf, columns: String, hint: String },
    #[error(
        "{0} and {1} share the stem {2:?}: their outputs would collide; replay them into separate \
            --out directories"
    )]
    SameStem(PathBuf, PathBuf, String),
    #[error(
        "{0}: asset id {1:?} would be used twice (a template named after the file, or two \
        templates matching it); rename the file or narrow the templates"
    )]
    DuplicateAsset(PathBuf, String),
    #[error("writing {0}: {1}")]
    Output(PathBuf, std::io::Error),
    #[error("{0}")]
    Models(#[from] crate::config::ConfigErrors),
}

/// One asset's trace through a file.
#[derive(Debug, Clone)]
pub struct AssetTrace {
    pub id: String,
    /// Measured channels: (channel name, column name, unit).
    pub channels: Vec<(String, String, String)>,
    /// Anomaly score per input row (the last evaluation at or before it).
    pub scores: Vec<f64>,
    /// Alarm episodes: failure mode, raised at, cleared at (None: still open at the end).
    pub alarms: Vec<(String, Millis, Option<Millis>)>,
    /// The row at which the learned baseline was fitted, if the asset has one.
    pub baseline_fitted_at: Option<usize>,
    /// Baseline input vectors per evaluation, when recorded (`hums train`).
    pub vectors: Vec<(Millis, Vec<f64>)>,
    /// Mean samples per window of the baseline's inputs over the file.
    pub samples_per_window: Option<f64>,
    /// Per degradation indicator: its history and fits.
    pub trends: Vec<TrendTrace>,
    /// Every evaluation of the asset's remaining-life model, if it has one.
    pub life: Vec<crate::pipeline::detect::life::LifeRecord>,
    /// The usage meter at the end of the file, if the asset counts usage.
    pub usage: Option<crate::pipeline::usage::Meter>,
}

/// A degradation indicator over a replay.
#[derive(Debug, Clone)]
pub struct TrendTrace {
    /// `channel.feature`, as work-order evidence names it.
    pub name: String,
    pub unit: String,
    pub limit: f64,
    /// Every history point.
    pub points: crate::pipeline::detect::trend::Points,
    /// Every fit that predicted a crossing, with when it was made.
    pub fits: Vec<(Millis, crate::pipeline::detect::trend::Prediction)>,
}

impl TrendTrace {
    /// The chart of this indicator as it stood when `order` was planned:
    /// the history up to then and the fit in force.
    pub fn snapshot(
        &self,
        order: &crate::workorders::WorkOrder,
    ) -> crate::pipeline::charts::TrendChart<'_> {
        let at = order.detected_at.timestamp_millis();
        let upto = self.points.partition_point(|p| p.0 <= at);
        let fit = self.fits.iter().rev().find(|(t, _)| *t <= at).map(|(_, p)| p);
        crate::pipeline::charts::TrendChart {
            title: format!("{} {}: {} r{}", order.asset.id, self.name, order.title, order.revision),
            unit: self.unit.clone(),
            points: &self.points[..upto],
            limit: self.limit,
            prediction: fit,
            now: at,
            due: order.due_by.map(|d| d.timestamp_millis()),
        }
    }

    /// Whether `order` is this indicator's prediction.
    pub fn predicted(&self, order: &crate::workorders::WorkOrder) -> bool {
        order.kind == crate::common::types::WorkKind::PredictedFailure
            && order.evidence.iter().any(|e| format!("{}.{}", e.channel, e.feature) == self.name)
    }
}

/// What one input file produced.
#[derive(Debug, Clone)]
pub struct FileRun {
    pub table: Table,
    /// The assets this file was judged as.
    pub plant: Arc<Plant>,
    pub assets: Vec<AssetTrace>,
    /// Planned work orders after flood control, in order.
    pub orders: Vec<NewEntry>,
    pub ticks: u64,
}

impl FileRun {
    /// The file's score per row: the highest of its assets'.
    pub fn scores(&self) -> Vec<f64> {
        (0..self.table.timestamps.len())
            .map(|i| self.assets.iter().map(|a| a.scores[i]).fold(0.0, f64::max))
            .collect()
    }
}

/// Rows pushed (and so evaluation times judged) per feature computation at
/// most; the windows keep headroom for them.
const BATCH: usize = 4096;
/// Samples one batch may push ahead over all channels (12 bytes each: this
/// bounds replay memory for wide plants).
const AHEAD: usize = 1 << 20;

/// Rows pushed per batch: at most [`BATCH`], and few enough that the samples
/// pushed ahead fit [`AHEAD`].
fn rows_per_batch(plant: &Plant) -> usize {
    BATCH.min(AHEAD / plant.slots.len().max(1)).max(1)
}

/// The score at and above which a row is flagged anomalous (the control limit).
pub const ANOMALY_THRESHOLD: f64 = 0.5;

/// Turns a file stem into a valid asset id.
fn asset_id(stem: &str) -> String {
    stem.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect()
}

/// The measured channels of an asset's class with the column each is read from.
fn columns(cfg: &Config, a: &Asset, template: bool) -> Vec<(String, String)> {
    let Some(class) = cfg.classes.get(&a.class) else { return Vec::new() };
    class
        .channels
        .keys()
        .map(|ch| {
            let col = a.channels.get(ch).and_then(|c| c.column.clone());
            let col = col.unwrap_or_else(|| {
                if template {
                    ch.clone()
                } else {
                    crate::pipeline::plant::default_column(&a.id, ch)
                }
            });
            (ch.clone(), col)
        })
        .collect()
}

/// The configuration for one file: the configured assets with a column in it,
/// and every template whose columns it has, named after the file.
pub fn config_for(cfg: &Config, path: &Path, names: &[String]) -> Result<Config, ReplayError> {
    let has = |c: &String| names.contains(c);
    let mut assets: Vec<Asset> = cfg
        .assets
        .iter()
        .filter(|a| columns(cfg, a, false).iter().any(|(_, c)| has(c)))
        .cloned()
        .collect();
    let stem = input::stem(path);
    let mut hints = Vec::new();
    for (i, t) in cfg.asset_templates.iter().enumerate() {
        let cols = columns(cfg, t, true);
        let missing: Vec<&str> =
            cols.iter().filter(|(_, c)| !has(c)).map(|(_, c)| c.as_str()).collect();
        if !missing.is_empty() {
            hints.push(format!(
                "asset_templates[{i}] (class {}) also needs {}",
                t.class,
                missing.join(", ")
            ));
            continue;
        }
        let mut a = t.clone();
        a.id = asset_id(&stem);
        if a.name.is_empty() {
            a.name = stem.clone();
        }
        for (ch, col) in cols {
            a.channels.entry(ch).or_insert_with(AssetChannel::default).column = Some(col);
        }
        assets.push(a);
    }
    let mut ids = std::collections::BTreeSet::new();
    if let Some(dup) = assets.iter().find(|a| !ids.insert(a.id.as_str())) {
        return Err(ReplayError::DuplicateAsset(path.into(), dup.id.clone()));
    }
    if assets.is_empty() {
        if hints.is_empty() {
            hints.push(
                "name columns `<asset>.<channel>`, set a channel's `column`, or add an \
                    [[asset_templates]]"
                    .into(),
            );
        }
        return Err(ReplayError::Unmatched {
            file: path.into(),
            columns: names.join(", "),
            hint: hints.join("; "),
        });
    }
    let mut file_cfg = cfg.clone();
    file_cfg.assets = assets;
    file_cfg.asset_templates.clear();
    Ok(file_cfg)
}

/// Replays one file through a fresh pipeline. `progress(done, total)` is
/// called every few thousand rows. With `record`, every evaluation's
/// baseline input vectors are kept (for `hums train`).
pub fn replay_file(
    cfg: &Config,
    models: &ModelFiles,
    path: &Path,
    record: bool,
    progress: &dyn Fn(u64, u64),
) -> Result<FileRun, ReplayError> {
    let names = input::header(path, &cfg.replay)?;
    let file_cfg = config_for(cfg, path, &names)?;
    let plant = Arc::new(Plant::new(&file_cfg, models));
    let wanted = wanted_columns(&plant, &names);
    let table = input::read(path, &cfg.replay, &wanted)?;
    let rows = table.timestamps.len();
    let start = table.timestamps.first().copied().unwrap_or(0);
    let batch_len = rows_per_batch(&plant);
    let metrics = Arc::new(Metrics::default());
    let mut pipeline =
        Pipeline::with_headroom(&file_cfg, plant.clone(), metrics, start, 2 * batch_len + 1);
    let flood = FloodControl::new(&file_cfg.flood, &file_cfg.gateway.id);
    if record {
        pipeline.record_vectors();
    }
    pipeline.trends().keep_log();
    pipeline.life().keep_log();
    limit_learning(&mut pipeline, &plant, &file_cfg, rows);

    let eval = (cfg.pipeline.eval_interval.as_millis() as Millis).max(1);
    let mut replay = FileReplay::new(&plant, pipeline, flood, &table);
    replay.push_rows(&table, batch_len, eval, progress);
    let (assets, orders, ticks) = replay.finish(&table);
    Ok(FileRun { table, plant, assets, orders, ticks })
}

/// The file columns the plant's measured channels read, sorted, each once.
fn wanted_columns(plant: &Plant, names: &[String]) -> Vec<String> {
    let mut w: Vec<String> = plant
        .assets
        .iter()
        .flat_map(|a| a.channels.iter())
        .filter(|c| c.derived.is_none() && names.contains(&c.column))
        .map(|c| c.column.clone())
        .collect();
    w.sort();
    w.dedup();
    w
}

/// Limits, per asset, the samples its baseline learns from and its novelty
/// probation to the configured fractions of the file's rows.
fn limit_learning(pipeline: &mut Pipeline, plant: &Plant, file_cfg: &Config, rows: usize) {
    for (ai, a) in plant.assets.iter().enumerate() {
        if let Some(f) = a.baseline.as_ref().and_then(|b| b.input_fraction) {
            pipeline.baseline().limit_samples(ai, (f * rows as f64).floor() as u64);
        }
        let class = file_cfg.classes.get(&a.class);
        let fraction = class.and_then(|c| c.novelty.as_ref()).and_then(|n| n.probation_fraction);
        if let Some(f) = fraction {
            pipeline.novelty().limit_probation(ai, (f * rows as f64).floor() as u64);
        }
    }
}

/// (slot, column values) for every measured channel present in the file.
fn channel_feeds<'t>(plant: &Plant, table: &'t Table) -> Vec<(usize, &'t [f64])> {
    plant
        .assets
        .iter()
        .flat_map(|a| a.channels.iter().filter_map(|c| Some((c.slot, table.column(&c.column)?))))
        .collect()
}

/// An empty trace per asset, naming its measured channels present in the file.
fn new_traces(plant: &Plant, table: &Table) -> Vec<AssetTrace> {
    plant
        .assets
        .iter()
        .map(|a| AssetTrace {
            id: a.id.to_string(),
            channels: a
                .channels
                .iter()
                .filter(|c| c.derived.is_none() && table.column(&c.column).is_some())
                .map(|c| (c.name.to_string(), c.column.clone(), c.unit.clone()))
                .collect(),
            scores: Vec::with_capacity(table.timestamps.len()),
            alarms: Vec::new(),
            baseline_fitted_at: None,
            vectors: Vec::new(),
            samples_per_window: None,
            trends: Vec::new(),
            life: Vec::new(),
            usage: None,
        })
        .collect()
}

/// One file's replay under way: the pipeline, flood control and what has
/// been recorded so far.
struct FileReplay<'a> {
    plant: &'a Plant,
    pipeline: Pipeline,
    flood: FloodControl,
    traces: Vec<AssetTrace>,
    /// Open alarm episodes: (asset, failure mode) → index in its trace's alarms.
    open: BTreeMap<(usize, usize), usize>,
    /// Planned work orders after flood control, in order.
    orders: Vec<NewEntry>,
    /// Per asset, the latest evaluation's score.
    last_scores: Vec<f64>,
    ticks: u64,
}

impl<'a> FileReplay<'a> {
    fn new(plant: &'a Plant, pipeline: Pipeline, flood: FloodControl, table: &Table) -> Self {
        Self {
            plant,
            pipeline,
            flood,
            traces: new_traces(plant, table),
            open: BTreeMap::new(),
            orders: Vec::new(),
            last_scores: vec![0.0; plant.assets.len()],
            ticks: 0,
        }
    }

    /// Pushes every row of `table` into the pipeline, judging its evaluation
    /// times (one per `eval` ms at most) a batch at a time.
    fn push_rows(
        &mut self,
        table: &Table,
        batch_len: usize,
        eval: Millis,
        progress: &dyn Fn(u64, u64),
    ) {
        let rows = table.timestamps.len();
        let feeds = channel_feeds(self.plant, table);
        let mut next_tick = Millis::MIN;
        // Rows are pushed a batch at a time (at most `batch_len` rows, which the
        // windows' headroom holds), then every evaluation time in the batch is
        // judged with one feature computation.
        let mut batch: Vec<(Millis, usize)> = Vec::with_capacity(batch_len);
        let mut pending = 0usize;
        let mut scored = 0usize;
        for i in 0..rows {
            let ts = table.timestamps[i];
            for &(slot, values) in &feeds {
                let v = values[i];
                if v.is_finite() {
                    self.pipeline.push_slot(slot, ts, v);
                }
            }
            pending += 1;
            let last_of_instant = table.timestamps.get(i + 1).is_none_or(|&n| n > ts);
            if last_of_instant && ts >= next_tick {
                next_tick = ts.saturating_add(eval);
                batch.push((ts, i));
            }
            if pending < batch_len && i + 1 < rows {
                continue;
            }
            pending = 0;
            self.judge(&batch);
            batch.clear();
            self.fill_scores(i + 1);
            if i + 1 - scored >= 4096 || i + 1 == rows {
                scored = i + 1;
                progress(scored as u64, rows as u64);
            }
        }
    }

    /// Evaluates at every (time, row) of `batch` with one feature computation
    /// and records the scores, vectors, alarms and admitted work orders.
    fn judge(&mut self, batch: &[(Millis, usize)]) {
        let times: Vec<Millis> = batch.iter().map(|b| b.0).collect();
        for (&(ts, row), out) in batch.iter().zip(self.pipeline.evaluate(&times)) {
            self.ticks += 1;
            // Rows before this evaluation carry the previous one's score.
            self.fill_scores(row);
            self.last_scores = out.scores;
            for (t, v) in self.traces.iter_mut().zip(out.vectors) {
                if let Some(v) = v {
                    t.vectors.push((ts, v));
                }
            }
            self.record_alarms(&out.events);
            if !out.work_orders.is_empty() {
                self.orders.extend(self.flood.admit(out.work_orders, ts));
            }
        }
    }

    /// Extends every trace's scores to `rows` rows with the latest scores.
    fn fill_scores(&mut self, rows: usize) {
        for (t, &s) in self.traces.iter_mut().zip(&self.last_scores) {
            t.scores.resize(rows, s);
        }
    }

    /// Opens an alarm episode at each raise and closes it at its clear.
    fn record_alarms(&mut self, events: &[AlarmEvent]) {
        for ev in events {
            let fm = self.plant.assets[ev.asset].failure_modes[ev.failure_mode].id.clone();
            let alarms = &mut self.traces[ev.asset].alarms;
            match ev.transition {
                Transition::Raised { .. } => {
                    self.open.insert((ev.asset, ev.failure_mode), alarms.len());
                    alarms.push((fm, ev.at, None));
                }
                Transition::Cleared { .. } => {
                    if let Some(k) = self.open.remove(&(ev.asset, ev.failure_mode)) {
                        alarms[k].2 = Some(ev.at);
                    }
                }
                Transition::Escalated { .. } => {}
            }
        }
    }

    /// The traces, completed with what the pipeline kept over the file (when
    /// the baseline was fitted, trends, remaining life, usage), the work
    /// orders and the number of evaluations.
    fn finish(mut self, table: &Table) -> (Vec<AssetTrace>, Vec<NewEntry>, u64) {
        let pipeline = &mut self.pipeline;
        for (ai, t) in self.traces.iter_mut().enumerate() {
            // A shipped model was never learned here: no learning period to show.
            let phase = pipeline.baseline_phase(ai);
            t.samples_per_window = pipeline.baseline().samples_per_window(ai);
            if let crate::pipeline::detect::baseline::Phase::Fitted { at } = phase {
                if at > Millis::MIN {
                    t.baseline_fitted_at = Some(table.timestamps.partition_point(|&x| x < at));
                }
            }
        }
        for (ai, t) in self.traces.iter_mut().enumerate() {
            let asset = &self.plant.assets[ai];
            t.trends = asset
                .trends
                .iter()
                .enumerate()
                .map(|(r, rule)| TrendTrace {
                    name: rule.name(asset),
                    unit: asset.channels[rule.channel].unit.clone(),
                    limit: rule.limit,
                    points: pipeline.trends().log(ai, r).to_vec(),
                    fits: pipeline.trends().fits(ai, r).to_vec(),
                })
                .collect();
            t.usage = asset.usage.as_ref().and_then(|_| pipeline.usage().meter(ai).cloned());
            t.life = pipeline.life().log(ai).to_vec();
        }
        (self.traces, self.orders, self.ticks)
    }
}

/// Totals of a replay for `summary.json` and the command's output.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub files: usize,
    pub rows: u64,
    pub evaluations: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Work orders that would have been sent (raised plus escalation updates).
    pub work_orders: usize,
    /// Work orders flood control would have held back.
    pub held: usize,
    pub by_asset: BTreeMap<String, usize>,
    pub by_failure_mode: BTreeMap<String, usize>,
    /// Keyed by priority level, "1" (critical) to "4" (low).
    pub by_priority: BTreeMap<String, usize>,
    /// Run hours and starts counted per asset that counts usage.
    pub usage: BTreeMap<String, Usage>,
    pub per_file: Vec<FileSummary>,
}

/// An asset's usage at the end of its replay.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Usage {
    pub run_hours: f64,
    pub starts: u64,
}

/// One input file in the summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileSummary {
    pub file: String,
    pub assets: Vec<String>,
    pub rows: usize,
    pub anomaly_rows: usize,
    pub alarms: usize,
    pub work_orders: usize,
}

impl Summary {
    fn add(&mut self, run: &FileRun, scores: &[f64]) {
        self.files += 1;
        self.rows += run.table.timestamps.len() as u64;
        self.evaluations += run.ticks;
        let mut sent = 0;
        for e in &run.orders {
            if e.status == Status::Held {
                self.held += 1;
                continue;
            }
            sent += 1;
            let o = &e.order;
            *self.by_asset.entry(o.asset.id.clone()).or_default() += 1;
            *self.by_failure_mode.entry(o.failure_mode.clone()).or_default() += 1;
            *self.by_priority.entry(o.priority.to_string()).or_default() += 1;
        }
        self.work_orders += sent;
        for a in &run.assets {
            if let Some(m) = &a.usage {
                let run_hours = (m.run_hours() * 100.0).round() / 100.0;
                self.usage.insert(a.id.clone(), Usage { run_hours, starts: m.starts });
            }
        }
        self.per_file.push(FileSummary {
            file: run.table.path.display().to_string(),
            assets: run.assets.iter().map(|a| a.id.clone()).collect(),
            rows: run.table.timestamps.len(),
            anomaly_rows: scores.iter().filter(|&&s| s >= ANOMALY_THRESHOLD).count(),
            alarms: run.assets.iter().map(|a| a.alarms.len()).sum(),
            work_orders: sent,
        });
    }
}

/// Replays every input (in parallel, `jobs` at a time) and writes the
/// outputs into `out`. Returns the summary it wrote.
pub fn run(
    cfg: &Config,
    inputs: &[PathBuf],
    out: &Path,
    jobs: usize,
    report: bool,
) -> Result<Summary, ReplayError> {
    let mut stems: BTreeMap<String, &PathBuf> = BTreeMap::new();
    for p in inputs {
        if let Some(other) = stems.insert(input::stem(p), p) {
            return Err(ReplayError::SameStem(other.clone(), p.clone(), input::stem(p)));
        }
    }
    let models = ModelFiles::load(cfg)?;
    std::fs::create_dir_all(out).map_err(|e| ReplayError::Output(out.into(), e))?;
    let bytes: u64 = inputs.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
    let bar = output::progress_bar(bytes);
    let started = std::time::Instant::now();

    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<FileRun, ReplayError>>>> =
        inputs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, inputs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(path) = inputs.get(i) else { break };
                // Progress is in bytes of input: rows done × the file's bytes per row.
                let size = std::fs::metadata(path).map_or(0, |m| m.len());
                let shown = std::cell::Cell::new(0u64);
                bar.set_message(input::stem(path));
                let r = replay_file(cfg, &models, path, false, &|done, total| {
                    let b = size.saturating_mul(done) / total.max(1);
                    bar.inc(b.saturating_sub(shown.get()));
                    shown.set(b);
                });
                bar.inc(size.saturating_sub(shown.get()));
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    bar.finish_and_clear();

    let mut runs = Vec::with_capacity(inputs.len());
    for r in results {
        // Every slot was filled: a worker that panicked would have ended the scope.
        if let Some(r) = r.into_inner().unwrap_or_else(|e| e.into_inner()) {
            runs.push(r?);
        }
    }
    let mut summary = Summary::default();
    for run in &runs {
        let scores = run.scores();
        summary.add(run, &scores);
        output::write_scores(out, run, &scores)?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary.rows_per_second = summary.rows as f64 / summary.seconds.max(1e-9);
    output::write_orders(out, &runs)?;
    output::write_trend_charts(out, &runs)?;
    output::write_json(&out.join("summary.json"), &summary)?;
    if report {
        report::write(&out.join("report.html"), cfg, &runs, &summary)?;
    }
    Ok(summary)
}
