//! The Grafana dashboard and the Prometheus rules in `ops/monitoring/` against a real
//! veza-lb: every series they query is one veza-lb exports on `/metrics`, every dashboard
//! query is valid PromQL, and the rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`). promtool comes from Debian's `prometheus` package; the promtool
//! parts are skipped, saying so, where it is absent (CI installs it).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Lb, backend};
use veza_demo_backend::Kind;

const PROMTOOL: &str = "/usr/bin/promtool";

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/monitoring")
}

fn read(relative: &str) -> String {
    let path = monitoring().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every PromQL expression of the dashboard, with Grafana's variables replaced by what
/// Grafana would send.
fn dashboard_queries() -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/veza-lb.json")).expect("the dashboard is JSON");
    let mut ids = BTreeSet::new();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} used twice");
        let title = panel["title"].as_str().expect("title").to_owned();
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$pool", ".*");
            assert!(!expr.contains('$'), "{title}: unknown variable in {expr}");
            queries.push((title.clone(), expr));
        }
    }
    queries
}

/// The `haproxy_*` and `veza_lb_*` series names an expression reads.
fn series_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["haproxy_", "veza_lb_"]
            .iter()
            .any(|p| expr[i..].starts_with(p))
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b':'));
        if starts {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(expr.len(), |n| i + n);
            names.push(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

#[tokio::test]
async fn dashboard_and_rules_read_series_veza_lb_exports() {
    let api = backend("api-1", Kind::Api).await;
    let config = support::api_config(
        &[&api],
        "metrics_listen = \"127.0.0.1:0\"",
        "slowstart = \"10s\"",
    );
    let lb = Lb::start(config).await;
    let metrics_addr = lb.proxy.metrics_addr().expect("metrics");
    let page = testkit::http::get(metrics_addr, "/metrics")
        .await
        .expect("GET /metrics");
    let exported: BTreeSet<String> = page
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    assert!(exported.len() > 50, "{exported:?}");
    let known = |name: &str| {
        exported.contains(name)
            || ["_bucket", "_sum", "_count"].iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|base| exported.contains(base))
            })
    };

    let rules = read("prometheus/veza-lb.rules.yml");
    let mut checked = 0;
    for (title, expr) in dashboard_queries().into_iter().chain(
        rules
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| ("rules".to_owned(), l.to_owned())),
    ) {
        for name in series_names(&expr) {
            assert!(known(&name), "{title}: {name} is not exported by veza-lb");
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} series references checked");
    lb.proxy.shutdown().await;
}

#[test]
fn rules_and_dashboard_queries_pass_promtool() {
    if !Path::new(PROMTOOL).exists() {
        eprintln!(
            "SKIPPED: promtool is not installed (apt-get install prometheus); CI installs it"
        );
        return;
    }
    let dir = monitoring().join("prometheus");
    promtool(&dir, &["check", "rules", "veza-lb.rules.yml"]);
    promtool(&dir, &["test", "rules", "veza-lb.rules.test.yml"]);

    // promtool has no query checker: the dashboard's queries, as recording rules, get one.
    let scratch = testkit::temp_dir();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_queries().iter().enumerate() {
        let quoted = serde_json::to_string(expr).expect("JSON string is YAML");
        file.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {quoted}\n"
        ));
    }
    std::fs::write(scratch.path().join("dashboard.rules.yml"), file).expect("write");
    promtool(scratch.path(), &["check", "rules", "dashboard.rules.yml"]);
}

/// Runs promtool in `dir`; a failure shows what it printed.
fn promtool(dir: &Path, args: &[&str]) {
    let out = Command::new(PROMTOOL)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed (for the dashboard's rules: a query is not valid PromQL):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn series_names_are_found_in_expressions() {
    assert_eq!(
        series_names(
            "sum by (proxy) (rate(haproxy_backend_http_responses_total{code=\"5xx\"}[5m])) / veza_lb:backend_http_requests:rate5m + veza_lb_server_response_latency_seconds_bucket"
        ),
        [
            "haproxy_backend_http_responses_total",
            "veza_lb_server_response_latency_seconds_bucket"
        ]
    );
}
