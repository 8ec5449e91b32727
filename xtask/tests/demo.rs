//! `cargo xtask demo`, the one-command tour, as a newcomer runs it: it must print where the
//! stats page, `/metrics` and the runtime API are, each must answer, and every command it
//! prints under `try:` must run as printed (the interactive ones, `top` and hatop, are
//! started and left at once; the load test runs 3 s instead of 30). Ctrl-C stops it cleanly.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod support;

/// The lines the demo printed up to and including `until`.
fn lines_until(rx: &mpsc::Receiver<String>, until: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(until);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(_) => panic!(
                "no {until:?} from the demo; it printed:\n{}",
                lines.join("\n")
            ),
        }
    }
}

/// The value after `label` on the tour's line for it.
fn field<'a>(lines: &'a [String], label: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("no {label} line in:\n{}", lines.join("\n")))
}

/// Runs `command` through `sh -c` (what a reader pasting it does); its output.
fn sh(command: &str, timeout: Option<Duration>) -> (bool, String) {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .current_dir(support::workspace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    if let Some(timeout) = timeout {
        // An interactive command: it must still be running (not failed at start), then it
        // is stopped.
        std::thread::sleep(timeout);
        let running = child.try_wait().unwrap().is_none();
        let group = Pid::from_raw(-i32::try_from(child.id()).unwrap());
        let _ = kill(group, Signal::SIGTERM);
        let out = child.wait_with_output().unwrap();
        return (running, String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The demo process; stopped (SIGINT, then SIGKILL) when a failing test unwinds, so no
/// demo outlives it.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let pid = Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(0));
            let _ = kill(pid, Signal::SIGINT);
            std::thread::sleep(Duration::from_secs(3));
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_tour_prints_what_answers_and_commands_that_run() {
    let tmp = testkit::temp_dir();
    let bin = support::binaries(tmp.path());
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["demo", "--free-ports", "--interval", "500ms", "--bin-dir"])
            .arg(&bin)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = demo.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let tour = lines_until(&rx, "Ctrl-C stops everything.");
    let page = field(&tour, "stats page");
    let metrics = field(&tour, "metrics");
    let stats = sh(&format!("curl -sf {page}"), None);
    assert!(stats.0, "{page}: {}", stats.1);
    assert!(
        stats.1.contains("backend-api-1") && stats.1.contains("stream-server-2"),
        "the stats page shows the servers"
    );
    let prom = sh(&format!("curl -sf {metrics}"), None);
    assert!(
        prom.0 && prom.1.contains("haproxy_server_status"),
        "{}",
        prom.1
    );

    let try_lines: Vec<&String> = tour
        .iter()
        .skip_while(|l| l.as_str() != "try:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(try_lines.len() >= 8, "{try_lines:?}");
    for line in try_lines {
        let command = line.split("   #").next().unwrap().trim();
        let interactive = command.contains(" top") || command.starts_with("hatop");
        if command.starts_with("hatop") && !std::path::Path::new("/usr/bin/hatop").exists() {
            println!("SKIPPED {command}: hatop is not installed (CI installs it)");
            continue;
        }
        let mut command = command.replace("--duration 30s", "--duration 3s");
        if interactive {
            // A terminal for curses (hatop) and the live table: script(1) gives it one.
            command = format!("script -qec '{command}' /dev/null");
        }
        let (ok, output) = sh(&command, interactive.then_some(Duration::from_secs(2)));
        assert!(ok, "`{command}` failed:\n{output}");
        if command.contains("show stat") {
            assert!(output.starts_with("# pxname,svname"), "{output}");
        }
        if command.contains("xtask load") {
            assert!(output.contains("report "), "{output}");
        }
    }

    kill(
        Pid::from_raw(i32::try_from(demo.0.id()).unwrap()),
        Signal::SIGINT,
    )
    .unwrap();
    let rest = lines_until(&rx, "stopped.");
    assert!(demo.0.wait().unwrap().success(), "{rest:?}");
}
