//! Network namespaces for tests that need more than loopback (the LB pair): a switch
//! namespace holding bridges, host namespaces joined to them by veth pairs, addresses only
//! from the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24). Nothing is
//! created in the host's own namespace; everything is removed when the [`Network`] is
//! dropped, on success, failure or Ctrl-C. Code that must act from inside a namespace runs on
//! a thread that joined it ([`Network::thread`]).

use std::fs::File;
use std::path::PathBuf;
use std::process::Command as Std;

use nix::sched::{CloneFlags, setns};
use tokio::process::Command;

use crate::{Error, Result, fail};

/// Namespaces this process created, deleted on drop.
#[derive(Debug)]
pub struct Network {
    prefix: String,
    created: Vec<String>,
}

/// `ip ARGS`, failing with ip's message.
fn ip(args: &[&str]) -> Result<()> {
    let out = Std::new("ip")
        .args(args)
        .output()
        .map_err(Error::io("cannot run ip (apt-get install iproute2)"))?;
    if out.status.success() {
        Ok(())
    } else {
        fail(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Network {
    /// A network whose namespaces are named `vz<pid>-NAME` (leftovers of a run that was
    /// killed are removed first: their process is gone).
    pub fn new() -> Result<Network> {
        remove_stale();
        Ok(Network {
            prefix: format!("vz{}-", std::process::id()),
            created: Vec::new(),
        })
    }

    /// The full name of namespace `name`.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Creates namespace `name` with its loopback up.
    pub fn namespace(&mut self, name: &str) -> Result<()> {
        let full = self.name(name);
        ip(&["netns", "add", &full])?;
        self.created.push(full.clone());
        ip(&["-n", &full, "link", "set", "lo", "up"])
    }

    /// A bridge `bridge` in namespace `switch`.
    pub fn bridge(&self, switch: &str, bridge: &str) -> Result<()> {
        let ns = self.name(switch);
        ip(&["-n", &ns, "link", "add", bridge, "type", "bridge"])?;
        ip(&["-n", &ns, "link", "set", bridge, "up"])
    }

    /// Plugs `host`'s interface `ifname` (with `address`, CIDR) into `switch`'s `bridge`
    /// through a veth pair whose other end is `port` in the switch namespace.
    pub fn plug(
        &self,
        host: &str,
        ifname: &str,
        address: &str,
        switch: &str,
        bridge: &str,
        port: &str,
    ) -> Result<()> {
        let (host_ns, switch_ns) = (self.name(host), self.name(switch));
        ip(&[
            "link", "add", ifname, "netns", &host_ns, "type", "veth", "peer", "name", port,
            "netns", &switch_ns,
        ])?;
        ip(&[
            "-n", &switch_ns, "link", "set", port, "master", bridge, "up",
        ])?;
        ip(&["-n", &host_ns, "addr", "add", address, "dev", ifname])?;
        ip(&["-n", &host_ns, "link", "set", ifname, "up"])
    }

    /// Sets `ifname` in `host` up or down (a cable pulled, put back).
    pub fn link(&self, host: &str, ifname: &str, up: bool) -> Result<()> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.name(host), "link", "set", ifname, state])
    }

    /// Whether `host` holds `address` (no prefix) on any interface.
    pub fn holds(&self, host: &str, address: &str) -> bool {
        Std::new("ip")
            .args(["-n", &self.name(host), "-o", "addr", "show"])
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .any(|word| word.split('/').next() == Some(address))
            })
            .unwrap_or(false)
    }

    /// `program args...` run inside `host` (`ip netns exec`).
    pub fn command(&self, host: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name(host)])
            .arg(program);
        command
    }

    /// Runs `job` on a new thread that joined `host`'s network namespace: sockets it opens
    /// live there.
    pub fn thread<T: Send + 'static>(
        &self,
        host: &str,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<T>> {
        let path = PathBuf::from("/run/netns").join(self.name(host));
        let file =
            File::open(&path).map_err(Error::io(format!("cannot open {}", path.display())))?;
        std::thread::Builder::new()
            .name(format!("netns-{host}"))
            .spawn(move || {
                // Only this thread changes namespace; on failure it stays in the host's and
                // its connections fail to reach the test's addresses, which the caller sees.
                if let Err(errno) = setns(&file, CloneFlags::CLONE_NEWNET) {
                    eprintln!("netns: cannot join {}: {errno}", path.display());
                }
                job()
            })
            .map_err(Error::io("cannot start a thread"))
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Std::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Deletes `vz<pid>-*` namespaces whose process no longer runs.
fn remove_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("vz")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !PathBuf::from(format!("/proc/{pid}")).exists()
        {
            let _ = Std::new("ip").args(["netns", "del", &name]).status();
        }
    }
}
