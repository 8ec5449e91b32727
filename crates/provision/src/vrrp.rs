//! The LB pair: keepalived's configuration for one veza-lb host (`[vrrp]` in its role file),
//! validated field by field and rendered with askama (`templates/keepalived.conf`).
//!
//! Both hosts of a pair render the same instance (interface, router id, virtual addresses,
//! advert interval) with their own priority; the health script asks veza-lb itself
//! (`veza-lb probe` on the frontend's `monitor_uri`), so a veza-lb that is dead or hung loses
//! the address, not only a dead host.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use askama::Template;
use serde::Deserialize;
use systemd_unit::{AbsPath, AccountName, Timespan};

/// Where veza-provision writes keepalived's configuration: not Debian's default path, so
/// Debian's own `keepalived.service` (conditioned on that file) stays inert.
pub const CONFIG_PATH: &str = "/etc/veza-lb/keepalived.conf";

/// The planned switchover's file: a number keepalived takes off this host's priority (see
/// `templates/keepalived.conf`). Its directory is veza-lb's configuration directory, which
/// exists before keepalived starts (keepalived ignores a track file whose directory is
/// missing).
pub const STEP_DOWN_PATH: &str = "/etc/veza-lb/keepalived.step-down";

/// A virtual address with its prefix length, `192.0.2.100/24`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct VirtualAddress {
    addr: IpAddr,
    prefix: u8,
}

impl TryFrom<String> for VirtualAddress {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let usage =
            || format!("{text:?} is not an address with its prefix, like \"192.0.2.100/24\"");
        let (addr, prefix) = text.split_once('/').ok_or_else(usage)?;
        let addr: IpAddr = addr.parse().map_err(|_| usage())?;
        let prefix: u8 = prefix.parse().map_err(|_| usage())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix == 0 || prefix > max {
            return Err(format!("{text:?}: the prefix must be 1 to {max}"));
        }
        if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
            return Err(format!("{text:?} cannot be a virtual address"));
        }
        Ok(Self { addr, prefix })
    }
}

impl std::fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl VirtualAddress {
    /// The address without its prefix.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// Its network, `192.0.2.0/24` for `192.0.2.100/24`: where the pair's other host and its
    /// adverts come from.
    pub fn network(&self) -> String {
        let network = match self.addr {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from(std::net::Ipv4Addr::from(u32::from(v4) & mask))
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
        };
        format!("{network}/{}", self.prefix)
    }
}

/// A network interface name as the kernel accepts it (1 to 15 bytes, no `/`, `:` or space).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct InterfaceName(String);

impl TryFrom<String> for InterfaceName {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let valid = (1..=15).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && text != "lo";
        if valid {
            Ok(Self(text))
        } else {
            Err(format!(
                "{text:?} is not an interface VRRP can use (1 to 15 letters, digits, `-`, `_`, `.`; not lo)"
            ))
        }
    }
}

impl std::fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn yes() -> bool {
    true
}

fn default_version() -> u8 {
    3
}

fn default_instance() -> String {
    "veza_edge".into()
}

/// How keepalived asks veza-lb whether it serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The frontend's `monitor_uri`, on this host: `http://127.0.0.1:8080/veza-lb/health`.
    pub url: String,
    /// Seconds between two runs of the probe (keepalived's script interval: whole seconds);
    /// each run probes every 100 ms for most of the interval.
    #[serde(default = "one_second")]
    pub interval: Timespan,
    /// One probe's deadline (below the interval).
    #[serde(default = "half_second")]
    pub timeout: Timespan,
    /// Failed probes before the host gives the address away.
    #[serde(default = "two")]
    pub fall: u32,
    /// Passed probes before it may hold the address again.
    #[serde(default = "two")]
    pub rise: u32,
}

fn one_second() -> Timespan {
    Timespan::from_secs(1)
}

fn half_second() -> Timespan {
    Timespan::new(Duration::from_millis(500))
}

fn two() -> u32 {
    2
}

