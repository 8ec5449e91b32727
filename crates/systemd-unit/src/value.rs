//! Typed directive values and their quoting rules.
//!
//! systemd does not parse every directive the same way (systemd.unit(5), systemd.service(5)):
//! specifiers (`%n`, `%h`, ...) are expanded in almost every value, list directives split on
//! whitespace and honour quotes, `ExecStart=` additionally C-unescapes and expands `$VAR`, and
//! single-path directives take the whole rest of the line verbatim. Each type here validates
//! what it can represent for *every* directive it is used in and renders itself accordingly,
//! so a rendered unit never parses into something other than the model.
//!
//! tidy: long file: one type per value kind with its quoting rule and its tests; the rules
//! differ in small ways that are easiest to review together.

use std::fmt;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// Doubles `%` so systemd's specifier expansion gives the literal text back.
pub(crate) fn escape_specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidValue {
        what,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Free text for `Description=`: one line, specifiers escaped on output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Text(String);

impl Text {
    /// Validates a one-line text value.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when the text is empty, has control characters (a newline would
    /// start a new directive), surrounding whitespace (systemd strips it) or ends in `\` (a line
    /// continuation).
    pub fn new(text: impl Into<String>) -> Result<Self, Error> {
        let text = text.into();
        if text.is_empty() {
            return Err(invalid(
                "text",
                &text,
                "it is empty; write a short sentence",
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(invalid(
                "text",
                &text,
                "it contains a control character such as a newline; keep it on one line",
            ));
        }
        if text.trim() != text {
            return Err(invalid(
                "text",
                &text,
                "systemd strips leading and trailing whitespace; remove it",
            ));
        }
        if text.ends_with('\\') {
            return Err(invalid(
                "text",
                &text,
                "a trailing backslash continues the line in a unit file; remove it",
            ));
        }
        Ok(Self(text))
    }

    /// The text as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Text {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_specifiers(&self.0))
    }
}

/// A `Documentation=` URI: one word (the directive is a space-separated list) with a scheme
/// systemd accepts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Uri(String);

impl Uri {
    /// Validates a documentation URI.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] without an `http://`, `https://`, `file:`, `info:` or `man:`
    /// scheme, or with whitespace, quotes, backslashes or control characters.
    pub fn new(uri: impl Into<String>) -> Result<Self, Error> {
        let uri = uri.into();
        if !["http://", "https://", "file:", "info:", "man:"]
            .iter()
            .any(|scheme| uri.starts_with(scheme))
        {
            return Err(invalid(
                "documentation URI",
                &uri,
                "start it with https://, http://, file:, info: or man:",
            ));
        }
        if uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'\\".contains(c))
        {
            return Err(invalid(
                "documentation URI",
                &uri,
                "percent-encode whitespace, quotes and backslashes",
            ));
        }
        Ok(Self(uri))
    }
}

impl TryFrom<String> for Uri {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_specifiers(&self.0))
    }
}

/// A unit name such as `network-online.target` or `veza-lb.service`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct UnitName(String);

const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".device",
    ".mount",
    ".automount",
    ".swap",
    ".path",
    ".timer",
    ".slice",
    ".scope",
];

impl UnitName {
    /// Validates a unit name (systemd.unit(5) "valid unit names").
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for characters outside `[A-Za-z0-9:_.@\-]`, a missing type suffix,
    /// or more than 255 bytes.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        if name.len() > 255 {
            return Err(invalid("unit name", &name, "it is longer than 255 bytes"));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ":_.@-".contains(*c)))
        {
            return Err(invalid(
                "unit name",
                &name,
                format!("character {bad:?} is not allowed; use letters, digits and :_.@-"),
            ));
        }
        let Some(stem) = UNIT_SUFFIXES.iter().find_map(|s| name.strip_suffix(s)) else {
            return Err(invalid(
                "unit name",
                &name,
                "it needs a type suffix such as .service or .target",
            ));
        };
        if stem.is_empty() {
            return Err(invalid(
                "unit name",
                &name,
                "the part before the suffix is empty",
            ));
        }
        Ok(Self(name))
    }

    /// `NAME.service` for a service name given without its suffix.
    ///
    /// # Errors
    /// As [`UnitName::new`].
    pub fn service(stem: &str) -> Result<Self, Error> {
        Self::new(format!("{stem}.service"))
    }

    /// The name with its suffix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UnitName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Unit names cannot contain `%` or whitespace, so no escaping is needed.
        f.write_str(&self.0)
    }
}

