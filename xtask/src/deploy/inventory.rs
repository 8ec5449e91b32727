//! The deploy inventory: the seed's Ansible groups (`haproxy`, `backend_api_instances`,
//! `stream_server_instances`) in TOML, each with a role file, the binary it runs and its
//! hosts. Everything is read and checked here, role files rendered and validated by
//! `provision`, before any host is touched.
//!
//! ```toml
//! ssh_options = ["-i", "~/.ssh/veza_deploy"]   # optional, for ssh:// hosts
//!
//! [lb]                                  # what veza-lb's configuration is rendered with
//! bind = ["0.0.0.0:8080"]
//! stats_socket = "127.0.0.1:9100"                # operator: reads (exporter, ctl top)
//! admin_socket = "unix:/run/veza-lb/admin.sock"   # admin: state changes (the default)
//! health_interval = "5s"
//!
//! [backend_api_instances]
//! role = "../provision/backend-api.toml"       # relative to this file; {{name}} {{addr}} {{ip}} {{port}}
//! binary = "build/veza-backend-api"            # a path (the Go build) or a workspace binary name
//! hosts = [
//!   { name = "backend-api-1", transport = "incus:backend-api-1", addr = "10.0.0.11:8080" },
//! ]
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::lbconfig::{SeedTopology, ServerList};
use crate::lbpair::{self, LbPair};
use crate::transport::{Host, Transport};
use crate::{Result, fail, parse_duration};

/// The seed's groups, in the order deploy visits them: backends first, so veza-lb finds them
/// up when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// `backend_api_instances`.
    BackendApi,
    /// `stream_server_instances`.
    StreamServer,
    /// `haproxy`: the load balancer host(s), running veza-lb.
    Haproxy,
}

impl GroupKind {
    /// The group's name in the inventory (the seed's Ansible group).
    pub fn name(self) -> &'static str {
        match self {
            GroupKind::BackendApi => "backend_api_instances",
            GroupKind::StreamServer => "stream_server_instances",
            GroupKind::Haproxy => "haproxy",
        }
    }
}

/// Where a group's binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinarySource {
    /// A binary of this workspace, built by deploy (`veza-lb`, `veza-demo-backend`).
    Workspace(String),
    /// A file built elsewhere (the Go `backend-api`).
    File(PathBuf),
}

/// One server line of veza-lb's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Server name (the sticky cookie value).
    pub name: String,
    /// `host:port` veza-lb connects to.
    pub addr: String,
}

/// One host of a group, its role file rendered for it.
#[derive(Debug, Clone)]
pub struct Instance {
    /// How to reach it.
    pub host: Host,
    /// Where veza-lb reaches it (backend groups).
    pub addr: Option<String>,
    /// The role file text for this host.
    pub role_text: String,
    /// The validated role.
    pub plan: provision::Plan,
}

impl Instance {
    /// Where the service's binary lives on the host: the role's `ExecStart` program.
    pub fn binary_path(&self) -> &Path {
        self.plan.service.exec_start.command().program().as_path()
    }
}

/// One group.
#[derive(Debug, Clone)]
pub struct Group {
    /// Which one.
    pub kind: GroupKind,
    /// The role file (template) it was rendered from.
    pub role: PathBuf,
    /// The binary pushed to its hosts, if deploy pushes one.
    pub binary: Option<BinarySource>,
    /// Its hosts.
    pub instances: Vec<Instance>,
}

/// veza-lb's settings, from the `[lb]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LbSettings {
    /// Frontend listeners.
    pub bind: Vec<String>,
    /// Runtime API (`host:port` or `unix:/path`), level `operator` on TCP.
    pub stats_socket: String,
    /// The admin runtime API (`unix:/path`, level `admin`); empty for none. The default lives
    /// in veza-lb's unit's `RuntimeDirectory=`.
    pub admin_socket: String,
    /// Prometheus endpoint; empty for none.
    pub metrics_listen: String,
    /// Health check interval (the seed: 5s).
    pub health_interval: String,
    /// Slow start after recovery (the seed: 30s).
    pub slowstart: String,
    /// Where the configuration goes on the load balancer host (the role's `-c`).
    pub config: PathBuf,
    /// API servers when `backend_api_instances` is missing (the seed's
    /// `haproxy_backend_api_fallback`).
    pub fallback_backend_api: Vec<Server>,
    /// Stream servers when `stream_server_instances` is missing.
    pub fallback_stream_server: Vec<Server>,
}

