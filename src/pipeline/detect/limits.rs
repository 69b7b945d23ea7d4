//! Per-feature limits at warning, alarm and critical, each with its own clear
//! level so a value hovering at a limit does not chatter.

use super::Finding;
use crate::common::types::{to_datetime, Evidence, Millis, Severity};
use crate::config::schema::{Direction, Feature, Level};
use crate::pipeline::features::FeatureTable;
use crate::pipeline::models::calibrated;
use crate::pipeline::plant::{LimitRule, Plant};

/// The level a value holds given the level it held before (hysteresis).
pub fn level(rule: &LimitRule, value: f64, current: Option<Severity>) -> Option<(Severity, Level)> {
    let beyond = |a: f64, b: f64| match rule.direction {
        Direction::High => a >= b,
        Direction::Low => a <= b,
    };
    let inside_clear = |v: f64, clear: f64| match rule.direction {
        Direction::High => v > clear,
        Direction::Low => v < clear,
    };
    rule.levels.iter().rev().find_map(|&(sev, lv)| {
        let tripped = beyond(value, lv.set);
        let held = current.is_some_and(|c| c >= sev) && inside_clear(value, lv.clear);
        (tripped || held).then_some((sev, lv))
    })
}

/// Anomaly score of a value under a rule: 0 at the normal side of the least
/// severe level's clear value, 0.5 at the alarm level (or the only level
/// there is), rising towards 1 beyond it.
pub fn score(rule: &LimitRule, value: f64) -> f64 {
    let Some(&(_, first)) = rule.levels.first() else { return 0.0 };
    let alarm = rule
        .levels
        .iter()
        .find(|(s, _)| *s == Severity::Alarm)
        .or(rule.levels.last())
        .map_or(first, |l| l.1);
    let sign = if rule.direction == Direction::High { 1.0 } else { -1.0 };
    let (zero, limit) = (sign * first.clear, sign * alarm.set);
    let v = sign * value;
    if limit > zero {
        calibrated((v - zero) / (limit - zero))
    } else if v >= limit {
        0.5
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    level: Option<Severity>,
    since: Millis,
}

/// Evaluates every asset's limit rules.
#[derive(Debug)]
pub struct LimitDetector {
    /// Per asset, per rule.
    state: Vec<Vec<State>>,
}

impl LimitDetector {
    pub fn new(plant: &Plant) -> Self {
        Self {
            state: plant.assets.iter().map(|a| vec![State::default(); a.limits.len()]).collect(),
        }
    }

    /// Whether a reading of `value` on rule `rule` of asset `asset` could trip
    /// a level of at least `least` that the rule does not hold yet. Only rules
    /// on a feature that [follows the values](Feature::follows_values) can.
    pub fn could_trip(
        &self,
        plant: &Plant,
        (asset, rule): (usize, usize),
        value: f64,
        least: Severity,
    ) -> bool {
        let Some(r) = plant.assets.get(asset).and_then(|a| a.limits.get(rule)) else {
            return false;
        };
        if !r.feature.follows_values() {
            return false;
        }
        let v = if r.feature == Feature::Rms { value.abs() } else { value };
        let held = self.state.get(asset).and_then(|s| s.get(rule)).and_then(|s| s.level);
        level(r, v, None).is_some_and(|(sev, _)| sev >= least && held.is_none_or(|h| h < sev))
    }

    /// Evaluates the limit rules of `assets`.
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
            let Some(asset) = plant.assets.get(ai) else { continue };
            for (ri, rule) in asset.limits.iter().enumerate() {
                let st = &mut self.state[ai][ri];
                let ch = &asset.channels[rule.channel];
                let Some(value) = table.get(ch.slot, rule.feature) else {
                    *st = State::default(); // no trustworthy data: judge nothing
                    continue;
                };
                scores[ai] = scores[ai].max(score(rule, value));
                match level(rule, value, st.level) {
                    None => *st = State::default(),
                    Some((sev, lv)) => {
                        if st.level.is_none() {
                            st.since = now;
                        }
                        st.level = Some(sev);
                        out.push(Finding {
                            asset: ai,
                            failure_mode: rule.failure_mode,
                            severity: sev,
                            evidence: Evidence {
                                channel: ch.name.to_string(),
                                feature: rule.feature.name().into(),
                                value,
                                limit: Some(lv.set),
                                unit: ch.unit.clone(),
                                zone: None,
                                since: to_datetime(st.since),
                                note: format!(
                                    "{} {} limit",
                                    if rule.direction == Direction::High {
                                        "above"
                                    } else {
                                        "below"
                                    },
                                    sev
                                ),
                                due_by: None,
                            },
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(direction: Direction) -> LimitRule {
        let (w, a, c) = match direction {
            Direction::High => ((70.0, 65.0), (80.0, 75.0), (90.0, 85.0)),
            Direction::Low => ((10.0, 12.0), (5.0, 7.0), (2.0, 3.0)),
        };
        LimitRule {
            channel: 0,
            feature: Feature::Mean,
            direction,
            failure_mode: 0,
            levels: vec![
                (Severity::Warning, Level { set: w.0, clear: w.1 }),
                (Severity::Alarm, Level { set: a.0, clear: a.1 }),
                (Severity::Critical, Level { set: c.0, clear: c.1 }),
            ],
        }
    }

    #[test]
    fn high_limits_trip_and_clear_with_hysteresis() {
        let r = rule(Direction::High);
        let sev = |v, cur| level(&r, v, cur).map(|l| l.0);
        assert_eq!(sev(60.0, None), None);
        assert_eq!(sev(72.0, None), Some(Severity::Warning));
        assert_eq!(sev(81.0, None), Some(Severity::Alarm));
        assert_eq!(sev(95.0, None), Some(Severity::Critical));
        // Below set but above clear: holds the level it had.
        assert_eq!(sev(78.0, Some(Severity::Alarm)), Some(Severity::Alarm));
        assert_eq!(sev(78.0, None), Some(Severity::Warning));
        assert_eq!(sev(88.0, Some(Severity::Critical)), Some(Severity::Critical));
        // Below clear: drops to the level that still holds.
        assert_eq!(sev(74.0, Some(Severity::Alarm)), Some(Severity::Warning));
        assert_eq!(sev(64.0, Some(Severity::Warning)), None);
    }

    #[test]
    fn low_limits_mirror_high_ones() {
        let r = rule(Direction::Low);
        let sev = |v, cur| level(&r, v, cur).map(|l| l.0);
        assert_eq!(sev(20.0, None), None);
        assert_eq!(sev(4.0, None), Some(Severity::Alarm));
        assert_eq!(sev(6.0, Some(Severity::Alarm)), Some(Severity::Alarm));
        assert_eq!(sev(8.0, Some(Severity::Alarm)), Some(Severity::Warning));
        assert_eq!(sev(13.0, Some(Severity::Warning)), None);
    }

    #[test]
    fn scores_are_half_at_the_alarm_level() {
        let high = rule(Direction::High);
        assert_eq!(score(&high, 60.0), 0.0, "inside the warning clear level");
        assert!((score(&high, 80.0) - 0.5).abs() < 1e-12);
        assert!(score(&high, 72.0) > 0.0 && score(&high, 72.0) < 0.5);
        assert!(score(&high, 95.0) > 0.5 && score(&high, 95.0) < 1.0);
        let low = rule(Direction::Low);
        assert!((score(&low, 5.0) - 0.5).abs() < 1e-12);
        assert_eq!(score(&low, 20.0), 0.0);
        assert!(score(&low, 1.0) > 0.5);
    }
}