/// A user or group name as `useradd` accepts it by default: `[a-z_][a-z0-9_-]*`, at most 32
/// bytes, not all digits (it would read as a numeric id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct AccountName(String);

impl AccountName {
    /// Validates an account name.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for any name `useradd` would refuse without `--badname`.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let what = "user or group name";
        if name.is_empty() || name.len() > 32 {
            return Err(invalid(what, &name, "it must be 1 to 32 characters long"));
        }
        let mut chars = name.chars();
        let first = chars.next().unwrap_or('-');
        if !(first.is_ascii_lowercase() || first == '_') {
            return Err(invalid(
                what,
                &name,
                "it must start with a lowercase letter or '_'",
            ));
        }
        if let Some(bad) = chars
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
        {
            return Err(invalid(
                what,
                &name,
                format!("character {bad:?} is not allowed; use a-z, 0-9, '_' and '-'"),
            ));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute, normalised path that every path-taking directive reads back unchanged.
///
/// Quotes and backslashes are refused because list directives such as `ReadWritePaths=` keep
/// backslashes but strip quotes, while single-path directives such as `WorkingDirectory=` keep
/// both: no one spelling means the same in all of them. Spaces are fine (quoted in lists).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct AbsPath(PathBuf);

impl AbsPath {
    /// Validates an absolute path.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a relative path, `.`/`..` components, a trailing or doubled
    /// `/`, non-UTF-8, control characters, quotes, backslashes or surrounding whitespace.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let what = "path";
        let Some(s) = path.to_str() else {
            return Err(invalid(
                what,
                &path.to_string_lossy(),
                "it is not valid UTF-8",
            ));
        };
        if !s.starts_with('/') {
            return Err(invalid(
                what,
                s,
                "it is relative; write an absolute path starting with '/'",
            ));
        }
        if s.len() > 1 && (s.ends_with('/') || s.contains("//")) {
            return Err(invalid(what, s, "remove the trailing or doubled '/'"));
        }
        if path
            .components()
            .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
            || s.contains("/./")
            || s.ends_with("/.")
        {
            return Err(invalid(
                what,
                s,
                "'.' and '..' components are not allowed; write the normalised path",
            ));
        }
        if s.chars()
            .any(|c| c.is_control() || c == '"' || c == '\'' || c == '\\')
        {
            return Err(invalid(
                what,
                s,
                "control characters, quotes and backslashes are not allowed in unit paths",
            ));
        }
        if s.trim() != s || s.split('/').any(|part| part.trim() != part) {
            return Err(invalid(
                what,
                s,
                "a path component starts or ends with whitespace, which systemd strips",
            ));
        }
        Ok(Self(path))
    }

    /// The path.
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The path as UTF-8 text (guaranteed by construction).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    /// The path in a list directive: quoted when it contains whitespace.
    pub(crate) fn list_word(&self) -> String {
        let s = escape_specifiers(self.as_str());
        if s.contains(char::is_whitespace) {
            format!("\"{s}\"")
        } else {
            s
        }
    }
}

impl TryFrom<String> for AbsPath {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl FromStr for AbsPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl fmt::Display for AbsPath {
    /// The single-path spelling (`WorkingDirectory=`, `EnvironmentFile=`): verbatim but for `%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_specifiers(self.as_str()))
    }
}

/// A time span, rendered the way systemd.time(7) reads it (`30s`, `250ms`, `1h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Timespan(Duration);

impl Timespan {
    /// A span of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// Wraps a duration; sub-millisecond parts are dropped on output.
    pub const fn new(duration: Duration) -> Self {
        Self(duration)
    }

