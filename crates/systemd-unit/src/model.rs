//! The unit model: `[Unit]`, `[Service]`, `[Install]` and the sandboxing directives.

use crate::value::{
    AbsPath, AccountName, AddressFamily, CalendarSpec, Capability, Command, DevicePolicy, DirName,
    EnvName, EnvironmentFile, IpAddressSpec, KeyringMode, NotifyAccess, ProcSubset, ProtectHome,
    ProtectProc, ProtectSystem, Restart, ServiceType, SyscallFilter, SyscallSet, Text, Timespan,
    Umask, UnitName, Uri,
};

/// A service unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `[Unit] Description=`.
    pub description: Text,
    /// `[Unit] Documentation=`.
    pub documentation: Vec<Uri>,
    /// `[Unit] Wants=`.
    pub wants: Vec<UnitName>,
    /// `[Unit] Requires=`.
    pub requires: Vec<UnitName>,
    /// `[Unit] After=`.
    pub after: Vec<UnitName>,
    /// `[Unit] StartLimitIntervalSec=` and `StartLimitBurst=`: at most `burst` starts per interval.
    pub start_limit: Option<(Timespan, u32)>,
    /// `[Service]`.
    pub service: Service,
    /// `[Install] WantedBy=`.
    pub wanted_by: Vec<UnitName>,
}

/// A socket unit (systemd.socket(5)): the listening sockets the service manager binds and
/// passes to its service (socket activation), so the service needs no capability to bind
/// ports below 1024.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketUnit {
    /// `[Unit] Description=`.
    pub description: Text,
    /// `[Unit] Documentation=`.
    pub documentation: Vec<Uri>,
    /// `[Socket] ListenStream=`, one per address.
    pub listen_stream: Vec<std::net::SocketAddr>,
    /// `[Socket] FileDescriptorName=`: how the service sees them (`LISTEN_FDNAMES`).
    pub fd_name: Option<DirName>,
    /// `[Socket] Backlog=`.
    pub backlog: u32,
    /// `[Socket] Service=`.
    pub service: UnitName,
    /// `[Install] WantedBy=`.
    pub wanted_by: Vec<UnitName>,
}

/// A timer unit (systemd.timer(5)) that starts its service on a calendar schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerUnit {
    /// `[Unit] Description=`.
    pub description: Text,
    /// `[Unit] Documentation=`.
    pub documentation: Vec<Uri>,
    /// `[Timer] OnCalendar=`, one per event.
    pub on_calendar: Vec<CalendarSpec>,
    /// `[Timer] RandomizedDelaySec=`: spreads hosts that share a schedule.
    pub randomized_delay: Option<Timespan>,
    /// `[Timer] Persistent=`: a run missed while the host was off happens at boot.
    pub persistent: bool,
    /// `[Timer] Unit=`: the service it starts.
    pub unit: UnitName,
    /// `[Install] WantedBy=`.
    pub wanted_by: Vec<UnitName>,
}

/// The `[Service]` section, except sandboxing, which lives in [`Hardening`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `Type=`.
    pub kind: ServiceType,
    /// `ExecStart=`.
    pub exec_start: Command,
    /// `ExecReload=`.
    pub exec_reload: Option<Command>,
    /// `Restart=`.
    pub restart: Restart,
    /// `RestartSec=`.
    pub restart_sec: Option<Timespan>,
    /// `TimeoutStartSec=`: how long starting may take (for `Type=oneshot`, the whole run).
    pub timeout_start_sec: Option<Timespan>,
    /// `TimeoutStopSec=`: how long a graceful stop may take before SIGKILL.
    pub timeout_stop_sec: Option<Timespan>,
    /// `WatchdogSec=`: the service must send `WATCHDOG=1` at least this often.
    pub watchdog_sec: Option<Timespan>,
    /// `NotifyAccess=`.
    pub notify_access: Option<NotifyAccess>,
    /// `User=`.
    pub user: AccountName,
    /// `Group=`.
    pub group: AccountName,
    /// `WorkingDirectory=`.
    pub working_directory: Option<AbsPath>,
    /// `EnvironmentFile=`.
    pub environment_files: Vec<EnvironmentFile>,
    /// `Environment=`: fixed variables, one assignment each.
    pub environment: Vec<(EnvName, String)>,
    /// `RuntimeDirectory=`: `/run/NAME`, owned by the service user, removed on stop.
    pub runtime_directory: Option<DirName>,
    /// `LimitNOFILE=`.
    pub limit_nofile: Option<u64>,
    /// The sandbox.
    pub hardening: Hardening,
}

