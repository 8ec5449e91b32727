//! `[pool.NAME]` sections: balancing, sticky cookie, hash key and the pool's own settings.

use toml::de::DeValue;

use super::Ctx;
use super::defaults::{INHERITED_KEYS, Inherited};
use super::fields::{Reported, Section, Value, describe};
use crate::config::values::{describe_char, first_invalid, is_cookie_octet, is_tchar};
use crate::config::{Balance, CookieConfig, HashKey, OnMarkedDown, Pool};

const POOL_KEYS: &[&str] = &[
    "balance",
    "cookie",
    "hash_key",
    "health",
    "slowstart",
    "on_marked_down",
    "servers",
    "server_template",
    "passive_error_limit",
    "hash_balance_factor",
];
const COOKIE_KEYS: &[&str] = &[
    "name", "insert", "indirect", "nocache", "httponly", "secure",
];
const HASH_KEY_KEYS: &[&str] = &["source", "depth", "param", "name"];

impl Ctx<'_> {
    /// The entries of `[pool.NAME]` sections, in file order.
    pub(super) fn pool_entries<'a, 'i>(
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

    pub(super) fn read_pool(
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
        let factor = self.integer(
            &s,
            "hash_balance_factor",
            0..=10_000,
            "; it is a percentage of the average load, such as 125 (0 turns it off)",
        );
        let factor = match (factor, &balance) {
            (Ok(Some(f)), _) if (1..=100).contains(&f) => {
                let at = s
                    .get("hash_balance_factor")
                    .map_or(s.start, |v| v.span().start);
                self.error(
                    at,
                    "`hash_balance_factor` must be above 100 (a server may take that percentage \
                     of the average load; 125 is usual) or 0 to turn it off",
                );
                Err(Reported)
            }
            (Ok(Some(f)), Some(Balance::RoundRobin)) if f > 0 => {
                let at = s
                    .get("hash_balance_factor")
                    .map_or(s.start, |v| v.span().start);
                self.warn(
                    at,
                    "`hash_balance_factor` only applies to jump-hash pools; round-robin already \
                     spreads the load",
                );
                Ok(None)
            }
            (Ok(f), _) => Ok(f.and_then(|f| u32::try_from(f).ok()).filter(|&f| f > 0)),
            (Err(e), _) => Err(e),
        };
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
            servers: servers?
                .into_iter()
                .map(|mut server| {
                    // A server's own `maxconn` wins over the pool's; 0 is no limit.
                    server.maxconn = server.maxconn.or(inherited.maxconn).filter(|&n| n > 0);
                    server
                })
                .collect(),
            timeouts: inherited.timeouts(),
            retries: inherited.retries.unwrap_or(3),
            redispatch: inherited.redispatch.unwrap_or(true),
            retry_idempotent: inherited.retry_idempotent.unwrap_or(true),
            passive_error_limit,
            maxconn_counts_tunnels: inherited.maxconn_counts_tunnels.unwrap_or(true),
            hash_balance_factor: factor.ok()?,
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
}
