//! veza-lb's configuration for the seed's topology (its haproxy.cfg, in our TOML): one
//! renderer for the loopback runs (`smoke`, `demo`) and for deployments from an inventory, so
//! both exercise the same pools, cookie, health and slow-start settings.

use std::fmt::Write as _;

/// The API and stream pools' names, as the seed named HAProxy's backends.
pub const API_POOL: &str = "api_pool";
/// See [`API_POOL`].
pub const STREAM_POOL: &str = "stream_pool";
/// The sticky cookie, as the seed's.
pub const COOKIE: &str = "SERVERID";

/// The servers of one pool, and where the list came from (a comment line, if any).
#[derive(Debug, Clone, Default)]
pub struct ServerList {
    /// `(name, addr)` in slot order.
    pub servers: Vec<(String, String)>,
    /// Why these servers, e.g. "From the inventory group backend_api_instances."
    pub comment: Option<String>,
}

/// What varies between a loopback run and a deployment; durations as veza-lb reads them.
#[derive(Debug, Clone)]
pub struct SeedTopology {
    /// The file's first comment line.
    pub header: String,
    /// Frontend binds.
    pub binds: Vec<String>,
    /// `[global] stats_socket`: the TCP runtime API (level `operator`: reads, for the
    /// exporter and tooling).
    pub stats_socket: String,
    /// A second, unix runtime API socket (level `admin`: state changes), if any.
    pub admin_socket: Option<String>,
    /// `[global] metrics_listen`, if any.
    pub metrics_listen: Option<String>,
    /// `[global] threads`, if set.
    pub threads: Option<usize>,
    /// `[global] shutdown_grace`.
    pub shutdown_grace: String,
    /// `[defaults] timeout_connect`.
    pub timeout_connect: String,
    /// Health check interval.
    pub interval: String,
    /// Health check timeout (at most the interval).
    pub timeout: String,
    /// Failed checks before DOWN.
    pub fall: u32,
    /// Passed checks before UP.
    pub rise: u32,
    /// Slow start after recovery.
    pub slowstart: String,
    /// The API pool's servers.
    pub api: ServerList,
    /// The stream pool's servers.
    pub stream: ServerList,
    /// The frontend's `monitor_uri` (the LB pair's health check), if any.
    pub monitor_uri: Option<String>,
    /// A DNS server (`127.0.0.1:5353`) for the servers written `name:port`, asked every
    /// second; `None`: the system's resolvers, at veza-lb's defaults.
    pub resolvers: Option<String>,
}

/// A TOML basic string.
pub(crate) fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn servers(list: &ServerList) -> String {
    let mut out = String::new();
    if let Some(comment) = &list.comment {
        let _ = writeln!(out, "# {comment}");
    }
    out.push_str("servers = [\n");
    for (name, addr) in &list.servers {
        let _ = writeln!(
            out,
            "  {{ name = {}, addr = {} }},",
            quoted(name),
            quoted(addr)
        );
    }
    out.push(']');
    out
}

