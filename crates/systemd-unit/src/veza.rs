//! Veza's services as units: `veza-backend-api`, `veza-lb`, `veza-stream-server`, and the
//! nightly load test `veza-load` (a oneshot service started by its timer).

use serde::Deserialize;

use crate::Error;
use crate::model::{Hardening, Service, SocketUnit, TimerUnit, Unit};
use crate::value::{
    AbsPath, AccountName, CalendarSpec, Command, DirName, EnvName, EnvironmentFile, IpAddressSpec,
    NotifyAccess, Restart, ServiceType, Text, Timespan, UnitName, Uri,
};

/// Which Veza service a unit runs; decides the service type and supervision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Role {
    /// The Go API (`backend-api`): `Type=exec`, restarted on failure.
    #[serde(rename = "backend-api")]
    BackendApi,
    /// The load balancer: `Type=notify`, reload with SIGHUP, systemd watchdog.
    #[serde(rename = "veza-lb")]
    Lb,
    /// The stream server: `Type=exec`, restarted on failure.
    #[serde(rename = "stream-server")]
    StreamServer,
    /// The load test (`veza-load`): `Type=oneshot`, started by its timer, never restarted.
    #[serde(rename = "veza-load")]
    LoadTest,
}

impl Role {
    /// The role's name in configuration files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BackendApi => "backend-api",
            Self::Lb => "veza-lb",
            Self::StreamServer => "stream-server",
            Self::LoadTest => "veza-load",
        }
    }

    /// Whether the service runs to completion on a schedule rather than as a daemon.
    pub const fn is_scheduled(self) -> bool {
        matches!(self, Self::LoadTest)
    }
}

/// `ExecReload=` that sends SIGHUP to the main process with the shell's own `kill`:
/// `/bin/kill` is procps', which a minimal Debian does not have (a reload there failed with
/// status 203/EXEC); `/bin/sh` is always there. Rendered as
/// `/bin/sh -c "kill -HUP \"$$1\"" reload ${MAINPID}`: systemd gives the pid as `$1`.
fn sighup_main() -> Result<Command, Error> {
    Ok(Command::new(AbsPath::new("/bin/sh")?)
        .args(["-c", "kill -HUP \"$1\"", "reload"])?
        .var(EnvName::new("MAINPID")?))
}

/// When a scheduled service runs: a timer unit next to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// `OnCalendar=`.
    pub on_calendar: CalendarSpec,
    /// `RandomizedDelaySec=`.
    #[serde(default)]
    pub randomized_delay: Option<Timespan>,
    /// `Persistent=`: catch up a run missed while the host was down.
    #[serde(default = "persistent_default")]
    pub persistent: bool,
}

const fn persistent_default() -> bool {
    true
}

/// What varies between hosts for one Veza service; [`ServiceSpec::unit`] adds the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Which service.
    pub role: Role,
    /// `Description=`.
    pub description: Text,
    /// The account it runs as (user and primary group of the same name).
    pub user: AccountName,
    /// The command line.
    pub exec_start: Command,
    /// `WorkingDirectory=`.
    pub working_directory: Option<AbsPath>,
    /// The env file with its secrets; required to exist when set.
    pub env_file: Option<AbsPath>,
    /// The only writable directories (logs, state).
    pub read_write_paths: Vec<AbsPath>,
    /// Peers the service may exchange packets with; `None` for no IP filter.
    pub ip_address_allow: Option<Vec<IpAddressSpec>>,
    /// Ports it listens on; one below 1024 grants `CAP_NET_BIND_SERVICE`, unless a socket
    /// unit binds it (`sockets`).
    pub listen_ports: Vec<u16>,
    /// Addresses a `NAME.socket` unit binds and passes to the service (socket activation,
    /// `veza-lb` only): their ports need no capability.
    pub sockets: Vec<std::net::SocketAddr>,
    /// The runtime JITs code (turns `MemoryDenyWriteExecute=` off).
    pub jit: bool,
    /// `WatchdogSec=` for `veza-lb`; ignored for the other roles (they do not ping systemd).
    pub watchdog: Option<Timespan>,
    /// `TimeoutStopSec=`: at least the service's own graceful-stop budget.
    pub stop_timeout: Timespan,
    /// When a scheduled role runs (its timer); `None` for daemons.
    pub schedule: Option<Schedule>,
    /// `TimeoutStartSec=` of a scheduled role: how long one run may last.
    pub start_timeout: Option<Timespan>,
}

