//! The role file (TOML) and the validated [`Plan`] it becomes.
//!
//! Every value is validated while deserializing, so a bad value is reported with the
//! position of that value in the file, and nothing on the host is touched before the whole
//! file is known to be good.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_spanned::Spanned;
use systemd_unit::{
    AbsPath, AccountName, Command, EnvName, IpAddressSpec, KeepalivedSpec, Role, Schedule,
    ServiceSpec, Text, Timespan,
};

use crate::Error;
use crate::vrrp::{self, VrrpConfig};

/// A file mode such as `0750`, written in the file as a quoted octal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(u32);

impl Mode {
    /// Wraps permission bits (at most `0o7777`).
    ///
    /// # Errors
    /// [`Error::InvalidMode`] above `0o7777`.
    pub fn new(bits: u32) -> Result<Self, Error> {
        if bits > 0o7777 {
            return Err(Error::InvalidMode(format!("{bits:o}")));
        }
        Ok(Self(bits))
    }

    /// The permission bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let digits_ok = (3..=4).contains(&s.len()) && s.bytes().all(|b| (b'0'..=b'7').contains(&b));
        if !digits_ok {
            return Err(Error::InvalidMode(s.to_owned()));
        }
        Self::new(u32::from_str_radix(s, 8).map_err(|_| Error::InvalidMode(s.to_owned()))?)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A default value for the env file, written verbatim after `KEY=`.
///
/// systemd reads env files with shell-like rules (quotes, backslashes and `$VAR` expansion),
/// so values using those are refused rather than escaped: ops edit this file by hand, and a
/// verbatim line is what they expect to see.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EnvValue(String);

impl EnvValue {
    /// Validates a value.
    ///
    /// # Errors
    /// [`Error::InvalidEnvValue`] for control characters, quotes, `\`, `$` or surrounding
    /// whitespace.
    pub fn new(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        let bad = value
            .chars()
            .any(|c| c.is_control() || "\"'\\$".contains(c))
            || value.trim() != value;
        if bad {
            return Err(Error::InvalidEnvValue(value));
        }
        Ok(Self(value))
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvValue {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl fmt::Display for EnvValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A command line written as a list: `["/opt/veza/lb/veza-lb", "run", "-c", "FILE"]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct ExecLine(Command);

impl ExecLine {
    /// The command.
    pub fn command(&self) -> &Command {
        &self.0
    }
}

impl TryFrom<Vec<String>> for ExecLine {
    type Error = String;
    fn try_from(words: Vec<String>) -> Result<Self, String> {
        let (program, args) = words
            .split_first()
            .ok_or("exec_start is empty; give the program path and its arguments")?;
        let program = AbsPath::new(program.as_str()).map_err(|e| format!("the program: {e}"))?;
        Command::new(program)
            .args(args.iter().cloned())
            .map(Self)
            .map_err(|e| e.to_string())
    }
}

fn nologin() -> AbsPath {
    AbsPath::new("/usr/sbin/nologin").unwrap_or_else(|_| unreachable!("constant path is valid"))
}

fn root_account() -> AccountName {
    AccountName::new("root").unwrap_or_else(|_| unreachable!("constant name is valid"))
}

const fn env_mode() -> Mode {
    Mode(0o640)
}

fn default_stop_timeout() -> Timespan {
    Timespan::from_secs(30)
}

fn yes() -> bool {
    true
}

/// The service account: a system user with a primary group of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// User and group name.
    pub name: AccountName,
    /// Home directory (created by `useradd --create-home`).
    pub home: AbsPath,
    /// Login shell; a service account gets none.
    #[serde(default = "nologin")]
    pub shell: AbsPath,
}

/// A directory with its owner and mode.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySpec {
    /// Where.
    pub path: AbsPath,
    /// Owning user.
    pub owner: AccountName,
    /// Owning group.
    pub group: AccountName,
    /// Permission bits.
    pub mode: Mode,
}

/// The service's env file: `KEY=value` lines read by systemd before start.
///
/// `defaults` are written for keys the file lacks; a key already in the file keeps its value,
/// so secrets put there by ops (or a vault) are never overwritten.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFileSpec {
    /// Where (its directory must exist or be created by a `[[directory]]` entry).
    pub path: AbsPath,
    /// Owning user.
    #[serde(default = "root_account")]
    pub owner: AccountName,
    /// Owning group (normally the service's, so it can read it).
    pub group: AccountName,
    /// Permission bits.
    #[serde(default = "env_mode")]
    pub mode: Mode,
    /// Values for keys the file does not have yet.
    #[serde(default)]
    pub defaults: BTreeMap<EnvName, EnvValue>,
}

/// The systemd service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Unit name without `.service`.
    pub name: String,
    /// `Description=`.
    pub description: Text,
    /// Program and arguments.
    pub exec_start: ExecLine,
    /// `WorkingDirectory=`.
    #[serde(default)]
    pub working_directory: Option<AbsPath>,
    /// The only writable directories.
    #[serde(default)]
    pub read_write_paths: Vec<AbsPath>,
    /// Ports it listens on (one below 1024 grants `CAP_NET_BIND_SERVICE`, unless a socket
    /// unit binds it).
    #[serde(default)]
    pub listen_ports: Vec<u16>,
    /// Addresses a `NAME.socket` unit binds and passes to the service (socket activation,
    /// veza-lb): their ports need no capability.
    #[serde(default)]
    pub sockets: Vec<std::net::SocketAddr>,
    /// Peers it may talk to; omit for no IP filter.
    #[serde(default)]
    pub ip_address_allow: Option<Vec<IpAddressSpec>>,
    /// Its runtime JITs code.
    #[serde(default)]
    pub jit: bool,
    /// `WatchdogSec=` (veza-lb only).
    #[serde(default)]
    pub watchdog: Option<Spanned<Timespan>>,
    /// `TimeoutStopSec=`.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: Timespan,
    /// When a scheduled role (veza-load) runs: `{ on_calendar, randomized_delay,
    /// persistent }`, rendered as `NAME.timer`.
    #[serde(default)]
    pub schedule: Option<Spanned<Schedule>>,
    /// `TimeoutStartSec=` of a scheduled role: how long one run may take.
    #[serde(default)]
    pub start_timeout: Option<Timespan>,
    /// Enable at boot (a scheduled role: its timer).
    #[serde(default = "yes")]
    pub enable: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleFile {
    role: Role,
    user: UserSpec,
    #[serde(default, rename = "directory")]
    directories: Vec<DirectorySpec>,
    env_file: Option<EnvFileSpec>,
    service: ServiceConfig,
    vrrp: Option<Spanned<VrrpConfig>>,
}

/// A validated role file: what one host role should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Which Veza service.
    pub role: Role,
    /// The service account.
    pub user: UserSpec,
    /// Directories, created and fixed in this order.
    pub directories: Vec<DirectorySpec>,
    /// The env file, if the service has one.
    pub env_file: Option<EnvFileSpec>,
    /// The service.
    pub service: ServiceConfig,
    /// The unit the service section describes.
    pub service_spec: ServiceSpec,
    /// This host's side of an LB pair (`[vrrp]`, veza-lb only): keepalived's configuration
    /// and unit.
    pub vrrp: Option<VrrpConfig>,
}

impl Plan {
    /// Reads and validates a role file.
    ///
    /// # Errors
    /// [`Error::Read`] when the file cannot be read, [`Error::Config`] (with line and column)
    /// when it is not a valid role file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Validates role-file text; `origin` names it in error messages.
    ///
    /// # Errors
    /// [`Error::Config`] with `origin:line:column` of the offending value.
    pub fn parse(origin: &str, text: &str) -> Result<Self, Error> {
        let at = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = line_column(text, span.map_or(0, |s| s.start));
            Error::Config {
                file: origin.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: RoleFile =
            toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_owned()))?;
        if let Some(watchdog) = file
            .service
            .watchdog
            .as_ref()
            .filter(|_| file.role != Role::Lb)
        {
            let message = format!(
                "watchdog is only for veza-lb; {} does not ping systemd's watchdog",
                file.role.as_str()
            );
            return Err(at(Some(watchdog.span()), message));
        }
        systemd_unit::UnitName::service(&file.service.name)
            .map_err(|e| at(locate(text, "[service]"), e.to_string()))?;
        if !file.service.sockets.is_empty() && file.role != Role::Lb {
            let message = format!(
                "sockets (socket activation) is only for veza-lb; {} binds its own port",
                file.role.as_str()
            );
            return Err(at(locate(text, "sockets"), message));
        }
        match (&file.service.schedule, file.role.is_scheduled()) {
            (Some(schedule), false) => {
                let message = format!(
                    "schedule is only for veza-load; {} runs as a daemon",
                    file.role.as_str()
                );
                return Err(at(Some(schedule.span()), message));
            }
            (None, true) => {
                let message = format!(
                    "{} runs on a schedule: add schedule = {{ on_calendar = \"*-*-* 02:30:00\" }}",
                    file.role.as_str()
                );
                return Err(at(locate(text, "[service]"), message));
            }
            _ => {}
        }
        if file.env_file.as_ref().is_some_and(|env| {
            env.path
                .as_path()
                .parent()
                .is_none_or(|p| p == Path::new("/"))
        }) {
            let message = "the env file must live in a directory such as /etc/veza".to_owned();
            return Err(at(locate(text, "[env_file]"), message));
        }
        if let Some(vrrp) = &file.vrrp {
            let message = if file.role == Role::Lb {
                vrrp.get_ref().problems().join("; ")
            } else {
                format!(
                    "[vrrp] is only for veza-lb; {} is not behind a virtual address",
                    file.role.as_str()
                )
            };
            if !message.is_empty() {
                return Err(at(Some(vrrp.span()), message));
            }
        }
        let service_spec = service_spec(&file);
        Ok(Self {
            role: file.role,
            user: file.user,
            directories: file.directories,
            env_file: file.env_file,
            service: file.service,
            service_spec,
            vrrp: file.vrrp.map(Spanned::into_inner),
        })
    }

    /// The unit name, `NAME.service`.
    pub fn unit_name(&self) -> String {
        format!("{}.service", self.service.name)
    }

    /// The socket unit's name, when the service is socket-activated (`sockets`).
    pub fn socket_unit_name(&self) -> Option<String> {
        self.service_spec
            .socket_unit_name()
            .ok()
            .flatten()
            .map(|name| name.as_str().to_owned())
    }

    /// The timer unit's name, when the service runs on a schedule.
    pub fn timer_unit_name(&self) -> Option<String> {
        self.service_spec
            .timer_unit_name()
            .ok()
            .flatten()
            .map(|name| name.as_str().to_owned())
    }

    /// The timer unit's text, when the service runs on a schedule.
    pub fn rendered_timer_unit(&self) -> Option<Result<String, String>> {
        let service = systemd_unit::UnitName::new(self.unit_name());
        match service.and_then(|service| self.service_spec.timer_unit(&service)) {
            Ok(None) => None,
            Ok(Some(unit)) => Some(
                unit.render()
                    .map_err(|e| format!("cannot render the timer unit: {e}")),
            ),
            Err(e) => Some(Err(format!("cannot render the timer unit: {e}"))),
        }
    }

    /// keepalived's unit, when the host is one side of an LB pair. It may exchange packets
    /// with this host (the probe), VRRP's multicast group, the virtual addresses' networks
    /// (the other host's adverts come from there: the IP filter also applies to what is
    /// received) and the unicast peers.
    pub fn keepalived_spec(&self) -> Option<KeepalivedSpec> {
        let vrrp = self.vrrp.as_ref()?;
        let mut allow = vec![IpAddressSpec::Localhost, "224.0.0.18".parse().ok()?];
        let networks = vrrp.virtual_ipaddress.iter().map(|v| v.network());
        for spec in networks.chain(vrrp.unicast_peers.iter().map(ToString::to_string)) {
            let spec: IpAddressSpec = spec.parse().ok()?;
            if !allow.contains(&spec) {
                allow.push(spec);
            }
        }
        Some(KeepalivedSpec {
            program: AbsPath::new("/usr/sbin/keepalived").ok()?,
            config: AbsPath::new(vrrp::CONFIG_PATH).ok()?,
            ip_address_allow: Some(allow),
        })
    }

    /// keepalived's configuration for this host, when it is one side of an LB pair: the
    /// health script runs this role's veza-lb binary as this role's account.
    pub fn rendered_keepalived_conf(&self) -> Option<Result<String, String>> {
        let vrrp = self.vrrp.as_ref()?;
        Some(vrrp::render(
            vrrp,
            self.service.exec_start.command().program(),
            &self.user.name,
        ))
    }

    /// The service unit's text.
    ///
    /// # Errors
    /// A sentence saying why it cannot be rendered.
    pub fn rendered_unit(&self) -> Result<String, String> {
        self.service_spec
            .unit()
            .and_then(|unit| unit.render())
            .map_err(|e| format!("cannot render the unit: {e}"))
    }

    /// The socket unit's text, when the service is socket-activated.
    pub fn rendered_socket_unit(&self) -> Option<Result<String, String>> {
        let service = systemd_unit::UnitName::new(self.unit_name());
        let socket = service.and_then(|service| self.service_spec.socket_unit(&service));
        match socket {
            Ok(None) => None,
            Ok(Some(unit)) => Some(
                unit.render()
                    .map_err(|e| format!("cannot render the socket unit: {e}")),
            ),
            Err(e) => Some(Err(format!("cannot render the socket unit: {e}"))),
        }
    }
}

fn locate(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    text.find(needle).map(|start| start..start + needle.len())
}

fn service_spec(file: &RoleFile) -> ServiceSpec {
    let service = &file.service;
    ServiceSpec {
        role: file.role,
        description: service.description.clone(),
        user: file.user.name.clone(),
        exec_start: service.exec_start.command().clone(),
        working_directory: service.working_directory.clone(),
        env_file: file.env_file.as_ref().map(|env| env.path.clone()),
        read_write_paths: service.read_write_paths.clone(),
        ip_address_allow: service.ip_address_allow.clone(),
        listen_ports: service.listen_ports.clone(),
        sockets: service.sockets.clone(),
        jit: service.jit,
        watchdog: service.watchdog.as_ref().map(|w| *w.get_ref()),
        stop_timeout: service.stop_timeout,
        schedule: service.schedule.as_ref().map(|s| s.get_ref().clone()),
        start_timeout: service.start_timeout,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
role = "backend-api"

[user]
name = "veza-api"
home = "/opt/veza/backend-api"

[[directory]]
path = "/var/log/veza"
owner = "veza-api"
group = "veza-api"
mode = "0755"

[env_file]
path = "/etc/veza/backend-api.env"
group = "veza-api"
defaults = { APP_ENV = "production" }

[service]
name = "veza-backend-api"
description = "Veza backend API"
exec_start = ["/opt/veza/backend-api/veza-backend-api"]
listen_ports = [8080]
"#;

    fn error_for(replace: &str, with: &str) -> String {
        let text = GOOD.replacen(replace, with, 1);
        assert_ne!(text, GOOD, "{replace:?} not found");
        Plan::parse("role.toml", &text).unwrap_err().to_string()
    }

    #[test]
    fn good_file_parses_with_defaults() {
        let plan = Plan::parse("role.toml", GOOD).unwrap();
        assert_eq!(plan.user.shell.as_str(), "/usr/sbin/nologin");
        let env = plan.env_file.as_ref().unwrap();
        assert_eq!((env.owner.as_str(), env.mode.bits()), ("root", 0o640));
        assert!(plan.service.enable);
        assert_eq!(plan.unit_name(), "veza-backend-api.service");
    }

    #[test]
    fn bad_values_are_located() {
        let cases = [
            (
                ("mode = \"0755\"", "mode = \"0888\""),
                "role.toml:12:8:",
                "0888",
            ),
            (
                ("path = \"/var/log/veza\"", "path = \"var/log/veza\""),
                "role.toml:9:8:",
                "relative",
            ),
            (
                ("name = \"veza-api\"", "name = \"Veza API\""),
                "role.toml:5:8:",
                "lowercase",
            ),
            (
                ("home = ", "homedir = \"/x\"\nhome = "),
                "role.toml:6:1:",
                "unknown field `homedir`",
            ),
            (
                ("listen_ports", "listen_portz"),
                "role.toml:23:1:",
                "unknown field `listen_portz`",
            ),
            (
                ("role = \"backend-api\"", "role = \"haproxy\""),
                "role.toml:2:8:",
                "unknown variant",
            ),
        ];
        for ((from, to), position, words) in cases {
            let message = error_for(from, to);
            assert!(
                message.starts_with(position) && message.contains(words),
                "{from} -> {to}: {message}"
            );
        }
    }

    #[test]
    fn cross_field_errors_are_located() {
        let message = error_for("exec_start = [\"/opt", "exec_start = [\"opt");
        assert!(
            message.starts_with("role.toml:22:14:") && message.contains("relative"),
            "{message}"
        );
        let message = error_for(
            "exec_start = [\"/opt/veza/backend-api/veza-backend-api\"]",
            "exec_start = []",
        );
        assert!(
            message.starts_with("role.toml:22:14:") && message.contains("empty"),
            "{message}"
        );
        let message = error_for("listen_ports = [8080]", "watchdog = \"30s\"");
        assert!(
            message.starts_with("role.toml:23:12:") && message.contains("only for veza-lb"),
            "{message}"
        );
        let message = error_for("name = \"veza-backend-api\"", "name = \"veza backend\"");
        assert!(
            message.starts_with("role.toml:19:1:") && message.contains("unit name"),
            "{message}"
        );
    }

    #[test]
    fn modes_are_three_or_four_octal_digits() {
        assert_eq!("0750".parse::<Mode>().unwrap().bits(), 0o750);
        assert_eq!("755".parse::<Mode>().unwrap().to_string(), "0755");
        for bad in ["0888", "75", "07555", "rwx", "", "-755"] {
            assert!(bad.parse::<Mode>().is_err(), "{bad:?} accepted");
        }
    }
}
