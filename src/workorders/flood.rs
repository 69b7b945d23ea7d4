//! Flood control in the spirit of ISA-18.2: a budget of work orders per asset
//! and per site per rolling hour, and storm detection (many assets of one site
//! tripping at once, e.g. a power dip) that becomes one incident work order.
//! Preventive orders are scheduled, not tripped, and always pass. Nothing is
//! dropped: what is held back goes to the outbox as `held`, with a note
//! saying why, and is counted and listed.

use super::{AssetRef, WorkEvent, WorkOrder};
use crate::common::types::{Millis, WorkKind};
use crate::config::schema::Flood;
use crate::store::outbox::{NewEntry, Status};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

const HOUR: Millis = 3_600_000;

/// Decides, per planned work order, whether it is sent or held.
#[derive(Debug)]
pub struct FloodControl {
    cfg: Flood,
    gateway: String,
    storm_window: Millis,
    w: Windows,
}

/// The budgets' rolling windows: saved with the alarm states, so a restart
/// (or a reload) does not hand out a fresh budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    /// Send times of raised orders per asset and per site (last hour).
    sent_by_asset: HashMap<String, VecDeque<Millis>>,
    sent_by_site: HashMap<String, VecDeque<Millis>>,
    /// Raises per site within the storm window: (time, asset).
    raises_by_site: HashMap<String, VecDeque<(Millis, String)>>,
    /// Active storm per site: (incident key, ends at).
    storms: HashMap<String, (String, Millis)>,
    /// Grouped order per asset for the current hour: (key, created at).
    grouped: HashMap<String, (String, Millis)>,
    /// Keys whose raise was held, so their escalations are held too.
    held: HashMap<String, Millis>,
}

impl FloodControl {
    /// Flood control with empty windows.
    pub fn new(cfg: &Flood, gateway: &str) -> Self {
        Self {
            cfg: cfg.clone(),
            gateway: gateway.into(),
            storm_window: cfg.storm_window.as_millis() as Millis,
            w: Windows::default(),
        }
    }

    /// The windows as they stand, to save.
    pub fn windows(&self) -> &Windows {
        &self.w
    }

    /// Puts back windows saved by an earlier run.
    pub fn restore(&mut self, windows: Windows) {
        self.w = windows;
    }

