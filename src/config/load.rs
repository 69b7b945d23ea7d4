//! Layering: built-in defaults, then the files given (each after the files it
//! includes), then `HUMS__SECTION__KEY` environment overrides. Lists of identified
//! tables (`[[assets]]`, `[[mqtt.subscriptions]]`, ...) add up across files; an id
//! defined in two files is an error. Every problem is reported at once, each naming
//! the file, the key path and the fix.

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
    load_files_traced(paths).0
}

/// Resolves includes on the filesystem and notes every file it read.
struct Tracing(std::cell::RefCell<Vec<PathBuf>>);

impl Resolver for Tracing {
    fn resolve(&self, from: &str, include: &str) -> Result<SourceText, String> {
        let path = Path::new(from).parent().unwrap_or(Path::new(".")).join(include);
        self.0.borrow_mut().push(path.clone());
        read_file(&path)
    }
}

/// [`load_files`], also returning every file it read (the given ones and
/// their includes), for watching them.
pub fn load_files_traced(paths: &[PathBuf]) -> (Result<Config, ConfigErrors>, Vec<PathBuf>) {
    let tracing = Tracing(std::cell::RefCell::new(paths.to_vec()));
    let result = load_files_with(paths, &tracing);
    (result, tracing.0.into_inner())
}

fn load_files_with(paths: &[PathBuf], resolver: &dyn Resolver) -> Result<Config, ConfigErrors> {
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
    load(sources, resolver, std::env::vars())
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

    let split = split_layers(&layers, &mut issues);
    let merged = match build(&layers, &split, &env) {
        Ok(m) => m,
        Err(issue) => {
            issues.push(issue);
            return Err(ConfigErrors(issues));
        }
    };
    let place = |path: &str, message: String| place(path, message, &layers, &split, &env);
    let locate = |path: &str| locate(path, &layers, &env);
    let config = parse_merged(merged, &place, &locate, &mut issues);
    if let Some(config) = &config {
        for (path, message) in validate(config) {
            issues.push(place(&path, message));
        }
    }
    match config {
        Some(c) if issues.is_empty() => Ok(c),
        _ => Err(ConfigErrors(issues)),
    }
}

/// Feeds config-rs every layer (without its merged arrays), the merged arrays, then `env`.
fn build(
    layers: &[Layer],
    split: &Split,
    env: &BTreeMap<String, String>,
) -> Result<config_rs::Config, Issue> {
    let mut builder = config_rs::Config::builder();
    for text in source_texts(layers, split)? {
        builder = builder.add_source(config_rs::File::from_str(&text, config_rs::FileFormat::Toml));
    }
    builder = builder.add_source(
        config_rs::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .try_parsing(true)
            .source(Some(env.clone().into_iter().collect())),
    );
    builder.build().map_err(|e| Issue {
        origin: "configuration".into(),
        path: String::new(),
        message: e.to_string(),
    })
}

const UNKNOWN_KEY: &str =
    "unknown key: remove it or check its spelling against configs/reference.toml";

