//! The walk over the parsed TOML document that builds a [`Config`] and collects every
//! problem on the way.
//!
//! Each `read_*` function checks one section completely, reporting each problem at its
//! position, and returns `None` when something it needs was invalid; the caller keeps going so
//! that one run reports everything. Cross-references (pool names) are resolved at the end,
//! against every pool the file defines, so a broken pool does not also make every reference
//! to it an error.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::values::{
    closest, describe_char, first_invalid, is_cookie_octet, is_name_char, is_tchar, parse_duration,
    parse_socket_addr,
};
use super::{
    Balance, Config, CookieConfig, Diagnostic, Diagnostics, Frontend, FrontendTls, Global, HashKey,
    HealthConfig, OnMarkedDown, Pool, Route, ServerConfig, SniCert, StatsSocket, Timeouts,
};

type Value<'i> = Spanned<DeValue<'i>>;

/// Marks a value that was present but invalid; the problem has already been reported.
struct Reported;

/// A key's value: absent, present and valid, or present and invalid (already reported).
type Got<T> = Result<Option<T>, Reported>;

const ROOT_KEYS: &[&str] = &["global", "defaults", "frontend", "pool"];
const GLOBAL_KEYS: &[&str] = &[
    "stats_socket",
    "stats_socket_mode",
    "metrics_listen",
    "shutdown_grace",
    "threads",
];
const INHERITED_KEYS: &[&str] = &[
    "timeout_connect",
    "timeout_client",
    "timeout_server",
    "timeout_tunnel",
    "timeout_http_request",
    "retries",
    "redispatch",
    "retry_idempotent",
];
const FRONTEND_KEYS: &[&str] = &["name", "bind", "default_pool", "route", "tls"];
const ROUTE_KEYS: &[&str] = &["path_prefix", "pool"];
const TLS_KEYS: &[&str] = &["bind", "cert", "key", "sni", "redirect_http", "hsts"];
const SNI_KEYS: &[&str] = &["server_names", "cert", "key"];
const POOL_KEYS: &[&str] = &[
    "balance",
    "cookie",
    "hash_key",
    "health",
    "slowstart",
    "on_marked_down",
    "servers",
    "passive_error_limit",
];
const COOKIE_KEYS: &[&str] = &[
    "name", "insert", "indirect", "nocache", "httponly", "secure",
];
const HASH_KEY_KEYS: &[&str] = &["source", "depth", "param", "name"];
const HEALTH_KEYS: &[&str] = &[
    "method",
    "path",
    "interval",
    "timeout",
    "fall",
    "rise",
    "expect_status",
    "host",
];
const SERVER_KEYS: &[&str] = &["name", "addr", "weight", "check"];

/// Longest path of a unix socket on Linux (`sun_path` minus the terminating NUL).
const MAX_UNIX_SOCKET_PATH: usize = 107;

pub(super) fn parse(text: &str, origin: &str) -> Result<Config, Diagnostics> {
    let mut ctx = Ctx {
        source: text,
        origin,
        base_dir: Path::new(origin)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        errors: Vec::new(),
        warnings: Vec::new(),
        listeners: HashMap::new(),
    };
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // What the parser recovered is a guess; checking it would add confusing errors.
        for error in &syntax_errors {
            let span = error.span().unwrap_or(0..0);
            let message = syntax_message(text, error.message(), span.clone());
            ctx.error(span.start, message);
        }
        return Err(ctx.into_errors());
    }
    let root_span = root.span();
    let root = root.into_inner();
    let config = ctx.read_config(&root, root_span);
    match config {
        Some(config) if ctx.errors.is_empty() => Ok(Config {
            warnings: Diagnostics::new(ctx.warnings).into_iter().collect(),
            ..config
        }),
        _ => Err(ctx.into_errors()),
    }
}

fn syntax_message(source: &str, message: &str, span: Range<usize>) -> String {
    let message = message.replace('\n', " ");
    if message == "duplicate key"
        && let Some(key) = source.get(span)
    {
        return format!(
            "invalid TOML: the key `{key}` is defined twice; each key may appear once per table"
        );
    }
    format!("invalid TOML: {message}")
}

/// A table being read, with what to call it in messages.
struct Section<'a, 'i> {
    table: &'a DeTable<'i>,
    /// Where the table starts: its `[header]`, its `{`, or its first key.
    start: usize,
    /// How messages name it: `[global]`, `the \`cookie\` table`, ...
    what: String,
}

impl<'a, 'i> Section<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }
}

struct Ctx<'s> {
    source: &'s str,
    origin: &'s str,
    base_dir: PathBuf,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Every TCP listening address seen so far: where, and who listens there.
    listeners: HashMap<SocketAddr, (usize, String)>,
}

/// Settings of `[defaults]` that pools inherit and may override.
#[derive(Default)]
struct Inherited {
    connect: Option<Duration>,
    client: Option<Duration>,
    server: Option<Duration>,
    tunnel: Option<Duration>,
    http_request: Option<Duration>,
    retries: Option<u32>,
    redispatch: Option<bool>,
    retry_idempotent: Option<bool>,
}

impl Inherited {
    /// `self` where set, else `defaults`.
    fn over(&self, defaults: &Inherited) -> Inherited {
        Inherited {
            connect: self.connect.or(defaults.connect),
            client: self.client.or(defaults.client),
            server: self.server.or(defaults.server),
            tunnel: self.tunnel.or(defaults.tunnel),
            http_request: self.http_request.or(defaults.http_request),
            retries: self.retries.or(defaults.retries),
            redispatch: self.redispatch.or(defaults.redispatch),
            retry_idempotent: self.retry_idempotent.or(defaults.retry_idempotent),
        }
    }

    fn timeouts(&self) -> Timeouts {
        let base = Timeouts::default();
        let client = self.client.unwrap_or(base.client);
        Timeouts {
            connect: self.connect.unwrap_or(base.connect),
            client,
            server: self.server.unwrap_or(base.server),
            tunnel: self.tunnel.unwrap_or(base.tunnel),
            http_request: self.http_request.unwrap_or(client),
        }
    }
}

/// A pool name used by a frontend, checked once every pool is known.
struct PoolRef {
    name: String,
    at: usize,
    key: &'static str,
}

impl<'s> Ctx<'s> {
    fn error(&mut self, at: usize, message: impl Into<String>) {
        let diagnostic = Diagnostic::at(self.origin, self.source, at, message.into());
        self.errors.push(diagnostic);
    }

    fn warn(&mut self, at: usize, message: impl Into<String>) {
        let diagnostic = Diagnostic::at(self.origin, self.source, at, message.into());
        self.warnings.push(diagnostic);
    }

