//! A DNS server for the loopback topology's servers written by name (the `dns` fault of
//! `cargo xtask load`): Debian's dnsmasq on 127.0.0.1 and a free port, answering only from a
//! hosts file this module writes, authoritative for `veza.test` (a name it does not hold is
//! NXDOMAIN), with a one-second TTL. A record is changed by rewriting the file and SIGHUP.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::process::{Process, find_program, free_ports, send};
use crate::{Error, Result, fail};

/// The domain the topology's names live in.
pub const DOMAIN: &str = "veza.test";

/// dnsmasq and the records it serves.
pub struct Dns {
    process: Process,
    /// Where it answers.
    pub addr: SocketAddr,
    hosts: PathBuf,
    records: BTreeMap<String, IpAddr>,
}

/// `server` as a name in [`DOMAIN`].
pub fn name_of(server: &str) -> String {
    format!("{server}.{DOMAIN}")
}

impl Dns {
    /// Starts dnsmasq with `records` (name to address), files in `dir`; returns once it
    /// answers.
    pub async fn start(dir: &Path, records: BTreeMap<String, IpAddr>) -> Result<Dns> {
        let Some(dnsmasq) = find_program("dnsmasq") else {
            return fail(
                "the scenario moves a server by DNS: dnsmasq is not installed \
                 (apt-get install dnsmasq)",
            );
        };
        let port = free_ports(1)?[0];
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let hosts = dir.join("dns-hosts");
        // dnsmasq reads its records when it starts: they are written first.
        write_records(&hosts, &records)?;
        let process = Process::spawn(
            "dnsmasq",
            dnsmasq_command(&dnsmasq, port, &hosts),
            &dir.join("dnsmasq.log"),
        )?;
        let mut dns = Dns {
            process,
            addr,
            hosts,
            records,
        };
        dns.wait_answering().await?;
        Ok(dns)
    }

    /// Waits until dnsmasq answers a question about its first record with an address.
    async fn wait_answering(&mut self) -> Result<()> {
        let Some(name) = self.records.keys().next().cloned() else {
            return Ok(());
        };
        let addr = self.addr;
        self.process
            .wait_until("answering", || {
                let name = name.clone();
                async move { answers(addr, &name).await }
            })
            .await
    }

    /// `name` resolves to `ip` from now on (dnsmasq rereads its records on SIGHUP).
    pub fn set(&mut self, name: &str, ip: IpAddr) -> Result<()> {
        self.records.insert(name.to_owned(), ip);
        write_records(&self.hosts, &self.records)?;
        match self.process.pid() {
            Some(pid) => send(pid, Signal::SIGHUP, "dnsmasq"),
            None => fail("dnsmasq is not running"),
        }
    }
}

/// Whether the DNS server at `server` answers an A question about `name` with a record.
async fn answers(server: SocketAddr, name: &str) -> bool {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).unwrap_or(0));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let Ok(socket) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
        return false;
    };
    if socket.send_to(&query, server).await.is_err() {
        return false;
    }
    let mut reply = [0u8; 512];
    match tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut reply)).await {
        // The id, no error code, and at least one answer.
        Ok(Ok(n)) if n >= 12 => reply[..2] == query[..2] && reply[3] & 0x0f == 0 && reply[7] > 0,
        _ => false,
    }
}

/// The hosts file of `records`, replaced atomically.
fn write_records(hosts: &Path, records: &BTreeMap<String, IpAddr>) -> Result<()> {
    let text: String = records
        .iter()
        .map(|(name, ip)| format!("{ip} {name}\n"))
        .collect();
    let temp = hosts.with_extension("new");
    std::fs::write(&temp, text).map_err(Error::io("cannot write the DNS records"))?;
    std::fs::rename(&temp, hosts).map_err(Error::io("cannot write the DNS records"))
}

/// dnsmasq answering from `hosts` alone on 127.0.0.1:`port`, in the foreground.
fn dnsmasq_command(dnsmasq: &Path, port: u16, hosts: &Path) -> Command {
    let mut command = Command::new(dnsmasq);
    command
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--log-facility=-",
            "--local-ttl=1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!("--local=/{DOMAIN}/"))
        .kill_on_drop(true);
    if nix::unistd::Uid::effective().is_root() {
        // Not `nobody`: the records file is ours.
        command.arg("--user=root");
    }
    command
}
