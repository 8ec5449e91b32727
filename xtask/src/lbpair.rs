//! `[lb_pair]` in the deploy inventory: the seed's phase 2, two veza-lb hosts behind a
//! keepalived (VRRP) virtual address. Each host of the pair gets a `[vrrp]` section appended
//! to its role file (the same instance, its own priority, the other host as unicast peer when
//! asked), which `veza-provision` turns into keepalived's configuration and unit; veza-lb's
//! configuration gains the `monitor_uri` keepalived's health script asks.
//!
//! ```toml
//! [lb_pair]
//! virtual_ipaddress = ["192.0.2.100/24"]
//! interface = "eth0"
//! virtual_router_id = 51
//! advert_interval = "1s"          # VRRPv3: down to "10ms"
//! hosts = [
//!   { name = "lb-1", priority = 150, address = "192.0.2.11" },
//!   { name = "lb-2", priority = 100, address = "192.0.2.12" },
//! ]
//! ```

use std::net::IpAddr;

use serde::Deserialize;

use crate::lbconfig::quoted;

/// The path veza-lb answers itself on a pair's hosts (`monitor_uri`).
pub const MONITOR_URI: &str = "/veza-lb/health";

/// The first line of the `[vrrp]` section appended to a pair host's role file.
pub const SECTION_MARK: &str =
    "\n# Rendered by `cargo xtask deploy` from [lb_pair]: this host's side of the pair.\n";

fn yes() -> bool {
    true
}

fn three() -> u8 {
    3
}

/// One host of the pair.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairHost {
    /// A host of the `[haproxy]` group.
    pub name: String,
    /// Its VRRP priority (the higher holds the address).
    pub priority: u8,
    /// Its own address on the virtual address' network (unicast adverts, checks).
    pub address: IpAddr,
}

/// `[lb_pair]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LbPair {
    /// The addresses clients use.
    pub virtual_ipaddress: Vec<String>,
    /// The interface they live on, on both hosts.
    pub interface: String,
    /// VRRP router id, 1 to 255.
    pub virtual_router_id: u8,
    /// Time between adverts.
    pub advert_interval: String,
    /// VRRP version (3 by default).
    #[serde(default = "three")]
    pub version: u8,
    /// Whether the higher priority takes the address back when it returns.
    #[serde(default = "yes")]
    pub preempt: bool,
    /// Unicast adverts to the other host instead of multicast.
    #[serde(default)]
    pub unicast: bool,
    /// Seconds between two health probes of veza-lb (keepalived: whole seconds; 1s).
    #[serde(default)]
    pub check_interval: Option<String>,
    /// Failed probes before a host gives the address away (2): 1 halves the time a dead
    /// veza-lb keeps the address, at the price of moving it on a single slow answer.
    #[serde(default)]
    pub check_fall: Option<u32>,
    /// Passed probes before a host may hold the address again (2).
    #[serde(default)]
    pub check_rise: Option<u32>,
    /// The two hosts.
    pub hosts: Vec<PairHost>,
}

impl LbPair {
    /// What is wrong with the pair itself (each host's section is checked by veza-provision
    /// when its role file is parsed).
    pub fn problems(&self, lb_hosts: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        if self.hosts.len() != 2 {
            out.push(format!(
                "[lb_pair] hosts: a pair is two hosts, not {}",
                self.hosts.len()
            ));
        }
        for host in &self.hosts {
            if !lb_hosts.contains(&host.name.as_str()) {
                out.push(format!(
                    "[lb_pair] host {} is not a host of the [haproxy] group",
                    host.name
                ));
            }
        }
        if let [a, b] = self.hosts.as_slice() {
            if a.priority == b.priority {
                out.push("[lb_pair] the two hosts need different priorities".into());
            }
            if a.name == b.name || a.address == b.address {
                out.push("[lb_pair] the two hosts must differ in name and address".into());
            }
        }
        out
    }

