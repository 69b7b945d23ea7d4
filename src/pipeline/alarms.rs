//! Alarm state machines, one per (asset, failure mode):
//! normal → pending (on-delay) → active → escalated → clearing (off-delay) → normal.
//! Pure structs driven by event time, so live runs and replays agree.

use crate::common::types::{Evidence, Millis, Severity};
use crate::pipeline::detect::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An alarm as saved across restarts: asset id, failure-mode id and state.
pub type AlarmRow = (String, String, State);

/// Where an alarm stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    Normal,
    /// The condition is present but has not yet lasted `on_delay`.
    Pending {
        since: Millis,
        severity: Severity,
    },
    /// Raised. `episode` is when the condition first appeared; `escalated`
    /// says whether the severity rose after raising.
    Active {
        severity: Severity,
        episode: Millis,
        escalated: bool,
    },
    /// The condition has gone; it must stay gone for `off_delay`.
    Clearing {
        since: Millis,
        severity: Severity,
        episode: Millis,
        escalated: bool,
    },
}

impl State {
    /// Short name for status output.
    pub fn name(&self) -> &'static str {
        match self {
            State::Normal => "normal",
            State::Pending { .. } => "pending",
            State::Active { escalated: false, .. } => "active",
            State::Active { escalated: true, .. } => "escalated",
            State::Clearing { .. } => "clearing",
        }
    }
}

/// What an alarm did at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Raised { severity: Severity, episode: Millis },
    Escalated { from: Severity, to: Severity, episode: Millis },
    Cleared { episode: Millis },
}

/// Timing and threshold shared by all alarms.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub on_delay: Millis,
    pub off_delay: Millis,
    /// Findings below this severity do not count.
    pub raise_at: Severity,
}

/// One alarm's state machine.
#[derive(Debug, Clone, Copy)]
pub struct Alarm {
    pub state: State,
}

impl Default for Alarm {
    fn default() -> Self {
        Self { state: State::Normal }
    }
}

impl Alarm {
    /// Advances the alarm given the worst severity seen at `now` (or none).
    pub fn step(&mut self, t: &Timing, now: Millis, seen: Option<Severity>) -> Option<Transition> {
        let seen = seen.filter(|s| *s >= t.raise_at);
        let (next, transition) = match (self.state, seen) {
            (State::Normal, None) => (State::Normal, None),
            (State::Normal, Some(severity)) => {
                let pending = State::Pending { since: now, severity };
                return self.enter(pending, t, now);
            }
            (State::Pending { .. }, None) => (State::Normal, None),
            (State::Pending { since, severity }, Some(s)) => {
                return self.enter(State::Pending { since, severity: severity.max(s) }, t, now);
            }
            (State::Active { severity, episode, escalated }, Some(s))
            | (State::Clearing { severity, episode, escalated, .. }, Some(s)) => {
                if s > severity {
                    (
                        State::Active { severity: s, episode, escalated: true },
                        Some(Transition::Escalated { from: severity, to: s, episode }),
                    )
                } else {
                    (State::Active { severity, episode, escalated }, None)
                }
            }
            (State::Active { severity, episode, escalated }, None) => {
                return self.enter(
                    State::Clearing { since: now, severity, episode, escalated },
                    t,
                    now,
                );
            }
            (State::Clearing { since, episode, .. }, None) => {
                if now - since >= t.off_delay {
                    (State::Normal, Some(Transition::Cleared { episode }))
                } else {
                    (self.state, None)
                }
            }
        };
        self.state = next;
        transition
    }

    /// Enters a timed state, completing it at once if its delay has passed.
    fn enter(&mut self, state: State, t: &Timing, now: Millis) -> Option<Transition> {
        match state {
            State::Pending { since, severity } if now - since >= t.on_delay => {
                self.state = State::Active { severity, episode: since, escalated: false };
                Some(Transition::Raised { severity, episode: since })
            }
            State::Clearing { since, episode, .. } if now - since >= t.off_delay => {
                self.state = State::Normal;
                Some(Transition::Cleared { episode })
            }
            other => {
                self.state = other;
                None
            }
        }
    }
}

/// A raised, escalated or cleared alarm with the evidence behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmEvent {
    pub asset: usize,
    pub failure_mode: usize,
    pub transition: Transition,
    pub at: Millis,
    pub evidence: Vec<Evidence>,
}

/// All alarms of a plant, keyed by (asset, failure mode).
#[derive(Debug)]
pub struct Alarms {
    timing: Timing,
    alarms: BTreeMap<(usize, usize), Alarm>,
}

impl Alarms {
    pub fn new(timing: Timing) -> Self {
        Self { timing, alarms: BTreeMap::new() }
    }

