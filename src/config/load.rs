//! Layering: built-in defaults, then the files given (each after the files it
//! includes), then `HUMS__SECTION__KEY` environment overrides. Every problem is
//! reported at once, each naming the file, the key path and the fix.

use super::schema::Config;
use super::validate::validate;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Prefix of environment overrides: `HUMS__MQTT__PORT=1884` sets `mqtt.port`.
pub const ENV_PREFIX: &str = "HUMS";
const ENV_SEPARATOR: &str = "__";

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The file (or environment variable) the offending key comes from.
    pub origin: String,
    /// Key path such as `assets[3].channels.vib_de.topic`; empty for whole-file problems.
    pub path: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.path, self.message)
        }
    }
}

/// Every problem found; the configuration is unusable while this is non-empty.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Issue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for issue in &self.0 {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

/// A configuration file's text and where it came from.
#[derive(Debug, Clone)]
pub struct SourceText {
    /// Shown in errors (a path, or `embedded:configs/demo.toml`).
    pub origin: String,
    pub text: String,
}

/// Where `include = [...]` entries are looked up.
pub trait Resolver {
    /// Returns the name and text of `include` as seen from the file `from`.
    fn resolve(&self, from: &str, include: &str) -> Result<SourceText, String>;
}

/// Resolves includes on the filesystem, relative to the including file.
pub struct FsResolver;

impl Resolver for FsResolver {
    fn resolve(&self, from: &str, include: &str) -> Result<SourceText, String> {
        let base = Path::new(from).parent().unwrap_or(Path::new("."));
        let path = base.join(include);
        read_file(&path)
    }
}

fn read_file(path: &Path) -> Result<SourceText, String> {
    std::fs::read_to_string(path)
        .map(|text| SourceText { origin: path.display().to_string(), text })
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Resolves includes against a fixed set of texts compiled into the binary.
pub struct EmbeddedResolver<'a>(pub &'a [(&'a str, &'a str)]);

impl Resolver for EmbeddedResolver<'_> {
    fn resolve(&self, from: &str, include: &str) -> Result<SourceText, String> {
        let base = Path::new(from).parent().unwrap_or(Path::new(""));
        let wanted = normalise(&base.join(include));
        self.0
            .iter()
            .find(|(name, _)| normalise(Path::new(name)) == wanted)
            .map(|(name, text)| SourceText { origin: name.to_string(), text: text.to_string() })
            .ok_or_else(|| format!("no embedded file {}", wanted.display()))
    }
}

fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A parsed layer, kept to find which file a key path came from.
struct Layer {
    origin: String,
    text: String,
    table: toml::Table,
}

/// Loads, merges and validates configuration files from disk.
pub fn load_files(paths: &[PathBuf]) -> Result<Config, ConfigErrors> {
    let mut sources = Vec::new();
    let mut issues = Vec::new();
    for path in paths {
        match read_file(path) {
            Ok(s) => sources.push(s),
            Err(message) => issues.push(Issue {
                origin: path.display().to_string(),
                path: String::new(),
                message,
            }),
        }
    }
    if !issues.is_empty() {
        return Err(ConfigErrors(issues));
    }
    load(sources, &FsResolver, std::env::vars())
}

/// Loads, merges and validates the given texts, with environment overrides from `env`.
pub fn load(
    sources: Vec<SourceText>,
    resolver: &dyn Resolver,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigErrors> {
    let mut issues = Vec::new();
    let mut layers = Vec::new();
    for source in sources {
        expand(source, resolver, &mut Vec::new(), &mut layers, &mut issues);
    }
    let env: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}{ENV_SEPARATOR}")))
        .collect();
    if !issues.is_empty() {
        return Err(ConfigErrors(issues));
    }

    let mut builder = config_rs::Config::builder();
    for layer in &layers {
        builder =
            builder.add_source(config_rs::File::from_str(&layer.text, config_rs::FileFormat::Toml));
    }
    builder = builder.add_source(
        config_rs::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .source(Some(env.clone().into_iter().collect())),
    );
    let merged = match builder.build() {
        Ok(m) => m,
        Err(e) => {
            return Err(ConfigErrors(vec![Issue {
                origin: "configuration".into(),
                path: String::new(),
                message: e.to_string(),
            }]))
        }
    };

    let locate = |path: &str| locate(path, &layers, &env);
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let parsed: Result<Config, _> = serde_ignored::deserialize(
        serde_path_to_error::Deserializer::new(merged, &mut track),
        |p| unknown.push(ignored_path(&p)),
    );
    for path in unknown {
        issues.push(Issue {
            origin: locate(&path),
            message: "unknown key: remove it or check its spelling against configs/reference.toml"
                .into(),
            path,
        });
    }
    let config = match parsed {
        Ok(mut c) => {
            resolve_model_files(&mut c, &locate);
            Some(c)
        }
        Err(e) => {
            let tracked = tracked_path(&track.path());
            let raw = e.to_string();
            // A table read as a whole (`[backend]`) names the key inside it: "at `key`: …".
            let (path, message) = match raw.strip_prefix("at `").and_then(|r| r.split_once("`: ")) {
                Some((key, rest)) => (join_key(&tracked, key), rest.to_string()),
                None => (tracked, raw.clone()),
            };
            issues.push(Issue { origin: locate(&path), message: type_hint(&message), path });
            None
        }
    };
    if let Some(config) = &config {
        for (path, message) in validate(config) {
            issues.push(Issue { origin: locate(&path), path, message });
        }
    }
    match config {
        Some(c) if issues.is_empty() => Ok(c),
        _ => Err(ConfigErrors(issues)),
    }
}

