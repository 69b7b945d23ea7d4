//! Shelving and out of service, ISA-18.2 style. A suppressed alarm keeps
//! running its state machine, but what it raises, escalates or clears is
//! withheld from the planner (and recorded). When the suppression ends (a
//! shelf expires, an operator unshelves or returns the asset to service), what
//! is still withheld is released: an alarm still active then raises its order.
//!
//! Withheld events are compacted as they come: an episode that was raised and
//! cleared while suppressed leaves nothing, an escalation of a withheld raise
//! becomes a raise at the higher severity.

use crate::common::types::{Evidence, Millis, Severity};
use crate::pipeline::alarms::{AlarmEvent, Transition};
use crate::pipeline::plant::Plant;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an alarm is taken out of annunciation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// For a while, with a reason; always expires.
    Shelved,
    /// The whole asset, until it is returned to service.
    OutOfService,
}

impl Kind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Shelved => "shelved",
            Kind::OutOfService => "out_of_service",
        }
    }

    /// The inverse of [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "shelved" => Some(Kind::Shelved),
            "out_of_service" => Some(Kind::OutOfService),
            _ => None,
        }
    }
}

/// One shelf or out-of-service entry, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    pub id: i64,
    pub asset: String,
    /// `None`: every failure mode of the asset.
    pub failure_mode: Option<String>,
    pub kind: Kind,
    pub reason: String,
    /// Who asked (a token's name, or the user at the command line).
    pub by: String,
    pub since: Millis,
    /// When a shelf expires; `None` for out of service.
    pub until: Option<Millis>,
}

impl Suppression {
    /// Whether it covers an alarm of `asset` and failure mode `fm` (ids).
    pub fn covers(&self, asset: &str, fm: &str) -> bool {
        self.asset == asset && self.failure_mode.as_deref().is_none_or(|f| f == fm)
    }
}

/// A withheld alarm transition, as recorded (ids rather than plant indices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithheldEvent {
    /// The suppression that withheld it.
    pub suppression: i64,
    pub asset: String,
    pub failure_mode: String,
    /// `raised`, `escalated` or `cleared`.
    pub transition: String,
    pub severity: Option<Severity>,
    pub episode: Millis,
    pub at: Millis,
    pub evidence: Vec<Evidence>,
}

/// The suppressions in force and what they withhold.
#[derive(Debug, Default)]
pub struct Suppressor {
    /// In force, with the asset index and failure-mode index they resolve to.
    active: Vec<(Suppression, usize, Option<usize>)>,
    withheld: BTreeMap<(usize, usize), Vec<AlarmEvent>>,
    /// Ids of every entry last given to `set`, in force or naming something gone.
    given: Vec<i64>,
}

/// What one evaluation's suppression did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Transitions let through to the planner (released ones included).
    pub events: Vec<AlarmEvent>,
    /// Transitions withheld at this evaluation, to record.
    pub withheld: Vec<WithheldEvent>,
    /// Shelves that expired at this evaluation (ids).
    pub expired: Vec<i64>,
    /// Alarms whose withheld transitions were released.
    pub released: Vec<(usize, usize)>,
}

impl Suppressor {
    /// Replaces the suppressions in force. Entries naming assets or failure
    /// modes no longer configured are ignored (and reported).
    pub fn set(&mut self, plant: &Plant, list: Vec<Suppression>) -> Vec<Suppression> {
        let mut unknown = Vec::new();
        self.active.clear();
        self.given = list.iter().map(|s| s.id).collect();
        for s in list {
            let Some(a) = plant.asset_index(&s.asset) else {
                unknown.push(s);
                continue;
            };
            let fm = match &s.failure_mode {
                None => None,
                Some(f) => match plant.assets[a].failure_modes.iter().position(|m| m.id == *f) {
                    Some(i) => Some(i),
                    None => {
                        unknown.push(s);
                        continue;
                    }
                },
            };
            self.active.push((s, a, fm));
        }
        unknown
    }

    /// Puts back what was withheld before a restart (in the order it was withheld).
    pub fn restore_withheld(&mut self, plant: &Plant, events: Vec<WithheldEvent>) {
        for w in events {
            let Some(a) = plant.asset_index(&w.asset) else { continue };
            let Some(f) = plant.assets[a].failure_modes.iter().position(|m| m.id == w.failure_mode)
            else {
                continue;
            };
            let transition = match (w.transition.as_str(), w.severity) {
                ("raised", Some(severity)) => Transition::Raised { severity, episode: w.episode },
                ("escalated", Some(to)) => {
                    Transition::Escalated { from: to, to, episode: w.episode }
                }
                ("cleared", _) => Transition::Cleared { episode: w.episode },
                _ => continue,
            };
            let ev = AlarmEvent {
                asset: a,
                failure_mode: f,
                transition,
                at: w.at,
                evidence: w.evidence,
            };
            withhold(self.withheld.entry((a, f)).or_default(), ev);
        }
    }

    /// The suppressions in force.
    pub fn list(&self) -> impl Iterator<Item = &Suppression> {
        self.active.iter().map(|(s, _, _)| s)
    }

    /// The suppression covering an alarm, if any (an out-of-service entry first).
    pub fn covering(&self, asset: usize, fm: usize) -> Option<&Suppression> {
        let mut matching = self
            .active
            .iter()
            .filter(|(_, a, f)| *a == asset && f.is_none_or(|f| f == fm))
            .map(|(s, _, _)| s);
        let first = matching.next()?;
        Some(if first.kind == Kind::OutOfService {
            first
        } else {
            matching.find(|s| s.kind == Kind::OutOfService).unwrap_or(first)
        })
    }

