//! hatop (Debian's package), the HAProxy console operators already use, against a running
//! veza-lb: it lists every server and disables, enables and re-weights them from its status
//! screen, through the interactive runtime API on the unix (admin) socket. hatop runs for
//! real, on a pseudo-terminal, driven by the keys a person would press.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::{Winsize, openpty};
use proxy::stats::StatTable;
use support::{ApiConfig, HEALTH_100MS, Lb, backend};

const STATUS: usize = 17;
const WEIGHT: usize = 18;

/// hatop's keys in xterm's keypad mode (curses switches to it).
const DOWN: &[u8] = b"\x1bOB";
const F7_WEIGHT_UP: &[u8] = b"\x1b[18~";
const F9_ENABLE: &[u8] = b"\x1b[20~";
const F10_DISABLE: &[u8] = b"\x1b[21~";

fn hatop() -> Option<&'static str> {
    Path::new("/usr/bin/hatop")
        .exists()
        .then_some("/usr/bin/hatop")
}

/// hatop on a 120x40 pseudo-terminal; everything it draws is collected.
struct Console {
    child: std::process::Child,
    keys: std::fs::File,
    screen: Arc<Mutex<Vec<u8>>>,
}

impl Console {
    fn start(program: &str, socket: &Path) -> Console {
        let size = Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).expect("openpty");
        let terminal = std::fs::File::from(pty.slave);
        let child = Command::new(program)
            .args(["-s"])
            .arg(socket)
            .args(["-i", "1"])
            .env("TERM", "xterm")
            .stdin(Stdio::from(terminal.try_clone().expect("pty")))
            .stdout(Stdio::from(terminal.try_clone().expect("pty")))
            .stderr(Stdio::from(terminal))
            .spawn()
            .expect("start hatop");
        let keys = std::fs::File::from(pty.master);
        let mut reader = keys.try_clone().expect("pty master");
        let screen = Arc::new(Mutex::new(Vec::new()));
        let sink = screen.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("screen").extend_from_slice(&chunk[..n]);
            }
        });
        Console {
            child,
            keys,
            screen,
        }
    }

    fn drawn(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().expect("screen")).into_owned()
    }

    async fn press(&mut self, key: &[u8]) {
        self.keys.write_all(key).expect("key to hatop");
        // hatop polls its keyboard every 10 ms; let it handle one key before the next.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn stat(socket: &Path) -> StatTable {
    let text = testkit::runtime_api::command_unix(socket, "show stat")
        .await
        .expect("show stat");
    StatTable::parse(&text).expect("a table")
}

async fn wait_for(what: &str, socket: &Path, ok: impl Fn(&StatTable) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let table = stat(socket).await;
        if ok(&table) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            table.rows()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn cell(table: &StatTable, server: &str, column: usize) -> String {
    table
        .row("api", server)
        .map(|row| row[column].clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hatop_lists_disables_enables_and_reweights_servers() {
    let Some(program) = hatop() else {
        eprintln!("SKIPPED: hatop is not installed (apt-get install hatop); CI installs it");
        return;
    };
    let backends = [backend("api-1").await, backend("api-2").await];
    let config = ApiConfig::new(&[backends[0].addr(), backends[1].addr()])
        .global("stats_socket = \"unix:admin.sock\"")
        .pool(HEALTH_100MS)
        .render();
    let mut lb = Lb::start(&config);
    lb.frontend_addr("veza").await;
    let socket = lb.dir().join("admin.sock");
    wait_for("both servers UP", &socket, |t| {
        cell(t, "api-1", STATUS) == "UP" && cell(t, "api-2", STATUS) == "UP"
    })
    .await;

    let mut console = Console::start(program, &socket);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !["api-1", "api-2", "BACKEND", "FRONTEND"]
        .iter()
        .all(|name| console.drawn().contains(name))
    {
        assert!(
            Instant::now() < deadline,
            "hatop did not list every server:\n{}",
            console.drawn()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drawn = console.drawn();
    assert!(
        !drawn.contains("error"),
        "hatop reported an error:\n{drawn}"
    );
    assert!(drawn.contains("veza-lb Version:"), "{drawn}");

    // The status screen: `>>> veza`, FRONTEND, a blank line, `>>> api`, then api-1.
    for _ in 0..4 {
        console.press(DOWN).await;
    }
    console.press(F10_DISABLE).await;
    wait_for("api-1 disabled from hatop", &socket, |t| {
        cell(t, "api-1", STATUS) == "MAINT"
    })
    .await;
    assert_eq!(
        cell(&stat(&socket).await, "api-2", STATUS),
        "UP",
        "only the selected server"
    );
    console.press(F9_ENABLE).await;
    wait_for("api-1 enabled from hatop", &socket, |t| {
        cell(t, "api-1", STATUS) != "MAINT"
    })
    .await;
    console.press(F7_WEIGHT_UP).await;
    wait_for("api-1 weight 2 from hatop", &socket, |t| {
        cell(t, "api-1", WEIGHT) == "2"
    })
    .await;
    console.press(b"q").await;
    drop(console);
    drop(backends);
}
