//! The chart a work order carries: for a trend's prediction, the indicator's
//! history with its fit, failure level, crossing and due date; for anything
//! else, the anomaly score and each channel named in the evidence over the
//! recent hours, with the limits crossed and the trip marked.

use crate::common::types::WorkKind;
use crate::pipeline::charts::{self, EvidenceChart, Panel, Png, TrendChart};
use crate::pipeline::detect::trend::TrendDetector;
use crate::pipeline::plant::Plant;
use crate::pipeline::recent::Recent;
use crate::workorders::WorkOrder;
use std::sync::Arc;

/// Channel panels at most.
const MAX_CHANNELS: usize = 4;

/// The order's chart as PNG; `None` for orders that need none (preventive,
/// instrument) or when it cannot be drawn (logged).
pub fn chart(
    plant: &Plant,
    recent: &Recent,
    trends: &TrendDetector,
    wo: &WorkOrder,
) -> Option<Png> {
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
    let png = match trend {
        Some((r, rule)) => {
            let points: Vec<_> = trends.history(a, r).copied().collect();
            let chart = TrendChart {
                title: format!("{}: {}", wo.title, rule.name(asset)),
                unit: asset.channels[rule.channel].unit.clone(),
                points: &points,
                limit: rule.limit,
                prediction: trends.prediction(a, r),
                now: at,
                due: wo.due_by.map(|d| d.timestamp_millis()),
            };
            charts::png(&chart, (1000, 460))
        }
        None => {
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
            let chart = EvidenceChart { title: wo.title.clone(), panels, trip: at };
            charts::png(&chart, chart.size())
        }
    };
    match png {
        Ok(bytes) => Some(Png(Arc::new(bytes))),
        Err(e) => {
            tracing::warn!(key = %wo.idempotency_key, error = %e, "the work order goes without \
                its chart");
            None
        }
    }
}
