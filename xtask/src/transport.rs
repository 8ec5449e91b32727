//! How `cargo xtask deploy` reaches a host: run a command there, learn a file's SHA-256, and
//! replace a file atomically (upload to a temporary name in the same directory, then rename).
//!
//! - `local:DIR`: a directory tree on this machine (an image being built, a test); commands
//!   run here and `veza-provision` gets `--root DIR`.
//! - `ssh://user@host[:port]`: `ssh` with `BatchMode`, plus the inventory's `ssh_options`.
//! - `incus:NAME`: `incus exec NAME --` and `incus file push`, as the seed deployed.
//! - `nspawn:DIR`: a running `systemd-nspawn -D DIR` container, entered with `nsenter` (its
//!   systemd is PID 1 inside, so `systemctl` works there).
//! - `machine:NAME`: the same, for the container started with `--machine=NAME` (containers
//!   booted from one directory, as `cargo xtask pair --systemd` boots its two hosts).
//!
//! Every failure names the host, the transport and the command that failed.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{Error, Result, fail};

/// A parsed `transport = "..."` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `local:DIR`: a tree on this machine.
    Local {
        /// The tree (absolute).
        dir: PathBuf,
    },
    /// `ssh://[user@]host[:port]`.
    Ssh {
        /// Login user (ssh's default when absent).
        user: Option<String>,
        /// Host name or address.
        host: String,
        /// Port (ssh's default when absent).
        port: Option<u16>,
        /// Extra `ssh` arguments (identity, known hosts...).
        options: Vec<String>,
    },
    /// `incus:NAME`: an Incus instance.
    Incus {
        /// The instance.
        name: String,
    },
    /// `nspawn:DIR`: the running container booted from DIR.
    Nspawn {
        /// Its root directory (absolute).
        dir: PathBuf,
    },
    /// `machine:NAME`: the running container started with `--machine=NAME`.
    Machine {
        /// The machine name.
        name: String,
    },
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Local { dir } => write!(f, "local:{}", dir.display()),
            Transport::Ssh {
                user, host, port, ..
            } => {
                write!(f, "ssh://")?;
                if let Some(user) = user {
                    write!(f, "{user}@")?;
                }
                write!(f, "{host}")?;
                if let Some(port) = port {
                    write!(f, ":{port}")?;
                }
                Ok(())
            }
            Transport::Incus { name } => write!(f, "incus:{name}"),
            Transport::Nspawn { dir } => write!(f, "nspawn:{}", dir.display()),
            Transport::Machine { name } => write!(f, "machine:{name}"),
        }
    }
}

impl Transport {
    /// Parses `local:DIR`, `ssh://user@host[:port]`, `incus:NAME` or `nspawn:DIR`; relative
    /// directories are taken from `base`.
    pub fn parse(text: &str, base: &Path, ssh_options: &[String]) -> Result<Transport, String> {
        let dir = |rest: &str| {
            if rest.is_empty() {
                Err(format!("{text:?}: the directory is missing"))
            } else {
                Ok(base.join(rest))
            }
        };
        if let Some(rest) = text.strip_prefix("local:") {
            return Ok(Transport::Local { dir: dir(rest)? });
        }
        if let Some(rest) = text.strip_prefix("nspawn:") {
            return Ok(Transport::Nspawn { dir: dir(rest)? });
        }
        // A name made of letters, digits and `also`, or what it must be.
        let name = |name: &str, also: &str, what: &str| {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || also.contains(c));
            if valid {
                Ok(name.to_owned())
            } else {
                Err(format!("{text:?}: {what}"))
            }
        };
        if let Some(rest) = text.strip_prefix("machine:") {
            return Ok(Transport::Machine {
                name: name(
                    rest,
                    "-_.",
                    "a machine name is letters, digits, '-', '_' and '.'",
                )?,
            });
        }
        if let Some(rest) = text.strip_prefix("incus:") {
            return Ok(Transport::Incus {
                name: name(
                    rest,
                    "-.:",
                    "an Incus instance name is letters, digits and '-'",
                )?,
            });
        }
        if let Some(rest) = text.strip_prefix("ssh://") {
            let rest = rest.trim_end_matches('/');
            let (user, host_port) = match rest.rsplit_once('@') {
                Some((user, hp)) if !user.is_empty() => (Some(user.to_owned()), hp),
                Some(_) => return Err(format!("{text:?}: the user before '@' is empty")),
                None => (None, rest),
            };
            let (host, port) = split_host_port(host_port).ok_or_else(|| {
                format!("{text:?}: write ssh://user@host or ssh://user@host:port")
            })?;
            if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
                return Err(format!("{text:?}: the host name is not valid"));
            }
            return Ok(Transport::Ssh {
                user,
                host,
                port,
                options: ssh_options.to_vec(),
            });
        }
        Err(format!(
            "{text:?} is not a transport; write local:DIR, ssh://user@host[:port], incus:NAME or \
             nspawn:DIR or machine:NAME"
        ))
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host.to_owned(), Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host.to_owned(), None)),
            None => None,
        };
    }
    match text.split_once(':') {
        Some((host, port)) => Some((host.to_owned(), Some(port.parse().ok()?))),
        None => Some((text.to_owned(), None)),
    }
}

