//! The range of values a channel can plausibly read. A transmitter's
//! over-range sentinel (1e308, -9.9e37, f32::MAX) or a broken decode lands
//! outside it; such readings are refused before they reach a window, so one
//! can never swamp a window's features and hide a real over-limit condition.

use super::schema::{ChannelSpec, Quantity};

/// The largest magnitude a valid range may reach: the fourth power of a
/// window's spread stays finite, so features never overflow.
pub const MAX_MAGNITUDE: f64 = 1e15;

/// The default plausible range of a quantity, wide enough for any unit it is
/// commonly measured in.
pub fn default_range(q: Quantity) -> (f64, f64) {
    match q {
        // mm/s or in/s RMS: 10 m/s is far beyond any running machine.
        Quantity::VibrationVelocity => (-1e4, 1e4),
        // Below absolute zero in °F, above any process furnace.
        Quantity::Temperature => (-460.0, 5_000.0),
        Quantity::Current => (-1e6, 1e6),
        Quantity::Speed => (-1e6, 1e6),
        Quantity::Flow | Quantity::Pressure => (-1e9, 1e9),
        _ => (-1e12, 1e12),
    }
}

/// A channel's valid range: configured, or its quantity's default.
pub fn range(spec: &ChannelSpec) -> (f64, f64) {
    spec.valid_range.map_or_else(|| default_range(spec.quantity), |[lo, hi]| (lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_refuse_sentinels_and_keep_features_finite() {
        for q in [Quantity::Temperature, Quantity::VibrationVelocity, Quantity::Other] {
            let (lo, hi) = default_range(q);
            assert!(lo < hi && hi <= MAX_MAGNITUDE && lo >= -MAX_MAGNITUDE);
            for sentinel in [1e308, -1e308, f64::from(f32::MAX), -9.9e37] {
                assert!(!(lo..=hi).contains(&sentinel), "{q:?} accepts {sentinel}");
            }
            assert!((2.0 * hi).powi(4).is_finite());
        }
    }
}