/// `[vrrp]` in a veza-lb role file: this host's side of the LB pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpConfig {
    /// The VRRP instance's name (the same on both hosts).
    #[serde(default = "default_instance")]
    pub instance: String,
    /// The interface the virtual address lives on.
    pub interface: InterfaceName,
    /// VRRP's router id, 1 to 255, unique per network segment (the same on both hosts).
    pub virtual_router_id: u8,
    /// This host's priority, 1 to 254: the higher holds the address.
    pub priority: u8,
    /// VRRP version: 3 (RFC 5798, adverts in centiseconds) or 2.
    #[serde(default = "default_version")]
    pub version: u8,
    /// Time between adverts: whole seconds with VRRPv2, 10 ms steps from 10 ms to 40.95 s
    /// with VRRPv3. A backup takes over about 3 adverts after the last one it heard.
    pub advert_interval: Timespan,
    /// The addresses clients use; moved together.
    pub virtual_ipaddress: Vec<VirtualAddress>,
    /// A host with a higher priority takes the address back when it returns (`false`:
    /// the address stays where it is until that host fails, one move fewer).
    #[serde(default = "yes")]
    pub preempt: bool,
    /// This host's address for unicast adverts; set with `unicast_peers` where multicast
    /// does not pass.
    #[serde(default)]
    pub unicast_src: Option<IpAddr>,
    /// The other host(s) of the pair, for unicast adverts; empty for multicast (224.0.0.18).
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// How veza-lb itself is asked whether it serves.
    pub check: HealthCheck,
}

impl VrrpConfig {
    /// The problems of this section, each a sentence naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let valid_name = !self.instance.is_empty()
            && self.instance.len() <= 64
            && self
                .instance
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            out.push(format!(
                "vrrp.instance: {:?} must be letters, digits, `_` or `-`",
                self.instance
            ));
        }
        if self.virtual_router_id == 0 {
            out.push("vrrp.virtual_router_id: must be 1 to 255".into());
        }
        if !(1..=254).contains(&self.priority) {
            out.push(
                "vrrp.priority: must be 1 to 254 (255 is reserved for an address owner)".into(),
            );
        }
        let ms = self.advert_interval.duration().as_millis();
        match self.version {
            2 if !ms.is_multiple_of(1000) || !(1000..=255_000).contains(&ms) => out.push(
                "vrrp.advert_interval: VRRPv2 adverts are whole seconds, 1s to 255s (use version = 3 for less)".into(),
            ),
            3 if !ms.is_multiple_of(10) || !(10..=40_950).contains(&ms) => out.push(
                "vrrp.advert_interval: VRRPv3 adverts are 10ms to 40950ms in steps of 10ms".into(),
            ),
            2 | 3 => {}
            v => out.push(format!("vrrp.version: {v} is not 2 or 3")),
        }
        if self.virtual_ipaddress.is_empty() {
            out.push(
                "vrrp.virtual_ipaddress: at least one address, like \"192.0.2.100/24\"".into(),
            );
        }
        if self.version == 2 && self.virtual_ipaddress.iter().any(|a| a.addr.is_ipv6()) {
            out.push("vrrp.virtual_ipaddress: VRRPv2 carries IPv4 only; use version = 3".into());
        }
        if self.unicast_src.is_some() == self.unicast_peers.is_empty() {
            out.push("vrrp.unicast_src and vrrp.unicast_peers go together (both for unicast, neither for multicast)".into());
        }
        let check = &self.check;
        if !check.url.starts_with("http://")
            || check.url.contains(char::is_whitespace)
            || check.url.contains('"')
        {
            out.push(format!(
                "vrrp.check.url: {:?} must be an http:// URL of this host's veza-lb, like \"http://127.0.0.1:8080/veza-lb/health\"",
                check.url
            ));
        }
        let interval = check.interval.duration();
        if interval.subsec_millis() != 0 || interval.is_zero() {
            out.push(
                "vrrp.check.interval: keepalived runs scripts every whole number of seconds".into(),
            );
        }
        if check.timeout.duration().is_zero() || check.timeout.duration() >= interval {
            out.push("vrrp.check.timeout: must be above 0 and below the interval".into());
        }
        if check.fall == 0 || check.rise == 0 {
            out.push("vrrp.check.fall and rise: at least 1".into());
        }
        out
    }
}

