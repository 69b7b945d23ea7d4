//! Usage meters: run hours and starts counted in event time from a channel
//! that shows the machine running (motor current, speed), and the preventive
//! tasks that fall due by run hours, starts or calendar time.

use crate::common::types::Millis;
use crate::pipeline::plant::{Interval, Plant};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const HOUR: f64 = 3_600_000.0;

/// One asset's meter, as saved across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meter {
    /// Running time counted, in milliseconds (the configured start reading included).
    pub run_ms: i64,
    pub starts: u64,
    /// Whether the machine ran at the last reading; `None` before the first.
    pub running: Option<bool>,
    /// Event time of the last reading counted.
    pub last_ts: Option<Millis>,
    /// When hums first judged the asset: calendar intervals count from here.
    pub since: Option<Millis>,
    /// Per preventive task (by failure-mode id), the meter value at which it
    /// is next due: run milliseconds, starts, or event time for calendar tasks.
    pub next_due: BTreeMap<String, i64>,
}

impl Meter {
    /// Counted run hours.
    pub fn run_hours(&self) -> f64 {
        self.run_ms as f64 / HOUR
    }
}

/// A preventive task that fell due.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub asset: usize,
    /// Index into the asset's preventive tasks.
    pub task: usize,
    /// The meter value it fell due at (run ms, starts or event time): unique per occurrence.
    pub threshold: i64,
    /// Event time it fell due.
    pub at: Millis,
    /// The meter when it fell due, in the task's unit (hours, starts, days since counting began).
    pub value: f64,
}

/// The meters of every asset that counts usage or has preventive tasks.
#[derive(Debug, Default)]
pub struct UsageMeters {
    meters: Vec<Option<Meter>>,
    due: Vec<Due>,
    changed: bool,
}

impl UsageMeters {
    /// Fresh meters, starting from each asset's configured meter readings.
    pub fn new(plant: &Plant) -> Self {
        let meters = plant
            .assets
            .iter()
            .map(|a| {
                (a.usage.is_some() || !a.preventive.is_empty()).then(|| {
                    let mut m = Meter::default();
                    if let Some(u) = &a.usage {
                        m.run_ms = (u.start.run_hours * HOUR).round() as i64;
                        m.starts = u.start.starts;
                    }
                    m
                })
            })
            .collect();
        let mut me = Self { meters, due: Vec::new(), changed: false };
        for a in 0..plant.assets.len() {
            me.schedule(plant, a);
        }
        me
    }

    /// An asset's meter, if it has one.
    pub fn meter(&self, asset: usize) -> Option<&Meter> {
        self.meters.get(asset)?.as_ref()
    }

    /// Continues from a meter saved by an earlier run. Tasks no longer
    /// configured are forgotten; new ones are scheduled from the meter.
    pub fn restore(&mut self, plant: &Plant, asset: usize, mut meter: Meter) -> bool {
        let Some(slot) = self.meters.get_mut(asset).filter(|m| m.is_some()) else { return false };
        let ids: Vec<&str> = plant.assets[asset]
            .preventive
            .iter()
            .map(|t| plant.assets[asset].failure_modes[t.failure_mode].id.as_str())
            .collect();
        meter.next_due.retain(|id, _| ids.contains(&id.as_str()));
        *slot = Some(meter);
        self.schedule(plant, asset);
        true
    }

    /// Sets when each of an asset's tasks without a due point is next due:
    /// the next whole multiple of its interval (calendar: one interval after
    /// counting began).
    fn schedule(&mut self, plant: &Plant, asset: usize) {
        let Some(m) = self.meters[asset].as_mut() else { return };
        for t in &plant.assets[asset].preventive {
            let id = &plant.assets[asset].failure_modes[t.failure_mode].id;
            if m.next_due.contains_key(id) {
                continue;
            }
            let next = match t.interval {
                Interval::RunHours(h) => {
                    next_multiple(m.run_ms, (h * HOUR).round().max(1.0) as i64)
                }
                Interval::Starts(n) => next_multiple(m.starts as i64, n.max(1) as i64),
                Interval::Calendar(d) => match m.since {
                    Some(s) => s.saturating_add(d),
                    None => continue, // scheduled at the first evaluation
                },
            };
            m.next_due.insert(id.clone(), next);
        }
    }

