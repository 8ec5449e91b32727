//! The `ssh://` transport against a real `sshd` on loopback (this machine's OpenSSH, started
//! on a free port with a temporary host key and an authorized key for root). The hosts are
//! directory trees on this machine (`root = ...`), so nothing outside the temporary
//! directory is provisioned. Needs root and /usr/sbin/sshd; skipped otherwise.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{binaries, workspace};

const SSHD: &str = "/usr/sbin/sshd";

fn usable() -> bool {
    if !support::running_as_root("sshd, useradd --prefix, chown") {
        return false;
    }
    if !Path::new(SSHD).is_file() {
        println!("SKIPPED: {SSHD} is not installed (Debian: openssh-server)");
        return false;
    }
    true
}

/// sshd, killed when dropped.
struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ssh-keygen failed");
}

fn start_sshd(dir: &Path, port: u16) -> Sshd {
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\n\
         AuthorizedKeysFile {dir}/authorized_keys\nUsePAM no\nStrictModes no\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPidFile {dir}/sshd.pid\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    // sshd refuses to start without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    let sshd = Sshd(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd did not listen: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

fn inventory(dir: &Path, port: u16) -> String {
    let examples = workspace().join("examples");
    format!(
        r#"ssh_options = ["-i", "{dir}/client_key", "-F", "/dev/null", "-o", "IdentitiesOnly=yes",
  "-o", "UserKnownHostsFile={dir}/known_hosts", "-o", "StrictHostKeyChecking=accept-new"]

[lb]
bind = ["127.0.0.1:28080"]

[backend_api_instances]
role = "{examples}/inventory/roles/backend-api-demo.toml"
binary = "veza-demo-backend"
hosts = [
  {{ name = "backend-api-1", transport = "ssh://root@127.0.0.1:{port}", addr = "127.0.0.1:28081", root = "{dir}/hosts/backend-api-1" }},
]

[haproxy]
role = "{examples}/provision/veza-lb.toml"
binary = "veza-lb"
hosts = [{{ name = "veza-lb", transport = "ssh://root@127.0.0.1:{port}", root = "{dir}/hosts/veza-lb" }}]
"#,
        dir = dir.display(),
        examples = examples.display()
    )
}

fn deploy(inventory: &Path, bin: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("deploy")
        .arg("--inventory")
        .arg(inventory)
        .arg("--bin-dir")
        .arg(bin)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    (output.status.success(), stdout)
}

#[test]
fn deploys_over_ssh_and_names_the_host_when_ssh_fails() {
    if !usable() {
        return;
    }
    let tmp = testkit::temp_dir();
    let dir = tmp.path();
    let port = testkit::free_port();
    let _sshd = start_sshd(dir, port);
    let bin = binaries(dir);
    let path = dir.join("inventory.toml");
    std::fs::write(&path, inventory(dir, port)).unwrap();

    let (ok, stdout) = deploy(&path, &bin);
    assert!(ok, "deploy over ssh failed");
    let api = dir.join("hosts/backend-api-1");
    assert!(api.join("opt/veza/backend-api/veza-demo-backend").is_file());
    assert!(
        api.join("etc/systemd/system/veza-backend-api-1.service")
            .is_file()
    );
    let config =
        std::fs::read_to_string(dir.join("hosts/veza-lb/etc/veza-lb/veza-lb.toml")).unwrap();
    assert!(config.contains(r#"{ name = "backend-api-1", addr = "127.0.0.1:28081" }"#));
    // The group is missing: the static fallback list, as the seed's template did.
    assert!(
        config.contains("stream_server_instances is not in the inventory"),
        "{config}"
    );
    assert!(
        stdout.contains("changed  push veza-demo-backend: pushed"),
        "{stdout}"
    );

    let (ok, stdout) = deploy(&path, &bin);
    assert!(ok, "second deploy over ssh failed");
    let summary = stdout.rsplit("\nrecap\n").next().unwrap();
    assert_eq!(summary.matches("changed=0 ").count(), 2, "{summary}");

    // Nothing listens there: the error names the host, the transport and the command.
    let closed = testkit::free_port();
    std::fs::write(&path, inventory(dir, closed)).unwrap();
    let (ok, stdout) = deploy(&path, &bin);
    assert!(!ok, "a deploy to a closed port succeeded");
    let expected =
        format!("failed   transport: backend-api-1 (ssh://root@127.0.0.1:{closed}): `sh -c ");
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(stdout.contains("Connection refused"), "{stdout}");
}