/// What the template needs beyond the section: the veza-lb binary that probes, and the
/// account the probe runs as.
#[derive(Template)]
#[template(path = "keepalived.conf", escape = "none")]
struct KeepalivedConf<'a> {
    vrrp: &'a VrrpConfig,
    probe: String,
    script_user: &'a AccountName,
    advert: String,
    script_timeout: u64,
    step_down: &'static str,
}

/// keepalived's configuration for this host: the instance, the health script run as
/// `script_user` with `veza_lb` (the veza-lb binary) `probe`.
///
/// # Errors
/// askama's, if rendering fails.
pub fn render(
    vrrp: &VrrpConfig,
    veza_lb: &AbsPath,
    script_user: &AccountName,
) -> Result<String, String> {
    let ms = vrrp.advert_interval.duration().as_millis();
    let advert = if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        format!("{:.2}", ms as f64 / 1000.0)
    };
    let timeout = vrrp.check.timeout.duration();
    // keepalived runs the script every whole second at best; the probe watches that second
    // (a probe every 100 ms, the first failure ends it), so a dead veza-lb is seen within
    // 100 ms, not up to a second later.
    let interval = vrrp.check.interval.duration();
    let watch = interval.saturating_sub(Duration::from_millis(200));
    let probe = format!(
        "{} probe {} --timeout {}ms --for {}ms --every 100ms",
        veza_lb.as_str(),
        vrrp.check.url,
        timeout.as_millis(),
        watch.as_millis()
    );
    let conf = KeepalivedConf {
        vrrp,
        probe,
        script_user,
        advert,
        // keepalived's own bound on the script, whole seconds, above the probe's deadline.
        script_timeout: interval.as_secs() + timeout.as_secs() + 1,
        step_down: STEP_DOWN_PATH,
    };
    let mut text = conf.render().map_err(|e| e.to_string())?;
    text.push('\n');
    Ok(text)
}