impl Default for LbSettings {
    fn default() -> Self {
        let server = |name: &str, addr: &str| Server {
            name: name.to_owned(),
            addr: addr.to_owned(),
        };
        LbSettings {
            bind: vec!["0.0.0.0:8080".to_owned()],
            stats_socket: "127.0.0.1:9100".to_owned(),
            admin_socket: "unix:/run/veza-lb/admin.sock".to_owned(),
            metrics_listen: "127.0.0.1:9101".to_owned(),
            health_interval: "5s".to_owned(),
            slowstart: "30s".to_owned(),
            config: PathBuf::from("/etc/veza-lb/veza-lb.toml"),
            fallback_backend_api: vec![
                server("backend-api-1", "127.0.0.1:18081"),
                server("backend-api-2", "127.0.0.1:18082"),
            ],
            fallback_stream_server: vec![
                server("stream-server-1", "127.0.0.1:18091"),
                server("stream-server-2", "127.0.0.1:18092"),
            ],
        }
    }
}

/// A whole, validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The file it was read from.
    pub path: PathBuf,
    /// veza-lb's settings.
    pub lb: LbSettings,
    /// The groups present, in deploy order.
    pub groups: Vec<Group>,
    /// Two `[haproxy]` hosts behind a keepalived virtual address, if any.
    pub lb_pair: Option<LbPair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFile {
    #[serde(default)]
    lb: LbSettings,
    #[serde(default)]
    ssh_options: Vec<String>,
    backend_api_instances: Option<GroupFile>,
    stream_server_instances: Option<GroupFile>,
    haproxy: Option<GroupFile>,
    lb_pair: Option<LbPair>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    role: PathBuf,
    #[serde(default)]
    binary: Option<String>,
    hosts: Vec<HostFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFile {
    name: String,
    transport: String,
    #[serde(default)]
    addr: Option<String>,
    /// A directory standing for `/` on that host (veza-provision --root), e.g. an image.
    #[serde(default)]
    root: Option<PathBuf>,
}

impl Inventory {
    /// Reads `path`; relative `local:`/`nspawn:` directories are resolved against `base`,
    /// role files and binary paths against the inventory's directory.
    pub fn load(path: &Path, base: &Path) -> Result<Inventory> {
        let text = std::fs::read_to_string(path).map_err(crate::Error::io(format!(
            "cannot read the inventory {}",
            path.display()
        )))?;
        Inventory::parse(path, &text, base)
    }

    /// Parses inventory text (see [`Inventory::load`]).
    pub fn parse(path: &Path, text: &str, base: &Path) -> Result<Inventory> {
        let shown = path.display();
        let file: InventoryFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            crate::Error::Message(format!("{shown}:{line}:{column}: {}", e.message().trim()))
        })?;
        let lb = file.lb;
        for (key, value) in [
            ("health_interval", &lb.health_interval),
            ("slowstart", &lb.slowstart),
        ] {
            parse_duration(value)
                .map_err(|e| crate::Error::Message(format!("{shown}: [lb] {key}: {e}")))?;
        }
        if lb.bind.is_empty() {
            return fail(format!(
                "{shown}: [lb] bind is empty; give veza-lb an address to listen on"
            ));
        }
        if !lb.config.is_absolute() {
            return fail(format!(
                "{shown}: [lb] config must be an absolute path on the host"
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut groups = Vec::new();
        let mut names = BTreeSet::new();
        if let Some(pair) = &file.lb_pair {
            let lb_hosts: Vec<&str> = file
                .haproxy
                .iter()
                .flat_map(|g| g.hosts.iter().map(|h| h.name.as_str()))
                .collect();
            let problems = pair.problems(&lb_hosts);
            if !problems.is_empty() {
                return fail(format!("{shown}: {}", problems.join("; ")));
            }
        }
        let pair = file
            .lb_pair
            .as_ref()
            .map(|p| (p, lbpair::check_url(&lb.bind[0])));
        for (kind, group) in [
            (GroupKind::BackendApi, file.backend_api_instances),
            (GroupKind::StreamServer, file.stream_server_instances),
            (GroupKind::Haproxy, file.haproxy),
        ] {
            let Some(group) = group else { continue };
            let group = load_group(
                kind,
                group,
                dir,
                base,
                &file.ssh_options,
                &mut names,
                pair.as_ref(),
            )
            .map_err(|e| crate::Error::Message(format!("{shown}: [{}] {e}", kind.name())))?;
            groups.push(group);
        }
        if groups.is_empty() {
            return fail(format!(
                "{shown}: no groups; add [haproxy], [backend_api_instances] or \
                 [stream_server_instances] with hosts"
            ));
        }
        Ok(Inventory {
            path: path.to_path_buf(),
            lb,
            groups,
            lb_pair: file.lb_pair,
        })
    }

    /// A group, if the inventory has it.
    pub fn group(&self, kind: GroupKind) -> Option<&Group> {
        self.groups.iter().find(|g| g.kind == kind)
    }

    /// The servers of a backend group, or the fallback list when the group is missing (as
    /// the seed's template did).
    pub fn servers(&self, kind: GroupKind) -> (Vec<Server>, bool) {
        match self.group(kind) {
            Some(group) => (
                group
                    .instances
                    .iter()
                    .filter_map(|i| {
                        Some(Server {
                            name: i.host.name.clone(),
                            addr: i.addr.clone()?,
                        })
                    })
                    .collect(),
                false,
            ),
            None => (
                match kind {
                    GroupKind::StreamServer => self.lb.fallback_stream_server.clone(),
                    _ => self.lb.fallback_backend_api.clone(),
                },
                true,
            ),
        }
    }

    /// veza-lb's configuration, rendered from the groups: the seed's haproxy.cfg in TOML.
    pub fn render_lb_config(&self) -> String {
        let lb = &self.lb;
        let list = |group: GroupKind| {
            let (servers, fallback) = self.servers(group);
            ServerList {
                servers: servers
                    .iter()
                    .map(|s| (s.name.clone(), s.addr.clone()))
                    .collect(),
                comment: Some(if fallback {
                    format!(
                        "{} is not in the inventory: static fallback list.",
                        group.name()
                    )
                } else {
                    format!("From the inventory group {}.", group.name())
                }),
            }
        };
        let timeout = parse_duration(&lb.health_interval)
            .map(|d| d.min(std::time::Duration::from_secs(2)))
            .map(|d| format!("{}ms", d.as_millis()))
            .unwrap_or_else(|_| "2s".to_owned());
        SeedTopology {
            header: format!(
                "Rendered by `cargo xtask deploy` from {}; edits here are overwritten.",
                self.path.display()
            ),
            binds: lb.bind.clone(),
            stats_socket: lb.stats_socket.clone(),
            admin_socket: (!lb.admin_socket.is_empty()).then(|| lb.admin_socket.clone()),
            metrics_listen: (!lb.metrics_listen.is_empty()).then(|| lb.metrics_listen.clone()),
            threads: None,
            shutdown_grace: "30s".into(),
            timeout_connect: "5s".into(),
            interval: lb.health_interval.clone(),
            timeout,
            fall: 3,
            rise: 2,
            slowstart: lb.slowstart.clone(),
            api: list(GroupKind::BackendApi),
            stream: list(GroupKind::StreamServer),
            monitor_uri: self
                .lb_pair
                .is_some()
                .then(|| lbpair::MONITOR_URI.to_owned()),
            resolvers: None,
        }
        .render()
    }

    /// Moves every address veza-lb and the backends listen on to a new port (`port(old)`),
    /// re-rendering the role files: how the lab avoids ports already taken on its host.
    pub fn remap_ports(&mut self, mut port: impl FnMut(u16) -> u16) -> Result<()> {
        let mut remap = |addr: &str| match addr.rsplit_once(':') {
            Some((host, p)) => match p.parse::<u16>() {
                Ok(p) => format!("{host}:{}", port(p)),
                Err(_) => addr.to_owned(),
            },
            None => addr.to_owned(),
        };
        let lb = &mut self.lb;
        lb.bind = lb.bind.iter().map(|a| remap(a)).collect();
        if !lb.stats_socket.starts_with("unix:") {
            lb.stats_socket = remap(&lb.stats_socket);
        }
        if !lb.metrics_listen.is_empty() {
            lb.metrics_listen = remap(&lb.metrics_listen);
        }
        let check_url = lbpair::check_url(&lb.bind[0]);
        for group in &mut self.groups {
            let template = std::fs::read_to_string(&group.role).map_err(crate::Error::io(
                format!("cannot read {}", group.role.display()),
            ))?;
            for instance in &mut group.instances {
                instance.addr = instance.addr.as_deref().map(&mut remap);
                let name = &instance.host.name;
                let pair = self.lb_pair.as_ref().map(|p| (p, check_url.clone()));
                instance.role_text = role_text(
                    &template,
                    name,
                    instance.addr.as_deref(),
                    group.kind,
                    pair.as_ref(),
                )
                .map_err(crate::Error::Message)?;
                let origin = format!("{} (for {name})", group.role.display());
                instance.plan = provision::Plan::parse(&origin, &instance.role_text)
                    .map_err(|e| crate::Error::Message(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Every host, in deploy order, with its group: the groups in order, each group's hosts in
    /// file order, but the hosts of an LB pair from the lowest VRRP priority to the highest,
    /// so that a deploy changes the BACKUP first and the MASTER, which holds the virtual
    /// address, last (and not at all if the BACKUP's deploy failed).
    pub fn instances(&self) -> impl Iterator<Item = (&Group, &Instance)> {
        self.groups.iter().flat_map(move |g| {
            let mut hosts: Vec<&Instance> = g.instances.iter().collect();
            if g.kind == GroupKind::Haproxy
                && let Some(pair) = &self.lb_pair
            {
                // A stable sort: hosts the pair does not name keep their place first.
                hosts.sort_by_key(|i| {
                    pair.hosts
                        .iter()
                        .find(|h| h.name == i.host.name)
                        .map(|h| h.priority)
                });
            }
            hosts.into_iter().map(move |i| (g, i))
        })
    }

    /// Whether `group` holds the hosts of an LB pair.
    pub fn is_pair(&self, group: &Group) -> bool {
        group.kind == GroupKind::Haproxy && self.lb_pair.is_some()
    }
}

/// A host's role file: the group's template rendered for it, plus, for a host of the LB pair,
/// its `[vrrp]` section.
fn role_text(
    template: &str,
    name: &str,
    addr: Option<&str>,
    kind: GroupKind,
    pair: Option<&(&LbPair, String)>,
) -> Result<String, String> {
    let mut text = render_role(template, name, addr)?;
    if kind == GroupKind::Haproxy
        && let Some((pair, check_url)) = pair
        && let Some(section) = pair.vrrp_section(name, check_url)
    {
        text.push_str(&section);
    }
    Ok(text)
}

fn load_group(
    kind: GroupKind,
    group: GroupFile,
    dir: &Path,
    base: &Path,
    ssh_options: &[String],
    names: &mut BTreeSet<String>,
    pair: Option<&(&LbPair, String)>,
) -> Result<Group, String> {
    if group.hosts.is_empty() {
        return Err(
            "hosts is empty; list at least one host, or remove the group to use the fallback"
                .to_owned(),
        );
    }
    let role = dir.join(&group.role);
    let template =
        std::fs::read_to_string(&role).map_err(|e| format!("role {}: {e}", role.display()))?;
    let binary = group.binary.map(|b| {
        if b.contains('/') {
            BinarySource::File(dir.join(b))
        } else {
            BinarySource::Workspace(b)
        }
    });
    let mut instances = Vec::new();
    for host in group.hosts {
        let name = host.name.clone();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            return Err(format!(
                "host name {name:?}: use letters, digits, '-', '_' and '.'"
            ));
        }
        if !names.insert(name.clone()) {
            return Err(format!(
                "host {name} is listed twice; host names are unique"
            ));
        }
        let transport = Transport::parse(&host.transport, base, ssh_options)
            .map_err(|e| format!("host {name}: transport {e}"))?;
        if kind != GroupKind::Haproxy && host.addr.is_none() {
            return Err(format!(
                "host {name}: addr is missing; write the host:port veza-lb reaches it on"
            ));
        }
        if let Some(root) = &host.root
            && !root.is_absolute()
        {
            return Err(format!("host {name}: root must be an absolute path"));
        }
        let role_text = role_text(&template, &name, host.addr.as_deref(), kind, pair)
            .map_err(|e| format!("host {name}: role {}: {e}", role.display()))?;
        let origin = format!("{} (for {name})", role.display());
        let plan = provision::Plan::parse(&origin, &role_text).map_err(|e| e.to_string())?;
        instances.push(Instance {
            host: Host::new(&name, transport, host.root),
            addr: host.addr,
            role_text,
            plan,
        });
    }
    Ok(Group {
        kind,
        role,
        binary,
        instances,
    })
}

/// Replaces `{{name}}`, `{{addr}}`, `{{ip}}` and `{{port}}` in a role template.
pub fn render_role(template: &str, name: &str, addr: Option<&str>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "an opening {{ has no closing }}".to_owned())?;
        let key = after[..end].trim();
        let need_addr =
            || addr.ok_or_else(|| format!("{{{{{key}}}}} needs the host's addr, which is not set"));
        let value = match key {
            "name" => name.to_owned(),
            "addr" => need_addr()?.to_owned(),
            "ip" | "port" => {
                let addr = need_addr()?;
                let (ip, port) = addr
                    .rsplit_once(':')
                    .ok_or_else(|| format!("addr {addr:?} is not host:port"))?;
                if key == "ip" {
                    ip.trim_start_matches('[').trim_end_matches(']').to_owned()
                } else {
                    port.to_owned()
                }
            }
            other => {
                return Err(format!(
                    "unknown placeholder {{{{{other}}}}}; use name, addr, ip or port"
                ));
            }
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_placeholders() {
        let t = r#"exec_start = ["/x", "--listen", "{{addr}}", "--name", "{{ name }}"]
listen_ports = [{{port}}] # {{ip}}"#;
        assert_eq!(
            render_role(t, "api-1", Some("127.0.0.1:28081")).unwrap(),
            r#"exec_start = ["/x", "--listen", "127.0.0.1:28081", "--name", "api-1"]
listen_ports = [28081] # 127.0.0.1"#
        );
        assert_eq!(render_role("plain", "x", None).unwrap(), "plain");
        assert!(
            render_role("{{addr}}", "x", None)
                .unwrap_err()
                .contains("addr")
        );
        assert!(
            render_role("{{home}}", "x", None)
                .unwrap_err()
                .contains("unknown")
        );
        assert!(render_role("{{name", "x", None).is_err());
    }

    fn examples() -> PathBuf {
        crate::build::workspace_root().join("examples")
    }

    #[test]
    fn missing_groups_fall_back_to_the_static_list() {
        let dir = examples().join("inventory");
        let text = r#"
[lb]
bind = ["127.0.0.1:28080"]

[backend_api_instances]
role = "roles/backend-api-demo.toml"
binary = "veza-demo-backend"
hosts = [
  { name = "backend-api-1", transport = "local:a", addr = "127.0.0.1:28081" },
  { name = "backend-api-2", transport = "local:b", addr = "127.0.0.1:28082" },
]
"#;
        let inventory = Inventory::parse(&dir.join("x.toml"), text, Path::new("/tmp")).unwrap();
        let config = inventory.render_lb_config();
        assert!(config.contains(r#"{ name = "backend-api-2", addr = "127.0.0.1:28082" }"#));
        assert!(config.contains("stream_server_instances is not in the inventory"));
        assert!(config.contains(r#"{ name = "stream-server-1", addr = "127.0.0.1:18091" }"#));
        let api = inventory.group(GroupKind::BackendApi).unwrap();
        assert_eq!(api.instances[1].plan.service.name, "veza-backend-api-2");
        assert_eq!(
            api.instances[0].host.root.as_deref(),
            Some(Path::new("/tmp/a"))
        );
    }

    #[test]
    fn example_inventories_are_valid() {
        for path in [
            examples().join("lab-local.toml"),
            examples().join("inventory/lab-nspawn.toml"),
            examples().join("inventory/seed-incus.toml"),
        ] {
            let inventory = Inventory::load(&path, Path::new("/tmp")).unwrap();
            assert_eq!(inventory.groups.len(), 3, "{}", path.display());
            assert_eq!(inventory.instances().count(), 5, "{}", path.display());
        }
    }

    #[test]
    fn the_pair_deploys_its_backup_first_and_its_master_last() {
        let inventory = Inventory::load(
            &examples().join("inventory/lb-pair.toml"),
            Path::new("/tmp"),
        )
        .unwrap();
        let lbs: Vec<&str> = (inventory.instances())
            .filter(|(g, _)| g.kind == GroupKind::Haproxy)
            .map(|(_, i)| i.host.name.as_str())
            .collect();
        assert_eq!(lbs, ["lb-2", "lb-1"], "priority 100 before priority 150");
        let first: Vec<&str> = (inventory.instances())
            .take(2)
            .map(|(_, i)| i.host.name.as_str())
            .collect();
        assert_eq!(
            first,
            ["backend-api-1", "backend-api-2"],
            "other groups in file order"
        );
    }

    /// `examples/provision/lb-1.toml` (the README's keepalived example) is what deploy
    /// renders for lb-1 from the pair's inventory, after a header saying so.
    #[test]
    fn the_example_pair_role_is_what_deploy_renders() {
        let inventory = Inventory::load(
            &examples().join("inventory/lb-pair.toml"),
            Path::new("/tmp"),
        )
        .unwrap();
        let (_, lb1) = inventory
            .instances()
            .find(|(_, i)| i.host.name == "lb-1")
            .unwrap();
        let path = examples().join("provision/lb-1.toml");
        let example = std::fs::read_to_string(&path).unwrap();
        let body = example
            .split_once("\n\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        if body != lb1.role_text {
            std::fs::write(path.with_extension("toml.rendered"), &lb1.role_text).unwrap();
        }
        assert!(
            body == lb1.role_text,
            "{} differs from what deploy renders (written next to it as .rendered)",
            path.display()
        );
    }

    #[test]
    fn errors_name_the_file_the_group_and_the_host() {
        let dir = examples().join("inventory");
        let err = |text: &str| {
            Inventory::parse(&dir.join("inv.toml"), text, Path::new("/tmp"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("[lb]\nbnid = []\n").starts_with(&format!(
            "{}:2:1: unknown field `bnid`",
            dir.join("inv.toml").display()
        )));
        let e = err(r#"
[backend_api_instances]
role = "roles/backend-api-demo.toml"
hosts = [{ name = "backend-api-1", transport = "local:a" }]
"#);
        assert!(
            e.contains("[backend_api_instances] host backend-api-1: addr is missing"),
            "{e}"
        );
        let e = err(r#"
[haproxy]
role = "../provision/veza-lb.toml"
hosts = [{ name = "lb", transport = "scp:lb" }]
"#);
        assert!(
            e.contains("[haproxy] host lb: transport \"scp:lb\" is not a transport"),
            "{e}"
        );
        assert!(err("").contains("no groups"));
    }
}
