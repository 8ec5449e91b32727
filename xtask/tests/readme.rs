//! Every command of every `sh` block in README.md and docs/quickstart.md, run as a reader
//! pastes it, from the workspace, so the documentation cannot rot. What must differ from the
//! reader's machine is replaced, and only that: paths under `/run/veza-lb` and `/tmp/image`
//! go to a temporary directory, `veza-provision apply` without `--check` provisions a tree
//! (`--root`) instead of this machine, and load tests run 3 s instead of 30. Long-running
//! commands (a server, the demo) run in the background until the file's commands are done;
//! interactive ones (a live table, hatop) get a terminal from script(1) and must still be
//! running after 2 s. Commands that CI runs in steps of their own (smoke, the suites, the
//! pair, the load tests on their own topology) are not run twice: each of their `--flags` must
//! be one their `--help` lists.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod support;

/// One line of an `sh` block, with where it is.
#[derive(Debug, Clone)]
struct Line {
    at: String,
    command: String,
}

/// The `sh` blocks of `file`, each a list of commands (comment-only lines left out, a
/// trailing `# comment` cut).
fn blocks(file: &Path) -> Vec<Vec<Line>> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<Line>> = None;
    for (n, raw) in text.lines().enumerate() {
        match (&mut current, raw.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap_or_default()),
            (Some(lines), line) => {
                let command = match line.find(" #") {
                    Some(i) => &line[..i],
                    None => line,
                }
                .trim();
                if !command.is_empty() && !command.starts_with('#') {
                    lines.push(Line {
                        at: format!("{}:{}", file.display(), n + 1),
                        command: command.to_owned(),
                    });
                }
            }
            (None, _) => {}
        }
    }
    blocks
}

/// How a command is run.
#[derive(Debug, PartialEq, Eq)]
enum How {
    /// Now, to its end; it must succeed.
    Now,
    /// In the background until the block ends; ready once this local port answers.
    Background(u16),
    /// With a terminal; it must still run after 2 s.
    Interactive,
    /// By CI in a step of its own; only its flags are checked.
    Elsewhere,
}

fn how(command: &str) -> How {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["cargo", "test", ..] | ["cargo", "xtask", "smoke" | "pair", ..] => How::Elsewhere,
        ["cargo", "xtask", "load", rest @ ..] if !rest.contains(&"--target") => How::Elsewhere,
        ["cargo", "xtask", "demo", ..] => How::Background(9101),
        ["veza-lb", "-c" | "run", ..] => How::Background(9100),
        ["hatop", ..] => How::Interactive,
        [_, "ctl", .., "top"] => How::Interactive,
        _ => How::Now,
    }
}

/// The command with what must differ on this machine replaced.
fn localized(command: &str, tmp: &Path, example: &Path) -> String {
    let tmp_s = tmp.display().to_string();
    let mut out = command
        .replace("/run/veza-lb/", &format!("{tmp_s}/run/veza-lb/"))
        .replace("/tmp/image", &format!("{tmp_s}/image"))
        .replace("--duration 30s", "--duration 3s");
    if how(command) == How::Background(9100) {
        out = out.replace("examples/veza-lb.toml", &example.display().to_string());
    }
    if out.starts_with("veza-provision apply")
        && !out.contains("--check")
        && !out.contains("--root")
    {
        out.push_str(&format!(" --root {tmp_s}/host"));
    }
    out
}

/// A command run through `sh -c` from the workspace, `target/debug` first on the `PATH`.
fn shell(command: &str, path: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", command])
        .current_dir(support::workspace())
        .env("PATH", path)
        .stdin(Stdio::null())
        .process_group(0);
    c
}

/// Stops a process group: SIGINT (a reader's Ctrl-C), then SIGKILL.
fn stop(mut child: Child) {
    let group = Pid::from_raw(-i32::try_from(child.id()).unwrap());
    let _ = kill(group, Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// Background processes of a block; stopped when it ends, also on a failure.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in self.0.drain(..) {
            stop(child);
        }
    }
}

/// Every `--flag` of `command` is one `cargo xtask SUB --help` lists.
fn flags_exist(command: &str, xtask: &Path) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let Some(sub) = words.get(2) else { return };
    if words[..2] != ["cargo", "xtask"] {
        return;
    }
    let help = Command::new(xtask).args([sub, "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in words.iter().filter(|w| w.starts_with("--")) {
        assert!(
            help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
            "`{command}`: cargo xtask {sub} has no {flag}:\n{help}"
        );
    }
}

