//! The evidence-chart worker: one thread that draws the charts of committed
//! orders, one at a time, and stores them for delivery to attach. Drawing a
//! chart takes milliseconds of CPU; a storm of orders must not take the
//! cores from judging and delivery, so the worker rests as long as it drew.

use crate::pipeline::evidence::Drawing;
use crate::store::Store;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;
use tracing::warn;

/// One chart to draw: its order's key and revision, and what it shows.
struct Job {
    key: String,
    revision: u32,
    drawing: Drawing,
}

/// Hands charts to the drawing thread; the thread ends once this is
/// finished or dropped, after the charts already handed to it.
pub struct ChartWorker {
    jobs: Option<mpsc::Sender<Job>>,
    /// Disconnected when the thread has ended.
    ended: mpsc::Receiver<()>,
}

impl ChartWorker {
    /// Starts the thread; `wake` tells delivery a chart is ready to attach.
    pub fn start(store: Arc<Store>, wake: Arc<Notify>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (alive, ended) = mpsc::channel::<()>();
        std::thread::Builder::new().name("hums-charts".into()).spawn(move || {
            let _alive = alive;
            for job in queue {
                let started = Instant::now();
                if let Some(png) = job.drawing.render(&job.key) {
                    match store.set_chart(&job.key, job.revision, &png.0) {
                        Ok(_) => wake.notify_one(),
                        Err(e) => warn!(key = %job.key, error = %e, "cannot store the evidence \
                            chart; the order goes without it"),
                    }
                }
                // At most half of one core.
                std::thread::sleep(started.elapsed());
            }
        })?;
        Ok(Self { jobs: Some(jobs), ended })
    }

    /// Queues a chart for the order `key` at `revision`.
    pub fn draw(&self, key: String, revision: u32, drawing: Drawing) {
        let job = Job { key, revision, drawing };
        if self.jobs.as_ref().is_none_or(|j| j.send(job).is_err()) {
            warn!("the chart thread has stopped; the order goes without its chart");
        }
    }

    /// Lets the thread draw what it was given, waiting up to `timeout`;
    /// takes no more charts.
    pub fn finish(&mut self, timeout: std::time::Duration) {
        self.jobs = None;
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.ended.recv_timeout(timeout) {
            warn!("charts still being drawn at shutdown are left out");
        }
    }
}