/// What a command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Whether it exited 0.
    pub success: bool,
    /// How it ended, for messages.
    pub status: String,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// One host as deploy sees it: its inventory name, how to reach it, and the tree its files
/// live in (`local:` always has one; the others may, via the inventory's `root`).
#[derive(Debug, Clone)]
pub struct Host {
    /// Inventory name, e.g. `backend-api-1`.
    pub name: String,
    /// How it is reached.
    pub transport: Transport,
    /// The directory tree standing for `/` on that host, if not `/` itself.
    pub root: Option<PathBuf>,
}

impl Host {
    /// A host; `local:DIR` implies `root = DIR`.
    pub fn new(name: &str, transport: Transport, root: Option<PathBuf>) -> Host {
        let root = match &transport {
            Transport::Local { dir } => Some(dir.clone()),
            _ => root,
        };
        Host {
            name: name.to_owned(),
            transport,
            root,
        }
    }

    /// `name (transport)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.transport)
    }

    /// Where an absolute path of the host's file system is, as the transport sees it.
    pub fn path(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_owned(),
        }
    }

    /// Whether systemd manages services there (a tree is only files).
    pub fn has_systemd(&self) -> bool {
        self.root.is_none()
    }

    /// The program and arguments that run `argv` on the host.
    pub async fn command_line(&self, argv: &[String]) -> Result<Vec<String>> {
        let mut line: Vec<String> = Vec::new();
        match &self.transport {
            Transport::Local { .. } => {}
            Transport::Ssh {
                user,
                host,
                port,
                options,
            } => {
                line.extend(["ssh", "-o", "BatchMode=yes"].map(String::from));
                if let Some(port) = port {
                    line.extend(["-p".to_owned(), port.to_string()]);
                }
                line.extend(options.iter().cloned());
                line.push(match user {
                    Some(user) => format!("{user}@{host}"),
                    None => host.clone(),
                });
                line.push("--".to_owned());
                // ssh hands the remote shell one string: quote every word.
                line.push(
                    argv.iter()
                        .map(|a| shell_quote(a))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                return Ok(line);
            }
            Transport::Incus { name } => {
                line.extend(["incus", "exec", name, "--"].map(String::from));
            }
            Transport::Nspawn { dir } => {
                let leader = nspawn_leader(dir)
                    .map_err(|e| Error::Message(format!("{}: {e}", self.label())))?;
                line.extend(["nsenter", "-t", &leader.to_string(), "-a", "--"].map(String::from));
            }
            Transport::Machine { name } => {
                let leader = machine_leader(name)
                    .map_err(|e| Error::Message(format!("{}: {e}", self.label())))?;
                line.extend(["nsenter", "-t", &leader.to_string(), "-a", "--"].map(String::from));
            }
        }
        line.extend(argv.iter().cloned());
        Ok(line)
    }

    /// Runs `argv` on the host, `stdin` fed to it; an error only if it could not be started.
    pub async fn run(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<Output> {
        let line = self.command_line(argv).await?;
        self.exec(&line, argv, stdin).await
    }

    /// Runs `line` on this machine; `argv` is what it runs on the host, for messages.
    async fn exec(&self, line: &[String], argv: &[String], stdin: Option<&[u8]>) -> Result<Output> {
        let shown = display_command(argv);
        let mut command = tokio::process::Command::new(&line[0]);
        command
            .args(&line[1..])
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            Error::Message(format!(
                "{}: cannot start `{}`: {e}",
                self.label(),
                display_command(line)
            ))
        })?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits early closes its stdin; its status tells the story.
            let _ = pipe.write_all(data).await;
            drop(pipe);
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| Error::Message(format!("{}: `{shown}`: {e}", self.label())))?;
        Ok(Output {
            success: output.status.success(),
            status: output.status.to_string(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `argv`; a non-zero exit is an error naming the host and the command.
    pub async fn run_ok(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<Output> {
        let output = self.run(argv, stdin).await?;
        if output.success {
            return Ok(output);
        }
        Err(self.command_failed(argv, &output))
    }

    /// The error for a command that ran and failed.
    pub fn command_failed(&self, argv: &[String], output: &Output) -> Error {
        let mut why = output.stderr.trim().to_owned();
        if why.is_empty() {
            why = output.stdout.trim().to_owned();
        }
        let why: Vec<&str> = why.lines().collect();
        let why = why[why.len().saturating_sub(6)..].join("\n  ");
        Error::Message(format!(
            "{}: `{}` failed ({}){}{}",
            self.label(),
            display_command(argv),
            output.status,
            if why.is_empty() { "" } else { ": " },
            why
        ))
    }

    /// SHA-256 (hex) of the file at the absolute host path `path`, or `None` if it is absent.
    pub async fn sha256(&self, path: &Path) -> Result<Option<String>> {
        let on_host = self.path(path);
        if matches!(self.transport, Transport::Local { .. }) {
            return match std::fs::read(&on_host) {
                Ok(bytes) => Ok(Some(sha256_hex(&bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => fail(format!(
                    "{}: cannot read {}: {e}",
                    self.label(),
                    on_host.display()
                )),
            };
        }
        let argv = script(
            r#"if [ -e "$1" ]; then sha256sum < "$1"; fi"#,
            &[&on_host.display().to_string()],
        );
        let output = self.run_ok(&argv, None).await?;
        let digest = output.stdout.split_whitespace().next().map(str::to_owned);
        match digest {
            Some(d) if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(Some(d)),
            Some(other) => fail(format!(
                "{}: `sha256sum < {}` printed {other:?}, not a digest",
                self.label(),
                on_host.display()
            )),
            None => Ok(None),
        }
    }

    /// Makes the absolute host path `dest` hold `contents` with `mode`, owned by whoever
    /// runs the transport (root): written to a temporary name in the same directory, then
    /// renamed over `dest`, so a reader sees the old file or the new one, never a part.
    pub async fn put(&self, dest: &Path, contents: &[u8], mode: u32) -> Result<()> {
        let on_host = self.path(dest);
        let dir = on_host
            .parent()
            .ok_or_else(|| Error::Message(format!("{} has no directory", dest.display())))?
            .to_path_buf();
        let file = on_host
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dir.join(format!(".{file}.veza-deploy-{}", std::process::id()));
        match &self.transport {
            Transport::Local { .. } => put_local(&on_host, &temp, contents, mode)
                .map_err(|e| Error::Message(format!("{}: {e}", self.label()))),
            Transport::Incus { name } => {
                let (dir_s, temp_s) = (dir.display().to_string(), temp.display().to_string());
                self.run_ok(&words(&["mkdir", "-p", &dir_s]), None).await?;
                let local = tempfile::NamedTempFile::new()
                    .map_err(Error::io("cannot create a temporary file"))?;
                std::fs::write(local.path(), contents)
                    .map_err(Error::io("cannot write a temporary file"))?;
                let push = words(&[
                    "incus",
                    "file",
                    "push",
                    "--mode",
                    &format!("{mode:04o}"),
                    &local.path().display().to_string(),
                    &format!("{name}{temp_s}"),
                ]);
                let output = self.exec(&push, &push, None).await?;
                if !output.success {
                    return Err(self.command_failed(&push, &output));
                }
                let mv = words(&["mv", "-f", &temp_s, &on_host.display().to_string()]);
                self.run_ok(&mv, None).await.map(drop)
            }
            Transport::Ssh { .. } | Transport::Nspawn { .. } | Transport::Machine { .. } => {
                let argv = script(
                    r#"set -e; mkdir -p "$1"; umask 077; cat > "$2"; chmod "$3" "$2"; mv -f "$2" "$4""#,
                    &[
                        &dir.display().to_string(),
                        &temp.display().to_string(),
                        &format!("{mode:04o}"),
                        &on_host.display().to_string(),
                    ],
                );
                self.run_ok(&argv, Some(contents)).await.map(drop)
            }
        }
    }
}

fn put_local(dest: &Path, temp: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let dir = temp.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
    })?;
    let attempt = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(temp)?;
        file.write_all(contents)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(temp, dest)?;
        std::fs::File::open(dir)?.sync_all()
    };
    attempt().map_err(|e| {
        let _ = std::fs::remove_file(temp);
        std::io::Error::new(e.kind(), format!("cannot write {}: {e}", dest.display()))
    })
}

/// `sh -c SCRIPT sh ARGS...`: arguments reach the script as `$1`... without any quoting.
pub fn script(body: &str, args: &[&str]) -> Vec<String> {
    let mut argv = words(&["sh", "-c", body, "sh"]);
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv
}

/// `&str`s to owned words.
pub fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A word as a POSIX shell reads it back unchanged.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line as a user would type it.
pub fn display_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The PID (on this host) of the systemd running as PID 1 in the container booted from
/// `dir`: the `systemd` child of the `systemd-nspawn` whose `-D`/`--directory` is `dir`.
pub fn nspawn_leader(dir: &Path) -> Result<u32, String> {
    let wanted = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let procs = processes();
    let nspawn = procs
        .iter()
        .filter(|p| p.comm == "systemd-nspawn")
        .find(|p| nspawn_directory(p.pid).as_deref() == Some(wanted.as_path()))
        .ok_or_else(|| {
            format!(
                "no systemd-nspawn is running with -D {}; start it (cargo xtask lab up)",
                wanted.display()
            )
        })?;
    container_init(&procs, nspawn, &wanted.display().to_string())
}

/// The PID (on this host) of systemd inside the container started with `--machine=NAME`.
pub fn machine_leader(name: &str) -> Result<u32, String> {
    let procs = processes();
    let wanted = format!("--machine={name}");
    let nspawn = procs
        .iter()
        .filter(|p| p.comm == "systemd-nspawn")
        .find(|p| {
            std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == wanted.as_bytes()))
        })
        .ok_or_else(|| format!("no systemd-nspawn is running with {wanted}"))?;
    container_init(&procs, nspawn, name)
}

/// The container's systemd: nspawn's child (with --boot), or a descendant close to it.
fn container_init(procs: &[Proc], nspawn: &Proc, wanted: &str) -> Result<u32, String> {
    let mut frontier = vec![nspawn.pid];
    for _ in 0..3 {
        let children: Vec<&Proc> = procs
            .iter()
            .filter(|p| frontier.contains(&p.ppid))
            .collect();
        if let Some(init) = children.iter().find(|p| p.comm == "systemd") {
            return Ok(init.pid);
        }
        frontier = children.iter().map(|p| p.pid).collect();
    }
    Err(format!(
        "systemd-nspawn {} for {wanted} has no systemd child yet; is it booting with -b?",
        nspawn.pid,
    ))
}

/// One process: pid, parent, command name.
#[derive(Debug)]
struct Proc {
    pid: u32,
    ppid: u32,
    comm: String,
}

fn processes() -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid ...; comm may hold spaces and parentheses.
            let open = stat.find('(')?;
            let close = stat.rfind(')')?;
            let comm = stat.get(open + 1..close)?.to_owned();
            let ppid = stat
                .get(close + 2..)?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(Proc { pid, ppid, comm })
        })
        .collect()
}

