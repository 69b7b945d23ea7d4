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

/// Hands charts to the drawing thread; the thread ends when this is dropped
/// (after the charts already handed to it).
pub struct ChartWorker {
    jobs: mpsc::Sender<Job>,
}

impl ChartWorker {
    /// Starts the thread; `wake` tells delivery a chart is ready to attach.
    pub fn start(store: Arc<Store>, wake: Arc<Notify>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new().name("hums-charts".into()).spawn(move || {
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
        Ok(Self { jobs })
    }

    /// Queues a chart for the order `key` at `revision`.
    pub fn draw(&self, key: String, revision: u32, drawing: Drawing) {
        if self.jobs.send(Job { key, revision, drawing }).is_err() {
            warn!("the chart thread has stopped; the order goes without its chart");
        }
    }
}
