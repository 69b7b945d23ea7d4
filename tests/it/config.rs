//! Configuration loading: every broken fixture gives the expected key path,
//! origin file and message; every shipped top-level config is valid.

use hums::config::{load, load_files, ConfigErrors, EmbeddedResolver, FsResolver, SourceText};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("tests/fixtures/bad")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    v.sort();
    v
}

/// Reads `# expect: PATH | TEXT` and optional `# origin: SUFFIX` from a fixture.
fn expectation(path: &Path) -> (String, String, Option<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let header =
        |tag: &str| text.lines().find_map(|l| l.strip_prefix(tag).map(str::trim).map(String::from));
    let expect =
        header("# expect:").unwrap_or_else(|| panic!("{} lacks an # expect: line", path.display()));
    let (key, message) = expect.split_once('|').expect("expect line is PATH | TEXT");
    (key.trim().into(), message.trim().into(), header("# origin:"))
}

#[test]
fn every_broken_config_names_file_key_and_problem() {
    let files = fixtures();
    assert!(files.len() >= 10, "at least ten broken configs, found {}", files.len());
    for file in files {
        let (key, message, origin) = expectation(&file);
        let errors = match load_files(std::slice::from_ref(&file)) {
            Ok(_) => panic!("{} was accepted", file.display()),
            Err(e) => e,
        };
        let want_origin =
            origin.unwrap_or_else(|| file.file_name().unwrap().to_string_lossy().into());
        let hit = errors.0.iter().find(|i| i.path == key && i.message.contains(&message));
        let Some(issue) = hit else {
            panic!("{}: expected `{key}: …{message}…`, got:\n{errors}", file.display());
        };
        assert!(
            issue.origin.ends_with(&want_origin),
            "{}: issue should name {want_origin}, named {}",
            file.display(),
            issue.origin
        );
    }
}

#[test]
fn shipped_top_level_configs_are_complete_and_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir("configs").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = load_files(std::slice::from_ref(&path)) {
                panic!("{} is not a valid complete config:\n{e}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected demo.toml and reference.toml at least");
}

#[test]
fn every_example_config_passes_check_config_one_per_backend() {
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir("configs/examples").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_hums"))
            .args(["check-config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", path.display());
        let cfg = load_files(std::slice::from_ref(&path)).unwrap();
        kinds
            .push(serde_json::to_value(&cfg.backend).unwrap()["kind"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 9, "one example per backend kind: {kinds:?}");
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = r#"
include = ["../../configs/classes/pump.toml"]
[mqtt]
hots = "x"
[pipeline]
max_window_samples = 0
[[assets]]
id = "pump 01"
name = ""
class = "pump"
location = []
"#;
    let src = SourceText { origin: "tests/fixtures/inline.toml".into(), text: text.into() };
    let errors = load(vec![src], &FsResolver, Vec::new()).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|i| i.path.as_str()).collect();
    for want in ["mqtt.hots", "assets[0].id", "assets[0].name", "assets[0].location"] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
    // The type error stops deserialization, so semantic checks wait; the unknown key is still
    // reported.
    let src = SourceText {
        origin: "tests/fixtures/inline.toml".into(),
        text: "[pipeline]\nmax_window_samples = 0\n[mqtt]\nhots = 1\n".into(),
    };
    let errors = load(vec![src], &FsResolver, Vec::new()).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|i| i.path.as_str()).collect();
    assert!(
        paths.contains(&"pipeline.max_window_samples") && paths.contains(&"mqtt.hots"),
        "{paths:?}"
    );
}

#[test]
fn environment_overrides_files_and_is_named_in_errors() {
    let src = || SourceText {
        origin: "tests/fixtures/minimal.toml".into(),
        text: std::fs::read_to_string("tests/fixtures/minimal.toml").unwrap(),
    };
    let env = vec![
        ("HUMS__MQTT__PORT".to_string(), "1884".to_string()),
        ("UNRELATED".into(), "1".into()),
    ];
    let cfg = load(vec![src()], &FsResolver, env).unwrap();
    assert_eq!(cfg.mqtt.port, 1884);
    assert_eq!(cfg.mqtt.host, "localhost", "defaults fill what nobody set");

    let env = vec![("HUMS__PIPELINE__EVAL_INTERVAL".to_string(), "0s".to_string())];
    let errors = load(vec![src()], &FsResolver, env).unwrap_err();
    let issue =
        errors.0.iter().find(|i| i.path == "pipeline.eval_interval").expect("eval_interval issue");
    assert_eq!(issue.origin, "environment HUMS__PIPELINE__EVAL_INTERVAL");
}

