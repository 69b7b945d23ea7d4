//! The ISO 10816-3 zone boundaries a configuration sets: an override per
//! machine group and foundation, or the standard's own row.

use super::schema::{Foundation, Iso10816, Machine};

/// A/B, B/C and C/D boundaries from ISO 10816-3 Annex A, by group and foundation.
pub fn standard_boundaries(group: u8, foundation: Foundation) -> [f64; 3] {
    match (group, foundation) {
        // Groups 1 (large machines) and 3 (pumps > 15 kW, separate driver).
        (1 | 3, Foundation::Rigid) => [2.3, 4.5, 7.1],
        (1 | 3, Foundation::Flexible) => [3.5, 7.1, 11.0],
        // Groups 2 (medium machines) and 4 (pumps, integrated driver).
        (_, Foundation::Rigid) => [1.4, 2.8, 4.5],
        (_, Foundation::Flexible) => [2.3, 4.5, 7.1],
    }
}

/// The boundaries for a machine: a configured override, or the standard's row.
pub fn boundaries(iso: &Iso10816, machine: &Machine) -> [f64; 3] {
    let key = format!(
        "group{}_{}",
        machine.group,
        if machine.foundation == Foundation::Rigid { "rigid" } else { "flexible" }
    );
    iso.boundaries
        .get(&key)
        .copied()
        .unwrap_or_else(|| standard_boundaries(machine.group, machine.foundation))
}