    /// Feeds one evaluation's findings; returns the transitions it caused.
    /// `judged((asset, failure mode))` says whether there was data to judge
    /// that alarm by: without, it holds where it is, since only readings that
    /// show a condition gone may clear it (silence is the stale detector's).
    pub fn step(
        &mut self,
        now: Millis,
        findings: Vec<Finding>,
        judged: impl Fn((usize, usize)) -> bool,
    ) -> Vec<AlarmEvent> {
        let mut grouped: BTreeMap<(usize, usize), (Severity, Vec<Evidence>)> = BTreeMap::new();
        for f in findings {
            let e = grouped.entry((f.asset, f.failure_mode)).or_insert((f.severity, Vec::new()));
            e.0 = e.0.max(f.severity);
            e.1.push(f.evidence);
        }
        let keys: std::collections::BTreeSet<(usize, usize)> =
            self.alarms.keys().chain(grouped.keys()).copied().collect();
        let mut events = Vec::new();
        for key in keys {
            let seen = grouped.get(&key).map(|g| g.0);
            if seen.is_none() && !judged(key) {
                continue;
            }
            let alarm = self.alarms.entry(key).or_default();
            if let Some(transition) = alarm.step(&self.timing, now, seen) {
                events.push(AlarmEvent {
                    asset: key.0,
                    failure_mode: key.1,
                    transition,
                    at: now,
                    evidence: grouped.get(&key).map(|g| g.1.clone()).unwrap_or_default(),
                });
            }
            if alarm.state == State::Normal {
                self.alarms.remove(&key);
            }
        }
        events
    }

