//! Packet loss on a server's link, for the `loss` fault of `cargo xtask load`: this kernel has
//! no netem, so packets are dropped by an nftables rule (`numgen random mod 100 < N drop`) on
//! the server's port, each way. Rules only ever go into the load test's own network namespace:
//! a run whose scenario has `loss` faults runs again inside a fresh namespace of its own
//! ([`run_isolated`]: loopback only, removed at the end, also on failure), and
//! [`set_loss`] refuses to run anywhere else, so the host's firewall is never touched.

use std::process::{ExitCode, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::netns::Network;
use crate::topology::find_program;
use crate::{Error, Result, fail};

/// Set (to the namespace's name) in the run that lives in its own namespace.
const IN_NAMESPACE: &str = "VEZA_LOAD_NETNS";

/// Whether this process is the run inside its own namespace.
pub fn isolated() -> bool {
    std::env::var_os(IN_NAMESPACE).is_some()
}

/// Runs this very command again inside a new network namespace of its own (its loopback
/// only), waits for it, and removes the namespace; its exit code.
pub async fn run_isolated(why: &str) -> Result<ExitCode> {
    if !nix::unistd::Uid::effective().is_root() {
        return fail(format!(
            "{why}: they need root (the run moves into a network namespace of its own, where \
             nftables drops the packets); run as root, or remove them from the scenario"
        ));
    }
    if find_program("nft").is_none() {
        return fail(format!(
            "{why}: nft is not installed (apt-get install nftables)"
        ));
    }
    let mut net = Network::new()?;
    net.namespace("load")?;
    let exe = std::env::current_exe().map_err(Error::io("cannot find this program"))?;
    println!(
        "load: {why}: running in the network namespace {} (loopback only)",
        net.name("load")
    );
    let status = net
        .command("load", &exe.display().to_string())
        .args(std::env::args_os().skip(1))
        .env(IN_NAMESPACE, net.name("load"))
        .status()
        .await
        .map_err(Error::io("cannot run the load test in its namespace"))?;
    drop(net);
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The nftables table of the loss on `port`.
fn table(port: u16) -> String {
    format!("veza_loss_{port}")
}

/// Drops `percent` of the TCP packets to and from `port` (zero: none), replacing what was set
/// before; only inside the run's own namespace.
pub async fn set_loss(port: u16, percent: u8) -> Result<()> {
    if !isolated() {
        return fail(
            "packet loss is only set inside the load test's own network namespace; \
             this run is not in one",
        );
    }
    let table = table(port);
    // `table` then `delete table`: removes it whether or not it was there.
    let mut script = format!("table inet {table}\ndelete table inet {table}\n");
    if percent > 0 {
        script.push_str(&format!(
            "table inet {table} {{\n  chain out {{\n    type filter hook output priority 0; \
             policy accept;\n    tcp dport {port} numgen random mod 100 < {percent} drop\n    \
             tcp sport {port} numgen random mod 100 < {percent} drop\n  }}\n}}\n"
        ));
    }
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(Error::io("cannot run nft"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(Error::io("cannot write to nft"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(Error::io("cannot run nft"))?;
    if out.status.success() {
        Ok(())
    } else {
        fail(format!(
            "nft -f: {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
