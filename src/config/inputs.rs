//! The names of a learned model's inputs under a configuration, and the hash
//! of the settings they depend on: a model file trained under other names or
//! another hash would judge different numbers.

use super::schema::{AssetClass, Baseline, Config, FitSpec, Life};

/// The name of a life model's age input, after the channel inputs.
pub const AGE: &str = "age_hours";

/// `channel.feature` for each element of a baseline's vector, in order.
pub fn baseline_names(class: &AssetClass, b: &Baseline) -> Vec<String> {
    let chans: Vec<&String> = if b.channels.is_empty() {
        class.channels.keys().collect()
    } else {
        b.channels.iter().collect()
    };
    chans.iter().flat_map(|c| b.features.iter().map(move |f| format!("{c}.{}", f.name()))).collect()
}

/// The channels a life model reads: those configured, or every measured one.
pub fn life_channels<'a>(class: &'a AssetClass, l: &'a Life) -> Vec<&'a String> {
    if l.channels.is_empty() {
        class.channels.keys().collect()
    } else {
        l.channels.iter().collect()
    }
}

/// A life model's feature names: `channel.mean` per input, then the age.
pub fn life_names(class: &AssetClass, l: &Life) -> Vec<String> {
    let mut names: Vec<String> =
        life_channels(class, l).iter().map(|c| format!("{c}.mean")).collect();
    names.push(AGE.into());
    names
}

/// Hash of what a life model's inputs depend on: the features, the window,
/// the baseline and the cap.
pub fn life_hash(names: &[String], c: &Config, l: &Life) -> String {
    config_hash(names, c, &format!("life baseline={} cap={:?}", l.baseline, l.cap))
}

/// Hash of what a baseline model's features depend on: their names and the
/// window they are computed over. A model trained under another hash would
/// judge different numbers.
pub fn baseline_hash(names: &[String], c: &Config, fit: &FitSpec) -> String {
    config_hash(names, c, &format!("{fit:?}"))
}

fn config_hash(names: &[String], c: &Config, spec: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for n in names {
        h.update(n.as_bytes());
        h.update(b"\n");
    }
    h.update(
        format!(
            "window={:?};max_samples={};min_samples={}",
            c.pipeline.window, c.pipeline.max_window_samples, c.pipeline.min_window_samples
        )
        .as_bytes(),
    );
    h.update(spec.as_bytes());
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}
