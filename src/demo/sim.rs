//! The simulated plant of the demo: 3 pumps, 2 fans and a chiller with noise,
//! a daily load cycle and scheduled faults. It produces MQTT messages in the
//! three payload forms hums understands, so the demo exercises the real source.

use crate::common::types::{to_datetime, Millis};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// A message ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: String,
}

/// One sampling instant: MQTT messages, and values for Modbus registers
/// as (asset, channel, value).
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub messages: Vec<Message>,
    pub registers: Vec<(&'static str, &'static str, f64)>,
}

/// A fault the simulator injects, by asset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Vibration and bearing temperature ramp up from `start` over `ramp`.
    BearingWear { start: Millis, ramp: Millis },
    /// Vibration steps up at `start`.
    Imbalance { start: Millis },
    /// The condenser approach temperature drifts up from `start` over `ramp`.
    CondenserFouling { start: Millis, ramp: Millis },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pump,
    Fan,
    Chiller,
}

#[derive(Debug, Clone)]
struct SimAsset {
    id: &'static str,
    kind: Kind,
    /// Per-asset baseline scale, so healthy machines differ a little.
    base: f64,
    fault: Option<Fault>,
}

/// The demo plant; asset ids match `configs/demo.toml`.
#[derive(Debug)]
pub struct SimPlant {
    start: Millis,
    assets: Vec<SimAsset>,
    rng: SmallRng,
}

const MIN: Millis = 60_000;

impl SimPlant {
    /// The standard demo plant with its fault schedule, starting at `start`.
    pub fn demo(start: Millis, seed: u64) -> Self {
        let a = |id, kind, base, fault| SimAsset { id, kind, base, fault };
        Self {
            start,
            rng: SmallRng::seed_from_u64(seed),
            assets: vec![
                a("pump-01", Kind::Pump, 1.0, None),
                a(
                    "pump-02",
                    Kind::Pump,
                    1.05,
                    Some(Fault::BearingWear { start: 10 * MIN, ramp: 40 * MIN }),
                ),
                a("pump-03", Kind::Pump, 0.9, None),
                a("fan-01", Kind::Fan, 1.0, Some(Fault::Imbalance { start: 5 * MIN })),
                a("fan-02", Kind::Fan, 0.95, None),
                a(
                    "chiller-01",
                    Kind::Chiller,
                    1.0,
                    Some(Fault::CondenserFouling { start: 5 * MIN, ramp: 60 * MIN }),
                ),
            ],
        }
    }

    /// Ids of the assets with a scheduled fault, and of the healthy ones.
    pub fn faulty_and_healthy(&self) -> (Vec<&'static str>, Vec<&'static str>) {
        let (f, h): (Vec<_>, Vec<_>) = self.assets.iter().partition(|a| a.fault.is_some());
        (f.iter().map(|a| a.id).collect(), h.iter().map(|a| a.id).collect())
    }

    /// The demo plant without faults: every machine healthy (training data).
    pub fn healthy(start: Millis, seed: u64) -> Self {
        let mut p = Self::demo(start, seed);
        for a in &mut p.assets {
            a.fault = None;
        }
        p
    }

    /// Repairs an asset: its fault is gone from now on. False if it had none.
    pub fn repair(&mut self, asset: &str) -> bool {
        self.assets.iter_mut().find(|a| a.id == asset).and_then(|a| a.fault.take()).is_some()
    }