#[test]
fn later_files_override_earlier_ones() {
    let dir = std::env::temp_dir().join(format!("hums-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let over = dir.join("override.toml");
    std::fs::write(&over, "[mqtt]\nport = 2883\n[alarms]\non_delay = \"2m\"\n").unwrap();
    let cfg = load_files(&[PathBuf::from("configs/demo.toml"), over]).unwrap();
    assert_eq!(cfg.mqtt.port, 2883);
    assert_eq!(cfg.alarms.on_delay, std::time::Duration::from_secs(120));
    assert_eq!(cfg.assets.len(), 6, "the first file's assets remain");
}

#[test]
fn check_config_command_exit_codes_and_stderr() {
    let bin = env!("CARGO_BIN_EXE_hums");
    let ok = Command::new(bin).args(["check-config", "configs/demo.toml"]).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = Command::new(bin)
        .args(["check-config", "tests/fixtures/bad/duplicate_asset.toml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(78), "EX_CONFIG");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr
            .contains("tests/fixtures/bad/duplicate_asset.toml: assets[1].id: duplicate asset id"),
        "stderr: {stderr}"
    );
    assert!(bad.stdout.is_empty(), "nothing starts, nothing is printed on stdout");

    // A usage error is not a configuration error.
    let usage = Command::new(bin).args(["check-config", "--bogus"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    // --config works as well as a path, and so does HUMS_CONFIG.
    let flag =
        Command::new(bin).args(["check-config", "--config", "configs/demo.toml"]).output().unwrap();
    assert!(flag.status.success(), "{}", String::from_utf8_lossy(&flag.stderr));
    let env = Command::new(bin)
        .arg("check-config")
        .env("HUMS_CONFIG", "tests/fixtures/bad/duplicate_asset.toml")
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(78), "HUMS_CONFIG is read");
}

#[test]
fn check_config_environment_catches_what_run_would_fail_on() {
    let dir = std::env::temp_dir().join(format!("hums-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A broker and a backend that answer: two listeners on loopback.
    let broker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = dir.join("hums.toml");
    let demo = std::fs::canonicalize("configs/demo.toml").unwrap();
    let write = |state: &std::path::Path| {
        let text = format!(
            "include = [{demo:?}]\n[mqtt]\nport = {}\n[backend]\nurl = \"http://127.0.0.1:{}/wo\"\n\
                [state]\ndir = {:?}\n",
            broker.local_addr().unwrap().port(),
            backend.local_addr().unwrap().port(),
            state.display().to_string()
        );
        std::fs::write(&cfg, text).unwrap();
    };
    let check = |token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hums"));
        c.args(["check-config", "--environment", "--config"]).arg(&cfg);
        match token {
            Some(t) => c.env("HUMS_BACKEND_TOKEN", t),
            None => c.env_remove("HUMS_BACKEND_TOKEN"),
        };
        c.output().unwrap()
    };
    write(&dir.join("state"));
    let ok = check(Some("s3cret-token"));
    let out = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(ok.status.success(), "{out}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(out.contains("ok: MQTT broker") && out.contains("ok: backend:"), "{out}");
    assert!(!out.contains("s3cret-token"), "a secret is never printed");

    // A state directory that cannot be written is a configuration problem.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    write(&file.join("state"));
    let bad = check(Some("s3cret-token"));
    assert_eq!(bad.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("state directory"));

    // A broker that does not answer is unavailable (69).
    write(&dir.join("state"));
    drop(broker);
    let down = check(Some("s3cret-token"));
    assert_eq!(down.status.code(), Some(69), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(String::from_utf8_lossy(&down.stderr).contains("error: MQTT broker"));
}

/// The minimal fixture with a `[backend]` table appended.
fn with_backend(backend: &str) -> Result<hums::config::Config, hums::config::ConfigErrors> {
    let text =
        std::fs::read_to_string("tests/fixtures/minimal.toml").unwrap() + "\n[backend]\n" + backend;
    load(
        vec![SourceText { origin: "tests/fixtures/minimal.toml".into(), text }],
        &FsResolver,
        Vec::new(),
    )
}

#[test]
fn a_key_of_another_backend_kind_is_refused_by_name() {
    let errors = with_backend(
        "kind = \"servicenow\"\nurl = \"https://acme.service-now.com\"\n\
         username_env = \"SN_USER\"\npassword_env = \"SN_PASSWORD\"\nsite_id = \"BEDFORD\"\n",
    )
    .unwrap_err();
    let issue =
        errors.0.iter().find(|i| i.path == "backend.site_id").unwrap_or_else(|| panic!("{errors}"));
    assert!(
        issue.message.contains("unknown key") && issue.message.contains("servicenow"),
        "{errors}"
    );
    assert!(issue.origin.ends_with("minimal.toml"), "{errors}");
    assert!(errors.to_string().contains("site_id"), "{errors}");
}

#[test]
fn an_unknown_key_under_rest_is_refused_by_name() {
    let errors = with_backend("kind = \"rest\"\nlookup = \"http://cmms/workorders?key={key}\"\n")
        .unwrap_err();
    let issue =
        errors.0.iter().find(|i| i.path == "backend.lookup").unwrap_or_else(|| panic!("{errors}"));
    assert!(issue.message.contains("unknown key"), "{errors}");

    let errors = with_backend("kind = \"sharepoint\"\n").unwrap_err();
    let issue =
        errors.0.iter().find(|i| i.path == "backend.kind").unwrap_or_else(|| panic!("{errors}"));
    assert!(issue.message.contains("\"sharepoint\""), "{errors}");
}

#[test]
fn a_backend_rule_is_reported_by_config_loading() {
    let maximo =
        "kind = \"maximo\"\nurl = \"https://host/maximo\"\ntoken_env = \"MAXIMO_APIKEY\"\n";
    let errors = with_backend(maximo).unwrap_err();
    let issue =
        errors.0.iter().find(|i| i.path == "backend.site_id").unwrap_or_else(|| panic!("{errors}"));
    assert!(issue.message.contains("site"), "{errors}");
    assert_eq!(errors.0.len(), 1, "only the missing site: {errors}");

    // Complete, it loads, with the shared keys and Maximo's own in one flat table.
    let cfg = with_backend(&format!(
        "{maximo}site_id = \"BEDFORD\"\npriorities = {{ \"1\" = 1 }}\nattachments = false\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let hums::config::backend::Backend::Maximo(m) = &cfg.backend else {
        panic!("{:?}", cfg.backend)
    };
    assert_eq!(m.site_id.as_deref(), Some("BEDFORD"));
    assert!(!m.attachments);
    assert_eq!(
        m.common.priorities.get("1").map(String::as_str),
        Some("1"),
        "a bare integer is its text"
    );
    assert_eq!(m.common.url, "https://host/maximo");
}

/// The MQTT subscription of a site file, for `plant/<site>/<asset>/<channel>` topics.
const SUBSCRIPTION: &str = "[[mqtt.subscriptions]]\nfilter = \"plant/+/+/+\"\n\
    template = \"plant/{site}/{asset}/{channel}\"\n";

/// The head of a site file in tests/fixtures: the pump class (its path is relative to it).
const SITE: &str = "include = [\"../../configs/classes/pump.toml\"]\n";

/// A pump asset, valid on its own.
fn pump(id: &str) -> String {
    format!(
        "[[assets]]\nid = \"{id}\"\nname = \"Pump {id}\"\nclass = \"pump\"\n\
         location = [\"Site A\"]\n"
    )
}

/// Loads the texts as files `tests/fixtures/NAME` given in this order (`--config a --config b`).
fn layered(files: &[(&str, String)]) -> Result<hums::config::Config, ConfigErrors> {
    let sources = files
        .iter()
        .map(|(name, text)| SourceText {
            origin: format!("tests/fixtures/{name}"),
            text: text.clone(),
        })
        .collect();
    load(sources, &FsResolver, Vec::new())
}

#[test]
fn assets_and_subscriptions_of_every_file_add_up() {
    let base = format!("{SITE}{SUBSCRIPTION}{}{}", pump("pump-01"), pump("pump-02"));
    let line2 = pump("pump-03")
        + "[[mqtt.subscriptions]]\nfilter = \"line2/+/+\"\n\
           template = \"line2/{asset}/{channel}\"\n";
    let cfg = layered(&[("base.toml", base.clone()), ("line2.toml", line2)])
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = cfg.assets.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["pump-01", "pump-02", "pump-03"], "every file's assets, in order");
    let filters: Vec<&str> = cfg.mqtt.subscriptions.iter().map(|s| s.filter.as_str()).collect();
    assert_eq!(filters, ["plant/+/+/+", "line2/+/+"]);

    // A problem in the second file names that file and the entry's index in it.
    let broken = pump("pump-03").replace("name = \"Pump pump-03\"", "name = \"\"");
    let errors = layered(&[("base.toml", base), ("line2.toml", broken)]).unwrap_err();
    let issue = errors.0.iter().find(|i| i.path == "assets[0].name");
    let issue = issue.unwrap_or_else(|| panic!("{errors}"));
    assert_eq!(issue.origin, "tests/fixtures/line2.toml", "{errors}");
}

#[test]
fn assets_of_every_included_file_add_up() {
    let class = std::fs::read_to_string("configs/classes/pump.toml").unwrap();
    let (line1, line2) = (pump("pump-01"), pump("pump-02"));
    let files = [
        ("classes/pump.toml", class.as_str()),
        ("lines/line1.toml", line1.as_str()),
        ("lines/line2.toml", line2.as_str()),
    ];
    let site = format!(
        "include = [\"classes/pump.toml\", \"lines/line1.toml\", \"lines/line2.toml\"]\n\
         {SUBSCRIPTION}"
    );
    let site = SourceText { origin: "site.toml".into(), text: site };
    let cfg =
        load(vec![site], &EmbeddedResolver(&files), Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = cfg.assets.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["pump-01", "pump-02"], "both included files' assets");
}

#[test]
fn an_asset_id_in_two_files_is_an_error_naming_both() {
    let base = format!("{SITE}{SUBSCRIPTION}{}", pump("pump-01"));
    let line2 = pump("pump-02") + &pump("pump-01");
    let errors = layered(&[("base.toml", base), ("line2.toml", line2)]).unwrap_err();
    let issue = errors.0.iter().find(|i| i.path == "assets[1].id");
    let issue = issue.unwrap_or_else(|| panic!("{errors}"));
    assert_eq!(issue.origin, "tests/fixtures/line2.toml", "{errors}");
    for name in ["\"pump-01\"", "tests/fixtures/base.toml", "tests/fixtures/line2.toml"] {
        assert!(issue.message.contains(name), "{name} not named: {errors}");
    }
}

#[test]
fn a_subscription_filter_or_modbus_link_in_two_files_is_an_error_naming_both() {
    let link = "[[modbus.links]]\nname = \"plc-1\"\naddress = \"127.0.0.1:1502\"\n";
    let base = format!("{SITE}{SUBSCRIPTION}{}{link}", pump("pump-01"));
    let line2 = format!("{SUBSCRIPTION}{link}");
    let errors = layered(&[("base.toml", base), ("line2.toml", line2)]).unwrap_err();
    for (path, id) in
        [("mqtt.subscriptions[0].filter", "\"plant/+/+/+\""), ("modbus.links[0].name", "\"plc-1\"")]
    {
        let issue = errors.0.iter().find(|i| i.path == path);
        let issue = issue.unwrap_or_else(|| panic!("no {path}: {errors}"));
        assert_eq!(issue.origin, "tests/fixtures/line2.toml", "{errors}");
        for name in [id, "tests/fixtures/base.toml", "tests/fixtures/line2.toml"] {
            assert!(issue.message.contains(name), "{name} not named: {errors}");
        }
    }
}

#[test]
fn a_value_of_the_wrong_type_is_reported_as_written() {
    // A number where text is wanted (the [backend] table is read strictly).
    let errors = with_backend("kind = \"rest\"\nurl = 30\n").unwrap_err();
    let issue = errors.0.iter().find(|i| i.path == "backend.url");
    let issue = issue.unwrap_or_else(|| panic!("{errors}"));
    assert!(issue.origin.ends_with("minimal.toml"), "{errors}");
    assert!(
        issue.message.contains("got the number 30, expected a string: quote it, e.g. url = \"30\""),
        "{errors}"
    );
    assert!(!issue.message.contains("invalid type"), "{errors}");

    // Text where a number is wanted.
    let src = SourceText {
        origin: "tests/fixtures/inline.toml".into(),
        text: "[mqtt]\nport = \"eighteen\"\n".into(),
    };
    let errors = load(vec![src], &FsResolver, Vec::new()).unwrap_err();
    let issue = errors.0.iter().find(|i| i.path == "mqtt.port");
    let issue = issue.unwrap_or_else(|| panic!("{errors}"));
    assert!(
        issue.message.contains("got the text \"eighteen\", expected a whole number"),
        "{errors}"
    );
}
