//! Turns raised and escalated alarms into work orders carrying the failure
//! mode's maintenance knowledge and the detectors' evidence.

use crate::common::types::{to_datetime, Evidence, Millis, Severity};
use crate::pipeline::alarms::{AlarmEvent, Transition};
use crate::pipeline::plant::Plant;
use crate::pipeline::plant::{FailureModeInfo, Interval};
use crate::pipeline::usage::{Due, Meter};
use crate::workorders::{priority_label, AssetRef, WorkEvent, WorkOrder};
use std::collections::HashMap;

/// Plans work orders; remembers each open episode's revision.
///
/// An asset's learned normal usually trips before its limits and zones name
/// the fault. So that one fault makes one order, a specific condition alarm
/// raised while the asset's early warning (its baseline failure mode) is
/// active does not open an order of its own: it updates the early warning's
/// order with the diagnosis, and its escalations update it further.
#[derive(Debug, Default)]
pub struct Planner {
    revisions: HashMap<String, u32>,
    /// Per asset, the key of its active early-warning order.
    early: HashMap<usize, String>,
    /// Key of a specific alarm episode → (asset, the early-warning order it updates).
    joined: HashMap<String, (usize, String)>,
    /// Highest severity each open order has been sent with: an update never lowers it.
    severity: HashMap<String, Severity>,
    /// When each open order was raised, and for which asset.
    opened: HashMap<String, (usize, Millis)>,
    /// Orders a repair check found not fixed → the order raised in their
    /// place, which the episode's further updates go to.
    reraised: HashMap<String, String>,
    /// Per asset that raised while a neighbour's order was open (the likely
    /// source): (the source's order, this asset's one order). While the
    /// source's order is open, every later raise of the asset updates that
    /// one order instead of opening another.
    sympathetic: HashMap<usize, (String, String)>,
    /// Own keys of the alarm episodes raised and not yet cleared: an order
    /// is never forgotten while the episode that opened it is active.
    active: std::collections::HashSet<String>,
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
    /// Continues an open episode after a restart: its asset, failure mode
    /// and key, when it was raised, the highest revision stored under that
    /// key, and, for an episode that sent no order of its own, the order it
    /// updated (from the outbox) with that order's highest revision.
    #[allow(clippy::too_many_arguments)]
    pub fn restore_open(
        &mut self,
        plant: &Plant,
        asset: usize,
        failure_mode: usize,
        key: String,
        raised: Millis,
        revision: Option<u32>,
        updated: Option<(String, Option<u32>)>,
    ) {
        let early =
            plant.assets[asset].baseline.as_ref().is_some_and(|b| b.failure_mode == failure_mode);
        self.active.insert(key.clone());
        let target = updated.filter(|(t, _)| *t != key);
        if let Some((t, r)) = &target {
            if let Some(r) = r {
                self.revisions.insert(t.clone(), *r);
            }
            self.joined.insert(key.clone(), (asset, t.clone()));
        } else if let Some(r) = revision {
            self.revisions.insert(key.clone(), r);
            // Its order still counts as the likely source of faults that spread.
            self.opened.insert(key.clone(), (asset, raised));
        }
        if early {
            self.early.insert(asset, target.map_or(key, |(t, _)| t));
        }
    }

    /// A repair check found order `old` not fixed and raised `new` (at
    /// `revision`, for `asset`, raised `at` when known) in its place: the
    /// open episode's further escalations update the new order.
    pub fn reraised(
        &mut self,
        asset: usize,
        old: &str,
        new: String,
        revision: Option<u32>,
        at: Option<Millis>,
    ) {
        if let Some(r) = revision {
            self.revisions.insert(new.clone(), r);
        }
        if let Some(s) = self.severity.get(old).copied() {
            self.severity.entry(new.clone()).or_insert(s);
        }
        if let Some(at) = at {
            self.opened.insert(new.clone(), (asset, at));
        }
        self.reraised.insert(old.to_string(), new);
    }