/// Sandboxing directives (systemd.exec(5)), each typed.
///
/// Start from [`Hardening::network_service`] and apply the documented relaxations
/// ([`Hardening::allow_bind_below_1024`], [`Hardening::allow_jit`]) rather than flipping
/// fields, so every loosening has one place that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Hardening {
    /// `NoNewPrivileges=`.
    pub no_new_privileges: bool,
    /// `ProtectSystem=`.
    pub protect_system: ProtectSystem,
    /// `ProtectHome=`.
    pub protect_home: ProtectHome,
    /// `PrivateTmp=`.
    pub private_tmp: bool,
    /// `PrivateDevices=`.
    pub private_devices: bool,
    /// `PrivateUsers=`.
    pub private_users: bool,
    /// `PrivateMounts=`.
    pub private_mounts: bool,
    /// `ProtectKernelTunables=`.
    pub protect_kernel_tunables: bool,
    /// `ProtectKernelModules=`.
    pub protect_kernel_modules: bool,
    /// `ProtectKernelLogs=`.
    pub protect_kernel_logs: bool,
    /// `ProtectControlGroups=`.
    pub protect_control_groups: bool,
    /// `ProtectClock=`.
    pub protect_clock: bool,
    /// `ProtectHostname=`.
    pub protect_hostname: bool,
    /// `ProtectProc=`.
    pub protect_proc: ProtectProc,
    /// `ProcSubset=`.
    pub proc_subset: ProcSubset,
    /// `RestrictNamespaces=` (`yes`: no namespace of any kind may be created).
    pub restrict_namespaces: bool,
    /// `RestrictRealtime=`.
    pub restrict_realtime: bool,
    /// `RestrictSUIDSGID=`.
    pub restrict_suid_sgid: bool,
    /// `RestrictAddressFamilies=`: the families the service may create sockets of.
    pub restrict_address_families: Vec<AddressFamily>,
    /// `LockPersonality=`.
    pub lock_personality: bool,
    /// `MemoryDenyWriteExecute=`.
    pub memory_deny_write_execute: bool,
    /// `RemoveIPC=`.
    pub remove_ipc: bool,
    /// `KeyringMode=`.
    pub keyring_mode: KeyringMode,
    /// `DevicePolicy=`.
    pub device_policy: DevicePolicy,
    /// `SystemCallArchitectures=native` when `true`.
    pub native_syscalls_only: bool,
    /// `SystemCallFilter=`.
    pub system_call_filter: SyscallFilter,
    /// `SystemCallErrorNumber=EPERM` when `true`: a filtered call fails instead of killing the
    /// process, so runtimes that probe optional calls keep working.
    pub filtered_syscalls_fail_with_eperm: bool,
    /// `CapabilityBoundingSet=` (empty: no capability at all).
    pub capability_bounding_set: Vec<Capability>,
    /// `AmbientCapabilities=`: what a non-root service actually holds.
    pub ambient_capabilities: Vec<Capability>,
    /// `UMask=`.
    pub umask: Umask,
    /// `ReadWritePaths=`: the only writable places under `ProtectSystem=strict`.
    pub read_write_paths: Vec<AbsPath>,
    /// `IPAddressDeny=any` plus `IPAddressAllow=` these, or no IP filter when `None`.
    pub ip_address_allow: Option<Vec<IpAddressSpec>>,
}