    /// The `[vrrp]` section for `host`'s role file, or `None` if it is not in the pair.
    pub fn vrrp_section(&self, host: &str, check_url: &str) -> Option<String> {
        let me = self.hosts.iter().find(|h| h.name == host)?;
        let vips: Vec<String> = self.virtual_ipaddress.iter().map(|v| quoted(v)).collect();
        let mut out = format!(
            "{SECTION_MARK}[vrrp]\ninterface = {}\nvirtual_router_id = {}\npriority = {}\nversion = {}\n\
             advert_interval = {}\nvirtual_ipaddress = [{}]\npreempt = {}\n",
            quoted(&self.interface),
            self.virtual_router_id,
            me.priority,
            self.version,
            quoted(&self.advert_interval),
            vips.join(", "),
            self.preempt
        );
        if self.unicast {
            let peers: Vec<String> = self
                .hosts
                .iter()
                .filter(|h| h.name != host)
                .map(|h| quoted(&h.address.to_string()))
                .collect();
            out.push_str(&format!(
                "unicast_src = {}\nunicast_peers = [{}]\n",
                quoted(&me.address.to_string()),
                peers.join(", ")
            ));
        }
        let mut check = format!("url = {}", quoted(check_url));
        if let Some(interval) = &self.check_interval {
            check.push_str(&format!(", interval = {}", quoted(interval)));
        }
        if let Some(fall) = self.check_fall {
            check.push_str(&format!(", fall = {fall}"));
        }
        if let Some(rise) = self.check_rise {
            check.push_str(&format!(", rise = {rise}"));
        }
        out.push_str(&format!("check = {{ {check} }}\n"));
        Some(out)
    }
}

/// The check URL on a host: its veza-lb's first plain bind, on loopback when it binds every
/// address.
pub fn check_url(bind: &str) -> String {
    let port = bind.rsplit_once(':').map_or("8080", |(_, p)| p);
    let host = match bind.rsplit_once(':').map(|(h, _)| h) {
        Some("0.0.0.0") | Some("[::]") | None => "127.0.0.1",
        Some(h) => h,
    };
    format!("http://{host}:{port}{MONITOR_URI}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> LbPair {
        toml::from_str(
            r#"
virtual_ipaddress = ["192.0.2.100/24"]
interface = "eth0"
virtual_router_id = 51
advert_interval = "200ms"
unicast = true
check_fall = 1
hosts = [
  { name = "lb-1", priority = 150, address = "192.0.2.11" },
  { name = "lb-2", priority = 100, address = "192.0.2.12" },
]
"#,
        )
        .unwrap()
    }

    #[test]
    fn each_host_gets_its_priority_and_the_other_as_peer() {
        let pair = pair();
        assert!(pair.problems(&["lb-1", "lb-2"]).is_empty());
        let section = pair
            .vrrp_section("lb-2", &check_url("0.0.0.0:8080"))
            .unwrap();
        let vrrp: provision::vrrp::VrrpConfig =
            toml::from_str(section.split_once("[vrrp]\n").unwrap().1).unwrap();
        assert!(vrrp.problems().is_empty(), "{:?}", vrrp.problems());
        assert_eq!(vrrp.priority, 100);
        assert_eq!(vrrp.unicast_src, Some("192.0.2.12".parse().unwrap()));
        assert_eq!(
            vrrp.unicast_peers,
            ["192.0.2.11".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(vrrp.check.url, "http://127.0.0.1:8080/veza-lb/health");
        assert_eq!((vrrp.check.fall, vrrp.check.rise), (1, 2));
        assert!(pair.vrrp_section("backend-api-1", "x").is_none());
    }

    #[test]
    fn a_pair_is_two_known_hosts_with_different_priorities() {
        let mut pair = pair();
        pair.hosts[1].priority = 150;
        let problems = pair.problems(&["lb-1"]).join("\n");
        assert!(
            problems.contains("lb-2 is not a host of the [haproxy] group"),
            "{problems}"
        );
        assert!(problems.contains("different priorities"), "{problems}");
        pair.hosts.pop();
        assert!(pair.problems(&["lb-1"])[0].contains("a pair is two hosts"));
    }

    #[test]
    fn check_urls_follow_the_bind() {
        assert_eq!(
            check_url("0.0.0.0:80"),
            "http://127.0.0.1:80/veza-lb/health"
        );
        assert_eq!(
            check_url("10.0.0.5:8080"),
            "http://10.0.0.5:8080/veza-lb/health"
        );
    }
}