    /// The current state of every alarm that is not normal.
    pub fn states(&self) -> impl Iterator<Item = ((usize, usize), State)> + '_ {
        self.alarms.iter().map(|(k, a)| (*k, a.state))
    }

    /// The state of one alarm.
    pub fn state(&self, key: (usize, usize)) -> State {
        self.alarms.get(&key).map_or(State::Normal, |a| a.state)
    }

    /// The episode and severity of a raised alarm (active or clearing).
    pub fn raised(&self, key: (usize, usize)) -> Option<(Millis, Severity)> {
        match self.alarms.get(&key)?.state {
            State::Active { severity, episode, .. } | State::Clearing { severity, episode, .. } => {
                Some((episode, severity))
            }
            _ => None,
        }
    }

    /// Whether an alarm is raised (active or clearing).
    pub fn is_open(&self, key: (usize, usize)) -> bool {
        self.alarms
            .get(&key)
            .is_some_and(|a| matches!(a.state, State::Active { .. } | State::Clearing { .. }))
    }

    /// Puts back a state saved by an earlier run.
    pub fn restore(&mut self, key: (usize, usize), state: State) {
        if state != State::Normal {
            self.alarms.insert(key, Alarm { state });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::{Alarm as Al, Critical, Warning};

    const T: Timing = Timing { on_delay: 60_000, off_delay: 300_000, raise_at: Al };

    fn run(
        alarm: &mut super::Alarm,
        steps: &[(Millis, Option<Severity>)],
    ) -> Vec<(Millis, Transition)> {
        steps.iter().filter_map(|&(now, s)| alarm.step(&T, now, s).map(|t| (now, t))).collect()
    }

    #[test]
    fn normal_to_pending_to_active() {
        let mut a = super::Alarm::default();
        assert_eq!(a.step(&T, 0, Some(Al)), None);
        assert!(matches!(a.state, State::Pending { since: 0, .. }));
        assert_eq!(a.step(&T, 30_000, Some(Al)), None);
        assert_eq!(
            a.step(&T, 60_000, Some(Al)),
            Some(Transition::Raised { severity: Al, episode: 0 })
        );
        assert_eq!(a.state.name(), "active");
        // Staying active raises nothing more: one alarm per key.
        assert_eq!(a.step(&T, 70_000, Some(Al)), None);
    }

    #[test]
    fn a_short_blip_never_raises() {
        let mut a = super::Alarm::default();
        let got =
            run(&mut a, &[(0, Some(Critical)), (30_000, None), (60_000, Some(Al)), (90_000, None)]);
        assert!(got.is_empty());
        assert_eq!(a.state, State::Normal);
    }

    #[test]
    fn below_raise_at_is_ignored() {
        let mut a = super::Alarm::default();
        assert!(run(&mut a, &[(0, Some(Warning)), (120_000, Some(Warning))]).is_empty());
        assert_eq!(a.state, State::Normal);
    }

    #[test]
    fn escalation_and_off_delay() {
        let mut a = super::Alarm::default();
        let got = run(
            &mut a,
            &[
                (0, Some(Al)),
                (60_000, Some(Al)),
                (70_000, Some(Critical)),
                (80_000, Some(Al)), // falls back: still the same episode, no event
                (90_000, None),     // clearing starts
                (200_000, Some(Al)), // back before off-delay: still active, no event
                (210_000, None),
                (400_000, None),
                (510_000, None), // 300 s after 210 s
            ],
        );
        assert_eq!(
            got,
            vec![
                (60_000, Transition::Raised { severity: Al, episode: 0 }),
                (70_000, Transition::Escalated { from: Al, to: Critical, episode: 0 }),
                (510_000, Transition::Cleared { episode: 0 }),
            ]
        );
        assert_eq!(a.state, State::Normal);
    }

    #[test]
    fn escalated_state_is_reported_until_cleared() {
        let mut a = super::Alarm::default();
        run(&mut a, &[(0, Some(Al)), (60_000, Some(Al)), (61_000, Some(Critical))]);
        assert_eq!(a.state.name(), "escalated");
        a.step(&T, 62_000, None);
        assert_eq!(a.state.name(), "clearing");
        // Re-escalating from clearing emits an escalation only if it is worse.
        assert_eq!(a.step(&T, 63_000, Some(Critical)), None);
        assert_eq!(a.state.name(), "escalated");
    }

    #[test]
    fn zero_delays_raise_and_clear_at_once() {
        let t = Timing { on_delay: 0, off_delay: 0, raise_at: Warning };
        let mut a = super::Alarm::default();
        assert_eq!(
            a.step(&t, 5, Some(Warning)),
            Some(Transition::Raised { severity: Warning, episode: 5 })
        );
        assert_eq!(a.step(&t, 6, None), Some(Transition::Cleared { episode: 5 }));
    }

    #[test]
    fn manager_keys_by_asset_and_failure_mode() {
        use crate::common::types::{to_datetime, Evidence};
        let ev = || Evidence {
            channel: "vib".into(),
            feature: "mean".into(),
            value: 5.0,
            limit: Some(4.5),
            unit: "mm/s".into(),
            zone: None,
            since: to_datetime(0),
            note: String::new(),
            due_by: None,
        };
        let f = |asset, fm, severity| Finding { asset, failure_mode: fm, severity, evidence: ev() };
        let mut m = Alarms::new(Timing { on_delay: 0, off_delay: 0, raise_at: Al });
        let all = |_: (usize, usize)| true;
        let events =
            m.step(0, vec![f(0, 0, Al), f(0, 0, Critical), f(1, 0, Al), f(1, 1, Warning)], all);
        assert_eq!(events.len(), 2, "two keys raised, warning ignored: {events:?}");
        assert_eq!(events[0].evidence.len(), 2, "findings of one key are merged");
        assert_eq!(events[0].transition, Transition::Raised { severity: Critical, episode: 0 });
        assert!(m.step(1, vec![f(0, 0, Critical), f(1, 0, Al)], all).is_empty());
        let cleared = m.step(2, vec![], all);
        assert_eq!(cleared.len(), 2);
        assert_eq!(m.states().count(), 0);
    }

    #[test]
    fn silence_holds_alarms_and_only_readings_clear_them() {
        use crate::common::types::{to_datetime, Evidence};
        let ev = Evidence {
            channel: "temp".into(),
            feature: "mean".into(),
            value: 90.0,
            limit: Some(80.0),
            unit: "degC".into(),
            zone: None,
            since: to_datetime(0),
            note: String::new(),
            due_by: None,
        };
        let f = || vec![Finding { asset: 0, failure_mode: 0, severity: Al, evidence: ev.clone() }];
        let mut m = Alarms::new(Timing { on_delay: 3_000, off_delay: 10_000, raise_at: Al });
        // Pending at 0, then silent past the on-delay: still pending, with its onset.
        assert!(m.step(0, f(), |_| true).is_empty());
        assert!(m.step(5_000, vec![], |_| false).is_empty());
        assert_eq!(m.states().next().map(|(_, s)| s.name()), Some("pending"));
        // Data back, fault unchanged: raised with the original onset.
        let raised = m.step(6_000, f(), |_| true);
        assert_eq!(raised[0].transition, Transition::Raised { severity: Al, episode: 0 });
        // A silence far longer than the off-delay clears nothing.
        for t in (7_000..60_000).step_by(1_000) {
            assert!(m.step(t, vec![], |_| false).is_empty(), "cleared by silence at {t}");
        }
        assert!(m.is_open((0, 0)));
        // Data back, fault unchanged: the same episode, no new raise.
        assert!(m.step(61_000, f(), |_| true).is_empty());
        // Readings that show the condition gone clear it after the off-delay.
        assert!(m.step(62_000, vec![], |_| true).is_empty());
        let cleared = m.step(72_000, vec![], |_| true);
        assert_eq!(cleared[0].transition, Transition::Cleared { episode: 0 });
    }
}