    /// The order that now stands for `key`: itself, or the order a failed
    /// repair check raised in its place.
    fn current(&self, mut key: String) -> String {
        // A chain is one link per failed repair; the bound only guards a cycle.
        for _ in 0..64 {
            match self.reraised.get(&key) {
                Some(next) => key = next.clone(),
                None => break,
            }
        }
        key
    }

    /// Drops what is kept for an order once no open episode updates it.
    fn forget(&mut self, key: &str) {
        self.revisions.remove(key);
        self.severity.remove(key);
        self.opened.remove(key);
        if let Some(next) = self.reraised.remove(key) {
            self.forget(&next);
        }
        // Machines that felt this order's fault stop feeling it.
        let felt: Vec<usize> =
            self.sympathetic.iter().filter(|(_, (src, _))| src == key).map(|(a, _)| *a).collect();
        for asset in felt {
            if let Some((_, own)) = self.sympathetic.remove(&asset) {
                if !self.in_use(&own) {
                    self.forget(&own);
                }
            }
        }
    }

    /// Whether an order must be kept: the episode that opened it is active,
    /// an open episode updates it, or it stands for its asset (an early
    /// warning, or the one order of a machine feeling a neighbour's fault).
    fn in_use(&self, key: &str) -> bool {
        self.active.contains(key) || self.targets(key) || self.open_for_asset(key)
    }

    /// Machines of the same class at the same location with orders raised
    /// before this one (e.g. bearings on one shaft): the first is the likely
    /// source of a fault that spreads.
    fn neighbours(&self, plant: &Plant, asset: usize, at: Millis) -> String {
        match self.source(plant, asset, at) {
            Some((_, a, t)) => format!(
                "Likely source: {} at the same location raised first, at {}; this machine may be \
                    feeling its fault.\n",
                plant.assets[a].id,
                to_datetime(t).format("%Y-%m-%d %H:%M UTC")
            ),
            None => String::new(),
        }
    }

    /// The earliest open order among the asset's neighbours and itself, if
    /// a neighbour's: (its key, its asset, when it was raised).
    fn source(&self, plant: &Plant, asset: usize, at: Millis) -> Option<(&str, usize, Millis)> {
        let me = &plant.assets[asset];
        let first = self
            .opened
            .iter()
            .filter(|(_, (a, t))| {
                *t <= at
                    && plant.assets[*a].location == me.location
                    && plant.assets[*a].class == me.class
            })
            .min_by_key(|(k, (a, t))| (*t, *a != asset, k.as_str()))?;
        let (key, &(a, t)) = first;
        (a != asset).then_some((key.as_str(), a, t))
    }

    /// The one order of an asset that raised while a neighbour's was open,
    /// while that neighbour's order still is; forgets it once it is not.
    fn sympathetic_order(&mut self, asset: usize) -> Option<String> {
        let (source, own) = self.sympathetic.get(&asset)?.clone();
        if self.opened.contains_key(&source) {
            return Some(self.current(own));
        }
        self.sympathetic.remove(&asset);
        if !self.in_use(&own) {
            self.forget(&own);
        }
        None
    }

    /// Whether some open diagnosis updates the order `key`.
    fn targets(&self, key: &str) -> bool {
        self.joined.values().any(|(_, t)| t == key)
    }

