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
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
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
default_pool = "{API_POOL}"
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
            connect = quoted(&self.timeout_connect),
            binds = binds.join(", "),
            slowstart = quoted(&self.slowstart),
            api = servers(&self.api),
            stream = servers(&self.stream),
        )
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
                servers: vec![("stream-server-1".into(), "127.0.0.1:18091".into())],
                comment: None,
            },
        };
        let text = topology.render();
        let value: toml::Table = text.parse().expect("valid TOML");
        let api = &value["pool"][API_POOL];
        assert_eq!(api["servers"][0]["name"].as_str(), Some("backend-api-1"));
        assert_eq!(api["slowstart"].as_str(), Some("30s"));
        assert_eq!(value["global"]["threads"].as_integer(), Some(2));
        assert!(text.contains("# From the inventory group backend_api_instances.\nservers = ["));
    }
}