impl ServiceSpec {
    /// The socket unit's name (`NAME.socket`, next to `NAME.service`), when the service is
    /// socket-activated.
    ///
    /// # Errors
    /// Only if the service's name makes no valid unit name.
    pub fn socket_unit_name(&self) -> Result<Option<UnitName>, Error> {
        if self.sockets.is_empty() {
            return Ok(None);
        }
        UnitName::new(format!("{}.socket", self.user_facing_name())).map(Some)
    }

    fn user_facing_name(&self) -> &'static str {
        match self.role {
            Role::Lb => "veza-lb",
            Role::BackendApi => "veza-backend-api",
            Role::StreamServer => "veza-stream-server",
            Role::LoadTest => "veza-load",
        }
    }

    /// The timer unit's name (`NAME.timer`), when the service is scheduled.
    ///
    /// # Errors
    /// Only if the service's name makes no valid unit name.
    pub fn timer_unit_name(&self) -> Result<Option<UnitName>, Error> {
        if self.schedule.is_none() {
            return Ok(None);
        }
        UnitName::new(format!("{}.timer", self.user_facing_name())).map(Some)
    }

    /// The timer starting `service` on the schedule, if any.
    ///
    /// # Errors
    /// Only if a built-in constant fails validation.
    pub fn timer_unit(&self, service: &UnitName) -> Result<Option<TimerUnit>, Error> {
        let Some(schedule) = &self.schedule else {
            return Ok(None);
        };
        Ok(Some(TimerUnit {
            description: Text::new(format!("{} (schedule)", self.description.as_str()))?,
            documentation: vec![Uri::new("https://git.veza.example/veza/edge")?],
            on_calendar: vec![schedule.on_calendar.clone()],
            randomized_delay: schedule.randomized_delay,
            persistent: schedule.persistent,
            unit: service.clone(),
            wanted_by: vec![UnitName::new("timers.target")?],
        }))
    }

    /// The socket unit binding `sockets` for this service, if any: a backlog as deep as the
    /// service's own listeners', `FileDescriptorName=` the role's name (veza-lb logs it).
    ///
    /// # Errors
    /// Only if a built-in constant fails validation.
    pub fn socket_unit(&self, service: &UnitName) -> Result<Option<SocketUnit>, Error> {
        if self.sockets.is_empty() {
            return Ok(None);
        }
        Ok(Some(SocketUnit {
            description: Text::new(format!("{} (listening sockets)", self.description.as_str()))?,
            documentation: vec![Uri::new("https://git.veza.example/veza/edge")?],
            listen_stream: self.sockets.clone(),
            fd_name: Some(DirName::new(self.role.as_str())?),
            backlog: 4096,
            service: service.clone(),
            wanted_by: vec![UnitName::new("sockets.target")?],
        }))
    }

    /// The unit for this service.
    ///
    /// # Errors
    /// Only if a built-in constant fails validation, which the tests rule out.
    pub fn unit(&self) -> Result<Unit, Error> {
        let mut hardening = Hardening::network_service(self.read_write_paths.clone());
        let activated = |port: u16| self.sockets.iter().any(|s| s.port() == port);
        if self
            .listen_ports
            .iter()
            .any(|&port| port < 1024 && !activated(port))
        {
            hardening = hardening.allow_bind_below_1024();
        }
        if self.jit {
            hardening = hardening.allow_jit();
        }
        if let Some(allow) = &self.ip_address_allow {
            hardening = hardening.allow_ip(allow.clone());
        }
        let notify = self.role == Role::Lb;
        let scheduled = self.role.is_scheduled();
        // systemd 252 has no Type=notify-reload: SIGHUP is sent to the main process, which
        // answers RELOADING=1 then READY=1.
        let exec_reload = if notify { Some(sighup_main()?) } else { None };
        let network_online = UnitName::new("network-online.target")?;
        let socket = self.socket_unit_name()?;
        Ok(Unit {
            description: self.description.clone(),
            documentation: vec![Uri::new("https://git.veza.example/veza/edge")?],
            wants: vec![network_online.clone()],
            requires: socket.iter().cloned().collect(),
            after: std::iter::once(network_online).chain(socket).collect(),
            // A scheduled run that fails is reported by its exit code, not retried.
            start_limit: (!scheduled).then_some((Timespan::from_secs(60), 5)),
            service: Service {
                kind: if notify {
                    ServiceType::Notify
                } else if scheduled {
                    ServiceType::Oneshot
                } else {
                    ServiceType::Exec
                },
                exec_start: self.exec_start.clone(),
                exec_reload,
                restart: if scheduled {
                    Restart::No
                } else {
                    Restart::OnFailure
                },
                restart_sec: (!scheduled).then_some(Timespan::from_secs(2)),
                timeout_start_sec: if scheduled { self.start_timeout } else { None },
                timeout_stop_sec: Some(self.stop_timeout),
                watchdog_sec: if notify { self.watchdog } else { None },
                notify_access: notify.then_some(NotifyAccess::Main),
                user: self.user.clone(),
                group: self.user.clone(),
                working_directory: self.working_directory.clone(),
                environment_files: self
                    .env_file
                    .iter()
                    .map(|path| EnvironmentFile {
                        path: path.clone(),
                        optional: false,
                    })
                    .collect(),
                environment: Vec::new(),
                runtime_directory: if notify {
                    Some(DirName::new("veza-lb")?)
                } else {
                    None
                },
                limit_nofile: Some(65_536),
                hardening,
            },
            // A scheduled service is started by its timer only.
            wanted_by: if scheduled {
                Vec::new()
            } else {
                vec![UnitName::new("multi-user.target")?]
            },
        })
    }
}