/// Reads a file's includes (depth first, each before its includer), then the file itself.
fn expand(
    source: SourceText,
    resolver: &dyn Resolver,
    stack: &mut Vec<String>,
    layers: &mut Vec<Layer>,
    issues: &mut Vec<Issue>,
) {
    if stack.contains(&source.origin) {
        issues.push(Issue {
            origin: source.origin.clone(),
            path: "include".into(),
            message: format!("include cycle: {} -> {}", stack.join(" -> "), source.origin),
        });
        return;
    }
    if layers.iter().any(|l| l.origin == source.origin) {
        return; // already merged through another include
    }
    let table: toml::Table = match source.text.parse() {
        Ok(t) => t,
        Err(e) => {
            issues.push(Issue {
                origin: source.origin,
                path: String::new(),
                message: format!("not valid TOML: {}", e.to_string().trim_end()),
            });
            return;
        }
    };
    let includes: Vec<String> = match table.get("include") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => {
            items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        }
        Some(_) => {
            issues.push(Issue {
                origin: source.origin,
                path: "include".into(),
                message: "expected a list of file paths, e.g. include = [\"classes/pump.toml\"]"
                    .into(),
            });
            return;
        }
    };
    stack.push(source.origin.clone());
    for (i, include) in includes.iter().enumerate() {
        match resolver.resolve(&source.origin, include) {
            Ok(child) => expand(child, resolver, stack, layers, issues),
            Err(message) => issues.push(Issue {
                origin: source.origin.clone(),
                path: format!("include[{i}]"),
                message,
            }),
        }
    }
    stack.pop();
    layers.push(Layer { origin: source.origin, text: source.text, table });
}

fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        P::Map { parent, key } => join_key(&ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn tracked_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => out = join_key(&out, key),
            Segment::Enum { variant } => out = join_key(&out, variant),
            Segment::Unknown => {}
        }
    }
    out
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Makes serde's and config-rs's wording more useful to someone editing TOML.
fn type_hint(message: &str) -> String {
    // config-rs appends its own rendering of the key; we report the path separately.
    let message = message.split(" for key `").next().unwrap_or(message);
    if message.starts_with("unknown key") {
        message.to_string()
    } else if let Some(rest) = message.split("does not have variant constructor ").nth(1) {
        format!("unknown value {rest:?}: see configs/reference.toml for the allowed values")
    } else if message.contains("duration") || message.contains("time unit") {
        format!("{message}: write a duration such as \"30s\", \"5m\" or \"2h\"")
    } else {
        format!("wrong type: {message}")
    }
}

/// Splits `a.b[3].c` into `["a", "b", "3", "c"]`.
fn segments(path: &str) -> Vec<String> {
    path.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn contains(table: &toml::Table, segs: &[String]) -> bool {
    let mut value: Option<&toml::Value> = None;
    for (i, seg) in segs.iter().enumerate() {
        let next = match (i, value) {
            (0, _) => table.get(seg),
            (_, Some(toml::Value::Table(t))) => t.get(seg),
            (_, Some(toml::Value::Array(a))) => seg.parse::<usize>().ok().and_then(|n| a.get(n)),
            _ => None,
        };
        match next {
            Some(v) => value = Some(v),
            None => return false,
        }
    }
    true
}

/// Names the source of a key path: the environment variable that set it, or
/// the last file defining it (or its closest parent).
fn locate(path: &str, layers: &[Layer], env: &BTreeMap<String, String>) -> String {
    let segs = segments(path);
    for key in env.keys() {
        let env_path: Vec<String> = key
            .trim_start_matches(&format!("{ENV_PREFIX}{ENV_SEPARATOR}"))
            .split(ENV_SEPARATOR)
            .map(|s| s.to_lowercase())
            .collect();
        if !env_path.is_empty() && segs.starts_with(&env_path) {
            return format!("environment {key}");
        }
    }
    for len in (1..=segs.len()).rev() {
        if let Some(layer) = layers.iter().rev().find(|l| contains(&l.table, &segs[..len])) {
            return layer.origin.clone();
        }
    }
    layers.last().map(|l| l.origin.clone()).unwrap_or_else(|| "built-in defaults".into())
}

/// Makes each class's `baseline.model_file` and `life.model_file` relative to the file that set it
/// (as `include` paths are), unless it is absolute or came from the environment.
fn resolve_model_files(c: &mut Config, locate: &dyn Fn(&str) -> String) {
    for (name, class) in &mut c.classes {
        let files = [
            ("baseline", class.baseline.as_mut().and_then(|b| b.model_file.as_mut())),
            ("life", class.life.as_mut().and_then(|l| l.model_file.as_mut())),
        ];
        for (section, file) in files {
            let Some(file) = file else { continue };
            let origin = locate(&format!("classes.{name}.{section}.model_file"));
            if std::path::Path::new(file.as_str()).is_absolute()
                || origin.starts_with("environment")
            {
                continue;
            }
            if let Some(dir) = std::path::Path::new(&origin).parent() {
                *file = dir.join(&*file).display().to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn segments_split_indices() {
        assert_eq!(segments("assets[3].channels.vib_de"), ["assets", "3", "channels", "vib_de"]);
    }
}
