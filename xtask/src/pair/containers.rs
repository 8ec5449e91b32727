//! The LB hosts as real systemd hosts (`xtask pair --systemd`): the lab's Debian base with
//! keepalived added (`target/lab/pair-base`, made once), booted with systemd-nspawn inside
//! each host's network namespace (`--volatile=overlay`: every write goes to memory, the base
//! stays clean, both hosts share it). The binaries are bind-mounted read-only; each host
//! gets veza-lb's configuration and its role file (with its `[vrrp]` section), and
//! `veza-provision apply` installs and starts `veza-lb.service` and the hardened
//! `veza-keepalived.service`, as a deploy would. A new advert interval is a new role file
//! applied again: veza-provision reloads keepalived.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;

use super::{LBS, LbHosts, vrrp_section, wait_lb_ready};
use crate::deploy::Inventory;
use crate::lab::{command_ok, wait_booted};
use crate::lbpair::SECTION_MARK;
use crate::netns::Network;
use crate::topology::Process;
use crate::{Error, Result, fail};

const BASE_MARKER: &str = ".veza-pair-base";

/// The lab's base with keepalived installed, made once from it.
async fn pair_base() -> Result<PathBuf> {
    let lab_base = crate::lab::base().await?;
    let dir = lab_base.parent().unwrap_or(&lab_base).to_path_buf();
    let base = dir.join("pair-base");
    if base.join(BASE_MARKER).is_file() {
        return Ok(base);
    }
    let partial = dir.join("pair-base.partial");
    for stale in [&partial, &base] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)
                .map_err(Error::io(format!("cannot remove {}", stale.display())))?;
        }
    }
    println!(
        "pair: making {} (the lab's base and keepalived; first time only)",
        base.display()
    );
    command_ok(
        "cp",
        &[
            "-a",
            "--reflink=auto",
            &lab_base.display().to_string(),
            &partial.display().to_string(),
        ],
    )
    .await?;
    let install = "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
                   apt-get install -y -qq --no-install-recommends keepalived >/dev/null";
    let dir_arg = partial.display().to_string();
    command_ok(
        "systemd-nspawn",
        &[
            "--quiet",
            "--directory",
            &dir_arg,
            "--register=no",
            "--keep-unit",
            "--pipe",
            "--",
            "/bin/sh",
            "-c",
            install,
        ],
    )
    .await?;
    std::fs::write(partial.join(BASE_MARKER), "keepalived\n")
        .map_err(Error::io("cannot mark the pair base complete"))?;
    std::fs::rename(&partial, &base)
        .map_err(Error::io(format!("cannot rename {}", partial.display())))?;
    Ok(base)
}

/// One booted host. Dropping it kills the container's init, which ends every process in it.
struct Machine {
    nspawn: Process,
    leader: u32,
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.leader) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Machine {
    /// `args` run inside the container; its output, or why it failed.
    async fn run(&self, args: &[&str]) -> Result<String> {
        let leader = self.leader.to_string();
        let mut line = vec!["-t", leader.as_str(), "-a"];
        line.extend_from_slice(args);
        command_ok("nsenter", &line).await
    }

    /// `veza-provision apply` of the host's role file, as a deploy runs it; its report.
    async fn provision(&self) -> Result<String> {
        self.run(&[
            "/opt/veza/bin/veza-provision",
            "apply",
            "-c",
            "/opt/veza/pair/role.toml",
        ])
        .await
    }
}

/// Both hosts, booted and provisioned.
pub(super) struct Containers {
    machines: Vec<Machine>,
    dir: PathBuf,
    roles: Vec<String>,
}