    /// A work order for a raise or escalation; `None` for a clear, or for an
    /// early warning's escalation after a diagnosis joined it.
    pub fn plan(&mut self, plant: &Plant, ev: &AlarmEvent) -> Option<WorkOrder> {
        let asset = plant.assets.get(ev.asset)?;
        let fm = asset.failure_modes.get(ev.failure_mode)?;
        let early_mode = asset.baseline.as_ref().map(|b| b.failure_mode) == Some(ev.failure_mode);
        let (mut event, severity, episode) = match ev.transition {
            Transition::Raised { severity, episode } => (WorkEvent::Raised, severity, episode),
            Transition::Escalated { to, episode, .. } => (WorkEvent::Escalated, to, episode),
            Transition::Cleared { episode } => {
                let key = idempotency_key(&plant.gateway_id, &asset.id, &fm.id, episode);
                self.active.remove(&key);
                self.cleared(ev.asset, key, early_mode);
                return None;
            }
        };
        if matches!(ev.transition, Transition::Raised { .. }) {
            let own = idempotency_key(&plant.gateway_id, &asset.id, &fm.id, episode);
            self.active.insert(own);
        }
        let own = idempotency_key(&plant.gateway_id, &asset.id, &fm.id, episode);
        let condition = fm.spec.kind == crate::common::types::WorkKind::Condition;
        let key = self.route(ev.asset, own.clone(), early_mode, condition, &mut event)?;
        let mut key = self.current(key);
        // A machine feeling a neighbour's fault gets one order, not one per
        // alarm: this episode and its escalations update that order.
        if let (WorkEvent::Raised, Some(one)) = (event, self.sympathetic_order(ev.asset)) {
            if one != key {
                event = WorkEvent::Escalated;
                self.joined.insert(own, (ev.asset, one.clone()));
                key = one;
            }
        }
        let revision = *self.revisions.entry(key.clone()).and_modify(|r| *r += 1).or_insert(1);
        if event == WorkEvent::Raised {
            if let Some((source, _, _)) = self.source(plant, ev.asset, ev.at) {
                let entry = (source.to_string(), key.clone());
                self.sympathetic.insert(ev.asset, entry);
            }
            self.opened.insert(key.clone(), (ev.asset, ev.at));
        }
        let highest = self.severity.entry(key.clone()).or_insert(severity);
        *highest = (*highest).max(severity);
        let severity = *highest;
        let spec = &fm.spec;
        let priority = priority(spec.priority, severity);
        let description = describe(asset.name.as_str(), &asset.location, &spec.cause, ev)
            + &self.neighbours(plant, ev.asset, ev.at);
        let draft = Draft { key, event, revision, severity, priority, description, at: ev.at };
        Some(order(plant, ev.asset, fm, draft, &ev.evidence))
    }

    /// An alarm episode of `asset` (its key) cleared: the asset's early
    /// warning ends if it was this one, and orders no open episode updates
    /// any more are forgotten.
    fn cleared(&mut self, asset: usize, key: String, early_mode: bool) {
        let order = self.joined.get(&key).map_or(&key, |(_, t)| t);
        if early_mode && self.early.get(&asset) == Some(order) {
            self.early.remove(&asset);
        }
        // The joined order lives on while its diagnosis is active.
        if let Some((_, target)) = self.joined.remove(&key) {
            if !self.in_use(&target) {
                self.forget(&target);
            }
        }
        if !self.in_use(&key) {
            self.forget(&key);
        }
    }

    /// Whether an order stands for its asset beyond one alarm episode: an
    /// early warning, or the one order of a machine feeling a neighbour's fault.
    fn open_for_asset(&self, key: &str) -> bool {
        self.early.values().any(|k| k == key)
            || self.sympathetic.values().any(|(src, o)| o == key && self.opened.contains_key(src))
    }

