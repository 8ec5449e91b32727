//! The stats page (`GET /stats` on the metrics listener) in a real browser: Debian's
//! chromium, headless, loads the page from an in-process veza-lb over real backends, and the
//! rows it rendered carry each server's state and color, before and after a backend stops and
//! after an operator disables one.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lb_core::AdminState;
use proxy::AdminCommand;
use support::{Lb, backend};
use veza_demo_backend::Kind;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The page as the browser built it (`--dump-dom`: the DOM after parsing, not the bytes).
async fn browse(url: String) -> String {
    let profile = testkit::temp_dir();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(CHROMIUM)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .output()
            .expect("run chromium")
    })
    .await
    .expect("chromium task");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 DOM")
}

/// `(class, style)` of the `<tr>` the browser rendered for `proxy/name`.
fn row(dom: &str, name: &str) -> (String, String) {
    let marker = format!("data-name=\"{name}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no row {name} in the page:\n{dom}"));
    let start = dom[..at].rfind("<tr ").expect("inside a <tr>");
    let end = at + dom[at..].find('>').expect("end of the <tr> tag");
    let tag = &dom[start..end];
    let attr = |key: &str| {
        let key = format!("{key}=\"");
        let from = tag.find(&key).map(|i| i + key.len()).unwrap_or_default();
        tag[from..].split('"').next().unwrap_or_default().to_owned()
    };
    (attr("class"), attr("style"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_rows_in_state_colors() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium); CI installs it");
        return;
    }
    let api1 = backend("api-1", Kind::Api).await;
    let api2 = backend("api-2", Kind::Api).await;
    let global = "metrics_listen = \"127.0.0.1:0\"";
    let lb = Lb::start(support::api_config(&[&api1, &api2], global, "")).await;
    let page = format!(
        "http://{}/stats",
        lb.proxy.metrics_addr().expect("metrics listener")
    );
    let wait = Duration::from_secs(5);
    for server in ["api-1", "api-2"] {
        lb.wait_status("api", server, wait, |s| s == "UP").await;
    }

    let dom = browse(page.clone()).await;
    assert!(
        dom.contains("<meta http-equiv=\"refresh\" content=\"5\">"),
        "{dom}"
    );
    assert_eq!(
        row(&dom, "veza/FRONTEND"),
        ("open".into(), "background: #e8e8d0".into())
    );
    for server in ["api/api-1", "api/api-2"] {
        assert_eq!(
            row(&dom, server),
            ("up".into(), "background: #c0ffc0".into())
        );
    }

    api2.kill().await;
    lb.wait_status("api", "api-2", wait, |s| s == "DOWN").await;
    let dom = browse(page.clone()).await;
    assert_eq!(
        row(&dom, "api/api-2"),
        ("down".into(), "background: #ff9090".into()),
        "the stopped backend's row turns red"
    );
    assert_eq!(row(&dom, "api/api-1").0, "up");
    assert!(dom.contains("L4CON"), "its last check is shown");

    lb.admin(AdminCommand::SetState {
        pool: "api".into(),
        server: "api-1".into(),
        state: AdminState::Maint,
    })
    .await;
    let dom = browse(format!("{page}?refresh=0")).await;
    assert_eq!(
        row(&dom, "api/api-1"),
        ("maint".into(), "background: #c07820".into())
    );
    assert!(!dom.contains("http-equiv"), "refresh=0: no refresh");
    assert_eq!(row(&dom, "api/BACKEND").0, "down", "no server left");
    lb.proxy.shutdown().await;
    drop(api1);
}
