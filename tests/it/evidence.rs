//! Evidence charts: a pump whose bearing wears over hours raises an order
//! that carries a PNG of its score and the channels in its evidence over the
//! hours before the trip, and the chart survives the outbox round trip.

use crate::common;

use hums::common::metrics::Metrics;
use hums::pipeline::Pipeline;
use hums::store::outbox::{NewEntry, Status};
use hums::store::Store;
use std::sync::Arc;

#[test]
fn a_condition_order_carries_its_evidence_chart_through_the_outbox() {
    let dir = common::temp_dir("evidence");
    let cfg = common::fixture(
        "tests/fixtures/e2e.toml",
        "127.0.0.1:1883".parse().unwrap(),
        "http://127.0.0.1:9/",
    );
    let plant = Arc::new(hums::pipeline::plant::Plant::new(
        &cfg,
        &hums::pipeline::models::files::ModelFiles::load(&cfg).unwrap(),
    ));
    let mut p = Pipeline::new(&cfg, plant.clone(), Arc::new(Metrics::default()), 0);
    p.draw_evidence(6 * 3_600_000);
    let slots: Vec<(usize, &str)> =
        ["vib_de", "vib_nde", "bearing_temp", "motor_current", "flow", "discharge_pressure"]
            .iter()
            .map(|c| (plant.slot("pump-a", c).unwrap(), *c))
            .collect();
    // Four healthy hours, then the drive-end vibration and the bearing
    // temperature climb until the zone and temperature limits trip.
    let mut orders = Vec::new();
    for i in 0..(6 * 360) {
        let t = i * 10_000;
        let hours = t as f64 / 3_600_000.0;
        let wear = (hours - 4.0).max(0.0);
        let wobble = ((i * 7919) % 13) as f64 * 0.01;
        for &(slot, c) in &slots {
            let v = match c {
                "vib_de" => 1.5 + wobble + 3.0 * wear * wear,
                "vib_nde" => 1.2 + wobble + wear,
                "bearing_temp" => 50.0 + wobble + 15.0 * wear,
                "motor_current" => 38.0,
                "flow" => 125.0,
                _ => 5.1,
            };
            p.push_slot(slot, t, v);
        }
        orders.extend(p.tick(t).work_orders);
    }
    let first =
        orders.iter().find(|o| o.asset.id == "pump-a").expect("the worn pump raises an order");
    let drawing = p.evidence_drawing(first).expect("a condition order has its chart");
    let chart = drawing.render(&first.idempotency_key).expect("drawn");
    let chart = &chart;
    let info = png::Decoder::new(std::io::Cursor::new(chart.0.as_slice()))
        .read_info()
        .unwrap()
        .info()
        .clone();
    let channels =
        first.evidence.iter().map(|e| &e.channel).collect::<std::collections::BTreeSet<_>>().len();
    assert!(channels >= 1, "{first:#?}");
    // One band for the score and one per channel named in the evidence.
    assert_eq!((info.width, info.height), (1000, 60 + 190 * (1 + channels as u32)));
    std::fs::write(dir.join("evidence.png"), chart.0.as_slice()).unwrap();

    // The outbox keeps the chart beside the order, out of its JSON.
    let store = Store::open_dir(&dir.join("state")).unwrap();
    let order = hums::workorders::WorkOrder { chart: Some(chart.clone()), ..first.clone() };
    store.commit(&[NewEntry { order, status: Status::Pending, note: None }], &[], None).unwrap();
    let back = store.next_due(i64::MAX).unwrap().expect("the entry");
    assert_eq!(back.order.chart.as_ref(), Some(chart));
    assert!(
        !serde_json::to_string(&back.order).unwrap().contains("chart"),
        "the chart is not in the order's JSON"
    );
}
