//! `cargo xtask deploy --inventory FILE [--check]`: builds the binaries, then for every host
//! of the inventory (backends first, the load balancer last): pushes `veza-provision`, the
//! service's binary and (on the load balancer) veza-lb's configuration rendered from the
//! groups, each atomically and only when its SHA-256 differs; pushes the host's role file
//! and runs `veza-provision apply` there; then restarts (or, for a configuration change
//! alone, reloads) the service only when something it runs changed and `veza-provision` did
//! not restart it already. A new veza-lb binary replaces the running one in place (`veza-lb
//! ctl upgrade` on its admin socket: the listening sockets are handed over, no connection is
//! refused) instead of a restart. Progress is printed step by step, a per-host recap at the end.
//!
//! `--check` changes nothing: pushes are compared, not made, and `veza-provision apply
//! --check` reads the role file from its standard input.

mod inventory;
mod recap;
mod switchover;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub use inventory::{BinarySource, GroupKind, Instance, Inventory};
pub use recap::{HostRecap, Recap, Status};
pub use switchover::Pair;

use crate::build::{self, Profile};
use crate::transport::{Host, Transport, script, sha256_hex, words};
use crate::{Error, Result, fail};

/// Where `veza-provision` is installed on every host.
pub const PROVISION_PATH: &str = "/usr/local/sbin/veza-provision";
/// Where role files are kept on every host (what was applied, to re-run by hand).
pub const ROLES_DIR: &str = "/var/lib/veza-deploy/roles";

/// Options of `cargo xtask deploy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The inventory (TOML), e.g. examples/lab-local.toml.
    #[arg(long, value_name = "FILE")]
    inventory: PathBuf,
    /// Change nothing; report what would change.
    #[arg(long)]
    check: bool,
    /// Show diffs of the files veza-provision changes (env values hidden).
    #[arg(long)]
    diff: bool,
    /// Cargo profile of the binaries built and pushed.
    #[arg(long, value_enum, default_value_t = ProfileArg::Release)]
    profile: ProfileArg,
    /// Push the binaries found in DIR instead of building (e.g. target/debug).
    #[arg(long, value_name = "DIR", conflicts_with = "profile")]
    bin_dir: Option<PathBuf>,
}

/// `--profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileArg {
    /// Debug build (quick to build; for tests and the lab).
    Dev,
    /// Optimised build (what production runs).
    Release,
}

impl From<ProfileArg> for Profile {
    fn from(value: ProfileArg) -> Self {
        match value {
            ProfileArg::Dev => Profile::Dev,
            ProfileArg::Release => Profile::Release,
        }
    }
}

/// How to deploy.
#[derive(Debug, Clone)]
pub struct Options {
    /// Change nothing.
    pub check: bool,
    /// Ask veza-provision for diffs.
    pub diff: bool,
    /// Where the workspace binaries are.
    pub bin_dir: PathBuf,
}