    /// The CMMS reports a preventive task's order done at `done`: the task is
    /// next due one interval after the work, as a floating CMMS schedule
    /// counts (run hours and starts from the meter now, calendar from `done`).
    /// False if the asset has no such task.
    pub fn completed(
        &mut self,
        plant: &Plant,
        asset: usize,
        failure_mode: &str,
        done: Millis,
    ) -> bool {
        let Some(a) = plant.assets.get(asset) else { return false };
        let Some(t) =
            a.preventive.iter().find(|t| a.failure_modes[t.failure_mode].id == failure_mode)
        else {
            return false;
        };
        let Some(m) = self.meters[asset].as_mut() else { return false };
        let next = match t.interval {
            Interval::RunHours(h) => m.run_ms.saturating_add((h * HOUR).round().max(1.0) as i64),
            Interval::Starts(n) => (m.starts as i64).saturating_add(n.max(1) as i64),
            Interval::Calendar(d) => done.saturating_add(d.max(1)),
        };
        m.next_due.insert(failure_mode.to_string(), next);
        self.changed = true;
        true
    }

    /// Counts one accepted reading of an asset's usage channel.
    pub fn observe(&mut self, plant: &Plant, asset: usize, ts: Millis, value: f64) {
        let a = &plant.assets[asset];
        let (Some(rule), Some(m)) = (a.usage.as_ref(), self.meters[asset].as_mut()) else { return };
        // A gap too long, or a clock set back (e.g. across a restart), counts nothing.
        if let (Some(true), Some(last)) = (m.running, m.last_ts) {
            let gap = ts - last;
            if (0..=rule.max_gap).contains(&gap) {
                m.run_ms += gap;
            }
        }
        let was = m.running;
        let running = match was {
            Some(true) => value >= rule.stopped_below,
            _ => value >= rule.running_above,
        };
        if was == Some(false) && running {
            m.starts += 1;
        }
        m.running = Some(running);
        m.last_ts = Some(ts);
        self.changed = true;
        for (task, t) in a.preventive.iter().enumerate() {
            let (counter, every, unit) = match t.interval {
                Interval::RunHours(h) => (m.run_ms, (h * HOUR).round().max(1.0) as i64, HOUR),
                Interval::Starts(n) => (m.starts as i64, n.max(1) as i64, 1.0),
                Interval::Calendar(_) => continue,
            };
            let Some(next) = m.next_due.get_mut(&a.failure_modes[t.failure_mode].id) else {
                continue;
            };
            if counter >= *next {
                self.due.push(Due {
                    asset,
                    task,
                    threshold: *next,
                    at: ts,
                    value: counter as f64 / unit,
                });
                // The next interval after the one due (a whole multiple, unless
                // a completion moved the schedule).
                *next = next.saturating_add(((counter - *next) / every + 1).saturating_mul(every));
            }
        }
    }