impl SeedTopology {
    /// The configuration file.
    pub fn render(&self) -> String {
        let sockets = match &self.admin_socket {
            Some(admin) => format!("[{}, {}]", quoted(admin), quoted(&self.stats_socket)),
            None => quoted(&self.stats_socket),
        };
        let mut global = format!(
            "stats_socket = {sockets}\nshutdown_grace = {}\n",
            quoted(&self.shutdown_grace)
        );
        if let Some(metrics) = &self.metrics_listen {
            let _ = writeln!(global, "metrics_listen = {}", quoted(metrics));
        }
        if let Some(threads) = self.threads {
            let _ = writeln!(global, "threads = {threads}");
        }
        if let Some(dns) = &self.resolvers {
            let _ = writeln!(
                global,
                "resolvers = [{}]\nresolve_interval = \"1s\"\nresolve_timeout = \"500ms\"",
                quoted(dns)
            );
        }
        let binds: Vec<String> = self.binds.iter().map(|b| quoted(b)).collect();
        let (interval, timeout) = (quoted(&self.interval), quoted(&self.timeout));
        let (fall, rise) = (self.fall, self.rise);
        format!(
            r#"# {header}
[global]
{global}
[defaults]
timeout_connect = {connect}
timeout_client = "30s"
timeout_server = "30s"
timeout_tunnel = "1h"
retries = 3
redispatch = true

[[frontend]]
name = "veza"
bind = [{binds}]
default_pool = "{API_POOL}"{monitor}
[[frontend.route]]
path_prefix = "/stream/"
pool = "{STREAM_POOL}"

[pool.{API_POOL}]
balance = "roundrobin"
cookie = {{ name = "{COOKIE}", insert = true, indirect = true, nocache = true }}
health = {{ path = "/api/v1/health", interval = {interval}, timeout = {timeout}, fall = {fall}, rise = {rise}, expect_status = [200] }}
slowstart = {slowstart}
on_marked_down = "shutdown-sessions"
{api}

[pool.{STREAM_POOL}]
balance = "jump-hash"
hash_key = {{ source = "path", depth = 2 }}
health = {{ path = "/health", interval = {interval}, timeout = {timeout}, fall = {fall}, rise = {rise} }}
{stream}
"#,
            header = self.header,
            monitor = self
                .monitor_uri
                .as_ref()
                .map(|uri| format!("\nmonitor_uri = {}", quoted(uri)))
                .unwrap_or_default(),
            connect = quoted(&self.timeout_connect),
            binds = binds.join(", "),
            slowstart = quoted(&self.slowstart),
            api = servers(&self.api),
            stream = servers(&self.stream),
        )
    }
}

/// A duration as veza-lb writes it (`"2s"`, `"500ms"`), for HAProxy (same units).
fn haproxy_time(text: &str) -> &str {
    text.trim_matches('"')
}

impl SeedTopology {
    /// The same topology as HAProxy 2.6's configuration: what the seed's Ansible role
    /// rendered, for side-by-side runs. Only the stats socket's TCP address is bound (level
    /// admin); the admin unix socket is veza-lb's. The stream pool hashes the same two path
    /// segments; HAProxy has no jump hash, so it uses its consistent hash. Its drain is its
    /// best one, as veza-lb's: `option idle-close-on-response` (an idle connection of a
    /// stopping worker answers its next request, then closes).
    pub fn render_haproxy(&self) -> String {
        let mut out = format!("# {}\nglobal\n", self.header);
        if let Some(threads) = self.threads {
            let _ = writeln!(out, "  nbthread {threads}");
        }
        let _ = writeln!(out, "  stats socket ipv4@{} level admin", self.stats_socket);
        let _ = writeln!(
            out,
            "  hard-stop-after {}",
            haproxy_time(&self.shutdown_grace)
        );
        let _ = write!(
            out,
            "\ndefaults\n  mode http\n  timeout connect {}\n  timeout client 30s\n  timeout server 30s\n  timeout tunnel 1h\n  timeout check {}\n  retries 3\n  option redispatch\n  option idle-close-on-response\n",
            haproxy_time(&self.timeout_connect),
            haproxy_time(&self.timeout)
        );
        if let Some(dns) = &self.resolvers {
            // As veza-lb asks it: every second, an answer within 500 ms.
            let _ = write!(
                out,
                "\nresolvers local\n  nameserver dns1 {dns}\n  hold valid 1s\n  timeout resolve 1s\n  timeout retry 500ms\n"
            );
        }
        out.push_str("\nfrontend veza\n");
        for bind in &self.binds {
            let _ = writeln!(out, "  bind {bind}");
        }
        if let Some(uri) = &self.monitor_uri {
            let _ = writeln!(out, "  monitor-uri {uri}");
        }
        let _ = write!(
            out,
            "  acl stream path_beg /stream/\n  use_backend {STREAM_POOL} if stream\n  default_backend {API_POOL}\n"
        );
        if let Some(metrics) = &self.metrics_listen {
            let _ = write!(
                out,
                "\nfrontend metrics\n  bind {metrics}\n  http-request use-service prometheus-exporter if {{ path /metrics }}\n"
            );
        }
        let check = format!(
            "inter {} fall {} rise {}",
            haproxy_time(&self.interval),
            self.fall,
            self.rise
        );
        let _ = write!(
            out,
            "\nbackend {API_POOL}\n  balance roundrobin\n  cookie {COOKIE} insert indirect nocache\n  option httpchk GET /api/v1/health\n  http-check expect status 200\n  default-server check {check} slowstart {} on-marked-down shutdown-sessions\n",
            haproxy_time(&self.slowstart)
        );
        for (name, addr) in &self.api.servers {
            let _ = writeln!(
                out,
                "  server {name} {addr} cookie {name}{}",
                self.by_name(addr)
            );
        }
        let _ = write!(
            out,
            "\nbackend {STREAM_POOL}\n  balance uri depth 2\n  hash-type consistent\n  option httpchk GET /health\n  default-server check {check}\n"
        );
        for (name, addr) in &self.stream.servers {
            let _ = writeln!(out, "  server {name} {addr}{}", self.by_name(addr));
        }
        out
    }