    /// The order a raise or escalation of `asset` (own key `own`) goes to:
    /// its own, or an open order it joins, which turns a raise into an
    /// update of that order (`event`). `None` when it says nothing new.
    fn route(
        &mut self,
        asset: usize,
        own: String,
        early_mode: bool,
        condition: bool,
        event: &mut WorkEvent,
    ) -> Option<String> {
        let key = match (early_mode, *event) {
            (true, WorkEvent::Raised) => {
                // A diagnosis still open on an earlier order, or an order of
                // the asset's raised before its warning: the warning belongs to it.
                let open = self
                    .joined
                    .values()
                    .find(|(a, _)| *a == asset)
                    .map(|(_, t)| t.clone())
                    .or_else(|| {
                        let mine = self.opened.iter().filter(|(_, (a, _))| *a == asset);
                        mine.min_by_key(|(k, (_, t))| (*t, k.as_str())).map(|(k, _)| k.clone())
                    });
                match open {
                    Some(target) => {
                        *event = WorkEvent::Escalated;
                        self.early.insert(asset, target.clone());
                        self.joined.insert(own, (asset, target.clone()));
                        target
                    }
                    None => {
                        self.early.insert(asset, own.clone());
                        own
                    }
                }
            }
            // Once diagnosed, the early warning's own escalations say nothing new.
            (true, WorkEvent::Escalated)
                if self.targets(self.joined.get(&own).map_or(&own, |(_, t)| t)) =>
            {
                return None
            }
            (false, WorkEvent::Raised) if condition => match self.early.get(&asset) {
                Some(target) => {
                    self.joined.insert(own, (asset, target.clone()));
                    *event = WorkEvent::Escalated;
                    target.clone()
                }
                None => own,
            },
            (_, WorkEvent::Escalated) => self.joined.get(&own).map_or(own, |(_, t)| t.clone()),
            _ => own,
        };
        Some(key)
    }

    /// The work order of a preventive task that fell due: a new order per
    /// occurrence, keyed by the meter value it fell due at.
    pub fn preventive(&self, plant: &Plant, due: &Due, meter: &Meter) -> WorkOrder {
        let asset = &plant.assets[due.asset];
        let task = &asset.preventive[due.task];
        let fm = &asset.failure_modes[task.failure_mode];
        let usage_channel = asset.usage.as_ref().map_or("", |u| &*asset.channels[u.channel].name);
        let (channel, feature, unit, limit, every) = match task.interval {
            Interval::RunHours(h) => (
                usage_channel,
                "run_hours",
                "h",
                due.threshold as f64 / 3_600_000.0,
                format!("{h} run hours"),
            ),
            Interval::Starts(n) => {
                (usage_channel, "starts", "starts", due.threshold as f64, format!("{n} starts"))
            }
            Interval::Calendar(d) => {
                let days = d as f64 / 86_400_000.0;
                (
                    "calendar",
                    "days",
                    "d",
                    (due.threshold - meter.since.unwrap_or(due.threshold)) as f64 / 86_400_000.0,
                    format!("{days} days"),
                )
            }
        };
        let due_by = to_datetime(due.at.saturating_add(task.due_within));
        let evidence = vec![Evidence {
            channel: channel.into(),
            feature: feature.into(),
            value: due.value,
            limit: Some(limit),
            unit: unit.into(),
            zone: None,
            since: to_datetime(due.at),
            note: format!("preventive task every {every}"),
            due_by: Some(due_by),
        }];
        let mut description = format!(
            "{} ({}) is due for preventive maintenance: every {every}.\n",
            asset.name,
            asset.location.join(" › ")
        );
        if asset.usage.is_some() {
            description.push_str(&format!(
                "Meter: {:.1} run hours, {} starts (counted by hums from {usage_channel}).\n",
                meter.run_hours(),
                meter.starts
            ));
        }
        let draft = Draft {
            key: idempotency_key(&plant.gateway_id, &asset.id, &fm.id, due.threshold),
            event: WorkEvent::Raised,
            revision: 1,
            severity: Severity::Warning,
            priority: fm.spec.priority.clamp(1, 4),
            description,
            at: due.at,
        };
        order(plant, due.asset, fm, draft, &evidence)
    }
}

/// What the planner decided about one revision of an order.
struct Draft {
    key: String,
    event: WorkEvent,
    revision: u32,
    severity: Severity,
    priority: u8,
    description: String,
    at: Millis,
}