    /// The duration.
    pub const fn duration(self) -> Duration {
        self.0
    }
}

impl FromStr for Timespan {
    type Err = Error;
    /// Parses `<number><unit>` with unit `ms`, `s`, `min`, `h` (e.g. `30s`, `5min`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().map_err(|_| {
            invalid(
                "time span",
                s,
                "write a whole number followed by ms, s, min or h, like \"30s\"",
            )
        })?;
        let ms = match unit {
            "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "min" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            _ => {
                return Err(invalid(
                    "time span",
                    s,
                    "the unit must be ms, s, min or h, like \"30s\"",
                ));
            }
        }
        .ok_or_else(|| invalid("time span", s, "it is too large"))?;
        Ok(Self(Duration::from_millis(ms)))
    }
}

impl TryFrom<String> for Timespan {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        value.parse()
    }
}

impl fmt::Display for Timespan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// A calendar event (`OnCalendar=`, systemd.time(7)): `daily`, `*-*-* 02:30:00`,
/// `Mon..Fri 03:00 Europe/Paris`. Printable ASCII without `%` (a specifier), `\\`, quotes or
/// `;`; whether systemd can compute the next elapse is checked by `systemd-analyze calendar`
/// in the tests and by `verify` when a unit is installed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CalendarSpec(String);