/// The pid of the first child of `pid` (the container's init), once it exists.
async fn first_child(pid: u32) -> Result<u32> {
    let start = Instant::now();
    let path = format!("/proc/{pid}/task/{pid}/children");
    loop {
        let children = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(child) = children
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
        {
            return Ok(child);
        }
        if start.elapsed() > Duration::from_secs(20) {
            return fail(format!("systemd-nspawn {pid} started no container"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Containers {
    /// Boots both hosts and provisions veza-lb and keepalived on each.
    pub(super) async fn start(
        net: &Network,
        inventory: &Inventory,
        bin_dir: &Path,
        dir: &Path,
    ) -> Result<Containers> {
        let base = pair_base().await?;
        let config = inventory.render_lb_config();
        let mut hosts = Containers {
            machines: Vec::new(),
            dir: dir.to_path_buf(),
            roles: Vec::new(),
        };
        for (name, _, _) in LBS {
            let role = inventory
                .instances()
                .find(|(_, i)| i.host.name == name)
                .map(|(_, i)| i.role_text.clone())
                .ok_or_else(|| Error::Message(format!("{name} is not in the inventory")))?;
            let role = role
                .split(SECTION_MARK)
                .next()
                .unwrap_or_default()
                .to_owned();
            let host_dir = dir.join(name);
            std::fs::create_dir_all(&host_dir)
                .map_err(Error::io("cannot create a host directory"))?;
            std::fs::write(host_dir.join("veza-lb.toml"), &config)
                .map_err(Error::io("cannot write veza-lb's configuration"))?;
            let section = vrrp_section(inventory, name, &inventory_advert(inventory))?;
            std::fs::write(host_dir.join("role.toml"), format!("{role}{section}"))
                .map_err(Error::io("cannot write the role file"))?;
            hosts.roles.push(role);
            let machine = boot(net, name, &base, bin_dir, &host_dir).await?;
            let setup = "install -D -m 0755 /opt/veza/bin/veza-lb /opt/veza/lb/veza-lb && \
                         install -D -m 0644 /opt/veza/pair/veza-lb.toml /etc/veza-lb/veza-lb.toml";
            machine.run(&["/bin/sh", "-c", setup]).await?;
            machine.provision().await?;
            hosts.machines.push(machine);
        }
        for (i, (name, _, _)) in LBS.iter().enumerate() {
            wait_lb_ready(net, i).await?;
            let states = hosts.machines[i]
                .run(&[
                    "systemctl",
                    "is-active",
                    "veza-lb.service",
                    "veza-keepalived.service",
                ])
                .await?;
            println!(
                "pair: {} booted and provisioned: {}",
                name,
                states.split_whitespace().collect::<Vec<_>>().join(", ")
            );
        }
        Ok(hosts)
    }

    /// Stops both containers (an orderly poweroff, then SIGKILL).
    pub(super) async fn stop(mut self) {
        for machine in &mut self.machines {
            machine.nspawn.stop(Duration::from_secs(10)).await;
        }
    }
}

/// The inventory's own advert interval.
pub(super) fn inventory_advert(inventory: &Inventory) -> String {
    inventory
        .lb_pair
        .as_ref()
        .map_or_else(|| "1s".to_owned(), |p| p.advert_interval.clone())
}

/// Boots the base in `name`'s namespace, binaries and the host's files bind-mounted.
async fn boot(
    net: &Network,
    name: &str,
    base: &Path,
    bin_dir: &Path,
    host_dir: &Path,
) -> Result<Machine> {
    let ns = net.name(name);
    let mut command = Command::new("setsid");
    command
        .args(["systemd-nspawn", "--quiet", "--directory"])
        .arg(base)
        .args([
            "--volatile=overlay",
            "--register=no",
            "--keep-unit",
            "--console=passive",
            "--boot",
        ])
        // The namespace is the host's own: its root may change it (nspawn grants
        // CAP_NET_ADMIN only with --private-network).
        .arg("--capability=CAP_NET_ADMIN")
        .arg(format!("--network-namespace-path=/run/netns/{ns}"))
        .arg(format!("--machine=veza-{ns}"))
        .arg(format!("--bind-ro={}:/opt/veza/bin", bin_dir.display()))
        .arg(format!("--bind-ro={}:/opt/veza/pair", host_dir.display()))
        .stdin(Stdio::null());
    let log = host_dir.with_extension("nspawn.log");
    let nspawn = Process::spawn(&format!("systemd-nspawn for {name}"), command, &log)?;
    let pid = nspawn
        .pid()
        .ok_or_else(|| Error::Message(format!("systemd-nspawn for {name} exited at once")))?;
    let leader = first_child(pid).await?;
    let machine = Machine { nspawn, leader };
    let state = wait_booted(&leader.to_string()).await?;
    println!("pair: {name} booted ({state})");
    Ok(machine)
}

/// The rolling deploy's outcome: what each probe saw, and whether deploy and the checks after
/// it passed.
pub(super) struct Rolled {
    /// New connection per GET, and keep-alive: (no-200 time, failed, failed with retries).
    pub(super) probes: [(Duration, usize, usize); 2],
    /// What failed, if anything.
    pub(super) problems: Vec<String>,
}

impl Rolled {
    /// No request failed on either probe, and deploy's checks passed; each problem printed.
    pub(super) fn passed(&self) -> bool {
        for problem in &self.problems {
            println!("[FAIL] rolling deploy: {problem}");
        }
        let failed: usize = self.probes.iter().map(|p| p.1).sum();
        if failed > 0 {
            println!("[FAIL] rolling deploy: {failed} requests failed through the address");
        } else if self.problems.is_empty() {
            println!("[PASS] rolling deploy: both hosts upgraded, no request failed");
        }
        failed == 0 && self.problems.is_empty()
    }

    /// The two probes' rows of the report.
    pub(super) fn rounds(&self, advert: &str) -> Vec<super::Round> {
        let titles = [
            "rolling deploy (a new connection per GET)",
            "rolling deploy (a kept-alive connection)",
        ];
        titles
            .iter()
            .zip(self.probes)
            .map(
                |(title, (to_first_200, failed, failed_with_retries))| super::Round {
                    advert: advert.to_owned(),
                    title,
                    to_first_200,
                    failed,
                    failed_with_retries,
                    holder: "lb-1",
                },
            )
            .collect()
    }
}

impl Containers {
    /// `cargo xtask deploy`'s own code on both hosts (reached as `machine:` transports) with
    /// a veza-lb binary that differs from the running one, while a client probes the virtual
    /// address on new connections and another on a kept-alive one, each with a client's
    /// patience (a SYN lost while the address moves delays a request by TCP's 1 s, it does
    /// not fail it; a reset does): the BACKUP is upgraded
    /// in place, the address moves to it (standby, priority lowered), the MASTER is upgraded,
    /// the address comes back. Then both hosts must run the new binary, the address be on
    /// lb-1, and deploy's recap be clean.
    pub(super) async fn rolling_deploy(
        &mut self,
        net: &Network,
        inventory: &Inventory,
        bin_dir: &Path,
    ) -> Result<Rolled> {
        let advert = inventory_advert(inventory);
        self.start_vrrp(net, inventory, &advert).await?;
        super::wait_holder(net, "lb-1").await?;
        let rebuilt = self.rebuilt(bin_dir)?;
        let root = crate::build::workspace_root();
        let path = root.join(super::INVENTORY);
        let mut text = std::fs::read_to_string(&path)
            .map_err(Error::io(format!("cannot read {}", path.display())))?;
        for (name, _, _) in LBS {
            let local = format!("local:target/pair-deploy/{name}\"");
            if !text.contains(&local) {
                return fail(format!(
                    "{} no longer deploys {name} to {local}",
                    path.display()
                ));
            }
            text = text.replace(&local, &format!("machine:veza-{}\"", net.name(name)));
        }
        let deploy_inventory = Inventory::parse(&path, &text, &root)?;
        let probes = [
            super::Probe::client(net, false)?,
            super::Probe::client(net, true)?,
        ];
        let t0 = Instant::now();
        for probe in &probes {
            probe.wait_success_after(t0).await?;
        }
        let t0 = Instant::now();
        let options = crate::deploy::Options {
            check: false,
            diff: false,
            bin_dir: rebuilt.clone(),
        };
        let recap = crate::deploy::deploy(&deploy_inventory, &options).await?;
        let mut problems = Vec::new();
        if recap.failed() {
            problems.push("deploy reported a failed step".to_owned());
        }
        if let Err(e) = super::wait_holder(net, "lb-1").await {
            problems.push(e.to_string());
        }
        for probe in &probes {
            probe.settle().await;
        }
        for (machine, (name, _, _)) in self.machines.iter().zip(LBS) {
            let exe = machine
                .run(&[
                    "/bin/sh",
                    "-c",
                    "readlink /proc/$(systemctl show -P MainPID veza-lb.service)/exe",
                ])
                .await?;
            if exe.trim() != "/opt/veza/lb/veza-lb" {
                problems.push(format!(
                    "{name}'s veza-lb runs {:?}, not the new /opt/veza/lb/veza-lb",
                    exe.trim()
                ));
            }
        }
        let probes = probes.map(|p| {
            p.stop();
            p.outcome_since(t0)
        });
        Ok(Rolled { probes, problems })
    }

    /// A copy of `bin_dir`'s binaries whose veza-lb differs from the running one by a few
    /// bytes appended (an ELF file runs the same with them): what a rebuild deploys.
    fn rebuilt(&self, bin_dir: &Path) -> Result<PathBuf> {
        let dir = self.dir.join("rebuilt");
        std::fs::create_dir_all(&dir).map_err(Error::io("cannot create a directory"))?;
        for name in ["veza-lb", "veza-provision", "veza-demo-backend"] {
            std::fs::copy(bin_dir.join(name), dir.join(name))
                .map_err(Error::io(format!("cannot copy {name}")))?;
        }
        let mut veza_lb = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("veza-lb"))
            .map_err(Error::io("cannot open the copy of veza-lb"))?;
        std::io::Write::write_all(&mut veza_lb, b"\nveza-pair rolling deploy\n")
            .map_err(Error::io("cannot change the copy of veza-lb"))?;
        Ok(dir)
    }
}

impl LbHosts for Containers {
    async fn kill_lb(&mut self, _net: &Network, i: usize) -> Result<()> {
        // SIGKILL as a crash would; the stop keeps Restart=on-failure from bringing it back
        // before the round is measured.
        let machine = &self.machines[i];
        machine
            .run(&[
                "systemctl",
                "kill",
                "--kill-whom=main",
                "--signal=SIGKILL",
                "veza-lb.service",
            ])
            .await?;
        machine
            .run(&["systemctl", "stop", "veza-lb.service"])
            .await?;
        Ok(())
    }

    async fn start_lb(&mut self, net: &Network, i: usize) -> Result<()> {
        self.machines[i]
            .run(&["systemctl", "start", "veza-lb.service"])
            .await?;
        wait_lb_ready(net, i).await
    }

    async fn start_vrrp(
        &mut self,
        _net: &Network,
        inventory: &Inventory,
        advert: &str,
    ) -> Result<()> {
        for (i, (name, _, _)) in LBS.iter().enumerate() {
            let section = vrrp_section(inventory, name, advert)?;
            std::fs::write(
                self.dir.join(name).join("role.toml"),
                format!("{}{section}", self.roles[i]),
            )
            .map_err(Error::io("cannot write the role file"))?;
            let machine = &self.machines[i];
            let report = machine.provision().await?;
            let keepalived = report
                .lines()
                .find(|l| l.contains("restart veza-keepalived.service"))
                .unwrap_or("")
                .trim()
                .to_owned();
            let state = machine
                .run(&["systemctl", "is-active", "veza-keepalived.service"])
                .await?;
            println!(
                "pair: {name}: {keepalived}; veza-keepalived.service {}",
                state.trim()
            );
        }
        Ok(())
    }

    async fn stop_vrrp(&mut self) {}

    async fn logs(&self) -> String {
        let mut out = String::new();
        for (machine, (name, _, _)) in self.machines.iter().zip(LBS) {
            let journal = machine
                .run(&[
                    "journalctl",
                    "--no-pager",
                    "-n",
                    "30",
                    "-u",
                    "veza-keepalived",
                    "-u",
                    "veza-lb",
                ])
                .await
                .unwrap_or_else(|e| e.to_string());
            out.push_str(&format!("--- {name}:\n{journal}\n"));
        }
        out
    }
}