/// keepalived for an LB pair: the VRRP daemon that holds the edge's virtual address on
/// whichever veza-lb host serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepalivedSpec {
    /// The keepalived binary (Debian: `/usr/sbin/keepalived`).
    pub program: AbsPath,
    /// Its configuration, rendered by veza-provision (not Debian's
    /// `/etc/keepalived/keepalived.conf`, so Debian's own unit stays inert).
    pub config: AbsPath,
    /// Peers it may exchange packets with (VRRP's multicast group 224.0.0.18 or the unicast
    /// peers, and the local veza-lb its health script asks); `None` for no IP filter.
    pub ip_address_allow: Option<Vec<IpAddressSpec>>,
}

impl KeepalivedSpec {
    /// The unit's name.
    pub const UNIT: &'static str = "veza-keepalived.service";

    /// `veza-keepalived.service`: keepalived in the foreground (`Type=notify`: Debian builds
    /// it with systemd support), VRRP only (`--vrrp`), reloaded with SIGHUP (the address
    /// stays where it is), under [`Hardening::allow_vrrp`].
    ///
    /// # Errors
    /// Only if a built-in constant fails validation.
    pub fn unit(&self) -> Result<Unit, Error> {
        let mut hardening = Hardening::network_service(Vec::new()).allow_vrrp();
        if let Some(allow) = &self.ip_address_allow {
            hardening = hardening.allow_ip(allow.clone());
        }
        let network_online = UnitName::new("network-online.target")?;
        let root = AccountName::new("root")?;
        Ok(Unit {
            description: Text::new("Veza edge: keepalived (VRRP) for the veza-lb pair")?,
            documentation: vec![
                Uri::new("https://git.veza.example/veza/edge")?,
                Uri::new("man:keepalived.conf(5)")?,
            ],
            wants: vec![network_online.clone()],
            requires: Vec::new(),
            after: vec![network_online, UnitName::new("veza-lb.service")?],
            start_limit: Some((Timespan::from_secs(60), 5)),
            service: Service {
                kind: ServiceType::Notify,
                exec_start: Command::new(self.program.clone())
                    .args(["--dont-fork", "--vrrp", "--log-console", "--log-detail"])?
                    .arg("--use-file")?
                    .arg(self.config.as_str())?
                    // /run is read-only under ProtectSystem=strict: pid files go to the
                    // unit's runtime directory.
                    .args([
                        "--pid",
                        "/run/keepalived/keepalived.pid",
                        "--vrrp_pid",
                        "/run/keepalived/vrrp.pid",
                    ])?,
                exec_reload: Some(sighup_main()?),
                restart: Restart::OnFailure,
                restart_sec: Some(Timespan::from_secs(2)),
                timeout_start_sec: None,
                timeout_stop_sec: Some(Timespan::from_secs(10)),
                watchdog_sec: None,
                notify_access: Some(NotifyAccess::Main),
                user: root.clone(),
                group: root,
                working_directory: None,
                environment_files: Vec::new(),
                environment: Vec::new(),
                runtime_directory: Some(DirName::new("keepalived")?),
                limit_nofile: None,
                hardening,
            },
            wanted_by: vec![UnitName::new("multi-user.target")?],
        })
    }
}
