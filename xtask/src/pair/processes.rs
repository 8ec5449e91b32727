//! The LB hosts as plain processes: veza-lb and keepalived started with `ip netns exec`, the
//! configurations rendered as deploy and veza-provision render them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{LBS, LbHosts, vrrp_config, wait_lb_ready};
use crate::deploy::Inventory;
use crate::netns::Network;
use crate::topology::Process;
use crate::{Error, Result};

/// veza-lb and keepalived of both hosts.
pub(super) struct Processes {
    lbs: Vec<Option<Process>>,
    keepalived: Vec<Option<Process>>,
    bin_dir: PathBuf,
    dir: PathBuf,
}

impl Processes {
    /// Both veza-lb running and answering; keepalived is started per advert interval.
    pub(super) async fn start(
        net: &Network,
        inventory: &Inventory,
        bin_dir: &Path,
        dir: &Path,
    ) -> Result<Processes> {
        // One file system for both hosts: each gets its own admin socket.
        let config = inventory.render_lb_config();
        for (name, _, _) in LBS {
            let socket = dir.join(format!("{name}-admin.sock"));
            let own = config.replace(
                &inventory.lb.admin_socket,
                &format!("unix:{}", socket.display()),
            );
            std::fs::write(dir.join(format!("{name}-veza-lb.toml")), own)
                .map_err(Error::io("cannot write veza-lb's configuration"))?;
        }
        let mut hosts = Processes {
            lbs: vec![None, None],
            keepalived: vec![None, None],
            bin_dir: bin_dir.to_path_buf(),
            dir: dir.to_path_buf(),
        };
        for i in 0..LBS.len() {
            hosts.start_lb(net, i).await?;
        }
        Ok(hosts)
    }

    /// Stops everything still running.
    pub(super) async fn stop(mut self) {
        self.stop_vrrp().await;
        for process in self.lbs.iter_mut().filter_map(Option::as_mut) {
            process.stop(Duration::from_secs(3)).await;
        }
    }
}

impl LbHosts for Processes {
    async fn kill_lb(&mut self, _net: &Network, i: usize) -> Result<()> {
        match self.lbs[i].take() {
            Some(mut lb) => lb.kill().await,
            None => Ok(()),
        }
    }

    async fn start_lb(&mut self, net: &Network, i: usize) -> Result<()> {
        let name = LBS[i].0;
        let veza_lb = self.bin_dir.join("veza-lb");
        let mut command = net.command(name, &veza_lb.display().to_string());
        command
            .arg("-c")
            .arg(self.dir.join(format!("{name}-veza-lb.toml")))
            .args(["--log-level", "info,access=warn"]);
        let log = self.dir.join(format!("{name}-veza-lb.log"));
        self.lbs[i] = Some(Process::spawn(
            &format!("veza-lb on {name}"),
            command,
            &log,
        )?);
        wait_lb_ready(net, i).await
    }

    async fn start_vrrp(
        &mut self,
        net: &Network,
        inventory: &Inventory,
        advert: &str,
    ) -> Result<()> {
        let veza_lb = systemd_unit::AbsPath::new(self.bin_dir.join("veza-lb"))
            .map_err(|e| Error::Message(e.to_string()))?;
        let user =
            systemd_unit::AccountName::new("nobody").map_err(|e| Error::Message(e.to_string()))?;
        for (i, (name, _, _)) in LBS.iter().enumerate() {
            let vrrp = vrrp_config(inventory, name, advert)?;
            let text = provision::vrrp::render(&vrrp, &veza_lb, &user).map_err(Error::Message)?;
            let conf = self.dir.join(format!("{name}-keepalived.conf"));
            std::fs::write(&conf, text)
                .map_err(Error::io("cannot write keepalived's configuration"))?;
            let mut command = net.command(name, "keepalived");
            command
                .args([
                    "--dont-fork",
                    "--vrrp",
                    "--log-console",
                    "--log-detail",
                    "--use-file",
                ])
                .arg(&conf)
                .arg("--pid")
                .arg(self.dir.join(format!("{name}-keepalived.pid")))
                .arg("--vrrp_pid")
                .arg(self.dir.join(format!("{name}-vrrp.pid")));
            let log = self.dir.join(format!("{name}-keepalived.log"));
            self.keepalived[i] = Some(Process::spawn(
                &format!("keepalived on {name}"),
                command,
                &log,
            )?);
        }
        Ok(())
    }

    async fn stop_vrrp(&mut self) {
        for mut process in self.keepalived.iter_mut().filter_map(Option::take) {
            process.stop(Duration::from_secs(3)).await;
        }
    }

    async fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                out.push_str(&format!(
                    "--- {}:\n{}\n",
                    path.display(),
                    crate::topology::log_tail(&path, 15)
                ));
            }
        }
        out
    }
}