/// Runs `cargo xtask deploy`.
pub async fn run(args: Args) -> Result<ExitCode> {
    let base = std::env::current_dir().map_err(Error::io("cannot read the current directory"))?;
    let inventory = Inventory::load(&args.inventory, &base)?;
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => build::build_packages(args.profile.into(), &packages(&inventory)).await?,
    };
    let recap = deploy(
        &inventory,
        &Options {
            check: args.check,
            diff: args.diff,
            bin_dir,
        },
    )
    .await?;
    Ok(if recap.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The workspace packages deploy needs built for `inventory`.
pub fn packages(inventory: &Inventory) -> Vec<&str> {
    let mut packages = BTreeSet::from(["veza-provision", "veza-lb"]);
    for group in &inventory.groups {
        if let Some(BinarySource::Workspace(name)) = &group.binary {
            packages.insert(name.as_str());
        }
    }
    packages.into_iter().collect()
}

/// A file deploy pushes: its bytes and where they come from, for messages.
struct Payload {
    what: String,
    bytes: Vec<u8>,
    sha256: String,
}

impl Payload {
    fn new(what: impl Into<String>, bytes: Vec<u8>) -> Payload {
        let sha256 = sha256_hex(&bytes);
        Payload {
            what: what.into(),
            bytes,
            sha256,
        }
    }

    fn read(what: impl Into<String>, path: &Path) -> Result<Payload> {
        let bytes = std::fs::read(path).map_err(Error::io(format!(
            "cannot read {} (build it first, or fix the path)",
            path.display()
        )))?;
        Ok(Payload::new(what, bytes))
    }
}

/// Deploys every host of `inventory`; an error only when nothing could start (a binary
/// missing, veza-lb's configuration invalid). Host failures are in the recap.
pub async fn deploy(inventory: &Inventory, options: &Options) -> Result<Recap> {
    let start = Instant::now();
    let provision = Payload::read("veza-provision", &options.bin_dir.join("veza-provision"))?;
    let mut binaries = BTreeMap::new();
    for group in &inventory.groups {
        let payload = match &group.binary {
            None => continue,
            Some(BinarySource::Workspace(name)) => {
                Payload::read(name, &options.bin_dir.join(name))?
            }
            Some(BinarySource::File(path)) => Payload::read(
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into(),
                ),
                path,
            )?,
        };
        binaries.insert(group.kind.name(), payload);
    }
    let lb_config = match inventory.group(GroupKind::Haproxy) {
        Some(_) => Some(Payload::new(
            "veza-lb config",
            check_lb_config(inventory, &options.bin_dir)
                .await?
                .into_bytes(),
        )),
        None => None,
    };
    let total = inventory
        .groups
        .iter()
        .map(|g| g.instances.len())
        .sum::<usize>();
    println!(
        "deploy {} ({} hosts){}",
        inventory.path.display(),
        total,
        if options.check {
            ": check mode, nothing is changed"
        } else {
            ""
        }
    );
    let mut recap = Recap::default();
    let mut env_changed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // The LB pair's host that failed, if one did: the next one (the MASTER) is left serving
    // as it was.
    let mut pair_failed: Option<String> = None;
    let pair = switchover_of(inventory)?;
    for (index, (group, instance)) in inventory.instances().enumerate() {
        let host = &instance.host;
        if inventory.is_pair(group)
            && let Some(failed) = &pair_failed
        {
            println!(
                "\n[{}/{total}] {}: skipped, the deploy of {failed} in its LB pair failed; it \
                 serves as it was",
                index + 1,
                host.name
            );
            let mut counts = BTreeMap::new();
            counts.insert(Status::Skipped.word(), 1);
            recap.hosts.push(HostRecap {
                name: host.name.clone(),
                transport: host.transport.to_string(),
                counts,
                failed: false,
                took: Duration::ZERO,
            });
            continue;
        }
        println!(
            "\n[{}/{total}] {} ({} via {}, role {})",
            index + 1,
            host.name,
            group.kind.name(),
            host.transport,
            group.role.display()
        );
        let mut run = HostRun {
            host,
            options,
            counts: BTreeMap::new(),
            failed: false,
        };
        let host_start = Instant::now();
        let work = Work {
            provision: &provision,
            binary: binaries.get(group.kind.name()),
            config: match group.kind {
                GroupKind::Haproxy => lb_config
                    .as_ref()
                    .map(|c| (c, inventory.lb.config.as_path())),
                _ => None,
            },
            instance,
            admin_socket: match group.kind {
                GroupKind::Haproxy => {
                    Some(inventory.lb.admin_socket.as_str()).filter(|s| !s.is_empty())
                }
                _ => None,
            },
            switchover: match (&pair, inventory.is_pair(group)) {
                (Some(pair), true) => inventory
                    .instances()
                    .find(|(g, i)| g.kind == group.kind && i.host.name != host.name)
                    .map(|(_, other)| (pair, &other.host)),
                _ => None,
            },
        };
        let key = format!("{}|{:?}", host.transport, host.root);
        let shared = env_changed.entry(key).or_default();
        if let Err(e) = run.deploy(&work, shared).await {
            run.record(Status::Failed, "transport", &e.to_string());
        }
        println!("  ({:.1}s)", host_start.elapsed().as_secs_f64());
        if run.failed && inventory.is_pair(group) {
            pair_failed = Some(host.name.clone());
        }
        recap.hosts.push(HostRecap {
            name: host.name.clone(),
            transport: host.transport.to_string(),
            counts: run.counts,
            failed: run.failed,
            took: host_start.elapsed(),
        });
    }
    recap.print(start.elapsed());
    Ok(recap)
}