    /// Whether an asset is out of service.
    pub fn out_of_service(&self, asset: usize) -> bool {
        self.active.iter().any(|(s, a, _)| *a == asset && s.kind == Kind::OutOfService)
    }

    /// Expires shelves due at `now`, releases what no suppression covers any
    /// more, and withholds the transitions that a suppression covers.
    pub fn apply(&mut self, plant: &Plant, now: Millis, events: Vec<AlarmEvent>) -> Outcome {
        let mut out = Outcome::default();
        self.active.retain(|(s, _, _)| match s.until {
            Some(until) if until <= now => {
                out.expired.push(s.id);
                false
            }
            _ => true,
        });
        let free: Vec<(usize, usize)> =
            self.withheld.keys().copied().filter(|&(a, f)| self.covering(a, f).is_none()).collect();
        for key in free {
            for mut ev in self.withheld.remove(&key).unwrap_or_default() {
                ev.at = now;
                out.events.push(ev);
            }
            out.released.push(key);
        }
        for ev in events {
            let Some(s) = self.covering(ev.asset, ev.failure_mode) else {
                out.events.push(ev);
                continue;
            };
            let asset = &plant.assets[ev.asset];
            let (transition, severity, episode) = match ev.transition {
                Transition::Raised { severity, episode } => ("raised", Some(severity), episode),
                Transition::Escalated { to, episode, .. } => ("escalated", Some(to), episode),
                Transition::Cleared { episode } => ("cleared", None, episode),
            };
            out.withheld.push(WithheldEvent {
                suppression: s.id,
                asset: asset.id.to_string(),
                failure_mode: asset.failure_modes[ev.failure_mode].id.clone(),
                transition: transition.into(),
                severity,
                episode,
                at: ev.at,
                evidence: ev.evidence.clone(),
            });
            withhold(self.withheld.entry((ev.asset, ev.failure_mode)).or_default(), ev);
        }
        out
    }

    /// Whether the raise of `episode` of an alarm is withheld (so it has no order yet).
    pub fn withholds_raise(&self, key: (usize, usize), episode: Millis) -> bool {
        self.withheld.get(&key).is_some_and(|l| {
            l.iter().any(
                |e| matches!(e.transition, Transition::Raised { episode: x, .. } if x == episode),
            )
        })
    }

    /// Ids of the entries last given to [`Suppressor::set`], known or not.
    pub fn given(&self) -> &[i64] {
        &self.given
    }

    /// What is withheld now, per alarm.
    pub fn withheld(&self) -> &BTreeMap<(usize, usize), Vec<AlarmEvent>> {
        &self.withheld
    }
}

/// Adds a transition to an alarm's withheld list, compacted.
fn withhold(list: &mut Vec<AlarmEvent>, ev: AlarmEvent) {
    let episode_of = |t: &Transition| match *t {
        Transition::Raised { episode, .. }
        | Transition::Escalated { episode, .. }
        | Transition::Cleared { episode } => episode,
    };
    let episode = episode_of(&ev.transition);
    let raised_here = |l: &[AlarmEvent]| {
        l.iter().position(
            |e| matches!(e.transition, Transition::Raised { episode: x, .. } if x == episode),
        )
    };
    match ev.transition {
        Transition::Raised { .. } => list.push(ev),
        Transition::Escalated { to, .. } => {
            if let Some(i) = raised_here(list) {
                list[i].transition = Transition::Raised { severity: to, episode };
                list[i].evidence = ev.evidence;
            } else {
                list.retain(|e| {
                    !(matches!(e.transition, Transition::Escalated { .. })
                        && episode_of(&e.transition) == episode)
                });
                list.push(ev);
            }
        }
        Transition::Cleared { .. } => {
            let never_announced = raised_here(list).is_some();
            list.retain(|e| episode_of(&e.transition) != episode);
            if !never_announced {
                list.push(ev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: Transition) -> AlarmEvent {
        AlarmEvent { asset: 0, failure_mode: 0, transition: t, at: 0, evidence: Vec::new() }
    }

    #[test]
    fn an_episode_raised_and_cleared_while_withheld_leaves_nothing() {
        let mut l = Vec::new();
        withhold(&mut l, ev(Transition::Raised { severity: Severity::Warning, episode: 5 }));
        withhold(
            &mut l,
            ev(Transition::Escalated { from: Severity::Warning, to: Severity::Alarm, episode: 5 }),
        );
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].transition, Transition::Raised { severity: Severity::Alarm, episode: 5 });
        withhold(&mut l, ev(Transition::Cleared { episode: 5 }));
        assert!(l.is_empty());
    }

    #[test]
    fn an_announced_episode_keeps_its_latest_escalation_and_its_clear() {
        let mut l = Vec::new();
        for to in [Severity::Alarm, Severity::Critical] {
            withhold(&mut l, ev(Transition::Escalated { from: Severity::Warning, to, episode: 1 }));
        }
        assert_eq!(l.len(), 1);
        withhold(&mut l, ev(Transition::Cleared { episode: 1 }));
        assert_eq!(l, vec![ev(Transition::Cleared { episode: 1 })]);
    }
}