/// The directory a running systemd-nspawn was given, resolved against its working directory.
fn nspawn_directory(pid: u32) -> Option<PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let mut dir = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "-D" || arg == "--directory" {
            dir = iter.next().cloned();
        } else if let Some(d) = arg.strip_prefix("--directory=") {
            dir = Some(d.to_owned());
        } else if let Some(d) = arg.strip_prefix("-D").filter(|d| !d.is_empty()) {
            dir = Some(d.to_owned());
        }
    }
    let dir = PathBuf::from(dir?);
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    cwd.join(dir).canonicalize().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Transport, String> {
        Transport::parse(
            text,
            Path::new("/base"),
            &["-i".to_owned(), "key".to_owned()],
        )
    }

    #[test]
    fn parses_every_transport() {
        assert_eq!(
            parse("local:trees/a").unwrap(),
            Transport::Local {
                dir: "/base/trees/a".into()
            }
        );
        assert_eq!(
            parse("nspawn:/var/lib/machines/lab").unwrap(),
            Transport::Nspawn {
                dir: "/var/lib/machines/lab".into()
            }
        );
        assert_eq!(
            parse("incus:backend-api-1").unwrap(),
            Transport::Incus {
                name: "backend-api-1".into()
            }
        );
        let machine = parse("machine:veza-vz42-lb-1").unwrap();
        assert_eq!(
            machine,
            Transport::Machine {
                name: "veza-vz42-lb-1".into()
            }
        );
        assert_eq!(machine.to_string(), "machine:veza-vz42-lb-1");
        let ssh = parse("ssh://root@10.0.0.5:2222").unwrap();
        assert_eq!(
            ssh,
            Transport::Ssh {
                user: Some("root".into()),
                host: "10.0.0.5".into(),
                port: Some(2222),
                options: vec!["-i".into(), "key".into()],
            }
        );
        assert_eq!(ssh.to_string(), "ssh://root@10.0.0.5:2222");
        assert_eq!(parse("ssh://[::1]:22").unwrap().to_string(), "ssh://::1:22");
        assert_eq!(parse("ssh://lb.lab").unwrap().to_string(), "ssh://lb.lab");
        for bad in [
            "ftp://x",
            "local:",
            "incus:",
            "incus:a b",
            "machine:",
            "machine:lb/1",
            "ssh://root@host:port",
            "ssh://@host",
            "ssh://-oProxyCommand=x",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn quotes_for_the_remote_shell() {
        assert_eq!(shell_quote("/opt/veza/lb"), "/opt/veza/lb");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[tokio::test]
    async fn command_lines_per_transport() {
        let host = |t: &str| Host::new("h", parse(t).unwrap(), None);
        let argv = words(&["systemctl", "restart", "veza lb"]);
        assert_eq!(
            host("ssh://root@example:2222")
                .command_line(&argv)
                .await
                .unwrap(),
            words(&[
                "ssh",
                "-o",
                "BatchMode=yes",
                "-p",
                "2222",
                "-i",
                "key",
                "root@example",
                "--",
                "systemctl restart 'veza lb'"
            ])
        );
        assert_eq!(
            host("incus:lb").command_line(&argv).await.unwrap(),
            words(&[
                "incus",
                "exec",
                "lb",
                "--",
                "systemctl",
                "restart",
                "veza lb"
            ])
        );
        assert_eq!(host("local:x").command_line(&argv).await.unwrap(), argv);
        let err = host("nspawn:/nonexistent/lab")
            .command_line(&argv)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("h (nspawn:/nonexistent/lab): "), "{err}");
    }

    #[tokio::test]
    async fn local_put_is_atomic_and_hashes_match() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(
            "t",
            Transport::Local {
                dir: dir.path().to_path_buf(),
            },
            None,
        );
        let dest = Path::new("/opt/veza/lb/veza-lb");
        assert_eq!(host.sha256(dest).await.unwrap(), None);
        host.put(dest, b"binary", 0o755).await.unwrap();
        let on_disk = dir.path().join("opt/veza/lb/veza-lb");
        assert_eq!(std::fs::read(&on_disk).unwrap(), b"binary");
        let mode = std::fs::metadata(&on_disk).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        assert_eq!(
            host.sha256(dest).await.unwrap(),
            Some(sha256_hex(b"binary"))
        );
        let leftovers = std::fs::read_dir(dir.path().join("opt/veza/lb"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 1, "the temporary file was left behind");
    }

    #[tokio::test]
    async fn a_failed_command_names_host_and_command() {
        let host = Host::new(
            "backend-api-1",
            Transport::Local { dir: "/tmp".into() },
            None,
        );
        let err = host
            .run_ok(&script("echo nope >&2; exit 3", &[]), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("backend-api-1 (local:/tmp): `sh -c "),
            "{err}"
        );
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.ends_with("nope"), "{err}");
    }
}
