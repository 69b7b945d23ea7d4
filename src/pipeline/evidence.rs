//! The chart a work order carries: for a trend's prediction, the indicator's
//! history with its fit, failure level, crossing and due date; for anything
//! else, the anomaly score and each channel named in the evidence over the
//! recent hours, with the limits crossed and the trip marked.

use crate::common::types::WorkKind;
use crate::pipeline::charts::{self, EvidenceChart, Panel, Png, TrendChart};
use crate::pipeline::detect::trend::{Prediction, TrendDetector};
use crate::pipeline::plant::Plant;
use crate::pipeline::recent::Recent;
use crate::workorders::WorkOrder;
use std::sync::Arc;

/// Channel panels at most.
const MAX_CHANNELS: usize = 4;

/// An order's chart, gathered from the pipeline's recent history and ready
/// to draw on another thread (drawing takes milliseconds).
#[derive(Debug, Clone)]
pub enum Drawing {
    /// The anomaly score and the channels in the evidence.
    Evidence(EvidenceChart),
    /// A trend's indicator history with its fit and due date.
    Trend {
        title: String,
        unit: String,
        points: Vec<(crate::common::types::Millis, f64)>,
        limit: f64,
        prediction: Option<Prediction>,
        now: crate::common::types::Millis,
        due: Option<crate::common::types::Millis>,
    },
}

impl Drawing {
    /// The chart as PNG; `None` when it cannot be drawn (logged with `key`).
    pub fn render(&self, key: &str) -> Option<Png> {
        let png = match self {
            Drawing::Evidence(chart) => charts::png(chart, chart.size()),
            Drawing::Trend { title, unit, points, limit, prediction, now, due } => {
                let chart = TrendChart {
                    title: title.clone(),
                    unit: unit.clone(),
                    points,
                    limit: *limit,
                    prediction: prediction.as_ref(),
                    now: *now,
                    due: *due,
                };
                charts::png(&chart, (1000, 460))
            }
        };
        match png {
            Ok(bytes) => Some(Png(Arc::new(bytes))),
            Err(e) => {
                tracing::warn!(key, error = %e, "the work order goes without its chart");
                None
            }
        }
    }
}

/// What the order's chart shows; `None` for orders that need none
/// (preventive, instrument).
pub fn drawing(
    plant: &Plant,
    recent: &Recent,
    trends: &TrendDetector,
    wo: &WorkOrder,
) -> Option<Drawing> {
    if !matches!(wo.kind, WorkKind::Condition | WorkKind::PredictedFailure) {
        return None;
    }
    let a = plant.asset_index(&wo.asset.id)?;
    let asset = &plant.assets[a];
    let at = wo.detected_at.timestamp_millis();
    let trend = asset
        .trends
        .iter()
        .enumerate()
        .find(|(_, t)| asset.failure_modes[t.failure_mode].id == wo.failure_mode);
    if let Some((r, rule)) = trend {
        return Some(Drawing::Trend {
            title: format!("{}: {}", wo.title, rule.name(asset)),
            unit: asset.channels[rule.channel].unit.clone(),
            points: trends.history(a, r).copied().collect(),
            limit: rule.limit,
            prediction: trends.prediction(a, r).cloned(),
            now: at,
            due: wo.due_by.map(|d| d.timestamp_millis()),
        });
    }
    let mut panels = vec![Panel {
        title: format!("{}: anomaly score (0.5 is the control limit)", asset.id),
        unit: "score".into(),
        points: recent.score(a),
        limit: Some(0.5),
    }];
    let mut named: Vec<usize> = Vec::new();
    for e in &wo.evidence {
        if let Some(c) = asset.channel_index(&e.channel).filter(|c| !named.contains(c)) {
            named.push(c);
            let ch = &asset.channels[c];
            panels.push(Panel {
                title: format!(
                    "{} ({} of the window; evidence {} {:.3} {})",
                    ch.name, e.feature, e.feature, e.value, e.unit
                ),
                unit: ch.unit.clone(),
                points: recent.channel(ch.slot),
                limit: e.limit,
            });
        }
    }
    // Evidence that names no channel (a model's verdict): show the asset's first channels.
    if named.is_empty() {
        for ch in asset.channels.iter().take(MAX_CHANNELS) {
            panels.push(Panel {
                title: format!("{} (window mean)", ch.name),
                unit: ch.unit.clone(),
                points: recent.channel(ch.slot),
                limit: None,
            });
        }
    }
    panels.truncate(1 + MAX_CHANNELS);
    Some(Drawing::Evidence(EvidenceChart { title: wo.title.clone(), panels, trip: at }))
}