/// The LB pair's planned switchover, when the inventory has a pair whose veza-lb has an
/// admin socket (standby is an admin command).
fn switchover_of(inventory: &Inventory) -> Result<Option<Pair>> {
    let (Some(pair), socket) = (&inventory.lb_pair, inventory.lb.admin_socket.as_str()) else {
        return Ok(None);
    };
    if socket.is_empty() {
        println!(
            "note: [lb] admin_socket is empty: the pair's address is not moved before its \
             holder is changed (standby needs the admin socket)"
        );
        return Ok(None);
    }
    let veza_lb = inventory
        .group(GroupKind::Haproxy)
        .and_then(|g| g.instances.first())
        .map(|i| i.binary_path().to_path_buf())
        .ok_or_else(|| Error::Message("[lb_pair] without [haproxy] hosts".into()))?;
    Pair::new(pair, &veza_lb, socket).map(Some)
}

/// Renders veza-lb's configuration and runs `veza-lb check` on it, here, before any host
/// is touched.
async fn check_lb_config(inventory: &Inventory, bin_dir: &Path) -> Result<String> {
    let config = inventory.render_lb_config();
    let file = tempfile::Builder::new()
        .prefix("veza-lb-")
        .suffix(".toml")
        .tempfile()
        .map_err(Error::io("cannot create a temporary file"))?;
    std::fs::write(file.path(), &config)
        .map_err(Error::io(format!("cannot write {}", file.path().display())))?;
    let veza_lb = bin_dir.join("veza-lb");
    let output = tokio::process::Command::new(&veza_lb)
        .arg("check")
        .arg("-c")
        .arg(file.path())
        .output()
        .await
        .map_err(Error::io(format!("cannot run {}", veza_lb.display())))?;
    if !output.status.success() {
        return fail(format!(
            "the veza-lb configuration rendered from {} is not valid ({}):\n{}{}\n{config}",
            inventory.path.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(config)
}

/// What one host gets.
struct Work<'a> {
    provision: &'a Payload,
    binary: Option<&'a Payload>,
    config: Option<(&'a Payload, &'a Path)>,
    instance: &'a Instance,
    /// veza-lb's admin runtime API (`unix:/run/veza-lb/admin.sock`), through which a new
    /// veza-lb binary replaces the running one without refusing a connection.
    admin_socket: Option<&'a str>,
    /// On a host of the LB pair: the switchover, and the other host, which takes the
    /// address while this one is changed.
    switchover: Option<(&'a Pair, &'a Host)>,
}

/// One host's run: its steps, printed as they end.
struct HostRun<'a> {
    host: &'a Host,
    options: &'a Options,
    counts: BTreeMap<&'static str, usize>,
    failed: bool,
}

/// What the pushes to a host found.
#[derive(Debug, Clone, Copy)]
struct Changes {
    /// veza-provision was on the host before this deploy.
    provision_was_there: bool,
    /// The service's binary changed.
    binary: bool,
    /// veza-lb's configuration changed.
    config: bool,
}

/// What veza-provision reported, by step name.
type ProvisionSteps = BTreeMap<String, Status>;

impl HostRun<'_> {
    fn record(&mut self, status: Status, name: &str, detail: &str) {
        println!("  {:<8} {name}: {detail}", status.word());
        *self.counts.entry(status.word()).or_default() += 1;
        if status == Status::Failed {
            self.failed = true;
        }
    }

    async fn deploy(&mut self, work: &Work<'_>, shared_env: &mut BTreeSet<String>) -> Result<()> {
        let instance = work.instance;
        if self.host.root.is_some() && !self.tree().await? {
            return Ok(());
        }
        let provision_was_there = self
            .push(work.provision, Path::new(PROVISION_PATH), 0o755)
            .await?
            != Pushed::Created;
        let binary_changed = match work.binary {
            Some(binary) => self.push(binary, instance.binary_path(), 0o755).await? != Pushed::Same,
            None => false,
        };
        let config_changed = match work.config {
            Some((config, path)) => self.push(config, path, 0o644).await? != Pushed::Same,
            None => false,
        };
        let role_path = Path::new(ROLES_DIR).join(format!("{}.toml", self.host.name));
        let role = Payload::new("role file", instance.role_text.clone().into_bytes());
        let role_changed = self.push(&role, &role_path, 0o644).await? != Pushed::Same;
        // What restarts or replaces veza-lb: on the pair's holder, the address moves first.
        let moved = match work.switchover {
            Some(switchover) if binary_changed || role_changed => {
                self.move_away(switchover).await?
            }
            _ => false,
        };
        let changes = Changes {
            provision_was_there,
            binary: binary_changed,
            config: config_changed,
        };
        let done = self
            .apply(work, &role, &role_path, changes, shared_env)
            .await;
        if let (true, Some((pair, other))) = (moved, work.switchover) {
            self.give_back(pair, other).await;
        }
        done
    }

    /// `veza-provision apply`, then the service: upgraded, restarted, reloaded or started as
    /// what changed asks.
    async fn apply(
        &mut self,
        work: &Work<'_>,
        role: &Payload,
        role_path: &Path,
        changes: Changes,
        shared_env: &mut BTreeSet<String>,
    ) -> Result<()> {
        let instance = work.instance;
        let Changes {
            provision_was_there,
            binary: binary_changed,
            config: config_changed,
        } = changes;
        let Some(steps) = self.provision(role, role_path, provision_was_there).await? else {
            return Ok(());
        };
        let unit = instance.plan.unit_name();
        let env_path = instance
            .plan
            .env_file
            .as_ref()
            .map(|e| e.path.as_str().to_owned());
        let mut reasons = Vec::new();
        if binary_changed {
            reasons.push("the binary changed".to_owned());
        }
        if config_changed {
            reasons.push("its configuration changed".to_owned());
        }
        if let Some(env) = &env_path {
            let step = steps.get(&format!("env file {env}"));
            if step == Some(&Status::Changed) {
                shared_env.insert(env.clone());
            } else if shared_env.contains(env) {
                reasons.push(format!("{env} changed (for an earlier instance)"));
            }
        }
        let restarted = steps.get(&format!("restart {unit}")) == Some(&Status::Changed);
        if binary_changed
            && !restarted
            && let Some(socket) = work.admin_socket
            && self.host.has_systemd()
        {
            let binary = instance.binary_path().display().to_string();
            return self.upgrade(&unit, &binary, socket, &reasons).await;
        }
        self.service(&unit, &reasons, restarted, binary_changed)
            .await
    }

    /// A new veza-lb binary replaces the running one (`ctl upgrade` on its admin socket): the
    /// listening sockets are handed over and no connection is refused, where a restart would
    /// refuse them until the new process listens. The new binary reads the configuration
    /// pushed with it.
    async fn upgrade(
        &mut self,
        unit: &str,
        binary: &str,
        socket: &str,
        reasons: &[String],
    ) -> Result<()> {
        let name = format!("service {unit}");
        let why = reasons.join(", ");
        if self.options.check {
            self.record(
                Status::Changed,
                &name,
                &format!("would upgrade in place: {why}"),
            );
            return Ok(());
        }
        let active = self
            .host
            .run(&words(&["systemctl", "is-active", unit]), None)
            .await?;
        if active.stdout.trim() != "active" {
            return self.service(unit, reasons, false, true).await;
        }
        let out = self
            .host
            .run(
                &words(&[binary, "ctl", "--socket", socket, "upgrade"]),
                None,
            )
            .await?;
        let answer = out.stdout.trim().to_owned();
        if answer.starts_with("Upgraded:") {
            self.record(
                Status::Changed,
                &name,
                &format!("{answer} (in place): {why}"),
            );
        } else {
            self.record(
                Status::Failed,
                &name,
                &format!("upgrade failed: {answer} {}", out.stderr.trim()),
            );
        }
        Ok(())
    }

    /// Makes sure a `root` tree exists with the account files useradd needs.
    async fn tree(&mut self) -> Result<bool> {
        let Some(root) = &self.host.root else {
            return Ok(true);
        };
        let root_s = root.display().to_string();
        let probe = script(
            r#"[ -e "$1/etc/passwd" ] && [ -e "$1/etc/group" ]"#,
            &[&root_s],
        );
        if self.host.run(&probe, None).await?.success {
            self.record(Status::Ok, &format!("tree {root_s}"), "exists");
            return Ok(true);
        }
        if self.options.check {
            self.record(
                Status::Changed,
                &format!("tree {root_s}"),
                "would create it with a minimal account database; nothing more to check",
            );
            return Ok(false);
        }
        let create = script(
            r#"set -e; mkdir -p "$1/etc"; [ -e "$1/etc/passwd" ] || echo 'root:x:0:0:root:/root:/bin/sh' > "$1/etc/passwd"; [ -e "$1/etc/group" ] || echo 'root:x:0:' > "$1/etc/group""#,
            &[&root_s],
        );
        self.host.run_ok(&create, None).await?;
        self.record(
            Status::Changed,
            &format!("tree {root_s}"),
            "created with a minimal account database (root)",
        );
        Ok(true)
    }

    /// Pushes `payload` to `dest` unless it is there already.
    async fn push(&mut self, payload: &Payload, dest: &Path, mode: u32) -> Result<Pushed> {
        let name = format!("push {}", payload.what);
        let current = self.host.sha256(dest).await?;
        let short = |d: &str| d[..12.min(d.len())].to_owned();
        let size = payload.bytes.len();
        let what = format!(
            "{} ({}, sha256 {})",
            dest.display(),
            human_size(size),
            short(&payload.sha256)
        );
        let pushed = match &current {
            Some(d) if *d == payload.sha256 => {
                self.record(Status::Ok, &name, &format!("{what} up to date"));
                return Ok(Pushed::Same);
            }
            Some(_) => Pushed::Replaced,
            None => Pushed::Created,
        };
        let was = current.map_or_else(|| "absent".to_owned(), |d| format!("was {}", short(&d)));
        if self.options.check {
            self.record(Status::Changed, &name, &format!("would push {what}; {was}"));
            return Ok(pushed);
        }
        self.host.put(dest, &payload.bytes, mode).await?;
        self.record(Status::Changed, &name, &format!("pushed {what}; {was}"));
        Ok(pushed)
    }

    /// Runs `veza-provision apply` on the host; its steps, or `None` if it could not run.
    async fn provision(
        &mut self,
        role: &Payload,
        role_path: &Path,
        provision_was_there: bool,
    ) -> Result<Option<ProvisionSteps>> {
        let name = "veza-provision apply";
        let check = self.options.check;
        let mut program = self.host.path(Path::new(PROVISION_PATH));
        if check && !provision_was_there {
            if !matches!(self.host.transport, Transport::Local { .. }) {
                self.record(
                    Status::Skipped,
                    name,
                    "veza-provision is not on the host yet: nothing to check the role with",
                );
                return Ok(None);
            }
            // A local tree: the binary about to be pushed is right here.
            program = self.options.bin_dir.join("veza-provision");
        }
        let mut argv = vec![
            program.display().to_string(),
            "apply".to_owned(),
            "-c".to_owned(),
        ];
        // --check must not write the role file: it comes on standard input.
        argv.push(if check {
            "/dev/stdin".to_owned()
        } else {
            self.host.path(role_path).display().to_string()
        });
        if let Some(root) = &self.host.root {
            argv.extend(["--root".to_owned(), root.display().to_string()]);
        }
        if check {
            argv.push("--check".to_owned());
        }
        if self.options.diff {
            argv.push("--diff".to_owned());
        }
        let output = self
            .host
            .run(&argv, check.then_some(role.bytes.as_slice()))
            .await?;
        let mut steps = ProvisionSteps::new();
        for line in output.stdout.lines() {
            let status = line
                .split_whitespace()
                .next()
                .and_then(Status::parse)
                .filter(|_| line.len() > 9 && line.as_bytes()[8] == b' ');
            match status {
                Some(status) => {
                    let rest = line[9..].trim_start();
                    let (step, detail) = rest.split_once(": ").unwrap_or((rest, ""));
                    self.record(status, step, detail);
                    steps.insert(step.to_owned(), status);
                }
                // The header and the recap are deploy's to print; diffs and notes pass.
                None if line.starts_with("veza-provision: ") || line.starts_with("ok=") => {}
                None => println!("           {line}"),
            }
        }
        if !output.success {
            let error = self.host.command_failed(&argv, &output);
            self.record(Status::Failed, name, &error.to_string());
            return Ok(None);
        }
        Ok(Some(steps))
    }

    /// Restarts, reloads or starts the unit when needed.
    async fn service(
        &mut self,
        unit: &str,
        reasons: &[String],
        restarted: bool,
        binary_changed: bool,
    ) -> Result<()> {
        let name = format!("service {unit}");
        if !self.host.has_systemd() {
            self.record(
                Status::Skipped,
                &name,
                "a directory tree runs nothing; restart it where it is booted",
            );
            return Ok(());
        }
        let check = self.options.check;
        if restarted {
            let verb = if check {
                "would be restarted"
            } else {
                "restarted"
            };
            self.record(Status::Ok, &name, &format!("{verb} by veza-provision"));
            return Ok(());
        }
        if !reasons.is_empty() {
            // veza-lb reloads its configuration on SIGHUP without dropping a connection.
            let action = if binary_changed || !unit.starts_with("veza-lb") {
                "restart"
            } else {
                "reload"
            };
            let why = reasons.join(", ");
            if check {
                self.record(Status::Changed, &name, &format!("would {action}: {why}"));
                return Ok(());
            }
            self.host
                .run_ok(&words(&["systemctl", action, unit]), None)
                .await?;
            self.record(Status::Changed, &name, &format!("{action}ed: {why}"));
            return Ok(());
        }
        let state = self
            .host
            .run(&words(&["systemctl", "is-active", unit]), None)
            .await?;
        let state = state.stdout.trim().to_owned();
        if state == "active" {
            self.record(Status::Ok, &name, "active; nothing it runs changed");
            return Ok(());
        }
        if check {
            self.record(Status::Changed, &name, &format!("would start it ({state})"));
            return Ok(());
        }
        self.host
            .run_ok(&words(&["systemctl", "start", unit]), None)
            .await?;
        self.record(Status::Changed, &name, &format!("started (was {state})"));
        Ok(())
    }
}

/// What a push found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pushed {
    /// The host had the same bytes.
    Same,
    /// The host had other bytes.
    Replaced,
    /// The host had no such file.
    Created,
}

fn human_size(bytes: usize) -> String {
    let bytes = bytes as f64;
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else if bytes >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes} B")
    }
}