    /// The tasks that fell due at or before `now`, oldest first. Calendar
    /// tasks are checked here; meters start their calendar at the first call.
    pub fn take_due(&mut self, plant: &Plant, now: Millis) -> Vec<Due> {
        for (asset, a) in plant.assets.iter().enumerate() {
            let Some(m) = self.meters[asset].as_mut() else { continue };
            if m.since.is_none() {
                m.since = Some(now);
                self.changed = true;
                self.schedule(plant, asset);
            }
            let Some(m) = self.meters[asset].as_mut() else { continue };
            let since = m.since.unwrap_or(now);
            for (task, t) in a.preventive.iter().enumerate() {
                let Interval::Calendar(every) = t.interval else { continue };
                let Some(next) = m.next_due.get_mut(&a.failure_modes[t.failure_mode].id) else {
                    continue;
                };
                if now >= *next {
                    let value = (now - since) as f64 / 86_400_000.0;
                    self.due.push(Due { asset, task, threshold: *next, at: now, value });
                    // One order for intervals missed while hums was down.
                    let behind = (now - *next) / every.max(1) + 1;
                    *next = next.saturating_add(behind.saturating_mul(every.max(1)));
                    self.changed = true;
                }
            }
        }
        let (ready, later): (Vec<Due>, Vec<Due>) = self.due.drain(..).partition(|d| d.at <= now);
        self.due = later;
        ready
    }

    /// Every meter as (asset index, meter) when any changed since the last call.
    pub fn take_changed(&mut self) -> Vec<(usize, Meter)> {
        if !std::mem::take(&mut self.changed) {
            return Vec::new();
        }
        self.meters.iter().enumerate().filter_map(|(a, m)| Some((a, m.clone()?))).collect()
    }
}