/// `keepalived -t -f FILE`: keepalived's own reading of a configuration. keepalived 2.2
/// reports problems on stderr and exits by signalling itself whatever it found, so any
/// output counts as a failure.
///
/// # Errors
/// keepalived's messages, or why it could not run.
pub fn check_with_keepalived(keepalived: &Path, config: &Path) -> Result<(), String> {
    let out = Command::new(keepalived)
        .args(["--config-test", "--use-file"])
        .arg(config)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", keepalived.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "Terminated")
        .collect();
    if complaints.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "keepalived --config-test {}:\n{}",
            config.display(),
            complaints.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const SECTION: &str = r#"
interface = "eth0"
virtual_router_id = 51
priority = 150
advert_interval = "200ms"
virtual_ipaddress = ["192.0.2.100/24"]
check = { url = "http://127.0.0.1:8080/veza-lb/health" }
"#;

    fn config(text: &str) -> VrrpConfig {
        toml::from_str(text).unwrap()
    }

    /// `vrrp` rendered for veza-lb at its usual path, its account running the probe.
    fn rendered(vrrp: &VrrpConfig) -> String {
        render(
            vrrp,
            &AbsPath::new("/opt/veza/lb/veza-lb").unwrap(),
            &AccountName::new("veza-lb").unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn renders_an_instance_with_its_health_script() {
        let vrrp = config(SECTION);
        assert!(vrrp.problems().is_empty(), "{:?}", vrrp.problems());
        let text = rendered(&vrrp);
        for line in [
            "  script_user veza-lb\n",
            "  script \"/opt/veza/lb/veza-lb probe http://127.0.0.1:8080/veza-lb/health --timeout 500ms --for 800ms --every 100ms\"\n  interval 1\n  timeout 2\n",
            "vrrp_instance veza_edge {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 0.20\n",
            "    192.0.2.100/24 dev eth0\n",
            "  track_script {\n    veza_lb_serves\n  }\n  track_file {\n    veza_step_down\n  }\n",
            "track_file veza_step_down {\n  file \"/etc/veza-lb/keepalived.step-down\"\n  weight -1\n}\n",
        ] {
            assert!(text.contains(line), "{line:?} missing:\n{text}");
        }
        assert!(
            !text.contains("nopreempt") && !text.contains("unicast"),
            "{text}"
        );
    }

    #[test]
    fn unicast_and_no_preemption_are_rendered() {
        let vrrp = config(&format!(
            "{SECTION}preempt = false\nunicast_src = \"192.0.2.11\"\nunicast_peers = [\"192.0.2.12\"]\nversion = 2\n"
        )
        .replace("200ms", "1s"));
        assert!(vrrp.problems().is_empty(), "{:?}", vrrp.problems());
        let text = rendered(&vrrp);
        assert!(text.contains("  nopreempt\n"), "{text}");
        assert!(text.contains("  advert_int 1\n"), "{text}");
        assert!(text.contains("  vrrp_version 2\n"), "{text}");
        assert!(
            text.contains("  unicast_src_ip 192.0.2.11\n  unicast_peer {\n    192.0.2.12\n  }\n"),
            "{text}"
        );
    }

    #[test]
    fn every_problem_is_named() {
        let bad = config(
            &SECTION
                .replace("priority = 150", "priority = 255")
                .replace("virtual_router_id = 51", "virtual_router_id = 0")
                .replace("200ms", "205ms")
                .replace("[\"192.0.2.100/24\"]", "[]"),
        );
        let problems = bad.problems().join("\n");
        for needle in [
            "vrrp.priority",
            "vrrp.virtual_router_id",
            "vrrp.advert_interval: VRRPv3",
            "vrrp.virtual_ipaddress",
        ] {
            assert!(problems.contains(needle), "{needle} missing:\n{problems}");
        }
        let half = config(&format!("{SECTION}unicast_src = \"192.0.2.11\"\n"));
        assert!(half.problems()[0].contains("go together"));
        assert!(toml::from_str::<VrrpConfig>(&SECTION.replace("eth0", "lo")).is_err());
        let vip = |text: &str| VirtualAddress::try_from(text.to_owned()).unwrap().network();
        assert_eq!(vip("192.0.2.100/24"), "192.0.2.0/24");
        assert_eq!(vip("198.51.100.7/32"), "198.51.100.7/32");
        assert_eq!(vip("2001:db8::5/64"), "2001:db8::/64");
        assert!(toml::from_str::<VrrpConfig>(&SECTION.replace("/24", "/33")).is_err());
        assert!(
            toml::from_str::<VrrpConfig>(&SECTION.replace("192.0.2.100/24", "224.0.0.18/32"))
                .is_err()
        );
    }

    #[test]
    fn keepalived_reads_the_rendered_file() {
        let keepalived = Path::new("/usr/sbin/keepalived");
        if !keepalived.exists() {
            println!(
                "SKIPPED: keepalived is not installed (apt-get install keepalived); CI installs it"
            );
            return;
        }
        // keepalived refuses interfaces the host does not have: use one it has.
        let interface = std::fs::read_dir("/sys/class/net")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|name| name != "lo")
            .expect("a network interface");
        let vrrp = config(&SECTION.replace("eth0", &interface));
        let text = render(
            &vrrp,
            &AbsPath::new("/opt/veza/lb/veza-lb").unwrap(),
            &AccountName::new("nobody").unwrap(),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keepalived.conf");
        std::fs::write(&file, &text).unwrap();
        check_with_keepalived(keepalived, &file).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // And it does complain when something is wrong.
        std::fs::write(&file, text.replace("advert_int 0.20", "advert_int fast")).unwrap();
        assert!(check_with_keepalived(keepalived, &file).is_err());
    }
}