    fn into_errors(self) -> Diagnostics {
        Diagnostics::new(self.errors)
    }

    fn line_of(&self, at: usize) -> usize {
        Diagnostic::at(self.origin, self.source, at, String::new()).line
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    // ----- generic readers -------------------------------------------------------------

    /// Opens `value` as a table, reporting unknown keys (with a suggestion when one is a likely
    /// typo).
    fn section<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        key: &str,
        what: String,
        known: &[&str],
    ) -> Option<Section<'a, 'i>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                value.span().start,
                format!(
                    "`{key}` must be a table, not {}; write it as `{key} = {{ ... }}` or as a \
                     [section]",
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        for (k, _) in table.iter() {
            let name: &str = k.get_ref();
            if !known.contains(&name) {
                let hint = match closest(name, known.iter().copied()) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => format!("the keys allowed here are {}", list(known)),
                };
                self.error(
                    k.span().start,
                    format!("unknown key `{name}` in {what}; {hint}"),
                );
            }
        }
        Some(Section {
            table,
            start: value.span().start,
            what,
        })
    }

    /// Reports a required key that is absent.
    fn required<T>(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        hint: &str,
        got: Got<T>,
    ) -> Option<T> {
        match got {
            Ok(Some(value)) => Some(value),
            Ok(None) => {
                self.error(
                    section.start,
                    format!("{} has no `{key}`; {hint}", section.what),
                );
                None
            }
            Err(Reported) => None,
        }
    }

    fn typed<'a, 'i, T>(
        &mut self,
        section: &Section<'a, 'i>,
        key: &str,
        expected: &str,
        extract: impl FnOnce(&'a DeValue<'i>) -> Option<T>,
    ) -> Got<(T, usize)> {
        let Some(value) = section.get(key) else {
            return Ok(None);
        };
        match extract(value.get_ref()) {
            Some(v) => Ok(Some((v, value.span().start))),
            None => {
                self.error(
                    value.span().start,
                    format!(
                        "`{key}` must be {expected}, not {}",
                        describe(value.get_ref())
                    ),
                );
                Err(Reported)
            }
        }
    }

    fn string<'a>(&mut self, section: &Section<'a, '_>, key: &str) -> Got<(&'a str, usize)> {
        self.typed(section, key, "a string", DeValue::as_str)
    }

    fn boolean(&mut self, section: &Section<'_, '_>, key: &str) -> Got<bool> {
        Ok(self
            .typed(section, key, "true or false", DeValue::as_bool)?
            .map(|(v, _)| v))
    }

    /// An integer in `min..=max`; `why` explains the bounds.
    fn integer(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        why: &str,
    ) -> Got<i64> {
        let Some((value, at)) = self.typed(section, key, "an integer", |v| match v {
            DeValue::Integer(i) => Some(i64::from_str_radix(i.as_str(), i.radix()).ok()),
            _ => None,
        })?
        else {
            return Ok(None);
        };
        match value {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => {
                let too_small = value.is_some_and(|n| n < *range.start());
                let bounds = if too_small && *range.start() > 0 {
                    format!("at least {}", range.start())
                } else {
                    format!("between {} and {}", range.start(), range.end())
                };
                self.error(at, format!("`{key}` must be {bounds}{why}"));
                Err(Reported)
            }
        }
    }

    /// A duration string; zero is refused unless `zero_ok`.
    fn duration(&mut self, section: &Section<'_, '_>, key: &str, zero_ok: bool) -> Got<Duration> {
        let Some((text, at)) = self.typed(
            section,
            key,
            "a duration string such as \"5s\"",
            DeValue::as_str,
        )?
        else {
            return Ok(None);
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.error(at, format!("`{key}` must be longer than 0"));
                Err(Reported)
            }
            Ok(d) => Ok(Some(d)),
            Err(why) => {
                self.error(at, format!("`{key}` is not a valid duration: {why}"));
                Err(Reported)
            }
        }
    }

    fn address(&mut self, key: &str, value: &str, at: usize) -> Option<SocketAddr> {
        match parse_socket_addr(value) {
            Ok(addr) => Some(addr),
            Err(why) => {
                self.error(at, format!("`{key}` is not a valid address: {why}"));
                None
            }
        }
    }

    /// One address or an array of them; each bad element is reported at its position.
    fn addresses(&mut self, section: &Section<'_, '_>, key: &str) -> Got<Vec<(SocketAddr, usize)>> {
        let Some(value) = section.get(key) else {
            return Ok(None);
        };
        let elements: Vec<&Value<'_>> = match value.get_ref() {
            DeValue::String(_) => vec![value],
            DeValue::Array(items) => items.iter().collect(),
            other => {
                self.error(
                    value.span().start,
                    format!(
                        "`{key}` must be an array of addresses such as [\"0.0.0.0:8080\"], not \
                         {}",
                        describe(other)
                    ),
                );
                return Err(Reported);
            }
        };
        let mut addrs = Vec::new();
        let mut ok = true;
        for element in elements {
            let at = element.span().start;
            match element.get_ref() {
                DeValue::String(text) => match self.address(key, text, at) {
                    Some(addr) => addrs.push((addr, at)),
                    None => ok = false,
                },
                other => {
                    self.error(
                        at,
                        format!(
                            "each address in `{key}` must be a string such as \"0.0.0.0:8080\", \
                             not {}",
                            describe(other)
                        ),
                    );
                    ok = false;
                }
            }
        }
        if ok { Ok(Some(addrs)) } else { Err(Reported) }
    }

    /// An array of tables (`[[x]]` or `x = [{ ... }, ...]`).
    fn tables<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        key: &str,
        hint: &str,
    ) -> Option<Vec<&'a Value<'i>>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                value.span().start,
                format!(
                    "`{key}` must be an array of tables, not {}; {hint}",
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        let mut tables = Vec::new();
        for item in items.iter() {
            if item.get_ref().is_table() {
                tables.push(item);
            } else {
                self.error(
                    item.span().start,
                    format!(
                        "each element of `{key}` must be a table, not {}; {hint}",
                        describe(item.get_ref())
                    ),
                );
            }
        }
        Some(tables)
    }

    /// Checks a frontend or pool name: non-empty, HAProxy identifier characters.
    fn check_name(&mut self, kind: &str, name: &str, at: usize) -> bool {
        if name.is_empty() {
            self.error(at, format!("the {kind} name is empty; give it a name"));
            return false;
        }
        if let Some(c) = first_invalid(name, is_name_char) {
            self.error(
                at,
                format!(
                    "the {kind} name `{name}` contains {}; use only letters, digits, `-`, `_`, \
                     `.` and `:`",
                    describe_char(c)
                ),
            );
            return false;
        }
        true
    }

    /// Reports `name` if it was already seen in `seen`, else records it.
    fn check_unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        kind: &str,
        name: &str,
        at: usize,
    ) {
        if let Some(&first) = seen.get(name) {
            let line = self.line_of(first);
            self.error(
                at,
                format!("duplicate {kind} name `{name}`, already used on line {line}; {kind} names must be unique"),
            );
        } else {
            seen.insert(name.to_owned(), at);
        }
    }

    // ----- sections --------------------------------------------------------------------

    fn read_config(&mut self, root: &DeTable<'_>, span: Range<usize>) -> Option<Config> {
        for (key, _) in root.iter() {
            let name: &str = key.get_ref();
            if !ROOT_KEYS.contains(&name) {
                let hint = match name {
                    "backend" | "backends" | "listen" => {
                        " veza-lb calls backends pools: write [pool.NAME]".to_owned()
                    }
                    _ => match closest(name, ROOT_KEYS.iter().copied()) {
                        Some(s) => format!(" did you mean `{s}`?"),
                        None => String::new(),
                    },
                };
                self.error(
                    key.span().start,
                    format!(
                        "unknown section `{name}`; the sections are [global], [defaults], \
                         [[frontend]] and [pool.NAME].{hint}"
                    ),
                );
            }
        }
        let global = match root.get("global") {
            Some(value) => self.read_global(value),
            None => Some(Global::default()),
        };
        let defaults = match root.get("defaults") {
            Some(value) => self.read_defaults(value),
            None => Some(Inherited::default()),
        };
        let defaults = defaults.unwrap_or_default();

        let pool_values = match root.get("pool") {
            Some(value) => self.pool_entries(value),
            None => Vec::new(),
        };
        let pool_names: HashSet<&str> = pool_values.iter().map(|(name, _, _)| *name).collect();

        let mut pool_refs = Vec::new();
        let frontends = match root.get("frontend") {
            Some(value) => self.read_frontends(value, &mut pool_refs),
            None => {
                self.error(
                    span.start,
                    "the configuration has no frontend; add a [[frontend]] with a `name`, a \
                     `bind` address and a `default_pool`",
                );
                None
            }
        };

        for pool_ref in &pool_refs {
            if !pool_names.contains(pool_ref.name.as_str()) {
                let hint = match closest(&pool_ref.name, pool_names.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if pool_names.is_empty() => {
                        format!("define it with a [pool.{}] section", pool_ref.name)
                    }
                    None => {
                        let mut names: Vec<&str> = pool_names.iter().copied().collect();
                        names.sort_unstable();
                        format!("the pools are {}", list(&names))
                    }
                };
                self.error(
                    pool_ref.at,
                    format!(
                        "`{}` names the pool `{}`, which is not defined; {hint}",
                        pool_ref.key, pool_ref.name
                    ),
                );
            }
        }

        let used: HashSet<&str> = pool_refs.iter().map(|r| r.name.as_str()).collect();
        let mut pools = Some(Vec::new());
        for (name, name_at, value) in &pool_values {
            if !used.contains(name) && frontends.is_some() {
                self.warn(
                    *name_at,
                    format!("pool `{name}` is not used by any frontend or route"),
                );
            }
            let pool = self.read_pool(name, *name_at, value, &defaults);
            match (&mut pools, pool) {
                (Some(pools), Some(pool)) => pools.push(pool),
                _ => pools = None,
            }
        }

        Some(Config {
            global: global?,
            frontends: frontends?,
            pools: pools?,
            warnings: Vec::new(),
        })
    }

    fn read_global(&mut self, value: &Value<'_>) -> Option<Global> {
        let s = self.section(value, "global", "[global]".to_owned(), GLOBAL_KEYS)?;
        let defaults = Global::default();
        let stats_socket = self.string(&s, "stats_socket").and_then(|v| match v {
            None => Ok(None),
            Some((text, at)) => self.stats_socket(text, at).map(Some).ok_or(Reported),
        });
        if let (Ok(Some(StatsSocket::Tcp(addr))), Some(v)) = (&stats_socket, s.get("stats_socket"))
        {
            self.listen(*addr, v.span().start, "`stats_socket`".to_owned());
        }
        let mode_at = s.get("stats_socket_mode").map(|v| v.span().start);
        let mode = match s.get("stats_socket_mode").map(Spanned::get_ref) {
            Some(DeValue::String(text)) => match u32::from_str_radix(text, 8) {
                Ok(mode) if mode <= 0o777 => Ok(Some(mode)),
                _ => {
                    self.error(
                        mode_at.unwrap_or(0),
                        "`stats_socket_mode` must be octal permission bits such as \"0660\" or \
                         0o660",
                    );
                    Err(Reported)
                }
            },
            Some(DeValue::Integer(i)) => match u32::from_str_radix(i.as_str(), i.radix()) {
                Ok(mode) if mode <= 0o777 => Ok(Some(mode)),
                _ => {
                    self.error(
                        mode_at.unwrap_or(0),
                        "`stats_socket_mode` must be permission bits from 0o000 to 0o777, such \
                         as 0o660",
                    );
                    Err(Reported)
                }
            },
            Some(other) => {
                self.error(
                    mode_at.unwrap_or(0),
                    format!(
                        "`stats_socket_mode` must be octal permission bits such as 0o660, not {}",
                        describe(other)
                    ),
                );
                Err(Reported)
            }
            None => Ok(None),
        };
        if let (Ok(Some(StatsSocket::Tcp(_))), Ok(Some(_)), Some(at)) =
            (&stats_socket, &mode, mode_at)
        {
            self.warn(
                at,
                "`stats_socket_mode` only applies to a unix `stats_socket`; it is ignored for TCP",
            );
        }
        let metrics_listen = self.string(&s, "metrics_listen").and_then(|v| match v {
            None => Ok(None),
            Some((text, at)) => {
                let addr = self.address("metrics_listen", text, at).ok_or(Reported)?;
                self.listen(addr, at, "`metrics_listen`".to_owned());
                Ok(Some(addr))
            }
        });
        let shutdown_grace = self.duration(&s, "shutdown_grace", true);
        let threads = self.integer(
            &s,
            "threads",
            1..=4096,
            "; remove it to use one thread per core",
        );
        Some(Global {
            stats_socket: stats_socket.ok()?,
            stats_socket_mode: mode.ok()?.unwrap_or(defaults.stats_socket_mode),
            metrics_listen: metrics_listen.ok()?,
            shutdown_grace: shutdown_grace.ok()?.unwrap_or(defaults.shutdown_grace),
            threads: threads
                .ok()?
                .and_then(|n| usize::try_from(n).ok())
                .and_then(NonZeroUsize::new),
        })
    }

    fn stats_socket(&mut self, text: &str, at: usize) -> Option<StatsSocket> {
        let Some(path) = text.strip_prefix("unix:") else {
            return self.address("stats_socket", text, at).map(StatsSocket::Tcp);
        };
        if path.is_empty() {
            self.error(
                at,
                "`stats_socket` has no path after `unix:`; write it as \
                 \"unix:/run/veza-lb/admin.sock\"",
            );
            return None;
        }
        let path = self.resolve(path);
        let len = path.as_os_str().len();
        if len > MAX_UNIX_SOCKET_PATH {
            self.error(
                at,
                format!(
                    "the unix socket path is {len} bytes long, more than the {MAX_UNIX_SOCKET_PATH} \
                     the system allows; use a shorter path"
                ),
            );
            return None;
        }
        Some(StatsSocket::Unix(path))
    }

    fn read_defaults(&mut self, value: &Value<'_>) -> Option<Inherited> {
        let s = self.section(value, "defaults", "[defaults]".to_owned(), INHERITED_KEYS)?;
        self.inherited(&s).ok()
    }

    fn inherited(&mut self, s: &Section<'_, '_>) -> Result<Inherited, Reported> {
        let connect = self.duration(s, "timeout_connect", false);
        let client = self.duration(s, "timeout_client", false);
        let server = self.duration(s, "timeout_server", false);
        let tunnel = self.duration(s, "timeout_tunnel", false);
        let http_request = self.duration(s, "timeout_http_request", false);
        let retries = self.integer(s, "retries", 0..=100, "");
        let redispatch = self.boolean(s, "redispatch");
        let retry_idempotent = self.boolean(s, "retry_idempotent");
        Ok(Inherited {
            connect: connect?,
            client: client?,
            server: server?,
            tunnel: tunnel?,
            http_request: http_request?,
            retries: retries?.and_then(|n| u32::try_from(n).ok()),
            redispatch: redispatch?,
            retry_idempotent: retry_idempotent?,
        })
    }

    fn read_frontends(
        &mut self,
        value: &Value<'_>,
        pool_refs: &mut Vec<PoolRef>,
    ) -> Option<Vec<Frontend>> {
        let hint = "write each frontend as a [[frontend]] section";
        let tables = self.tables(value, "frontend", hint)?;
        if tables.is_empty() {
            self.error(
                value.span().start,
                "`frontend` is empty; add a [[frontend]] with a `name`, a `bind` address and a \
                 `default_pool`",
            );
            return None;
        }
        let mut names = HashMap::new();
        let mut frontends = Some(Vec::new());
        for table in tables {
            let frontend = self.read_frontend(table, &mut names, pool_refs);
            match (&mut frontends, frontend) {
                (Some(all), Some(frontend)) => all.push(frontend),
                _ => frontends = None,
            }
        }
        frontends
    }

    fn read_frontend(
        &mut self,
        value: &Value<'_>,
        names: &mut HashMap<String, usize>,
        pool_refs: &mut Vec<PoolRef>,
    ) -> Option<Frontend> {
        let what = match value
            .get_ref()
            .get("name")
            .and_then(|v| v.get_ref().as_str())
        {
            Some(name) => format!("frontend `{name}`"),
            None => "this frontend".to_owned(),
        };
        let s = self.section(value, "frontend", what, FRONTEND_KEYS)?;
        let name = self.string(&s, "name");
        let name = self
            .required(
                &s,
                "name",
                "add `name = \"...\"` to identify it in stats and logs",
                name,
            )
            .filter(|&(name, at)| self.check_name("frontend", name, at));
        if let Some((name, at)) = name {
            self.check_unique(names, "frontend", name, at);
        }
        let bind = self.addresses(&s, "bind");
        if let Ok(Some(addrs)) = &bind {
            for &(addr, at) in addrs {
                self.listen(addr, at, s.what.clone());
            }
        }
        let default_pool = self.string(&s, "default_pool");
        let default_pool = self.required(
            &s,
            "default_pool",
            "add `default_pool = \"POOL\"`, the pool that serves requests no route matches",
            default_pool,
        );
        if let Some((pool, at)) = default_pool {
            pool_refs.push(PoolRef {
                name: pool.to_owned(),
                at,
                key: "default_pool",
            });
        }
        let routes = match s.get("route") {
            Some(value) => self.read_routes(value, pool_refs),
            None => Some(Vec::new()),
        };
        let tls = match s.get("tls") {
            Some(value) => self.read_tls(value, &s.what).map(Some),
            None => Some(None),
        };

        let plain_binds = bind
            .as_ref()
            .ok()
            .and_then(|b| b.as_ref())
            .map_or(0, Vec::len);
        if let (Ok(_), Some(tls)) = (&bind, &tls) {
            let tls_binds = tls.as_ref().map_or(0, |t| t.bind.len());
            if plain_binds + tls_binds == 0 {
                let at = s.get("bind").map_or(s.start, |v| v.span().start);
                self.error(
                    at,
                    format!(
                        "{} has no address to listen on; add `bind = [\"0.0.0.0:8080\"]` or a \
                         `tls` table with a `bind`",
                        s.what
                    ),
                );
                return None;
            }
            if tls.as_ref().is_some_and(|t| t.redirect_http) && plain_binds == 0 {
                let at = s.get("tls").map_or(s.start, |v| v.span().start);
                self.error(
                    at,
                    "`redirect_http = true` needs a plain `bind` address to redirect from; add \
                     one or remove `redirect_http`",
                );
            }
        }
        Some(Frontend {
            name: name?.0.to_owned(),
            bind: bind
                .ok()?
                .unwrap_or_default()
                .into_iter()
                .map(|(a, _)| a)
                .collect(),
            default_pool: default_pool?.0.to_owned(),
            routes: routes?,
            tls: tls?,
        })
    }

    fn read_routes(
        &mut self,
        value: &Value<'_>,
        pool_refs: &mut Vec<PoolRef>,
    ) -> Option<Vec<Route>> {
        let hint = "write each route as a [[frontend.route]] section after its frontend";
        let tables = self.tables(value, "route", hint)?;
        let mut prefixes = HashMap::new();
        let mut routes = Some(Vec::new());
        for table in tables {
            let route = self.read_route(table, &mut prefixes, pool_refs);
            match (&mut routes, route) {
                (Some(all), Some(route)) => all.push(route),
                _ => routes = None,
            }
        }
        routes
    }

    fn read_route(
        &mut self,
        value: &Value<'_>,
        prefixes: &mut HashMap<String, usize>,
        pool_refs: &mut Vec<PoolRef>,
    ) -> Option<Route> {
        let s = self.section(value, "route", "this route".to_owned(), ROUTE_KEYS)?;
        let prefix = self.string(&s, "path_prefix");
        let prefix = self.required(
            &s,
            "path_prefix",
            "add `path_prefix = \"/...\"`, the start of the paths it routes",
            prefix,
        );
        let prefix =
            prefix.filter(|&(prefix, at)| self.check_path("path_prefix", prefix, at, false));
        if let Some((prefix, at)) = prefix {
            if let Some(&first) = prefixes.get(prefix) {
                let line = self.line_of(first);
                self.error(
                    at,
                    format!(
                        "the route for `{prefix}` duplicates the one on line {line}; remove one \
                         of them"
                    ),
                );
            } else {
                prefixes.insert(prefix.to_owned(), at);
            }
        }
        let pool = self.string(&s, "pool");
        let pool = self.required(
            &s,
            "pool",
            "add `pool = \"POOL\"`, the pool that serves it",
            pool,
        );
        if let Some((name, at)) = pool {
            pool_refs.push(PoolRef {
                name: name.to_owned(),
                at,
                key: "pool",
            });
        }
        Some(Route {
            path_prefix: prefix?.0.to_owned(),
            pool: pool?.0.to_owned(),
        })
    }

    /// Checks an HTTP path: starts with `/`, no spaces or control characters; a query string
    /// is allowed only when `query_ok`.
    fn check_path(&mut self, key: &str, path: &str, at: usize, query_ok: bool) -> bool {
        if !path.starts_with('/') {
            self.error(
                at,
                format!(
                    "`{key}` must start with `/`, such as \"/{}\"",
                    path.trim_start_matches('/')
                ),
            );
            return false;
        }
        let forbidden =
            |c: char| c.is_whitespace() || c.is_control() || c == '#' || (!query_ok && c == '?');
        if let Some(c) = path.chars().find(|&c| forbidden(c)) {
            self.error(
                at,
                format!(
                    "`{key}` contains {}, which cannot appear in it",
                    describe_char(c)
                ),
            );
            return false;
        }
        true
    }

    fn read_tls(&mut self, value: &Value<'_>, owner: &str) -> Option<FrontendTls> {
        let s = self.section(value, "tls", "the `tls` table".to_owned(), TLS_KEYS)?;
        let bind = self.addresses(&s, "bind");
        let bind = self.required(
            &s,
            "bind",
            "add `bind = [\"0.0.0.0:8443\"]`, where HTTPS is served",
            bind,
        );
        if let Some(bind) = &bind
            && bind.is_empty()
            && let Some(v) = s.get("bind")
        {
            self.error(
                v.span().start,
                "`bind` in `tls` is empty; add an address such as \"0.0.0.0:8443\"",
            );
        }
        for &(addr, at) in bind.iter().flatten() {
            self.listen(addr, at, owner.to_owned());
        }
        let cert = self.file(
            &s,
            "cert",
            "add `cert = \"fullchain.pem\"`, the PEM certificate chain",
        );
        let key = self.file(
            &s,
            "key",
            "add `key = \"privkey.pem\"`, the PEM private key",
        );
        let sni = match s.get("sni") {
            Some(value) => self.read_sni(value),
            None => Some(Vec::new()),
        };
        let redirect_http = self.boolean(&s, "redirect_http");
        let hsts = self.duration(&s, "hsts", false);
        if let (Ok(Some(hsts)), Some(v)) = (&hsts, s.get("hsts"))
            && hsts.subsec_millis() != 0
        {
            self.error(
                v.span().start,
                "`hsts` is sent in whole seconds; use a duration such as \"365d\"",
            );
        }
        Some(FrontendTls {
            bind: bind?.into_iter().map(|(a, _)| a).collect(),
            cert: cert?,
            key: key?,
            sni: sni?,
            redirect_http: redirect_http.ok()?.unwrap_or(false),
            hsts: hsts.ok()?,
        })
    }

    /// A required, non-empty file path, resolved against the configuration's directory.
    fn file(&mut self, s: &Section<'_, '_>, key: &str, hint: &str) -> Option<PathBuf> {
        let path = self.string(s, key);
        let (path, at) = self.required(s, key, hint, path)?;
        if path.is_empty() {
            self.error(at, format!("`{key}` is empty; {hint}"));
            return None;
        }
        Some(self.resolve(path))
    }

    fn read_sni(&mut self, value: &Value<'_>) -> Option<Vec<SniCert>> {
        let hint = "write it as sni = [{ server_names = [\"www.example.com\"], cert = \"...\", key = \"...\" }]";
        let tables = self.tables(value, "sni", hint)?;
        let mut seen = HashMap::new();
        let mut certs = Some(Vec::new());
        for table in tables {
            let cert = self.read_sni_cert(table, &mut seen);
            match (&mut certs, cert) {
                (Some(all), Some(cert)) => all.push(cert),
                _ => certs = None,
            }
        }
        certs
    }

    fn read_sni_cert(
        &mut self,
        value: &Value<'_>,
        seen: &mut HashMap<String, usize>,
    ) -> Option<SniCert> {
        let s = self.section(value, "sni", "this `sni` certificate".to_owned(), SNI_KEYS)?;
        let names = match s.get("server_names") {
            None => {
                self.error(
                    s.start,
                    "this `sni` certificate has no `server_names`; add the host names it \
                     serves, such as server_names = [\"www.example.com\"]",
                );
                None
            }
            Some(v) => self.server_names(v, seen),
        };
        let cert = self.file(
            &s,
            "cert",
            "add `cert = \"...\"`, the PEM certificate chain",
        );
        let key = self.file(&s, "key", "add `key = \"...\"`, the PEM private key");
        Some(SniCert {
            server_names: names?,
            cert: cert?,
            key: key?,
        })
    }

    fn server_names(
        &mut self,
        value: &Value<'_>,
        seen: &mut HashMap<String, usize>,
    ) -> Option<Vec<String>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                value.span().start,
                format!(
                    "`server_names` must be an array of host names, not {}",
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                value.span().start,
                "`server_names` is empty; add the host names this certificate serves",
            );
            return None;
        }
        let mut names = Some(Vec::new());
        for item in items.iter() {
            let at = item.span().start;
            let name = match item.get_ref() {
                DeValue::String(name) => {
                    let name = name.to_ascii_lowercase();
                    match host_name_problem(&name) {
                        None => Some(name),
                        Some(why) => {
                            self.error(at, format!("`{name}` is not a valid server name: {why}"));
                            None
                        }
                    }
                }
                other => {
                    self.error(
                        at,
                        format!("each server name must be a string, not {}", describe(other)),
                    );
                    None
                }
            };
            if let Some(name) = &name {
                if let Some(&first) = seen.get(name) {
                    let line = self.line_of(first);
                    self.error(at, format!("the server name `{name}` is already served by the certificate on line {line}"));
                } else {
                    seen.insert(name.clone(), at);
                }
            }
            match (&mut names, name) {
                (Some(all), Some(name)) => all.push(name),
                _ => names = None,
            }
        }
        names
    }

    /// The entries of `[pool.NAME]` sections, in file order.
    fn pool_entries<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
    ) -> Vec<(&'a str, usize, &'a Value<'i>)> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                value.span().start,
                format!(
                    "`pool` must be a table of named pools, not {}; write each pool as a \
                     [pool.NAME] section",
                    describe(value.get_ref())
                ),
            );
            return Vec::new();
        };
        let mut entries: Vec<(&str, usize, &Value<'i>)> = table
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), k.span().start, v))
            .collect();
        entries.sort_by_key(|&(_, at, _)| at);
        entries
    }

    fn read_pool(
        &mut self,
        name: &str,
        name_at: usize,
        value: &Value<'_>,
        defaults: &Inherited,
    ) -> Option<Pool> {
        let name_ok = self.check_name("pool", name, name_at);
        let what = format!("pool `{name}`");
        let known: Vec<&str> = INHERITED_KEYS.iter().chain(POOL_KEYS).copied().collect();
        let s = self.section(value, name, what, &known)?;

        let inherited = self.inherited(&s).map(|own| own.over(defaults));
        let balance = self.balance(&s);
        let cookie = match s.get("cookie") {
            Some(v) => self.read_cookie(v).map(Some),
            None => Some(None),
        };
        let hash_key = match s.get("hash_key") {
            Some(v) => self.read_hash_key(v).map(Some),
            None => Some(None),
        };
        match balance {
            Some(Balance::RoundRobin) => {
                if let Some(v) = s.get("hash_key") {
                    self.error(
                        v.span().start,
                        format!(
                            "{} uses round-robin, which ignores `hash_key`; remove `hash_key` \
                             or set balance = \"jump-hash\"",
                            s.what
                        ),
                    );
                }
            }
            Some(Balance::JumpHash) => {
                if let Some(v) = s.get("cookie") {
                    self.error(
                        v.span().start,
                        format!(
                            "{} uses jump-hash, which cannot honour a sticky cookie: the hash \
                             already pins each key to a server; remove `cookie` or set balance \
                             = \"roundrobin\"",
                            s.what
                        ),
                    );
                }
                if s.get("hash_key").is_none() {
                    let at = s.get("balance").map_or(s.start, |v| v.span().start);
                    self.error(
                        at,
                        format!(
                            "{} uses jump-hash but has no `hash_key`; add one such as hash_key \
                             = {{ source = \"path\", depth = 2 }}",
                            s.what
                        ),
                    );
                }
            }
            None => {}
        }
        let health = match s.get("health") {
            Some(v) => self.read_health(v).map(Some),
            None => Some(None),
        };
        let slowstart = self.duration(&s, "slowstart", true);
        let on_marked_down = self.on_marked_down(&s);
        let servers = self.read_servers(&s);
        let passive_error_limit = self.integer(
            &s,
            "passive_error_limit",
            0..=1000,
            "; 0 turns passive checks off",
        );

        let inherited = inherited.ok()?;
        let health = health?;
        let passive_error_limit = match passive_error_limit.ok()? {
            Some(n) => u32::try_from(n).ok()?,
            None => health.as_ref().map_or(3, |h| h.fall),
        };
        if !name_ok {
            return None;
        }
        Some(Pool {
            name: name.to_owned(),
            balance: balance?,
            cookie: cookie?,
            hash_key: hash_key?,
            health,
            slowstart: slowstart.ok()?.filter(|d| !d.is_zero()),
            on_marked_down: on_marked_down?,
            servers: servers?,
            timeouts: inherited.timeouts(),
            retries: inherited.retries.unwrap_or(3),
            redispatch: inherited.redispatch.unwrap_or(true),
            retry_idempotent: inherited.retry_idempotent.unwrap_or(true),
            passive_error_limit,
        })
    }

    fn balance(&mut self, s: &Section<'_, '_>) -> Option<Balance> {
        match self.string(s, "balance") {
            Err(Reported) => None,
            Ok(None) => Some(Balance::RoundRobin),
            Ok(Some(("roundrobin", _))) => Some(Balance::RoundRobin),
            Ok(Some(("jump-hash", _))) => Some(Balance::JumpHash),
            Ok(Some((other, at))) => {
                let hint = match other {
                    "round-robin" | "round_robin" | "rr" => " (written without a dash)".to_owned(),
                    _ => String::new(),
                };
                self.error(
                    at,
                    format!(
                        "unknown balance algorithm `{other}`; use \"roundrobin\"{hint} or \
                         \"jump-hash\""
                    ),
                );
                None
            }
        }
    }

    fn on_marked_down(&mut self, s: &Section<'_, '_>) -> Option<OnMarkedDown> {
        match self.string(s, "on_marked_down") {
            Err(Reported) => None,
            Ok(None) | Ok(Some(("none", _))) => Some(OnMarkedDown::Nothing),
            Ok(Some(("shutdown-sessions", _))) => Some(OnMarkedDown::ShutdownSessions),
            Ok(Some((other, at))) => {
                self.error(
                    at,
                    format!(
                        "unknown `on_marked_down` action `{other}`; use \"shutdown-sessions\" or \
                         \"none\""
                    ),
                );
                None
            }
        }
    }

    fn read_cookie(&mut self, value: &Value<'_>) -> Option<CookieConfig> {
        let s = self.section(
            value,
            "cookie",
            "the `cookie` table".to_owned(),
            COOKIE_KEYS,
        )?;
        let name = self.string(&s, "name");
        let name = self.required(
            &s,
            "name",
            "add the cookie name, such as name = \"SERVERID\"",
            name,
        );
        let name = name.filter(|&(name, at)| {
            if name.is_empty() {
                self.error(
                    at,
                    "the cookie name is empty; use a name such as \"SERVERID\"",
                );
                return false;
            }
            if let Some(c) = first_invalid(name, is_tchar) {
                self.error(
                    at,
                    format!(
                        "the cookie name `{name}` contains {}; a cookie name may only contain \
                         letters, digits and !#$%&'*+-.^_`|~",
                        describe_char(c)
                    ),
                );
                return false;
            }
            true
        });
        let insert = self.boolean(&s, "insert");
        let indirect = self.boolean(&s, "indirect");
        let nocache = self.boolean(&s, "nocache");
        let httponly = self.boolean(&s, "httponly");
        let secure = self.boolean(&s, "secure");
        Some(CookieConfig {
            name: name?.0.to_owned(),
            insert: insert.ok()?.unwrap_or(true),
            indirect: indirect.ok()?.unwrap_or(false),
            nocache: nocache.ok()?.unwrap_or(false),
            httponly: httponly.ok()?.unwrap_or(false),
            secure: secure.ok()?.unwrap_or(false),
        })
    }

    fn read_hash_key(&mut self, value: &Value<'_>) -> Option<HashKey> {
        let s = self.section(value, "hash_key", "`hash_key`".to_owned(), HASH_KEY_KEYS)?;
        let source = self.string(&s, "source");
        let (source, source_at) = self.required(
            &s,
            "source",
            "add source = \"path\", \"query\" or \"header\"",
            source,
        )?;
        let (key, allowed) = match source {
            "path" => ("depth", "depth"),
            "query" => ("param", "param"),
            "header" => ("name", "name"),
            other => {
                self.error(
                    source_at,
                    format!(
                        "unknown hash_key source `{other}`; use \"path\", \"query\" or \"header\""
                    ),
                );
                return None;
            }
        };
        let mut ok = true;
        for other in ["depth", "param", "name"] {
            if other != allowed
                && let Some(v) = s.get(other)
            {
                self.error(
                    v.span().start,
                    format!("`{other}` does not apply to source = \"{source}\"; remove it"),
                );
                ok = false;
            }
        }
        let key_value = match key {
            "depth" => {
                let depth = self.integer(&s, "depth", 1..=64, " path segments");
                depth.ok()?.map_or(Some(HashKey::Path { depth: 1 }), |d| {
                    usize::try_from(d).ok().map(|depth| HashKey::Path { depth })
                })
            }
            "param" => {
                let param = self.string(&s, "param");
                let (param, at) = self.required(
                    &s,
                    "param",
                    "add the query parameter to hash, such as param = \"track_id\"",
                    param,
                )?;
                let bad = param
                    .chars()
                    .find(|&c| !is_cookie_octet(c) || matches!(c, '&' | '=' | '#' | '?'));
                if param.is_empty() || bad.is_some() {
                    let why = bad.map_or("it is empty".to_owned(), |c| {
                        format!("it contains {}", describe_char(c))
                    });
                    self.error(at, format!("`param` must be a query parameter name: {why}"));
                    return None;
                }
                Some(HashKey::Query {
                    param: param.to_owned(),
                })
            }
            _ => {
                let name = self.string(&s, "name");
                let (name, at) = self.required(
                    &s,
                    "name",
                    "add the header to hash, such as name = \"X-Track\"",
                    name,
                )?;
                if !self.check_token("header name", name, at) {
                    return None;
                }
                Some(HashKey::Header {
                    name: name.to_owned(),
                })
            }
        };
        if ok { key_value } else { None }
    }

    /// Checks an RFC 9110 token (header names, methods).
    fn check_token(&mut self, kind: &str, text: &str, at: usize) -> bool {
        if text.is_empty() {
            self.error(at, format!("the {kind} is empty"));
            return false;
        }
        if let Some(c) = first_invalid(text, is_tchar) {
            self.error(
                at,
                format!(
                    "the {kind} `{text}` contains {}; it may only contain letters, digits and \
                     !#$%&'*+-.^_`|~",
                    describe_char(c)
                ),
            );
            return false;
        }
        true
    }

    fn read_health(&mut self, value: &Value<'_>) -> Option<HealthConfig> {
        let s = self.section(
            value,
            "health",
            "the `health` check".to_owned(),
            HEALTH_KEYS,
        )?;
        let method = match self.string(&s, "method") {
            Ok(Some((method, at))) => self
                .check_token("method", method, at)
                .then(|| method.to_owned()),
            Ok(None) => Some("GET".to_owned()),
            Err(Reported) => None,
        };
        let path = self.string(&s, "path");
        let path = self
            .required(
                &s,
                "path",
                "add the path to request, such as path = \"/health\"",
                path,
            )
            .filter(|&(path, at)| self.check_path("path", path, at, true));
        let interval = self.duration(&s, "interval", false);
        let timeout = self.duration(&s, "timeout", false);
        if let (Ok(interval), Ok(Some(timeout)), Some(v)) = (&interval, &timeout, s.get("timeout"))
        {
            let interval = interval.unwrap_or(DEFAULT_CHECK_INTERVAL);
            if *timeout > interval {
                self.error(
                    v.span().start,
                    format!(
                        "the check `timeout` ({}) is longer than its `interval` ({}); make it at \
                         most the interval",
                        show_duration(*timeout),
                        show_duration(interval)
                    ),
                );
            }
        }
        let fall = self.integer(
            &s,
            "fall",
            1..=1000,
            ": a server is marked DOWN after `fall` failed checks in a row",
        );
        let rise = self.integer(
            &s,
            "rise",
            1..=1000,
            ": a server is marked UP after `rise` passed checks in a row",
        );
        let expect_status = self.expect_status(&s);
        let host = match self.string(&s, "host") {
            Ok(Some((host, at))) => {
                let bad = host
                    .chars()
                    .find(|&c| !(c.is_ascii_alphanumeric() || "-._:[]".contains(c)));
                if host.is_empty() || bad.is_some() {
                    let why = bad.map_or("it is empty".to_owned(), |c| {
                        format!("it contains {}", describe_char(c))
                    });
                    self.error(
                        at,
                        format!("`host` must be a host name such as \"api.veza.example\": {why}"),
                    );
                    None
                } else {
                    Some(Some(host.to_owned()))
                }
            }
            Ok(None) => Some(None),
            Err(Reported) => None,
        };
        let interval = interval.ok()?.unwrap_or(DEFAULT_CHECK_INTERVAL);
        let timeout = timeout.ok()?.unwrap_or(DEFAULT_CHECK_TIMEOUT.min(interval));
        Some(HealthConfig {
            method: method?,
            path: path?.0.to_owned(),
            interval,
            timeout,
            fall: fall.ok()?.map_or(Some(3), |n| u32::try_from(n).ok())?,
            rise: rise.ok()?.map_or(Some(2), |n| u32::try_from(n).ok())?,
            expect_status: expect_status?,
            host: host?,
        })
    }

    fn expect_status(&mut self, s: &Section<'_, '_>) -> Option<Vec<u16>> {
        let Some(value) = s.get("expect_status") else {
            return Some(vec![200]);
        };
        let items: Vec<&Value<'_>> = match value.get_ref() {
            DeValue::Integer(_) => vec![value],
            DeValue::Array(items) => items.iter().collect(),
            other => {
                self.error(
                    value.span().start,
                    format!(
                        "`expect_status` must be an array of status codes such as [200], not {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        if items.is_empty() {
            self.error(
                value.span().start,
                "`expect_status` is empty; list the status codes that mean healthy, such as [200]",
            );
            return None;
        }
        let mut codes = Some(Vec::new());
        for item in items {
            let code = match item.get_ref() {
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .and_then(|c| u16::try_from(c).ok()),
                _ => None,
            };
            match (&mut codes, code) {
                (Some(all), Some(code)) => all.push(code),
                (_, None) => {
                    self.error(
                        item.span().start,
                        "each status code in `expect_status` must be an integer from 100 to 599",
                    );
                    codes = None;
                }
                _ => {}
            }
        }
        codes
    }

    fn read_servers(&mut self, s: &Section<'_, '_>) -> Option<Vec<ServerConfig>> {
        let hint = "write them as servers = [{ name = \"app-1\", addr = \"10.0.0.1:8080\" }]";
        let Some(value) = s.get("servers") else {
            self.error(
                s.start,
                format!("{} has no servers; add `servers`: {hint}", s.what),
            );
            return None;
        };
        let tables = self.tables(value, "servers", hint)?;
        if tables.is_empty() {
            self.error(
                value.span().start,
                format!("{} has no servers; add at least one: {hint}", s.what),
            );
            return None;
        }
        let mut names = HashMap::new();
        let mut addrs: HashMap<SocketAddr, String> = HashMap::new();
        let mut servers = Some(Vec::new());
        for table in tables {
            let server = self.read_server(table, &mut names);
            if let Some((server, at)) = &server {
                if let Some(first) = addrs.get(&server.addr) {
                    let message = format!(
                        "servers `{first}` and `{}` have the same address, {}",
                        server.name, server.addr
                    );
                    self.warn(*at, message);
                } else {
                    addrs.insert(server.addr, server.name.clone());
                }
            }
            match (&mut servers, server) {
                (Some(all), Some((server, _))) => all.push(server),
                _ => servers = None,
            }
        }
        if let Some(all) = &servers
            && all.iter().all(|server| server.weight == 0)
        {
            self.warn(
                value.span().start,
                format!(
                    "every server of {} has weight 0, so it only serves sticky clients",
                    s.what
                ),
            );
        }
        servers
    }

    fn read_server(
        &mut self,
        value: &Value<'_>,
        names: &mut HashMap<String, usize>,
    ) -> Option<(ServerConfig, usize)> {
        let s = self.section(value, "servers", "this server".to_owned(), SERVER_KEYS)?;
        let name = self.string(&s, "name");
        let name = self.required(&s, "name", "add `name = \"...\"`, unique in the pool", name);
        let name = name.filter(|&(name, at)| {
            if name.is_empty() {
                self.error(
                    at,
                    "the server name is empty; give it a name such as \"app-1\"",
                );
                return false;
            }
            if let Some(c) = first_invalid(name, is_cookie_octet) {
                self.error(
                    at,
                    format!(
                        "the server name `{name}` contains {}; server names are sticky-cookie \
                         values, so they cannot contain spaces, quotes, `,`, `;`, `\\` or \
                         non-ASCII characters",
                        describe_char(c)
                    ),
                );
                return false;
            }
            true
        });
        if let Some((name, at)) = name {
            self.check_unique(names, "server", name, at);
        }
        let addr = self.string(&s, "addr");
        let addr = self.required(&s, "addr", "add `addr = \"IP:PORT\"`", addr);
        let addr = addr.and_then(|(text, at)| {
            let addr = self.address("addr", text, at)?;
            if addr.port() == 0 {
                self.error(at, "a server's port cannot be 0; write the port it listens on");
                return None;
            }
            if addr.ip().is_unspecified() {
                self.error(
                    at,
                    format!("`{}` is not a server's address; write the IP it can be reached at, such as 127.0.0.1", addr.ip()),
                );
                return None;
            }
            Some(addr)
        });
        let weight = self.integer(&s, "weight", 0..=256, "");
        let check = self.boolean(&s, "check");
        Some((
            ServerConfig {
                name: name?.0.to_owned(),
                addr: addr?,
                weight: weight.ok()?.map_or(Some(1), |w| u16::try_from(w).ok())?,
                check: check.ok()?.unwrap_or(true),
            },
            s.start,
        ))
    }

    /// Records a listening address; two listeners on one address would fail at startup, so
    /// that is reported now.
    fn listen(&mut self, addr: SocketAddr, at: usize, owner: String) {
        // Port 0 asks the system for a free port, so it never conflicts.
        if addr.port() == 0 {
            return;
        }
        if let Some((first, first_owner)) = self.listeners.get(&addr) {
            let line = self.line_of(*first);
            let message = format!(
                "{owner} listens on {addr}, which {first_owner} already uses on line {line}; \
                 give each listener its own address"
            );
            self.error(at, message);
        } else {
            self.listeners.insert(addr, (at, owner));
        }
    }
}

const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Names a TOML value's type for messages, with its article.
fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// `a, b and c`, each in backticks.
fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// Formats a duration as a user would write it.
fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

/// Why `name` is not a valid (lowercase) SNI host name, if it is not.
fn host_name_problem(name: &str) -> Option<String> {
    let labels = name.strip_prefix("*.").unwrap_or(name);
    if name.is_empty() {
        return Some("it is empty".to_owned());
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters".to_owned());
    }
    for label in labels.split('.') {
        if label.is_empty() {
            return Some(
                "it has an empty label (two dots in a row, or a dot at an end)".to_owned(),
            );
        }
        if let Some(c) = first_invalid(label, |c| c.is_ascii_alphanumeric() || c == '-') {
            return Some(format!(
                "it contains {}; use letters, digits, `-` and `.`, with `*.` only at the start",
                describe_char(c)
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label starts or ends with `-`".to_owned());
        }
        if label.len() > 63 {
            return Some("a label is longer than 63 characters".to_owned());
        }
    }
    None
}
