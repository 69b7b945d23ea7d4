//! ISO 10816-3 evaluation zones for broadband vibration velocity (mm/s RMS).
//! Zone C (unsatisfactory for long-term operation) raises an alarm, zone D
//! (damage may occur) a critical one.

use super::Finding;
use crate::common::types::{to_datetime, Evidence, Millis, Severity, Zone};
use crate::pipeline::features::FeatureTable;
use crate::pipeline::models::calibrated;
use crate::pipeline::plant::Plant;

/// Classifies a velocity, staying in a higher zone until the value falls
/// `hysteresis` (a fraction) below that zone's lower boundary.
pub fn classify(value: f64, b: &[f64; 3], hysteresis: f64, current: Option<Zone>) -> Zone {
    const ZONES: [Zone; 4] = [Zone::A, Zone::B, Zone::C, Zone::D];
    let raw = b.iter().filter(|&&x| value >= x).count();
    let held = current.map_or(0, |z| z as usize);
    let mut zone = raw;
    for z in (raw + 1..=held).rev() {
        if value >= b[z - 1] * (1.0 - hysteresis) {
            zone = z;
            break;
        }
    }
    ZONES[zone]
}

/// Anomaly score of a velocity: 0.5 at the B/C boundary (the alarm), about
/// 0.62 at C/D for the standard's rows, 0 at rest.
pub fn score(value: f64, b: &[f64; 3]) -> f64 {
    calibrated(value / b[1])
}

/// What a zone means for alarming.
pub fn severity(zone: Zone) -> Option<Severity> {
    match zone {
        Zone::A | Zone::B => None,
        Zone::C => Some(Severity::Alarm),
        Zone::D => Some(Severity::Critical),
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    zone: Option<Zone>,
    since: Millis,
}

/// Zone state per asset and vibration channel.
#[derive(Debug)]
pub struct ZoneDetector {
    state: Vec<Vec<State>>,
}

impl ZoneDetector {
    pub fn new(plant: &Plant) -> Self {
        Self {
            state: plant
                .assets
                .iter()
                .map(|a| {
                    vec![State::default(); a.vibration.as_ref().map_or(0, |v| v.channels.len())]
                })
                .collect(),
        }
    }

    /// Whether a reading of `value` on the `k`th vibration channel of
    /// `asset` could put it in a zone of at least `least` that it is not in
    /// yet (see [`super::limits::LimitDetector::could_trip`]).
    pub fn could_trip(
        &self,
        plant: &Plant,
        (asset, k): (usize, usize),
        value: f64,
        least: Severity,
    ) -> bool {
        let Some(rule) = plant.assets.get(asset).and_then(|a| a.vibration.as_ref()) else {
            return false;
        };
        if !rule.feature.follows_values() {
            return false;
        }
        let held = self.state.get(asset).and_then(|s| s.get(k)).and_then(|s| s.zone);
        let zone = classify(value.abs(), &rule.boundaries, 0.0, None);
        severity(zone)
            .is_some_and(|sev| sev >= least && held.and_then(severity).is_none_or(|h| h < sev))
    }

    /// Evaluates the zones of `assets`.
    pub fn step(
        &mut self,
        plant: &Plant,
        table: &FeatureTable,
        now: Millis,
        assets: impl IntoIterator<Item = usize>,
        scores: &mut [f64],
        out: &mut Vec<Finding>,
    ) {
        for ai in assets {
            let Some(rule) = plant.assets.get(ai).and_then(|a| a.vibration.as_ref()) else {
                continue;
            };
            let asset = &plant.assets[ai];
            for (k, &ci) in rule.channels.iter().enumerate() {
                let ch = &asset.channels[ci];
                let st = &mut self.state[ai][k];
                let Some(value) = table.get(ch.slot, rule.feature) else {
                    *st = State::default();
                    continue;
                };
                scores[ai] = scores[ai].max(score(value, &rule.boundaries));

                let zone = classify(value, &rule.boundaries, rule.hysteresis, st.zone);
                let previous_sev = st.zone.and_then(severity);
                st.zone = Some(zone);
                let Some(sev) = severity(zone) else { continue };
                if previous_sev.is_none() {
                    st.since = now;
                }
                let limit = rule.boundaries[zone as usize - 1];
                out.push(Finding {
                    asset: ai,
                    failure_mode: rule.failure_mode,
                    severity: sev,
                    evidence: Evidence {
                        channel: ch.name.to_string(),
                        feature: rule.feature.name().into(),
                        value,
                        limit: Some(limit),
                        unit: ch.unit.clone(),
                        zone: Some(zone),
                        since: to_datetime(st.since),
                        note: format!("ISO 10816-3 zone {zone} (boundary {limit} mm/s)"),
                        due_by: None,
                    },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{Foundation, Iso10816, Machine};
    use crate::config::zones::{boundaries, standard_boundaries};

    #[test]
    fn group2_rigid_zones() {
        let b = standard_boundaries(2, Foundation::Rigid);
        assert_eq!(b, [1.4, 2.8, 4.5]);
        assert_eq!(classify(1.0, &b, 0.05, None), Zone::A);
        assert_eq!(classify(2.0, &b, 0.05, None), Zone::B);
        assert_eq!(classify(3.0, &b, 0.05, None), Zone::C);
        assert_eq!(classify(7.3, &b, 0.05, None), Zone::D);
    }

    #[test]
    fn zones_hold_within_the_hysteresis_band() {
        let b = [1.4, 2.8, 4.5];
        assert_eq!(classify(4.4, &b, 0.05, Some(Zone::D)), Zone::D);
        assert_eq!(classify(4.2, &b, 0.05, Some(Zone::D)), Zone::C);
        assert_eq!(classify(2.7, &b, 0.05, Some(Zone::D)), Zone::C);
        assert_eq!(classify(2.0, &b, 0.05, Some(Zone::D)), Zone::B);
        assert_eq!(classify(4.4, &b, 0.05, Some(Zone::B)), Zone::C);
    }

    #[test]
    fn other_rows_and_overrides() {
        assert_eq!(standard_boundaries(1, Foundation::Flexible), [3.5, 7.1, 11.0]);
        assert_eq!(standard_boundaries(2, Foundation::Flexible), [2.3, 4.5, 7.1]);
        let mut iso = Iso10816::default();
        iso.boundaries.insert("group2_rigid".into(), [1.0, 2.0, 3.0]);
        assert_eq!(
            boundaries(&iso, &Machine { group: 2, foundation: Foundation::Rigid }),
            [1.0, 2.0, 3.0]
        );
        assert_eq!(
            boundaries(&iso, &Machine { group: 1, foundation: Foundation::Rigid }),
            [2.3, 4.5, 7.1]
        );
    }
}