/// Runs a block's commands; background ones join `running`, which the caller stops when the
/// file's session ends (a reader's terminal keeps them running from one block to the next).
fn run_block(block: &[Line], tmp: &Path, example: &Path, path: &str, running: &mut Running) {
    let xtask = Path::new(env!("CARGO_BIN_EXE_xtask"));
    for line in block {
        let command = localized(&line.command, tmp, example);
        match how(&line.command) {
            How::Elsewhere => {
                flags_exist(&line.command, xtask);
                println!(
                    "{}: checked, run by CI in a step of its own: {command}",
                    line.at
                );
            }
            How::Now => {
                println!("{}: {command}", line.at);
                let out = shell(&command, path).output().unwrap();
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    out.status.success(),
                    "{}: `{command}` failed:\n{text}",
                    line.at
                );
                if command.contains("show stat") {
                    assert!(text.contains("backend-api-1"), "{}: {text}", line.at);
                }
            }
            How::Background(port) => {
                println!("{}: in the background: {command}", line.at);
                let log = tmp.join(format!("background-{port}.log"));
                let file = std::fs::File::create(&log).unwrap();
                let child = shell(&command, path)
                    .stdout(file.try_clone().unwrap())
                    .stderr(file)
                    .spawn()
                    .unwrap();
                running.0.push(child);
                let deadline = Instant::now() + Duration::from_secs(300);
                while TcpStream::connect(("127.0.0.1", port)).is_err() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    assert!(
                        Instant::now() < deadline,
                        "{}: `{command}` never listened on {port}:\n{text}",
                        line.at
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            How::Interactive => {
                if command.starts_with("hatop") && !Path::new("/usr/bin/hatop").exists() {
                    println!(
                        "{}: SKIPPED (hatop is not installed; CI installs it)",
                        line.at
                    );
                    continue;
                }
                println!("{}: with a terminal for 2 s: {command}", line.at);
                let mut child = shell(&format!("script -qec '{command}' /dev/null"), path)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                std::thread::sleep(Duration::from_secs(2));
                let alive = child.try_wait().unwrap().is_none();
                stop(child);
                assert!(alive, "{}: `{command}` ended at once", line.at);
            }
        }
    }
}

#[test]
fn every_documented_command_runs_as_written() {
    let root = support::workspace();
    let tmp = testkit::temp_dir();
    // The example configuration with its runtime directory in the temporary one.
    let example: PathBuf = tmp.path().join("veza-lb.toml");
    let text = std::fs::read_to_string(root.join("examples/veza-lb.toml")).unwrap();
    let tmp_s = tmp.path().display().to_string();
    std::fs::write(
        &example,
        text.replace("/run/veza-lb/", &format!("{tmp_s}/run/veza-lb/")),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        root.join("target/debug").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for file in ["README.md", "docs/quickstart.md"] {
        let blocks = blocks(&root.join(file));
        assert!(!blocks.is_empty(), "{file} has no sh block");
        let mut running = Running(Vec::new());
        for block in blocks {
            run_block(&block, tmp.path(), &example, &path, &mut running);
        }
    }
}

#[test]
fn commands_are_sorted_into_how_they_run() {
    assert_eq!(how("cargo xtask smoke"), How::Elsewhere);
    assert_eq!(how("cargo xtask load --duration 30s"), How::Elsewhere);
    assert_eq!(
        how("cargo xtask load --target http://127.0.0.1:8080 --duration 30s"),
        How::Now
    );
    assert_eq!(
        how("veza-lb -c examples/veza-lb.toml"),
        How::Background(9100)
    );
    assert_eq!(how("veza-lb ctl top"), How::Interactive);
    assert_eq!(how("veza-lb check -c x"), How::Now);
    let tmp = Path::new("/t");
    let example = Path::new("/t/veza-lb.toml");
    assert_eq!(
        localized("veza-provision apply -c r.toml", tmp, example),
        "veza-provision apply -c r.toml --root /t/host"
    );
    assert_eq!(
        localized(
            "veza-provision apply -c r.toml --check --diff",
            tmp,
            example
        ),
        "veza-provision apply -c r.toml --check --diff"
    );
    assert_eq!(
        localized("hatop -s /run/veza-lb/admin.sock", tmp, example),
        "hatop -s /t/run/veza-lb/admin.sock"
    );
    assert_eq!(
        localized("veza-lb -c examples/veza-lb.toml", tmp, example),
        "veza-lb -c /t/veza-lb.toml"
    );
}