impl CalendarSpec {
    /// Validates a calendar expression.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] when empty or holding a character systemd would read differently.
    pub fn new(text: impl Into<String>) -> Result<Self, Error> {
        let text = text.into();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid(
                "calendar event",
                &text,
                "it is empty; write e.g. \"*-*-* 02:30:00\"",
            ));
        }
        if let Some(c) = trimmed.chars().find(|c| {
            !(c.is_ascii_graphic() || *c == ' ') || matches!(c, '%' | '\\' | '"' | '\'' | ';')
        }) {
            return Err(invalid(
                "calendar event",
                &text,
                format!("{c:?} is not allowed in a calendar expression"),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The expression.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CalendarSpec {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl fmt::Display for CalendarSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file mode creation mask (`UMask=`), at most `0777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Umask(u16);

impl Umask {
    /// `0077`: files the service creates are readable by its own user only.
    pub const PRIVATE: Self = Self(0o077);

    /// Validates a mask.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] above `0o777`.
    pub fn new(bits: u16) -> Result<Self, Error> {
        if bits > 0o777 {
            return Err(invalid(
                "umask",
                &format!("{bits:o}"),
                "a umask has at most the bits 0777",
            ));
        }
        Ok(Self(bits))
    }
}

impl fmt::Display for Umask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The spelling systemd uses.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum! {
    /// `Type=` of a service.
    ServiceType {
        /// The service is up once `execve()` succeeded.
        Exec => "exec",
        /// The service sends `READY=1` over `sd_notify` when it is up.
        Notify => "notify",
        /// Legacy double-forking daemon.
        Forking => "forking",
        /// Runs to completion.
        Oneshot => "oneshot",
        /// Up as soon as forked.
        Simple => "simple",
    }
}

keyword_enum! {
    /// `Restart=` policy.
    Restart {
        /// Never restart.
        No => "no",
        /// Restart after a crash, a watchdog timeout or an unclean exit code.
        OnFailure => "on-failure",
        /// Restart after a crash or watchdog timeout, not after an exit code.
        OnAbnormal => "on-abnormal",
        /// Always restart.
        Always => "always",
    }
}

keyword_enum! {
    /// `NotifyAccess=`: who may send `sd_notify` messages.
    NotifyAccess {
        /// Nobody.
        None => "none",
        /// The main process only.
        Main => "main",
        /// The main process and `ExecReload=`/`ExecStartPost=` processes.
        Exec => "exec",
    }
}

keyword_enum! {
    /// `ProtectSystem=`.
    ProtectSystem {
        /// No protection.
        No => "no",
        /// `/usr` and `/boot` read-only.
        Yes => "yes",
        /// Also `/etc` read-only.
        Full => "full",
        /// The whole file system read-only except API file systems and `ReadWritePaths=`.
        Strict => "strict",
    }
}

keyword_enum! {
    /// `ProtectHome=`.
    ProtectHome {
        /// No protection.
        No => "no",
        /// `/home`, `/root`, `/run/user` inaccessible.
        Yes => "yes",
        /// Read-only.
        ReadOnly => "read-only",
        /// Empty tmpfs.
        Tmpfs => "tmpfs",
    }
}

keyword_enum! {
    /// `ProtectProc=`: visibility of other processes in `/proc`.
    ProtectProc {
        /// Everything visible.
        Default => "default",
        /// Other users' processes cannot be inspected.
        Noaccess => "noaccess",
        /// Other users' processes are hidden.
        Invisible => "invisible",
        /// Only processes that can be ptraced are visible.
        Ptraceable => "ptraceable",
    }
}

keyword_enum! {
    /// `ProcSubset=`.
    ProcSubset {
        /// All of `/proc`.
        All => "all",
        /// Only the per-process directories.
        Pid => "pid",
    }
}

keyword_enum! {
    /// `DevicePolicy=`.
    DevicePolicy {
        /// Any device allowed unless `DeviceAllow=` says otherwise.
        Auto => "auto",
        /// Only the standard pseudo devices and `DeviceAllow=`.
        Closed => "closed",
        /// Only `DeviceAllow=`.
        Strict => "strict",
    }
}

keyword_enum! {
    /// `KeyringMode=`.
    KeyringMode {
        /// No keyring.
        Inherit => "inherit",
        /// A private session keyring.
        Private => "private",
        /// Shared with the user.
        Shared => "shared",
    }
}

keyword_enum! {
    /// A Linux capability (capabilities(7)).
    Capability {
        /// Bind ports below 1024.
        NetBindService => "CAP_NET_BIND_SERVICE",
        /// Raw and packet sockets.
        NetRaw => "CAP_NET_RAW",
        /// Network configuration.
        NetAdmin => "CAP_NET_ADMIN",
        /// Raise priority, set affinity.
        SysNice => "CAP_SYS_NICE",
        /// Override resource limits.
        SysResource => "CAP_SYS_RESOURCE",
        /// Lock memory.
        IpcLock => "CAP_IPC_LOCK",
        /// Bypass file permission checks.
        DacOverride => "CAP_DAC_OVERRIDE",
        /// Change file ownership.
        Chown => "CAP_CHOWN",
        /// Change user ids.
        Setuid => "CAP_SETUID",
        /// Change group ids.
        Setgid => "CAP_SETGID",
        /// Signal processes of other users.
        Kill => "CAP_KILL",
    }
}

keyword_enum! {
    /// A socket address family for `RestrictAddressFamilies=`.
    AddressFamily {
        /// Unix domain sockets (also `sd_notify`).
        Unix => "AF_UNIX",
        /// IPv4.
        Inet => "AF_INET",
        /// IPv6.
        Inet6 => "AF_INET6",
        /// Netlink (interface enumeration).
        Netlink => "AF_NETLINK",
        /// Packet sockets.
        Packet => "AF_PACKET",
    }
}

keyword_enum! {
    /// A predefined system call set (`systemd-analyze syscall-filter`).
    SyscallSet {
        /// What a typical system service needs.
        SystemService => "@system-service",
        /// Calls needing super-user capabilities.
        Privileged => "@privileged",
        /// Changing resource limits, scheduling and memory policy.
        Resources => "@resources",
        /// Mounting.
        Mount => "@mount",
        /// Kernel modules.
        Module => "@module",
        /// Debugging and tracing.
        Debug => "@debug",
        /// Obsolete calls.
        Obsolete => "@obsolete",
        /// Raw I/O port access.
        RawIo => "@raw-io",
        /// Rebooting.
        Reboot => "@reboot",
        /// Swap.
        Swap => "@swap",
        /// Changing the clock.
        Clock => "@clock",
        /// CPU emulation.
        CpuEmulation => "@cpu-emulation",
    }
}

/// `SystemCallFilter=`: an allow list minus a deny list, rendered as two assignments (the
/// second, `~`-prefixed, removes from the first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyscallFilter {
    /// Sets allowed. Empty means no filter at all.
    pub allow: Vec<SyscallSet>,
    /// Sets removed from `allow`.
    pub deny: Vec<SyscallSet>,
}

impl SyscallFilter {
    /// Whether any filter is set.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// An entry of `IPAddressAllow=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpAddressSpec {
    /// `127.0.0.0/8` and `::1/128`.
    Localhost,
    /// `169.254.0.0/16` and `fe80::/64`.
    LinkLocal,
    /// Every address.
    Any,
    /// One network.
    Net {
        /// Network address.
        addr: IpAddr,
        /// Prefix length.
        prefix: u8,
    },
}

impl FromStr for IpAddressSpec {
    type Err = Error;
    /// Parses `localhost`, `link-local`, `any`, an address or `ADDR/PREFIX`.
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| invalid("IP address allow entry", s, reason);
        match s {
            "localhost" => return Ok(Self::Localhost),
            "link-local" => return Ok(Self::LinkLocal),
            "any" => return Ok(Self::Any),
            _ => {}
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            bad("write localhost, link-local, any, an IP address or a CIDR network like 10.0.0.0/8")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad("the prefix length after '/' is out of range"))?,
        };
        Ok(Self::Net { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for IpAddressSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for IpAddressSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Localhost => f.write_str("localhost"),
            Self::LinkLocal => f.write_str("link-local"),
            Self::Any => f.write_str("any"),
            Self::Net { addr, prefix } => write!(f, "{addr}/{prefix}"),
        }
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct EnvName(String);

impl EnvName {
    /// Validates a variable name.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for anything but letters, digits and `_` not starting with a digit.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        let ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(invalid(
                "environment variable name",
                &name,
                "use letters, digits and '_', not starting with a digit",
            ));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One argument of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Passed to the program byte for byte: quoting, `$` and `%` are escaped on output.
    Literal(String),
    /// Replaced by the value of a variable at exec time (`${MAINPID}`), as one argument.
    Var(EnvName),
}

/// A command line for `ExecStart=` / `ExecReload=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    program: AbsPath,
    args: Vec<Arg>,
}

impl Command {
    /// A command running `program` with no arguments.
    pub fn new(program: AbsPath) -> Self {
        Self {
            program,
            args: Vec::new(),
        }
    }

    /// Appends a literal argument.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a NUL byte (cannot be passed to `execve`) or a lone `;`
    /// (systemd reads it as a command separator whatever the quoting).
    pub fn arg(mut self, arg: impl Into<String>) -> Result<Self, Error> {
        let arg = arg.into();
        if arg.contains('\0') {
            return Err(invalid("command argument", &arg, "it contains a NUL byte"));
        }
        if arg == ";" {
            return Err(invalid(
                "command argument",
                &arg,
                "systemd reads a lone ';' as a command separator; pass it differently",
            ));
        }
        self.args.push(Arg::Literal(arg));
        Ok(self)
    }

    /// Appends several literal arguments.
    ///
    /// # Errors
    /// As [`Command::arg`].
    pub fn args<I, S>(self, args: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        args.into_iter().try_fold(self, Command::arg)
    }

    /// Appends an argument replaced by a variable's value at exec time.
    pub fn var(mut self, name: EnvName) -> Self {
        self.args.push(Arg::Var(name));
        self
    }

    /// The program.
    pub fn program(&self) -> &AbsPath {
        &self.program
    }

    /// The arguments after the program.
    pub fn arguments(&self) -> &[Arg] {
        &self.args
    }
}

/// Quotes one word for a command line or an `Environment=` assignment: C escapes inside
/// double quotes when anything but plain characters appears.
pub(crate) fn quote_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=,+@%-".contains(c));
    let word = escape_specifiers(word);
    if plain {
        return word;
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&quote_word(self.program.as_str()))?;
        for arg in &self.args {
            match arg {
                Arg::Literal(s) => write!(f, " {}", quote_word(&s.replace('$', "$$")))?,
                Arg::Var(name) => write!(f, " ${{{name}}}")?,
            }
        }
        Ok(())
    }
}