/// A work order from the planner's draft, its failure mode's knowledge, the
/// asset and the evidence.
fn order(
    plant: &Plant,
    asset: usize,
    fm: &FailureModeInfo,
    head: Draft,
    evidence: &[Evidence],
) -> WorkOrder {
    let asset = &plant.assets[asset];
    let spec = &fm.spec;
    let channels: Vec<&str> = dedup(evidence.iter().map(|e| e.channel.as_str()));
    // Severity words follow the priority, so a title never says "critical"
    // on an order of high priority.
    let label = priority_label(head.priority);
    let title = title(asset, spec, head.priority, &channels);
    // Due by the evidence's own date (a predicted failure's, a preventive
    // task's) while that is ahead, else by the priority's response time.
    let response = plant.response_times.of(head.priority).as_millis();
    let due_by = match evidence.iter().filter_map(|e| e.due_by).map(|d| d.timestamp_millis()).min()
    {
        Some(d) if d > head.at => d,
        _ => head.at.saturating_add(Millis::try_from(response).unwrap_or(Millis::MAX)),
    };
    let description = format!(
        "Priority {} ({label}), due by {}.\n{}",
        head.priority,
        to_datetime(due_by).format("%Y-%m-%d %H:%M UTC"),
        head.description
    );
    WorkOrder {
        idempotency_key: head.key,
        event: head.event,
        revision: head.revision,
        kind: spec.kind,
        failure_mode: fm.id.clone(),
        title,
        description,
        priority: head.priority,
        priority_label: priority_label(head.priority).into(),
        severity: head.severity,
        asset: AssetRef {
            id: asset.id.to_string(),
            name: asset.name.clone(),
            class: asset.class.clone(),
            backend_id: asset.backend_id.clone(),
            location: asset.location.clone(),
        },
        evidence: evidence.iter().map(rounded).collect(),
        cause: spec.cause.clone(),
        actions: spec.actions.clone(),
        parts: spec.parts.clone(),
        skills: spec.skills.clone(),
        safety: spec.safety.clone(),
        estimated_hours: spec.estimated_hours,
        detected_at: to_datetime(head.at),
        due_by: Some(to_datetime(due_by)),
        gateway_id: plant.gateway_id.clone(),
        chart: None,
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

/// What an order says about its alarm: where, the likely cause, and what
/// tripped, with the values against their normal or limit and for how long.
fn describe(name: &str, location: &[String], cause: &str, ev: &AlarmEvent) -> String {
    let mut d = format!("{name} ({}).\n", location.join(" › "));
    if !cause.is_empty() {
        d.push_str(&format!("Likely cause: {cause}\n"));
    }
    d.push_str("What tripped:\n");
    for e in &ev.evidence {
        d.push_str(&format!("- {} {}: {:.4} {}", e.channel, e.feature, e.value, e.unit));
        if let Some(limit) = e.limit {
            d.push_str(&format!(" (limit {limit:.4} {})", e.unit));
        }
        if let Some(zone) = e.zone {
            d.push_str(&format!(", ISO 10816-3 zone {zone}"));
        }
        let lasted = (ev.at - e.since.timestamp_millis()).max(0);
        d.push_str(&format!(
            ", for {} since {}",
            lasted_for(lasted),
            e.since.format("%Y-%m-%d %H:%M:%S UTC")
        ));
        if !e.note.is_empty() {
            d.push_str(&format!(": {}", e.note));
        }
        d.push('\n');
    }
    d
}

/// A duration in the unit a planner reads it in.
fn lasted_for(ms: Millis) -> String {
    let minutes = ms / 60_000;
    match minutes {
        0 => format!("{} s", ms / 1000),
        1..=119 => format!("{minutes} min"),
        120..=2879 => format!("{:.1} h", ms as f64 / 3_600_000.0),
        _ => format!("{:.1} days", ms as f64 / 86_400_000.0),
    }
}

/// A failure mode's title for an asset, its severity word following `priority`.
pub fn title(
    asset: &crate::pipeline::plant::AssetInfo,
    spec: &crate::config::schema::FailureMode,
    priority: u8,
    channels: &[&str],
) -> String {
    spec.title
        .replace("{asset}", &asset.id)
        .replace("{asset_name}", &asset.name)
        .replace("{location}", &asset.location.join(" › "))
        .replace("{severity}", priority_label(priority))
        .replace("{channels}", &channels.join(", "))
}

#[cfg(test)]
#[cfg(feature = "demo")]
mod tests {
    use super::*;
    use crate::pipeline::models::files::ModelFiles;

    #[test]
    fn priority_follows_severity() {
        assert_eq!(priority(2, Severity::Alarm), 2);
        assert_eq!(priority(2, Severity::Critical), 1);
        assert_eq!(priority(1, Severity::Critical), 1);
        assert_eq!(priority(3, Severity::Warning), 4);
        assert_eq!(priority(4, Severity::Warning), 4);
    }

    /// The demo plant, an alarm event for pump-02 and its failure modes' indices.
    fn demo() -> (Plant, usize, usize, usize) {
        let cfg = crate::demo::config().unwrap();
        let plant = Plant::new(&cfg, &ModelFiles::load(&cfg).unwrap());
        let a = plant.asset_index("pump-02").unwrap();
        let index =
            |id: &str| plant.assets[a].failure_modes.iter().position(|f| f.id == id).unwrap();
        let (early, wear) = (index("pump.abnormal_behaviour"), index("pump.bearing_wear"));
        (plant, a, early, wear)
    }

    fn ev(asset: usize, fm: usize, transition: Transition) -> AlarmEvent {
        AlarmEvent { asset, failure_mode: fm, transition, at: 1_000, evidence: Vec::new() }
    }

    #[test]
    fn a_diagnosis_updates_the_early_warning_order_instead_of_opening_another() {
        let (plant, a, early, wear) = demo();
        let mut p = Planner::default();
        let raised = |severity, episode| Transition::Raised { severity, episode };
        let w = p.plan(&plant, &ev(a, early, raised(Severity::Alarm, 10))).unwrap();
        assert_eq!(
            (w.event, w.revision, w.failure_mode.as_str()),
            (WorkEvent::Raised, 1, "pump.abnormal_behaviour")
        );
        // A critical warning is not made less urgent by a diagnosis at alarm severity.
        let mut c = Planner::default();
        c.plan(&plant, &ev(a, early, raised(Severity::Critical, 10))).unwrap();
        let joined = c.plan(&plant, &ev(a, wear, raised(Severity::Alarm, 20))).unwrap();
        assert_eq!((joined.severity, joined.priority), (Severity::Critical, 1));
        let d = p.plan(&plant, &ev(a, wear, raised(Severity::Alarm, 20))).unwrap();
        assert_eq!(d.idempotency_key, w.idempotency_key, "the same order");
        assert_eq!(d.severity, Severity::Alarm);
        assert_eq!(
            (d.event, d.revision, d.failure_mode.as_str()),
            (WorkEvent::Escalated, 2, "pump.bearing_wear")
        );
        assert!(d.title.contains("bearing wear"), "{}", d.title);
        let up =
            Transition::Escalated { from: Severity::Alarm, to: Severity::Critical, episode: 20 };
        let e = p.plan(&plant, &ev(a, wear, up)).unwrap();
        assert_eq!((e.idempotency_key.as_str(), e.revision), (w.idempotency_key.as_str(), 3));
        let early_up =
            Transition::Escalated { from: Severity::Alarm, to: Severity::Critical, episode: 10 };
        assert!(
            p.plan(&plant, &ev(a, early, early_up)).is_none(),
            "the diagnosis speaks for the order now"
        );

        // After a restart with both episodes open, the diagnosis still updates the same order.
        let mut q = Planner::default();
        let specific = idempotency_key(&plant.gateway_id, "pump-02", "pump.bearing_wear", 20);
        q.restore_open(&plant, a, early, w.idempotency_key.clone(), 10, Some(3), None);
        q.restore_open(
            &plant,
            a,
            wear,
            specific,
            20,
            None,
            Some((w.idempotency_key.clone(), Some(3))),
        );
        let up2 =
            Transition::Escalated { from: Severity::Critical, to: Severity::Critical, episode: 20 };
        let r = q.plan(&plant, &ev(a, wear, up2)).unwrap();
        assert_eq!((r.idempotency_key.as_str(), r.revision), (w.idempotency_key.as_str(), 4));

        // Both clear: the next fault starts a new order.
        p.plan(&plant, &ev(a, wear, Transition::Cleared { episode: 20 }));
        p.plan(&plant, &ev(a, early, Transition::Cleared { episode: 10 }));
        let next = p.plan(&plant, &ev(a, wear, raised(Severity::Alarm, 30))).unwrap();
        assert_eq!((next.event, next.revision), (WorkEvent::Raised, 1));
        assert_ne!(next.idempotency_key, w.idempotency_key);
        assert!(p.revisions.len() == 1 && p.joined.is_empty() && p.early.is_empty(), "{p:?}");
    }

    #[test]
    fn after_a_failed_repair_check_escalations_update_the_order_raised_again() {
        let (plant, a, _, wear) = demo();
        let mut p = Planner::default();
        let first = p
            .plan(
                &plant,
                &ev(a, wear, Transition::Raised { severity: Severity::Warning, episode: 10 }),
            )
            .unwrap();
        let again = format!("{}-again", first.idempotency_key);
        p.reraised(a, &first.idempotency_key, again.clone(), Some(1), Some(2_000));
        let up =
            Transition::Escalated { from: Severity::Warning, to: Severity::Alarm, episode: 10 };
        let e = p.plan(&plant, &ev(a, wear, up)).unwrap();
        assert_eq!(
            (e.idempotency_key.as_str(), e.revision, e.event),
            (again.as_str(), 2, WorkEvent::Escalated)
        );
        // A second failed check moves it on again.
        p.reraised(a, &again, "third".into(), Some(1), None);
        let up =
            Transition::Escalated { from: Severity::Alarm, to: Severity::Critical, episode: 10 };
        assert_eq!(p.plan(&plant, &ev(a, wear, up)).unwrap().idempotency_key, "third");
        // The episode clears: nothing is kept of any of the three orders.
        assert!(p.plan(&plant, &ev(a, wear, Transition::Cleared { episode: 10 })).is_none());
        assert!(p.revisions.is_empty() && p.reraised.is_empty() && p.opened.is_empty(), "{p:?}");
    }

    #[test]
    fn an_early_warning_after_the_diagnosis_updates_the_diagnosis_order() {
        let (plant, a, early, wear) = demo();
        let mut p = Planner::default();
        let raised = |episode| Transition::Raised { severity: Severity::Alarm, episode };
        let d = p.plan(&plant, &ev(a, wear, raised(10))).unwrap();
        let w = p.plan(&plant, &ev(a, early, raised(20))).unwrap();
        assert_eq!(
            (w.idempotency_key.as_str(), w.event, w.revision),
            (d.idempotency_key.as_str(), WorkEvent::Escalated, 2),
            "one fault, one order"
        );
        // The warning clears while the wear goes on: its order is not forgotten.
        p.plan(&plant, &ev(a, early, Transition::Cleared { episode: 20 }));
        let up =
            Transition::Escalated { from: Severity::Alarm, to: Severity::Critical, episode: 10 };
        let e = p.plan(&plant, &ev(a, wear, up)).unwrap();
        assert_eq!((e.idempotency_key.as_str(), e.revision), (d.idempotency_key.as_str(), 3));
        p.plan(&plant, &ev(a, wear, Transition::Cleared { episode: 10 }));
        assert!(p.revisions.is_empty() && p.joined.is_empty() && p.early.is_empty(), "{p:?}");
        assert!(p.active.is_empty() && p.opened.is_empty(), "{p:?}");
    }

    #[test]
    fn a_new_early_warning_joins_the_order_its_open_diagnosis_updates() {
        let (plant, a, early, wear) = demo();
        let mut p = Planner::default();
        let raised = |episode| Transition::Raised { severity: Severity::Alarm, episode };
        let w = p.plan(&plant, &ev(a, early, raised(10))).unwrap();
        p.plan(&plant, &ev(a, wear, raised(20))).unwrap();
        // The warning clears while the bearing wear is still active...
        assert!(p.plan(&plant, &ev(a, early, Transition::Cleared { episode: 10 })).is_none());
        // ...and comes back: still the same fault, still the same order.
        let again = p.plan(&plant, &ev(a, early, raised(30))).unwrap();
        assert_eq!(
            (again.idempotency_key.as_str(), again.revision),
            (w.idempotency_key.as_str(), 3)
        );
        assert_eq!(again.event, WorkEvent::Escalated);
        // Everything clears: nothing is left open.
        p.plan(&plant, &ev(a, early, Transition::Cleared { episode: 30 }));
        p.plan(&plant, &ev(a, wear, Transition::Cleared { episode: 20 }));
        assert!(p.revisions.is_empty() && p.joined.is_empty() && p.early.is_empty(), "{p:?}");
    }

    #[test]
    fn a_machine_on_the_same_line_as_an_earlier_one_names_it_as_the_likely_source() {
        let mut cfg = crate::demo::config().unwrap();
        // pump-01 and pump-02 on the same loop.
        let loop1 = cfg.assets.iter().find(|a| a.id == "pump-01").unwrap().location.clone();
        cfg.assets.iter_mut().find(|a| a.id == "pump-02").unwrap().location = loop1;
        let plant = Plant::new(&cfg, &ModelFiles::load(&cfg).unwrap());
        let (p1, p2) =
            (plant.asset_index("pump-01").unwrap(), plant.asset_index("pump-02").unwrap());
        let wear = plant.assets[p1]
            .failure_modes
            .iter()
            .position(|f| f.id == "pump.bearing_wear")
            .unwrap();
        let raised = |episode| Transition::Raised { severity: Severity::Alarm, episode };
        let at = |asset, t| AlarmEvent {
            asset,
            failure_mode: wear,
            transition: raised(t),
            at: t,
            evidence: Vec::new(),
        };
        let mut p = Planner::default();
        let first = p.plan(&plant, &at(p1, 1_000)).unwrap();
        assert!(!first.description.contains("Likely source"), "{}", first.description);
        let second = p.plan(&plant, &at(p2, 2_000)).unwrap();
        assert!(second.description.contains("Likely source: pump-01"), "{}", second.description);
        // While pump-01's order is open, pump-02 feels its fault: another of
        // its alarms updates its one order instead of opening a second.
        let overload =
            plant.assets[p2].failure_modes.iter().position(|f| f.id == "pump.motor_overload");
        let other = AlarmEvent { failure_mode: overload.unwrap(), ..at(p2, 2_500) };
        let third = p.plan(&plant, &other).unwrap();
        assert_eq!(
            (third.idempotency_key.as_str(), third.event, third.revision),
            (second.idempotency_key.as_str(), WorkEvent::Escalated, 2)
        );
        let up =
            Transition::Escalated { from: Severity::Alarm, to: Severity::Critical, episode: 2_500 };
        let fourth = p.plan(&plant, &AlarmEvent { transition: up, ..other.clone() }).unwrap();
        assert_eq!(fourth.idempotency_key, second.idempotency_key, "its escalations too");

        // After a restart with pump-01's episode still open, it is still the likely source.
        let mut q = Planner::default();
        q.restore_open(&plant, p1, wear, first.idempotency_key.clone(), 1_000, Some(1), None);
        let again = q.plan(&plant, &at(p2, 3_000)).unwrap();
        assert!(again.description.contains("Likely source: pump-01"), "{}", again.description);
    }

    #[test]
    fn keys_are_deterministic() {
        assert_eq!(
            idempotency_key("gw", "pump-01", "pump.bearing_wear", 42),
            "gw:pump-01:pump.bearing_wear:42"
        );
    }
}