    /// Every asset's channel values at instant `t`, as (asset, channel, value).
    pub fn values(&mut self, t: Millis) -> Vec<(&'static str, &'static str, f64)> {
        let hour = to_datetime(t).timestamp() as f64 / 3600.0 % 24.0;
        // Daily load cycle: low at night, peak mid-afternoon.
        let load = 0.75 + 0.2 * ((hour - 9.0) / 24.0 * std::f64::consts::TAU).sin();
        let elapsed = t - self.start;
        let mut out = Vec::new();
        for i in 0..self.assets.len() {
            let asset = self.assets[i].clone();
            let (wear, step, fouling) = progress(asset.fault, elapsed);
            let b = asset.base;
            let values: Vec<(&'static str, f64)> = match asset.kind {
                Kind::Pump => {
                    let vib = b * (1.2 + 0.5 * load) + 4.7 * wear;
                    vec![
                        ("vib_de", self.noisy(vib, 0.08)),
                        ("vib_nde", self.noisy(vib * 0.8, 0.08)),
                        ("bearing_temp", self.noisy(48.0 + 8.0 * load + 35.0 * wear, 0.4)),
                        ("motor_current", self.noisy(b * (28.0 + 14.0 * load), 0.5)),
                        ("flow", self.noisy(b * (80.0 + 60.0 * load), 1.5)),
                        ("discharge_pressure", self.noisy(4.0 + 1.5 * load, 0.05)),
                    ]
                }
                Kind::Fan => {
                    let vib = b * (1.1 + 0.4 * load) + 3.8 * step;
                    vec![
                        ("vib_de", self.noisy(vib, 0.08)),
                        ("vib_nde", self.noisy(vib * 0.85, 0.08)),
                        ("bearing_temp", self.noisy(42.0 + 6.0 * load, 0.4)),
                        ("motor_current", self.noisy(b * (12.0 + 8.0 * load) + 0.8 * step, 0.3)),
                        ("static_pressure", self.noisy(600.0 + 250.0 * load, 8.0)),
                    ]
                }
                Kind::Chiller => {
                    let chw_supply = self.noisy(6.7, 0.1);
                    let chw_return = self.noisy(6.7 + 5.0 * load, 0.1);
                    let cw_in = self.noisy(26.0 + 3.0 * load, 0.15);
                    let cw_out = cw_in + 4.5 * load + self.noisy(0.0, 0.1);
                    let approach = 1.8 + 0.6 * load + 6.0 * fouling;
                    let cond_refrig = cw_out + approach + self.noisy(0.0, 0.1);
                    let current = b * (180.0 + 120.0 * load) * (1.0 + 0.08 * fouling);
                    vec![
                        ("vib_comp", self.noisy(1.1 + 0.3 * load, 0.06)),
                        ("motor_current", self.noisy(current, 2.0)),
                        ("chw_supply_temp", chw_supply),
                        ("chw_return_temp", chw_return),
                        ("cond_water_in_temp", cw_in),
                        ("cond_water_out_temp", cw_out),
                        ("cond_refrig_temp", cond_refrig),
                    ]
                }
            };
            out.extend(values.into_iter().map(|(ch, v)| (asset.id, ch, v)));
        }
        out
    }

    /// Everything the plant reports for one sampling instant `t`: pumps
    /// publish bare numbers, fans JSON with a timestamp, and the chiller's
    /// controller is read over Modbus (its values go to registers).
    pub fn sample(&mut self, t: Millis) -> Sample {
        let ts = to_datetime(t).to_rfc3339();
        let mut out = Sample::default();
        for (asset, ch, v) in self.values(t) {
            match self.assets.iter().find(|a| a.id == asset).map(|a| a.kind) {
                Some(Kind::Pump) => out.messages.push(Message {
                    topic: format!("plant/site-a/{asset}/{ch}"),
                    payload: format!("{v:.4}"),
                }),
                Some(Kind::Fan) => out.messages.push(Message {
                    topic: format!("telemetry/{asset}/{ch}"),
                    payload: format!(r#"{{"value":{v:.4},"ts":"{ts}","status":"ok"}}"#),
                }),
                Some(Kind::Chiller) => out.registers.push((asset, ch, v)),
                None => {}
            }
        }
        out
    }

    /// A normally distributed value around `mean` (Box–Muller).
    fn noisy(&mut self, mean: f64, sd: f64) -> f64 {
        let u1: f64 = self.rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = self.rng.random();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// (wear ramp, imbalance step, fouling ramp), each in [0, 1].
fn progress(fault: Option<Fault>, elapsed: Millis) -> (f64, f64, f64) {
    let ramp =
        |start: Millis, len: Millis| ((elapsed - start) as f64 / len.max(1) as f64).clamp(0.0, 1.0);
    match fault {
        Some(Fault::BearingWear { start, ramp: len }) => (ramp(start, len), 0.0, 0.0),
        Some(Fault::Imbalance { start }) => (0.0, if elapsed >= start { 1.0 } else { 0.0 }, 0.0),
        Some(Fault::CondenserFouling { start, ramp: len }) => (0.0, 0.0, ramp(start, len)),
        None => (0.0, 0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_follow_the_schedule() {
        let mut p = SimPlant::demo(0, 7);
        let vib = |p: &mut SimPlant, t: Millis, topic: &str| -> f64 {
            let m = p.sample(t).messages.into_iter().find(|m| m.topic == topic).unwrap();
            m.payload.parse().unwrap()
        };
        let before = vib(&mut p, 0, "plant/site-a/pump-02/vib_de");
        let after = vib(&mut p, 60 * MIN, "plant/site-a/pump-02/vib_de");
        assert!(before < 2.8 && after > 4.5, "bearing wear ramps vibration: {before} → {after}");
        let healthy = vib(&mut p, 60 * MIN, "plant/site-a/pump-01/vib_de");
        assert!(healthy < 2.5, "healthy pump stays in zone B: {healthy}");
        let s = p.sample(0);
        assert_eq!(
            s.registers.iter().filter(|r| r.0 == "chiller-01").count(),
            7,
            "the chiller is read over Modbus"
        );
        assert!(s.messages.iter().all(|m| !m.topic.contains("chiller")));
        assert_eq!(p.faulty_and_healthy().0, ["pump-02", "fan-01", "chiller-01"]);
    }
}