    /// For a server written `name:port`, HAProxy's way to resolve it as veza-lb does: by the
    /// resolvers, starting unresolved (libc does not know the name) until they answer.
    fn by_name(&self, addr: &str) -> &'static str {
        let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
        if self.resolvers.is_some() && host.parse::<std::net::IpAddr>().is_err() {
            " resolvers local init-addr none"
        } else {
            ""
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_config_veza_lb_accepts() {
        let topology = SeedTopology {
            header: "test".into(),
            binds: vec!["127.0.0.1:8080".into()],
            stats_socket: "127.0.0.1:9100".into(),
            admin_socket: Some("unix:/run/veza-lb/admin.sock".into()),
            metrics_listen: Some("127.0.0.1:9101".into()),
            threads: Some(2),
            shutdown_grace: "2s".into(),
            timeout_connect: "2s".into(),
            interval: "1s".into(),
            timeout: "1s".into(),
            fall: 3,
            rise: 2,
            slowstart: "30s".into(),
            api: ServerList {
                servers: vec![("backend-api-1".into(), "127.0.0.1:18081".into())],
                comment: Some("From the inventory group backend_api_instances.".into()),
            },
            stream: ServerList {
                servers: vec![("stream-server-1".into(), "stream-1.veza.test:18091".into())],
                comment: None,
            },
            monitor_uri: Some("/veza-lb/health".into()),
            resolvers: Some("127.0.0.1:5353".into()),
        };
        let text = topology.render();
        let value: toml::Table = text.parse().expect("valid TOML");
        let api = &value["pool"][API_POOL];
        assert_eq!(api["servers"][0]["name"].as_str(), Some("backend-api-1"));
        assert_eq!(api["slowstart"].as_str(), Some("30s"));
        assert_eq!(value["global"]["threads"].as_integer(), Some(2));
        assert_eq!(
            value["frontend"][0]["monitor_uri"].as_str(),
            Some("/veza-lb/health")
        );
        assert!(text.contains("# From the inventory group backend_api_instances.\nservers = ["));
        let haproxy = topology.render_haproxy();
        assert!(haproxy.contains("  stats socket ipv4@127.0.0.1:9100 level admin\n"));
        assert!(haproxy.contains("  option idle-close-on-response\n"));
        assert!(haproxy.contains("default-server check inter 1s fall 3 rise 2 slowstart 30s on-marked-down shutdown-sessions"));
        assert!(haproxy.contains("  server backend-api-1 127.0.0.1:18081 cookie backend-api-1\n"));
        assert!(haproxy.contains(
            "  server stream-server-1 stream-1.veza.test:18091 resolvers local init-addr none\n"
        ));
        assert!(haproxy.contains("resolvers local\n  nameserver dns1 127.0.0.1:5353\n"));
        assert_eq!(
            value["global"]["resolvers"][0].as_str(),
            Some("127.0.0.1:5353")
        );
        assert!(
            haproxy
                .contains("  bind 127.0.0.1:9101\n  http-request use-service prometheus-exporter")
        );
        if let Some(binary) = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("haproxy.cfg");
            std::fs::write(&path, &haproxy).unwrap();
            let check = std::process::Command::new(binary)
                .args(["-c", "-f"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "haproxy -c refused:\n{haproxy}\n{}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
    }
}
