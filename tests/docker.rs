//! The docker-compose dev mode stays valid: no Docker engine runs in CI, so these tests
//! check that every file the compose setup uses exists, parses, and points where it must.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker")
}

fn read(rel: &str) -> String {
    let path = docker_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(rel: &str) -> Value {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(*key)
            .unwrap_or_else(|| panic!("missing key {key} in {path:?}"));
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

#[test]
fn compose_starts_fenrir_grafana_and_a_shipper() {
    let compose = yaml("docker-compose.yml");
    let services = compose.get("services").expect("services");
    for name in ["fenrir", "grafana", "alloy", "loggen"] {
        assert!(services.get(name).is_some(), "service {name} missing");
    }
    assert_eq!(
        str_at(services, &["fenrir", "build", "dockerfile"]),
        "docker/Dockerfile"
    );
    assert_eq!(str_at(services, &["fenrir", "build", "context"]), "..");
    let ports = services["fenrir"]["ports"].as_sequence().expect("ports");
    assert!(ports.iter().any(|p| p.as_str() == Some("3100:3100")));
    // Every bind-mounted host path exists.
    for (name, svc) in services.as_mapping().expect("mapping") {
        for vol in svc["volumes"].as_sequence().into_iter().flatten() {
            let spec = vol.as_str().expect("volume string");
            let host = spec.split(':').next().unwrap_or_default();
            if host.starts_with("./") {
                assert!(
                    docker_dir().join(host).exists(),
                    "{name:?}: bind mount {host} does not exist"
                );
            }
        }
    }
}

#[test]
fn dockerfile_builds_the_binary_ci_tests() {
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("cargo build --release --locked -p fenrir-server"));
    assert!(dockerfile.contains("COPY docker/fenrir.yaml /etc/fenrir/fenrir.yaml"));
    assert!(dockerfile.contains("-config.file=/etc/fenrir/fenrir.yaml"));
    // The image's toolchain is the one the repository pins.
    let pinned = std::fs::read_to_string(docker_dir().join("../rust-toolchain.toml")).unwrap();
    let channel = pinned
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .expect("channel")
        .trim_matches('"');
    assert!(dockerfile.contains(&format!("RUSTUP_TOOLCHAIN={channel}")));
    let minor = channel.rsplit_once('.').map(|(mm, _)| mm).unwrap();
    assert!(dockerfile.contains(&format!("FROM rust:{minor}-")));
}

#[test]
fn container_config_parses_and_listens_on_all_interfaces() {
    let cfg = fenrir_config::from_yaml(&read("fenrir.yaml")).expect("docker/fenrir.yaml");
    assert_eq!(cfg.server.http_listen_address, "0.0.0.0");
    assert_eq!(cfg.server.http_listen_port, 3100);
}

#[test]
fn grafana_data_source_points_at_fenrir() {
    let ds = yaml("grafana/provisioning/datasources/fenrir.yaml");
    let first = &ds["datasources"][0];
    assert_eq!(str_at(first, &["type"]), "loki");
    assert_eq!(str_at(first, &["url"]), "http://fenrir:3100");
    assert_eq!(str_at(first, &["uid"]), "fenrir");
    let provider = yaml("grafana/provisioning/dashboards/fenrir.yaml");
    assert_eq!(
        str_at(&provider["providers"][0], &["options", "path"]),
        "/var/lib/grafana/dashboards"
    );
}

#[test]
fn shipper_pushes_to_fenrir() {
    let alloy = read("alloy/config.alloy");
    assert!(alloy.contains("url = \"http://fenrir:3100/loki/api/v1/push\""));
    assert!(alloy.contains("\"__path__\" = \"/var/log/sample/*.log\""));
    let sample = read("sample/shop.log");
    assert!(sample.lines().count() >= 50);
}

#[test]
fn dashboard_queries_are_valid_logql() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/dashboards/fenrir-shop.json")).expect("json");
    let panels = dash["panels"].as_array().expect("panels");
    let kinds: Vec<&str> = panels.iter().filter_map(|p| p["type"].as_str()).collect();
    assert!(kinds.contains(&"logs") && kinds.contains(&"timeseries"));
    let mut exprs = 0;
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            assert_eq!(target["datasource"]["uid"], "fenrir");
            let expr = target["expr"].as_str().expect("expr");
            // Grafana substitutes its interval variables before sending the query.
            let sent = expr.replace("$__auto", "1m").replace("$__range", "30m");
            fenrir_logql::parse_expr(&sent).unwrap_or_else(|e| panic!("{expr}: {e}"));
            exprs += 1;
        }
    }
    assert!(exprs >= 5);
    assert!(panels.iter().any(|p| p["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .starts_with("topk(")));
}
