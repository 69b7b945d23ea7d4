//! Turns raised and escalated alarms into work orders carrying the failure
//! mode's maintenance knowledge and the detectors' evidence.

use super::{priority_label, AssetRef, WorkEvent, WorkOrder};
use crate::alarms::{AlarmEvent, Transition};
use crate::config::Plant;
use crate::model::{to_datetime, Evidence, Millis, Severity};
use std::collections::HashMap;

/// Plans work orders; remembers each open episode's revision.
#[derive(Debug, Default)]
pub struct Planner {
    revisions: HashMap<String, u32>,
}

/// Priority for a severity: the failure mode's priority applies at alarm
/// level, one level more urgent at critical, one less at warning.
pub fn priority(base: u8, severity: Severity) -> u8 {
    match severity {
        Severity::Warning => (base + 1).min(4),
        Severity::Alarm => base.clamp(1, 4),
        Severity::Critical => base.saturating_sub(1).clamp(1, 4),
    }
}

/// The deterministic idempotency key of an alarm episode.
pub fn idempotency_key(gateway: &str, asset: &str, failure_mode: &str, episode: Millis) -> String {
    format!("{gateway}:{asset}:{failure_mode}:{episode}")
}

impl Planner {
    /// Continues an open episode's revisions after a restart.
    pub fn restore(&mut self, key: String, revision: u32) {
        self.revisions.insert(key, revision);
    }

    /// A work order for a raise or escalation; `None` for a clear.
    pub fn plan(&mut self, plant: &Plant, ev: &AlarmEvent) -> Option<WorkOrder> {
        let asset = plant.assets.get(ev.asset)?;
        let fm = asset.failure_modes.get(ev.failure_mode)?;
        let (event, severity, episode) = match ev.transition {
            Transition::Raised { severity, episode } => (WorkEvent::Raised, severity, episode),
            Transition::Escalated { to, episode, .. } => (WorkEvent::Escalated, to, episode),
            Transition::Cleared { episode } => {
                self.revisions.remove(&idempotency_key(&plant.gateway_id, &asset.id, &fm.id, episode));
                return None;
            }
        };
        let key = idempotency_key(&plant.gateway_id, &asset.id, &fm.id, episode);
        let revision = self.revisions.entry(key.clone()).and_modify(|r| *r += 1).or_insert(1);
        let spec = &fm.spec;
        let priority = priority(spec.priority, severity);
        let channels: Vec<&str> = dedup(ev.evidence.iter().map(|e| e.channel.as_str()));
        let title = spec
            .title
            .replace("{asset}", &asset.id)
            .replace("{asset_name}", &asset.name)
            .replace("{location}", &asset.location.join(" › "))
            .replace("{severity}", &severity.to_string())
            .replace("{channels}", &channels.join(", "));
        Some(WorkOrder {
            idempotency_key: key,
            event,
            revision: *revision,
            kind: spec.kind,
            failure_mode: fm.id.clone(),
            title,
            description: describe(asset.name.as_str(), &asset.location, &spec.cause, severity, &ev.evidence),
            priority,
            priority_label: priority_label(priority).into(),
            severity,
            asset: AssetRef {
                id: asset.id.to_string(),
                name: asset.name.clone(),
                class: asset.class.clone(),
                backend_id: asset.backend_id.clone(),
                location: asset.location.clone(),
            },
            evidence: ev.evidence.iter().map(rounded).collect(),
            cause: spec.cause.clone(),
            actions: spec.actions.clone(),
            parts: spec.parts.clone(),
            skills: spec.skills.clone(),
            safety: spec.safety.clone(),
            estimated_hours: spec.estimated_hours,
            detected_at: to_datetime(ev.at),
            due_by: None,
            gateway_id: plant.gateway_id.clone(),
        })
    }
}

/// Evidence with its value rounded to what a sensor can honestly claim.
fn rounded(e: &Evidence) -> Evidence {
    Evidence { value: (e.value * 1000.0).round() / 1000.0, ..e.clone() }
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn describe(name: &str, location: &[String], cause: &str, severity: Severity, evidence: &[Evidence]) -> String {
    let mut d = format!("{name} ({}) is at {severity} severity.\n", location.join(" › "));
    if !cause.is_empty() {
        d.push_str(&format!("Likely cause: {cause}\n"));
    }
    d.push_str("Evidence:\n");
    for e in evidence {
        d.push_str(&format!("- {} {}: {:.2} {}", e.channel, e.feature, e.value, e.unit));
        if let Some(limit) = e.limit {
            d.push_str(&format!(" (limit {limit} {})", e.unit));
        }
        if let Some(zone) = e.zone {
            d.push_str(&format!(", ISO 10816-3 zone {zone}"));
        }
        d.push_str(&format!(", since {}", e.since.format("%Y-%m-%d %H:%M:%S UTC")));
        d.push('\n');
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_follows_severity() {
        assert_eq!(priority(2, Severity::Alarm), 2);
        assert_eq!(priority(2, Severity::Critical), 1);
        assert_eq!(priority(1, Severity::Critical), 1);
        assert_eq!(priority(3, Severity::Warning), 4);
        assert_eq!(priority(4, Severity::Warning), 4);
    }

    #[test]
    fn keys_are_deterministic() {
        assert_eq!(idempotency_key("gw", "pump-01", "pump.bearing_wear", 42), "gw:pump-01:pump.bearing_wear:42");
    }
}
