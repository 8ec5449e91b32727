use super::*;
use crate::stats::fixture;

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn haproxy_names_labels_and_values() {
    let (frontends, snapshot) = fixture::snapshot();
    let info = ProcessInfo {
        version: "0.1.0".to_owned(),
        threads: 2,
        ..ProcessInfo::default()
    };
    let text = render(&frontends, &snapshot, &info, fixture::NOW_UNIX);
    let get = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(get("haproxy_process_nbthread"), 2.0);
    assert_eq!(
        get(r#"haproxy_frontend_http_responses_total{proxy="veza",code="2xx"}"#),
        5.0
    );
    assert_eq!(
        get(r#"haproxy_frontend_status{proxy="veza",state="UP"}"#),
        1.0
    );
    assert_eq!(
        get(r#"haproxy_backend_http_responses_total{proxy="api_pool",code="2xx"}"#),
        5.0
    );
    assert_eq!(
        get(r#"haproxy_backend_status{proxy="api_pool",state="UP"}"#),
        1.0
    );
    assert_eq!(
        get(r#"haproxy_backend_active_servers{proxy="api_pool"}"#),
        1.0
    );
    assert_eq!(
        get(r#"haproxy_server_status{proxy="api_pool",server="backend-api-2",state="DOWN"}"#),
        1.0
    );
    assert_eq!(
        get(r#"haproxy_server_status{proxy="api_pool",server="backend-api-2",state="UP"}"#),
        0.0
    );
    assert_eq!(
        get(
            r#"haproxy_server_check_status{proxy="api_pool",server="backend-api-2",state="L4CON"}"#
        ),
        1.0
    );
    assert_eq!(
        get(r#"haproxy_server_check_code{proxy="api_pool",server="backend-api-1"}"#),
        200.0
    );
    assert_eq!(
        get(r#"haproxy_server_current_sessions{proxy="api_pool",server="backend-api-1"}"#),
        0.0
    );
    assert_eq!(
        get(r#"haproxy_server_sessions_total{proxy="api_pool",server="backend-api-1"}"#),
        5.0
    );
    assert_eq!(
        get(r#"haproxy_server_last_session_seconds{proxy="api_pool",server="backend-api-2"}"#),
        -1.0
    );
    assert_eq!(
        get(r#"haproxy_server_current_throttle{proxy="api_pool",server="backend-api-1"}"#),
        7.0
    );
    assert!(text.contains("# TYPE haproxy_server_sessions_total counter\n"));
    // Every sample line belongs to the family announced just before it.
    let mut family = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap();
        } else if !line.starts_with('#') {
            assert!(line.starts_with(family), "{line} outside {family}");
        }
    }
}

#[test]
fn latency_histograms_are_cumulative() {
    let (frontends, snapshot) = fixture::snapshot();
    let c = &snapshot.pools[0].servers[0].counters;
    c.observe_response(std::time::Duration::from_micros(1500));
    c.observe_response(std::time::Duration::from_millis(40));
    c.observe_response(std::time::Duration::from_secs(9));
    let text = render(
        &frontends,
        &snapshot,
        &ProcessInfo::default(),
        fixture::NOW_UNIX,
    );
    let s = r#"veza_lb_server_response_latency_seconds_bucket{proxy="api_pool",server="backend-api-1",le="#;
    assert_eq!(sample(&text, &format!("{s}\"0.001\"}}")), Some(0.0));
    assert_eq!(sample(&text, &format!("{s}\"0.002\"}}")), Some(1.0));
    assert_eq!(sample(&text, &format!("{s}\"0.05\"}}")), Some(2.0));
    assert_eq!(sample(&text, &format!("{s}\"+Inf\"}}")), Some(3.0));
    assert_eq!(
        sample(
            &text,
            r#"veza_lb_server_response_latency_seconds_count{proxy="api_pool",server="backend-api-1"}"#
        ),
        Some(3.0)
    );
    assert!(text.contains("# TYPE veza_lb_backend_response_latency_seconds histogram\n"));
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(
        labels(&[("proxy", "a\"b\\c\nd")]),
        r#"{proxy="a\"b\\c\nd"}"#
    );
}
