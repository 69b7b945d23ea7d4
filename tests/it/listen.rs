//! `hums listen` against a real broker: each topic heard with the asset and
//! channel it maps to and its value, and the topics hums does not use with
//! the reason.
use crate::common;
use rumqttc::QoS;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_shows_mapped_and_unused_topics() {
    let broker = hums::demo::broker::start().unwrap();
    let dir = common::temp_dir("listen");
    let classes = std::fs::canonicalize("configs/classes/pump.toml").unwrap();
    let cfg = dir.join("hums.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"include = [{classes:?}]
[mqtt]
host = "{}"
port = {}
[[mqtt.subscriptions]]
filter = "plant/+/+/+"
template = "plant/{{site}}/{{asset}}/{{channel}}"
payload = "number"
[[assets]]
id = "pump-01"
name = "Pump 1"
class = "pump"
location = ["Site"]
"#,
            broker.ip(),
            broker.port()
        ),
    )
    .unwrap();
    let client = common::publisher(broker, "listen-plant").await;
    let publishing = tokio::spawn(async move {
        loop {
            for (topic, payload) in [
                ("plant/a/pump-01/vib_de", "2.5"),
                ("plant/a/pump-01/nozzle", "1"),
                ("plant/a/pump-01/flow", "abc"),
                ("elsewhere/x", "1"),
            ] {
                let _ = client.publish(topic, QoS::AtLeastOnce, false, payload).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hums"))
            .args(["listen", "--all", "--seconds", "2", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    publishing.abort();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = |topic: &str| {
        stdout.lines().find(|l| l.starts_with(topic)).unwrap_or_else(|| panic!("{topic}: {stdout}"))
    };
    assert!(line("plant/a/pump-01/vib_de").ends_with("pump-01.vib_de = 2.5"), "{stdout}");
    assert!(line("plant/a/pump-01/nozzle").contains("no measured channel \"nozzle\""), "{stdout}");
    assert!(line("plant/a/pump-01/flow").contains("payload refused"), "{stdout}");
    assert!(line("elsewhere/x").contains("no subscription template matches"), "{stdout}");
    assert!(stdout.contains("1 topic(s) mapped, 3 not used"), "{stdout}");
}
