//! The `veza-demo-backend` executable: startup line, signals, readable errors.

use std::net::SocketAddr;
use std::process::Stdio;

use hyper::StatusCode;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::support::{get, loopback, within};

const BINARY: &str = env!("CARGO_BIN_EXE_veza-demo-backend");

/// The running binary and the address its startup line announced.
async fn launch(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    within("startup line", BufReader::new(stdout).read_line(&mut line))
        .await
        .unwrap();
    let name = args[args.iter().position(|arg| *arg == "--name").unwrap() + 1];
    let prefix = format!("veza-demo-backend {name} listening on ");
    let addr = line
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
    (child, addr.parse().expect("startup line ends with IP:PORT"))
}

fn signal(child: &Child, signal: Signal) {
    let pid = i32::try_from(child.id().expect("still running")).unwrap();
    kill(Pid::from_raw(pid), signal).unwrap();
}

#[tokio::test]
async fn announces_its_port_serves_and_exits_0_on_sigterm() {
    let (mut child, addr) = launch(&[
        "--listen",
        "127.0.0.1:0",
        "--name",
        "stream-server-1",
        "--kind",
        "stream",
        "--segment-size",
        "100",
        "--threads",
        "2",
    ])
    .await;
    assert_ne!(addr.port(), 0);

    let segment = get(addr, "/stream/9/seg-1.ts").await;
    assert_eq!(segment.served_by(), "stream-server-1");
    assert_eq!(segment.body.len(), 100);
    assert_eq!(get(addr, "/health").await.status, StatusCode::OK);

    signal(&child, Signal::SIGTERM);
    let status = within("exit after SIGTERM", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn exits_0_on_sigint() {
    let (mut child, addr) = launch(&["--listen", "127.0.0.1:0", "--name", "api-1"]).await;
    assert_eq!(get(addr, "/").await.served_by(), "api-1");
    signal(&child, Signal::SIGINT);
    let status = within("exit after SIGINT", child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Runs the binary to completion; returns its exit code and stderr.
async fn fail(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut stderr = String::new();
    let mut pipe = child.stderr.take().unwrap();
    within("stderr", pipe.read_to_string(&mut stderr))
        .await
        .unwrap();
    let status = within("exit", child.wait()).await.unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (status.code(), stderr)
}

#[tokio::test]
async fn bad_input_gets_one_readable_line_and_a_failure_code() {
    let taken = TcpListener::bind(loopback()).await.unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let (code, stderr) = fail(&["--listen", &taken, "--name", "api-1"]).await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("veza-demo-backend: cannot listen on {taken}: ")));

    let (code, stderr) = fail(&["--listen", "127.0.0.1:0", "--name", "two words"]).await;
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("\"two words\""), "{stderr}");

    // Usage errors belong to clap: exit code 2 and a hint.
    let (code, stderr) = fail(&["--listen", "nowhere", "--name", "api-1"]).await;
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--listen"), "{stderr}");
    let (code, _) = fail(&["--listen", "127.0.0.1:0", "--name", "a", "--threads", "0"]).await;
    assert_eq!(code, Some(2));
}