/// The smallest multiple of `every` above `counter`.
fn next_multiple(counter: i64, every: i64) -> i64 {
    (counter.div_euclid(every) + 1).saturating_mul(every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn plant(extra: &str) -> Plant {
        let text = format!(
            r#"
[gateway]
id = "gw"
[classes.pump.channels.motor_current]
unit = "A"
[classes.pump.usage]
channel = "motor_current"
running_above = 2.0
stopped_below = 1.0
max_gap = "10m"
[classes.pump.failure_modes.grease]
title = "Grease {{asset}}"
kind = "preventive"
[classes.pump.failure_modes.inspect]
title = "Inspect {{asset}}"
kind = "preventive"
{extra}
[[assets]]
id = "p1"
name = "P1"
class = "pump"
location = ["Site"]
"#
        );
        let cfg: Config = toml::from_str(&text).unwrap();
        Plant::new(&cfg, &Default::default())
    }

    const MIN: Millis = 60_000;

    #[test]
    fn run_time_counts_only_while_running_and_not_across_gaps() {
        let p = plant("");
        let mut u = UsageMeters::new(&p);
        // Off for 10 minutes, on for 30, a 20-minute hole, on for 10 more.
        let mut t = 0;
        for _ in 0..10 {
            u.observe(&p, 0, t, 0.2);
            t += MIN;
        }
        for _ in 0..30 {
            u.observe(&p, 0, t, 5.0);
            t += MIN;
        }
        t += 20 * MIN;
        for _ in 0..10 {
            u.observe(&p, 0, t, 5.0);
            t += MIN;
        }
        let m = u.meter(0).unwrap();
        // 29 + 9 minutes between running readings: the 21-minute hole is missing data.
        assert_eq!(m.run_ms, 38 * MIN);
        assert_eq!(m.starts, 1);
    }

    #[test]
    fn hysteresis_makes_one_start_of_a_chattering_signal() {
        let p = plant("");
        let mut u = UsageMeters::new(&p);
        for (i, v) in [0.0, 2.5, 1.5, 2.1, 1.2, 3.0, 0.5, 2.2].into_iter().enumerate() {
            u.observe(&p, 0, i as Millis * 1000, v);
        }
        // 0 → run at 2.5, stays running above 1.0 until 0.5, runs again at 2.2.
        assert_eq!(u.meter(0).unwrap().starts, 2);
    }

    #[test]
    fn tasks_fall_due_at_each_interval_and_once_per_occurrence() {
        let p = plant(
            r#"
[[classes.pump.preventive]]
failure_mode = "grease"
every_run_hours = 1.0
[[classes.pump.preventive]]
failure_mode = "inspect"
every_starts = 3
"#,
        );
        let mut u = UsageMeters::new(&p);
        let mut t = 0;
        let mut due = Vec::new();
        // Seven cycles of 40 minutes on, 5 off: 280 minutes of running, 7 starts.
        for _ in 0..7 {
            for _ in 0..=40 {
                u.observe(&p, 0, t, 5.0);
                t += MIN;
            }
            for _ in 0..5 {
                u.observe(&p, 0, t, 0.0);
                t += MIN;
            }
            due.extend(u.take_due(&p, t));
        }
        let grease: Vec<_> = due.iter().filter(|d| d.task == 0).map(|d| d.threshold).collect();
        let inspect: Vec<_> = due.iter().filter(|d| d.task == 1).map(|d| d.threshold).collect();
        assert_eq!(grease, vec![60 * MIN, 120 * MIN, 180 * MIN, 240 * MIN]);
        // The first run is not a start: it was never seen stopped.
        assert_eq!(u.meter(0).unwrap().starts, 6);
        assert_eq!(inspect, vec![3, 6]);
        assert!(due.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn a_task_done_late_is_next_due_one_interval_after_the_work() {
        let p = plant(
            r#"
[[classes.pump.preventive]]
failure_mode = "grease"
every_run_hours = 1.0
"#,
        );
        let mut u = UsageMeters::new(&p);
        let mut due = Vec::new();
        let run = |u: &mut UsageMeters, from: i64, to: i64| {
            for m in from..=to {
                u.observe(&p, 0, m * MIN, 5.0);
            }
            u.take_due(&p, to * MIN)
        };
        due.extend(run(&mut u, 0, 90));
        assert_eq!(due.iter().map(|d| d.threshold).collect::<Vec<_>>(), vec![60 * MIN]);
        // Greased at 90 minutes of running, half an hour late: next at 150, not 120.
        assert!(u.completed(&p, 0, "pump.grease", 90 * MIN));
        assert!(!u.completed(&p, 0, "pump.no_such_task", 90 * MIN));
        due.extend(run(&mut u, 91, 200));
        let thresholds: Vec<_> = due.iter().map(|d| d.threshold).collect();
        assert_eq!(thresholds, vec![60 * MIN, 150 * MIN], "then every hour from there");
        assert_eq!(u.meter(0).unwrap().next_due["pump.grease"], 210 * MIN);
    }

    #[test]
    fn calendar_tasks_count_from_the_first_evaluation_and_catch_up_once() {
        let p = plant(
            r#"
[[classes.pump.preventive]]
failure_mode = "inspect"
every = "30d"
"#,
        );
        let day = 86_400_000;
        let mut u = UsageMeters::new(&p);
        assert!(u.take_due(&p, 0).is_empty());
        assert!(u.take_due(&p, 29 * day).is_empty());
        let d = u.take_due(&p, 30 * day);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].threshold, 30 * day);
        // Down for three intervals: one order, and the next is on the calendar again.
        let d = u.take_due(&p, 125 * day);
        assert_eq!(d.len(), 1);
        assert_eq!(u.meter(0).unwrap().next_due["pump.inspect"], 150 * day);
    }

    #[test]
    fn a_restored_meter_continues_where_it_stopped() {
        let p = plant(
            r#"
[[classes.pump.preventive]]
failure_mode = "grease"
every_run_hours = 1.0
"#,
        );
        let mut u = UsageMeters::new(&p);
        for i in 0..=70 {
            u.observe(&p, 0, i * MIN, 5.0);
        }
        assert_eq!(u.take_due(&p, 70 * MIN).len(), 1);
        let saved = u.take_changed();
        assert_eq!(saved.len(), 1);
        let mut v = UsageMeters::new(&p);
        assert!(v.restore(&p, 0, saved[0].1.clone()));
        for i in 71..=130 {
            v.observe(&p, 0, i * MIN, 5.0);
        }
        let d = v.take_due(&p, 130 * MIN);
        assert_eq!(d.iter().map(|d| d.threshold).collect::<Vec<_>>(), vec![120 * MIN]);
    }
}