impl Hardening {
    /// The baseline for a network service that writes only to `read_write_paths`.
    ///
    /// Everything systemd can take away from a daemon that only listens and connects is
    /// taken: no capabilities, no privileged or resource-tuning system calls, no namespaces,
    /// no devices, a read-only file system, private `/tmp` and user database. It scores well
    /// under 1.0 in `systemd-analyze security` once an IP allow list is set.
    pub fn network_service(read_write_paths: Vec<AbsPath>) -> Self {
        Self {
            no_new_privileges: true,
            protect_system: ProtectSystem::Strict,
            protect_home: ProtectHome::Yes,
            private_tmp: true,
            private_devices: true,
            private_users: true,
            private_mounts: true,
            protect_kernel_tunables: true,
            protect_kernel_modules: true,
            protect_kernel_logs: true,
            protect_control_groups: true,
            protect_clock: true,
            protect_hostname: true,
            protect_proc: ProtectProc::Invisible,
            proc_subset: ProcSubset::Pid,
            restrict_namespaces: true,
            restrict_realtime: true,
            restrict_suid_sgid: true,
            // AF_UNIX stays: sd_notify and the local admin socket need it.
            restrict_address_families: vec![
                AddressFamily::Unix,
                AddressFamily::Inet,
                AddressFamily::Inet6,
            ],
            lock_personality: true,
            memory_deny_write_execute: true,
            remove_ipc: true,
            keyring_mode: KeyringMode::Private,
            device_policy: DevicePolicy::Closed,
            native_syscalls_only: true,
            system_call_filter: SyscallFilter {
                allow: vec![SyscallSet::SystemService],
                deny: vec![SyscallSet::Privileged, SyscallSet::Resources],
            },
            // Go raises RLIMIT_NOFILE at start-up (setrlimit, in @resources) and ignores a
            // failure; a SIGSYS kill there would make the service unstartable.
            filtered_syscalls_fail_with_eperm: true,
            capability_bounding_set: Vec::new(),
            ambient_capabilities: Vec::new(),
            umask: Umask::PRIVATE,
            read_write_paths,
            ip_address_allow: None,
        }
    }

    /// Relaxation: the service binds a port below 1024.
    ///
    /// Grants `CAP_NET_BIND_SERVICE` (bounding and ambient set) and nothing else. It also turns
    /// `PrivateUsers=` off: a capability held inside a private user namespace does not count
    /// for the host's network namespace, so the bind would still fail. This costs about 0.4
    /// exposure points; prefer a port above 1024 behind a firewall redirect where possible.
    #[must_use]
    pub fn allow_bind_below_1024(mut self) -> Self {
        self.capability_bounding_set = vec![Capability::NetBindService];
        self.ambient_capabilities = vec![Capability::NetBindService];
        self.private_users = false;
        self
    }

    /// Relaxation: the service runs a JIT compiler, which needs memory that is writable and
    /// executable. Only for runtimes that need it (JVM, V8, LuaJIT); Go and Rust do not.
    #[must_use]
    pub fn allow_jit(mut self) -> Self {
        self.memory_deny_write_execute = false;
        self
    }

    /// Relaxation: a VRRP daemon (keepalived) that moves a virtual address between hosts.
    ///
    /// It runs as root with only what VRRP needs in its bounding set: `CAP_NET_ADMIN` (add
    /// and remove the address), `CAP_NET_RAW` (VRRP is IP protocol 112, sent on raw
    /// sockets; gratuitous ARP), `CAP_SETUID`/`CAP_SETGID` (its health script runs as an
    /// unprivileged user) and `CAP_KILL` (it stops a script that overran its timeout).
    /// Netlink and packet sockets are added to the address families; `PrivateUsers=` is off
    /// (capabilities inside a user namespace do not count on the host's network) and
    /// `@privileged` leaves the system-call deny list (`setuid()` is in it). Exposure 2.5
    /// with an IP allow list, 1.5 over the baseline (Debian's stock keepalived.service:
    /// 9.6): the price of changing the host's network.
    #[must_use]
    pub fn allow_vrrp(mut self) -> Self {
        self.capability_bounding_set = vec![
            Capability::NetAdmin,
            Capability::NetRaw,
            Capability::Setuid,
            Capability::Setgid,
            Capability::Kill,
        ];
        self.ambient_capabilities = Vec::new();
        self.private_users = false;
        self.restrict_address_families
            .extend([AddressFamily::Netlink, AddressFamily::Packet]);
        self.system_call_filter
            .deny
            .retain(|set| *set != SyscallSet::Privileged);
        self
    }

    /// Restricts the peers the service may talk to (`IPAddressDeny=any`, then allow these).
    #[must_use]
    pub fn allow_ip(mut self, allow: Vec<IpAddressSpec>) -> Self {
        self.ip_address_allow = Some(allow);
        self
    }
}