/// Reads the merged configuration; unknown keys and the first type error become issues.
fn parse_merged(
    merged: config_rs::Config,
    place: &dyn Fn(&str, String) -> Issue,
    locate: &dyn Fn(&str) -> String,
    issues: &mut Vec<Issue>,
) -> Option<Config> {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let parsed: Result<Config, _> = serde_ignored::deserialize(
        serde_path_to_error::Deserializer::new(merged, &mut track),
        |p| unknown.push(ignored_path(&p)),
    );
    for path in unknown {
        issues.push(place(&path, UNKNOWN_KEY.into()));
    }
    match parsed {
        Ok(mut c) => {
            resolve_model_files(&mut c, locate);
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
            issues.push(place(&path, type_hint(&path, &message)));
            None
        }
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

/// Arrays of tables that every file adds to, where config-rs would keep only the last
/// file's: the key path, the field identifying an entry (`None`: anonymous) and its name.
const MERGED_ARRAYS: [(&str, Option<&str>, &str); 4] = [
    ("assets", Some("id"), "asset id"),
    // A template's asset id is each input file's stem, so templates have no identity.
    ("asset_templates", None, "asset template"),
    ("mqtt.subscriptions", Some("filter"), "subscription filter"),
    ("modbus.links", Some("name"), "Modbus link"),
];

/// One of `MERGED_ARRAYS`, concatenated over the layers in order.
struct MergedArray {
    key: &'static str,
    identity: Option<&'static str>,
    what: &'static str,
    items: Vec<toml::Value>,
    /// Per entry: the index of its layer and its index in that layer's array.
    from: Vec<(usize, usize)>,
    /// Per identity: the layer that defined it first.
    seen: BTreeMap<String, usize>,
}

impl MergedArray {
    /// Adds layer `l`'s entries; an identity an earlier file defined is reported and left out.
    fn append(
        &mut self,
        l: usize,
        layers: &[Layer],
        items: Vec<toml::Value>,
        issues: &mut Vec<Issue>,
    ) {
        for (i, item) in items.into_iter().enumerate() {
            let id = self.identity.and_then(|f| identity_of(&item, f).map(|id| (f, id)));
            if let Some((field, id)) = id {
                match self.seen.get(&id).copied() {
                    Some(first) if first != l => {
                        issues.push(Issue {
                            origin: layers[l].origin.clone(),
                            path: format!("{}[{i}].{field}", self.key),
                            message: format!(
                                "{} {id:?} is defined in {} and in {}: rename one or remove it",
                                self.what, layers[first].origin, layers[l].origin
                            ),
                        });
                        continue;
                    }
                    // Twice in one file: `validate` reports it.
                    Some(_) => {}
                    None => {
                        self.seen.insert(id, l);
                    }
                }
            }
            self.items.push(item);
            self.from.push((l, i));
        }
    }
}

/// The non-empty text of an array entry's identity `field`.
fn identity_of(item: &toml::Value, field: &str) -> Option<String> {
    item.as_table()?.get(field)?.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The layers as config-rs reads them: each without its merged arrays, then the arrays.
struct Split {
    /// Per layer: its table without the merged arrays, or `None` if it had none.
    stripped: Vec<Option<toml::Table>>,
    arrays: Vec<MergedArray>,
}

/// Takes the `MERGED_ARRAYS` out of every layer and concatenates them in layer order.
fn split_layers(layers: &[Layer], issues: &mut Vec<Issue>) -> Split {
    let mut stripped: Vec<Option<toml::Table>> = vec![None; layers.len()];
    let mut arrays = Vec::new();
    for (key, identity, what) in MERGED_ARRAYS {
        let mut array = MergedArray {
            key,
            identity,
            what,
            items: Vec::new(),
            from: Vec::new(),
            seen: BTreeMap::new(),
        };
        for (l, layer) in layers.iter().enumerate() {
            if !contains(&layer.table, &segments(key)) {
                continue;
            }
            let table = stripped[l].get_or_insert_with(|| layer.table.clone());
            match take(table, key) {
                Some(toml::Value::Array(items)) => array.append(l, layers, items, issues),
                Some(_) => issues.push(Issue {
                    origin: layer.origin.clone(),
                    path: key.into(),
                    message: format!("expected a list of tables, e.g. [[{key}]]"),
                }),
                None => {}
            }
        }
        arrays.push(array);
    }
    Split { stripped, arrays }
}

/// Removes the value at a dotted key path (`mqtt.subscriptions`) from `table`.
fn take(table: &mut toml::Table, key: &str) -> Option<toml::Value> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop()?;
    let mut table = table;
    for part in parts {
        table = table.get_mut(part)?.as_table_mut()?;
    }
    table.remove(last)
}

/// Sets the value at a dotted key path in `table`, making the tables on the way.
fn put(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut table = table;
    for part in parts {
        let entry = table.entry(part).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(inner) = entry.as_table_mut() else { return };
        table = inner;
    }
    table.insert(last.to_string(), value);
}

/// The TOML texts config-rs reads: each layer's (re-written without its merged arrays, if it
/// had any), then one holding the merged arrays.
fn source_texts(layers: &[Layer], split: &Split) -> Result<Vec<String>, Issue> {
    let to_toml = |table: &toml::Table, origin: &str| {
        toml::to_string(table).map_err(|e| Issue {
            origin: origin.to_string(),
            path: String::new(),
            message: format!("cannot merge this file: {e}"),
        })
    };
    let mut texts = Vec::with_capacity(layers.len() + 1);
    for (layer, stripped) in layers.iter().zip(&split.stripped) {
        texts.push(match stripped {
            Some(table) => to_toml(table, &layer.origin)?,
            None => layer.text.clone(),
        });
    }
    let mut arrays = toml::Table::new();
    for array in split.arrays.iter().filter(|a| !a.items.is_empty()) {
        put(&mut arrays, array.key, toml::Value::Array(array.items.clone()));
    }
    texts.push(to_toml(&arrays, "configuration")?);
    Ok(texts)
}

/// An issue at `path`, from the file it came from. An entry of a merged array (`assets[4]`)
/// is named by its index in its own file (`assets[1]` of line2.toml).
fn place(
    path: &str,
    message: String,
    layers: &[Layer],
    split: &Split,
    env: &BTreeMap<String, String>,
) -> Issue {
    let origin = locate(path, layers, env);
    if !origin.starts_with("environment") {
        for array in &split.arrays {
            let Some((n, rest)) = path
                .strip_prefix(array.key)
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.split_once(']'))
            else {
                continue;
            };
            if let Some(&(l, i)) = n.parse::<usize>().ok().and_then(|n| array.from.get(n)) {
                let path = format!("{}[{i}]{rest}", array.key);
                return Issue { origin: layers[l].origin.clone(), path, message };
            }
        }
    }
    Issue { origin, path: path.to_string(), message }
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
fn type_hint(path: &str, message: &str) -> String {
    // config-rs appends its own rendering of the key; we report the path separately.
    let message = message.split(" for key `").next().unwrap_or(message);
    if message.starts_with("unknown key") {
        message.to_string()
    } else if let Some(rest) = message.split("does not have variant constructor ").nth(1) {
        format!("unknown value {rest:?}: see configs/reference.toml for the allowed values")
    } else if message.contains("duration") || message.contains("time unit") {
        format!("{message}: write a duration such as \"30s\", \"5m\" or \"2h\"")
    } else if let Some(hint) = mismatch(path, message) {
        format!("wrong type: {hint}")
    } else {
        format!("wrong type: {message}")
    }
}

/// A value as a type error renders it: ``integer `30` `` (serde), ``64-bit integer `30` ``
/// (config-rs), `string "30"`.
enum Written<'a> {
    Number(&'a str),
    /// With its quotes: `"30"`.
    Text(&'a str),
    Bool(&'a str),
    Other(&'a str),
}

impl Written<'_> {
    fn describe(&self) -> String {
        match self {
            Written::Number(n) => format!("the number {n}"),
            Written::Text(t) => format!("the text {t}"),
            Written::Bool(b) => format!("the boolean {b}"),
            Written::Other("sequence") => "a list".into(),
            Written::Other("map") => "a table".into(),
            Written::Other(other) => (*other).to_string(),
        }
    }
}

fn written(found: &str) -> Written<'_> {
    let quoted = found.split('`').nth(1).unwrap_or(found);
    if let Some(text) = found.strip_prefix("string ") {
        Written::Text(text)
    } else if found.contains("integer `") || found.starts_with("floating point `") {
        Written::Number(quoted)
    } else if found.starts_with("boolean `") {
        Written::Bool(quoted)
    } else {
        Written::Other(found)
    }
}

/// What a type error says is expected (`a string`, `u32`, `an unsigned 16 bit integer`).
#[derive(Clone, Copy)]
enum Wanted<'a> {
    Text(&'static str),
    /// Described with its range.
    Whole(&'static str),
    Number,
    Bool,
    Other(&'a str),
}

impl Wanted<'_> {
    fn describe(self) -> String {
        match self {
            Wanted::Text(d) | Wanted::Whole(d) => d.to_string(),
            Wanted::Number => "a number".into(),
            Wanted::Bool => "true or false".into(),
            Wanted::Other("a sequence" | "an array") => "a list".into(),
            Wanted::Other("a map") => "a table".into(),
            Wanted::Other(other) => other.to_string(),
        }
    }
}

fn wanted(expected: &str) -> Wanted<'_> {
    let bits = expected.strip_prefix('u').or_else(|| expected.strip_prefix('i'));
    let rust_int = bits.is_some_and(|b| matches!(b, "8" | "16" | "32" | "64" | "128" | "size"));
    let whole = expected.contains("integer") || rust_int;
    let unsigned = expected.contains("unsigned") || expected.starts_with('u');
    if expected.contains("string") {
        Wanted::Text("a string")
    } else if expected.contains("character") {
        Wanted::Text("a single character")
    } else if whole && unsigned && (expected.contains(" 8 bit") || expected == "u8") {
        Wanted::Whole("a whole number from 0 to 255")
    } else if whole && unsigned && (expected.contains(" 16 bit") || expected == "u16") {
        Wanted::Whole("a whole number from 0 to 65535")
    } else if whole && unsigned {
        Wanted::Whole("a whole number, 0 or more")
    } else if whole {
        Wanted::Whole("a whole number")
    } else if expected.contains("float") || matches!(expected, "f32" | "f64" | "a number") {
        Wanted::Number
    } else if expected.contains("bool") {
        Wanted::Bool
    } else {
        Wanted::Other(expected)
    }
}

/// `invalid type: X, expected Y` as what was written and what is wanted, with the fix when
/// it is a matter of quotes; `path` is the key path, for the example.
fn mismatch(path: &str, message: &str) -> Option<String> {
    let (found, expected) = message.strip_prefix("invalid type: ")?.rsplit_once(", expected ")?;
    let (found, want) = (written(found), wanted(expected));
    let key = segments(path).pop().filter(|k| k.parse::<usize>().is_err());
    let lhs = key.map(|k| format!("{k} = ")).unwrap_or_default();
    let fix = match (&found, want) {
        (Written::Number(v) | Written::Bool(v), Wanted::Text(_)) => {
            format!(": quote it, e.g. {lhs}\"{v}\"")
        }
        (Written::Text(t), Wanted::Whole(_) | Wanted::Number) => {
            let bare = t.trim_matches('"').trim();
            if bare.parse::<f64>().is_ok() {
                format!(": remove the quotes, e.g. {lhs}{bare}")
            } else {
                ": write a number, without quotes".into()
            }
        }
        (Written::Text(_), Wanted::Bool) => ": write true or false, without quotes".into(),
        _ => String::new(),
    };
    Some(format!("got {}, expected {}{fix}", found.describe(), want.describe()))
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

    #[test]
    fn type_hints_say_what_was_written_and_what_is_wanted() {
        // serde_json (the buffered [backend] table) and config-rs word these differently.
        let hint = type_hint("backend.url", "invalid type: integer `30`, expected a string");
        assert_eq!(
            hint,
            "wrong type: got the number 30, expected a string: quote it, e.g. url = \"30\""
        );
        let hint = type_hint(
            "assets[0].name",
            "invalid type: 64-bit integer `30`, expected a string for key `assets[0].name`",
        );
        assert!(hint.contains("got the number 30, expected a string: quote it"), "{hint}");
        let hint = type_hint("backend.max_attempts", "invalid type: string \"30\", expected u32");
        assert!(hint.ends_with("0 or more: remove the quotes, e.g. max_attempts = 30"), "{hint}");
        let hint = type_hint(
            "mqtt.port",
            "invalid type: string \"x\", expected an integer for key `mqtt.port`",
        );
        assert!(hint.starts_with("wrong type: got the text \"x\", expected a whole number"));
        assert!(hint.ends_with(": write a number, without quotes"), "{hint}");
        let hint = type_hint(
            "mqtt.port",
            "invalid type: 64-bit integer `70000`, expected an unsigned 16 bit integer",
        );
        assert_eq!(
            hint,
            "wrong type: got the number 70000, expected a whole number from 0 to 65535"
        );
        let hint = type_hint("mqtt.tls.enabled", "invalid type: string \"on!\", expected bool");
        assert!(hint.ends_with("expected true or false: write true or false, without quotes"));
    }

    #[test]
    fn dotted_keys_are_taken_and_put() {
        let mut table: toml::Table =
            "[mqtt]\nport = 1\n[[mqtt.subscriptions]]\nfilter = \"a\"\n".parse().unwrap();
        let subs = take(&mut table, "mqtt.subscriptions").unwrap();
        assert!(take(&mut table, "mqtt.subscriptions").is_none());
        assert!(take(&mut table, "modbus.links").is_none());
        let mut merged = toml::Table::new();
        put(&mut merged, "mqtt.subscriptions", subs);
        assert_eq!(merged["mqtt"]["subscriptions"][0]["filter"].as_str(), Some("a"));
        assert_eq!(table["mqtt"]["port"].as_integer(), Some(1));
    }
}