/// `EnvironmentFile=`: a file of `KEY=value` lines read before the service starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentFile {
    /// The file.
    pub path: AbsPath,
    /// With `true` a missing file is not an error (`-` prefix).
    pub optional: bool,
}

impl fmt::Display for EnvironmentFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.optional {
            f.write_str("-")?;
        }
        write!(f, "{}", self.path)
    }
}

/// A name for `RuntimeDirectory=` / `StateDirectory=`: relative, below `/run` or `/var/lib`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DirName(String);

impl DirName {
    /// Validates a single directory name such as `veza-lb`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for anything but `[A-Za-z0-9._-]` or `.`/`..`.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        if name.is_empty()
            || name == "."
            || name == ".."
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(
                "directory name",
                &name,
                "use one name made of letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(Self(name))
    }
}

impl TryFrom<String> for DirName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl fmt::Display for DirName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> AbsPath {
        AbsPath::new(s).unwrap()
    }

    #[test]
    fn paths_are_absolute_and_normalised() {
        for bad in [
            "relative/x",
            "/a/../b",
            "/a/./b",
            "/a/",
            "/a//b",
            "/a\"b",
            "/a\\b",
            "/a\nb",
            "/a /b",
            "/ a",
        ] {
            assert!(AbsPath::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(path("/opt/veza").as_str(), "/opt/veza");
        assert_eq!(path("/").as_str(), "/");
    }

    #[test]
    fn paths_escape_specifiers_and_quote_spaces_in_lists() {
        let p = path("/srv/my dir/100%");
        assert_eq!(p.to_string(), "/srv/my dir/100%%");
        assert_eq!(p.list_word(), "\"/srv/my dir/100%%\"");
        assert_eq!(path("/var/log/veza").list_word(), "/var/log/veza");
    }

    #[test]
    fn account_names_follow_useradd() {
        for good in ["veza-api", "_svc", "a1_b-c"] {
            AccountName::new(good).unwrap();
        }
        for bad in [
            "",
            "Veza",
            "1abc",
            "-x",
            "a b",
            "a$",
            "root:x",
            "abcdefghijklmnopqrstuvwxyz0123456",
        ] {
            assert!(AccountName::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn timespans_round_trip() {
        for (text, shown) in [
            ("30s", "30s"),
            ("250ms", "250ms"),
            ("2min", "120s"),
            ("1h", "3600s"),
            ("1500ms", "1500ms"),
        ] {
            assert_eq!(text.parse::<Timespan>().unwrap().to_string(), shown);
        }
        for bad in ["", "s", "10", "10 s", "5d", "-1s"] {
            assert!(bad.parse::<Timespan>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn command_quotes_specials() {
        let cmd = Command::new(path("/opt/my app/bin"))
            .args([
                "--listen",
                "0.0.0.0:8080",
                "a b",
                "100%",
                "$HOME",
                "say \"hi\"\\",
                "",
                "x\ny",
                "it's",
            ])
            .unwrap()
            .var(EnvName::new("MAINPID").unwrap());
        assert_eq!(
            cmd.to_string(),
            r#""/opt/my app/bin" --listen 0.0.0.0:8080 "a b" 100%% "$$HOME" "say \"hi\"\\" "" "x\ny" "it's" ${MAINPID}"#
        );
        assert!(Command::new(path("/bin/x")).arg(";").is_err());
        assert!(Command::new(path("/bin/x")).arg("a\0b").is_err());
    }

    #[test]
    fn text_is_one_line() {
        assert_eq!(
            Text::new("Veza 100% API").unwrap().to_string(),
            "Veza 100%% API"
        );
        for bad in ["", " x", "x ", "a\nb", "x\\"] {
            assert!(Text::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ip_specs_parse() {
        assert_eq!(
            "localhost".parse::<IpAddressSpec>().unwrap(),
            IpAddressSpec::Localhost
        );
        assert_eq!(
            "10.0.0.0/8".parse::<IpAddressSpec>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "::1".parse::<IpAddressSpec>().unwrap().to_string(),
            "::1/128"
        );
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", ""] {
            assert!(bad.parse::<IpAddressSpec>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn documentation_uris_are_one_word() {
        assert_eq!(
            Uri::new("https://x.example/a%20b").unwrap().to_string(),
            "https://x.example/a%%20b"
        );
        for bad in ["x.example", "https://x.example/a b", "man:\"x\""] {
            assert!(Uri::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unit_names_need_a_suffix() {
        UnitName::new("network-online.target").unwrap();
        for bad in ["veza", ".service", "a b.service", "a/b.service"] {
            assert!(UnitName::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