    /// Decides the fate of one evaluation's work orders at `now`.
    pub fn admit(&mut self, orders: Vec<WorkOrder>, now: Millis) -> Vec<NewEntry> {
        self.prune(now);
        let mut out = Vec::with_capacity(orders.len());
        for wo in orders {
            // Scheduled, not tripped: never part of a storm, and not spending the budget.
            if wo.kind == WorkKind::Preventive {
                out.push(entry(wo, None));
                continue;
            }
            if wo.event != WorkEvent::Raised {
                let note = self
                    .w
                    .held
                    .contains_key(&wo.idempotency_key)
                    .then(|| "its raised order is held".to_string());
                out.push(entry(wo, note));
                continue;
            }
            let site = wo.asset.location.first().cloned().unwrap_or_default();
            let asset = wo.asset.id.clone();
            let raises = self.w.raises_by_site.entry(site.clone()).or_default();
            raises.push_back((now, asset.clone()));
            let mut distinct: Vec<&str> = raises.iter().map(|(_, a)| a.as_str()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let storm_size = distinct.len();

            if let Some((key, until)) = self.w.storms.get_mut(&site) {
                *until = now + self.storm_window;
                let note = format!("storm: part of incident {key}");
                out.push(self.hold(wo, note, now));
                continue;
            }
            if storm_size >= self.cfg.storm_assets as usize {
                let incident = self.incident(&site, &wo, now);
                let note = format!("storm: part of incident {}", incident.idempotency_key);
                self.w.storms.insert(
                    site.clone(),
                    (incident.idempotency_key.clone(), now + self.storm_window),
                );
                out.push(entry(incident, None));
                out.push(self.hold(wo, note, now));
                continue;
            }
            let site_sent = self.w.sent_by_site.get(&site).map_or(0, VecDeque::len);
            if site_sent >= self.cfg.per_site_per_hour as usize {
                let note = format!(
                    "site budget of {} work orders per hour exhausted for {site:?}",
                    self.cfg.per_site_per_hour
                );
                out.push(self.hold(wo, note, now));
                continue;
            }
            let asset_sent = self.w.sent_by_asset.get(&asset).map_or(0, VecDeque::len);
            if asset_sent >= self.cfg.per_asset_per_hour as usize {
                if let Some((key, _)) = self.w.grouped.get(&asset) {
                    let note = format!("asset budget exhausted: grouped into {key}");
                    out.push(self.hold(wo, note, now));
                } else {
                    let grouped = self.grouped_order(&wo, asset_sent, now);
                    let note =
                        format!("asset budget exhausted: grouped into {}", grouped.idempotency_key);
                    self.w.grouped.insert(asset.clone(), (grouped.idempotency_key.clone(), now));
                    self.record_sent(&site, &asset, now);
                    out.push(entry(grouped, None));
                    out.push(self.hold(wo, note, now));
                }
                continue;
            }
            self.record_sent(&site, &asset, now);
            out.push(entry(wo, None));
        }
        out
    }

    fn hold(&mut self, wo: WorkOrder, note: String, now: Millis) -> NewEntry {
        self.w.held.insert(wo.idempotency_key.clone(), now);
        NewEntry { order: wo, status: Status::Held, note: Some(note) }
    }

    fn record_sent(&mut self, site: &str, asset: &str, now: Millis) {
        self.w.sent_by_site.entry(site.into()).or_default().push_back(now);
        self.w.sent_by_asset.entry(asset.into()).or_default().push_back(now);
    }

    fn prune(&mut self, now: Millis) {
        for q in self.w.sent_by_asset.values_mut().chain(self.w.sent_by_site.values_mut()) {
            while q.front().is_some_and(|t| *t <= now - HOUR) {
                q.pop_front();
            }
        }
        self.w.sent_by_asset.retain(|_, q| !q.is_empty());
        self.w.sent_by_site.retain(|_, q| !q.is_empty());
        let window = self.storm_window;
        for q in self.w.raises_by_site.values_mut() {
            while q.front().is_some_and(|(t, _)| *t <= now - window) {
                q.pop_front();
            }
        }
        self.w.raises_by_site.retain(|_, q| !q.is_empty());
        self.w.storms.retain(|_, (_, until)| *until > now);
        self.w.grouped.retain(|_, (_, at)| *at > now - HOUR);
        self.w.held.retain(|_, at| *at > now - 24 * HOUR);
    }

    /// One work order standing for a site-wide storm.
    fn incident(&self, site: &str, trigger: &WorkOrder, now: Millis) -> WorkOrder {
        let raises = &self.w.raises_by_site[site];
        let mut assets: Vec<&str> = raises.iter().map(|(_, a)| a.as_str()).collect();
        assets.sort_unstable();
        assets.dedup();
        let window = humantime::format_duration(self.cfg.storm_window);
        WorkOrder {
            idempotency_key: format!("{}:{site}:site.storm:{now}", self.gateway),
            event: WorkEvent::Raised,
            revision: 1,
            kind: WorkKind::Condition,
            failure_mode: "site.storm".into(),
            title: format!("{site}: {} assets tripped within {window}", assets.len()),
            description: format!(
                "{} assets of {site} raised alarms within {window}: {}.\nA common cause \
                 (power dip, compressed air, control network, a shared utility) is more likely \
                 than {} separate faults. The individual work orders are held; list them with \
                 `hums outbox list --status held`.",
                assets.len(),
                assets.join(", "),
                assets.len()
            ),
            priority: 1,
            priority_label: super::priority_label(1).into(),
            severity: trigger.severity,
            asset: AssetRef {
                id: site.into(),
                name: site.into(),
                class: "site".into(),
                backend_id: None,
                location: vec![site.into()],
            },
            evidence: trigger.evidence.clone(),
            cause: "Site-wide event tripping many assets at once".into(),
            actions: vec![
                "Check site power quality, compressed air and the control network".into(),
                "Walk down the tripped assets and restart them in order".into(),
                "Review the held work orders and release the ones that remain valid".into(),
            ],
            parts: Vec::new(),
            skills: vec!["operations".into(), "electrical".into()],
            safety: vec!["follow the site's restart procedure after a trip".into()],
            estimated_hours: 2.0,
            detected_at: trigger.detected_at,
            due_by: None,
            gateway_id: self.gateway.clone(),
            chart: None,
        }
    }

    /// One work order standing for an asset past its hourly budget.
    fn grouped_order(&self, trigger: &WorkOrder, sent: usize, now: Millis) -> WorkOrder {
        let mut wo = trigger.clone();
        wo.idempotency_key = format!("{}:{}:asset.grouped:{now}", self.gateway, trigger.asset.id);
        wo.failure_mode = "asset.grouped".into();
        wo.title = format!(
            "{}: repeated findings ({} work orders within an hour)",
            trigger.asset.name,
            sent + 1
        );
        wo.description = format!(
            "{} has raised {sent} work orders within the last hour, past its budget of {}. \
             This order groups the latest finding ({}) and any further ones this hour, which \
             are held: `hums outbox list --status held`.\n\n{}",
            trigger.asset.name,
            self.cfg.per_asset_per_hour,
            trigger.failure_mode,
            trigger.description
        );
        wo
    }
}

fn entry(order: WorkOrder, held_because: Option<String>) -> NewEntry {
    match held_because {
        Some(note) => NewEntry { order, status: Status::Held, note: Some(note) },
        None => NewEntry { order, status: Status::Pending, note: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::types::Severity;

    fn order(asset: &str, site: &str, fm: &str, event: WorkEvent) -> WorkOrder {
        WorkOrder {
            idempotency_key: format!("gw:{asset}:{fm}:1"),
            event,
            revision: if event == WorkEvent::Raised { 1 } else { 2 },
            kind: WorkKind::Condition,
            failure_mode: fm.into(),
            title: format!("{asset} {fm}"),
            description: String::new(),
            priority: 2,
            priority_label: "high".into(),
            severity: Severity::Alarm,
            asset: AssetRef {
                id: asset.into(),
                name: asset.into(),
                class: "pump".into(),
                backend_id: None,
                location: vec![site.into()],
            },
            evidence: Vec::new(),
            cause: String::new(),
            actions: Vec::new(),
            parts: Vec::new(),
            skills: Vec::new(),
            safety: Vec::new(),
            estimated_hours: 1.0,
            detected_at: crate::common::types::to_datetime(0),
            due_by: None,
            gateway_id: "gw".into(),
            chart: None,
        }
    }

    fn cfg(per_asset: u32, per_site: u32, storm: u32) -> Flood {
        Flood {
            per_asset_per_hour: per_asset,
            per_site_per_hour: per_site,
            storm_assets: storm,
            storm_window: std::time::Duration::from_secs(60),
        }
    }

    fn statuses(entries: &[NewEntry]) -> Vec<(String, Status)> {
        entries.iter().map(|e| (e.order.failure_mode.clone(), e.status)).collect()
    }

    #[test]
    fn an_asset_past_its_budget_gets_one_grouped_order_and_the_rest_held() {
        let mut f = FloodControl::new(&cfg(2, 100, 100), "gw");
        let mut out = Vec::new();
        for (i, fm) in ["a", "b", "c", "d"].iter().enumerate() {
            out.extend(
                f.admit(vec![order("p1", "S", fm, WorkEvent::Raised)], i as Millis * 60_000),
            );
        }
        assert_eq!(
            statuses(&out),
            [
                ("a".into(), Status::Pending),
                ("b".into(), Status::Pending),
                ("asset.grouped".into(), Status::Pending),
                ("c".into(), Status::Held),
                ("d".into(), Status::Held),
            ]
        );
        assert!(out[4].note.as_deref().unwrap().contains("grouped into gw:p1:asset.grouped:"));
        // An hour later the budget is back.
        let later = f.admit(vec![order("p1", "S", "e", WorkEvent::Raised)], 2 * HOUR);
        assert_eq!(statuses(&later), [("e".into(), Status::Pending)]);
    }

    #[test]
    fn a_restart_keeps_the_spent_budget() {
        let dir = std::env::temp_dir().join(format!("hums-flood-restart-{}", std::process::id()));
        let store = crate::store::Store::open_dir(&dir).unwrap();
        let mut f = FloodControl::new(&cfg(2, 100, 100), "gw");
        for (i, fm) in ["a", "b"].iter().enumerate() {
            let out = f.admit(vec![order("p1", "S", fm, WorkEvent::Raised)], i as Millis * 60_000);
            store.commit(&out, &[], Some(f.windows())).unwrap();
        }
        // A restart (or a reload) ten minutes on: the two orders still count.
        let mut again = FloodControl::new(&cfg(2, 100, 100), "gw");
        again.restore(store.flood().unwrap().unwrap());
        let out = again.admit(vec![order("p1", "S", "c", WorkEvent::Raised)], 600_000);
        assert_eq!(
            statuses(&out),
            [("asset.grouped".into(), Status::Pending), ("c".into(), Status::Held)]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_site_past_its_budget_holds_further_orders() {
        let mut f = FloodControl::new(&cfg(10, 2, 100), "gw");
        let out: Vec<_> = (0..3)
            .flat_map(|i| {
                f.admit(vec![order(&format!("p{i}"), "S", "x", WorkEvent::Raised)], i * 600_000)
            })
            .collect();
        assert_eq!(
            out.iter().map(|e| e.status).collect::<Vec<_>>(),
            [Status::Pending, Status::Pending, Status::Held]
        );
        assert!(out[2].note.as_deref().unwrap().contains("site budget"));
        // Another site is not affected.
        let other = f.admit(vec![order("q1", "T", "x", WorkEvent::Raised)], 1_900_000);
        assert_eq!(other[0].status, Status::Pending);
    }

    #[test]
    fn a_storm_becomes_one_incident_and_escalations_of_held_orders_stay_held() {
        let mut f = FloodControl::new(&cfg(10, 1000, 5), "gw");
        let batch: Vec<WorkOrder> =
            (0..50).map(|i| order(&format!("p{i}"), "S", "trip", WorkEvent::Raised)).collect();
        let out = f.admit(batch, 1_000);
        let sent: Vec<_> = out.iter().filter(|e| e.status == Status::Pending).collect();
        assert_eq!(sent.len(), 5, "4 before the storm was recognised, then one incident");
        assert_eq!(sent.iter().filter(|e| e.order.failure_mode == "site.storm").count(), 1);
        assert_eq!(
            out.iter().filter(|e| e.status == Status::Held).count(),
            46,
            "50 raises: 4 sent, 46 held"
        );
        let incident = sent.iter().find(|e| e.order.failure_mode == "site.storm").unwrap();
        assert!(
            incident.order.title.starts_with("S: 5 assets tripped"),
            "{}",
            incident.order.title
        );
        // Still storming 30 s later: more raises are held.
        let more = f.admit(vec![order("p99", "S", "trip", WorkEvent::Raised)], 31_000);
        assert_eq!(more[0].status, Status::Held);
        // The escalation of a held raise is held too; of a sent one, sent.
        let esc = f.admit(
            vec![
                order("p10", "S", "trip", WorkEvent::Escalated),
                order("p0", "S", "trip", WorkEvent::Escalated),
            ],
            32_000,
        );
        assert_eq!(
            esc.iter().map(|e| e.status).collect::<Vec<_>>(),
            [Status::Held, Status::Pending]
        );
        // A preventive order falling due in the storm still goes out.
        let mut pm = order("p97", "S", "lubrication", WorkEvent::Raised);
        pm.kind = WorkKind::Preventive;
        assert_eq!(f.admit(vec![pm], 33_000)[0].status, Status::Pending);
        // Quiet for a storm window: the storm is over.
        let after = f.admit(vec![order("p98", "S", "trip", WorkEvent::Raised)], 200_000);
        assert_eq!(after[0].status, Status::Pending);
    }
}
