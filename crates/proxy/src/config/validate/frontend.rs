//! `[[frontend]]` sections and their `[[frontend.route]]`s.

use std::collections::HashMap;

use super::Ctx;
use super::fields::{Reported, Section, Value};
use super::references::PoolRef;
use crate::config::{Frontend, RateLimit, Route};

const FRONTEND_KEYS: &[&str] = &[
    "name",
    "bind",
    "default_pool",
    "route",
    "tls",
    "rate_limit",
    "monitor_uri",
];
const ROUTE_KEYS: &[&str] = &["path_prefix", "pool", "rate_limit"];
const RATE_LIMIT_KEYS: &[&str] = &["key", "requests", "per", "table_size"];

impl Ctx<'_> {
    pub(super) fn read_frontends(
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
        let rate_limit = self.rate_limit(&s);
        let monitor_uri = self
            .string(&s, "monitor_uri")
            .map(|uri| uri.filter(|&(uri, at)| self.check_path("monitor_uri", uri, at, false)));
        Some(Frontend {
            rate_limit: rate_limit.ok()?,
            monitor_uri: monitor_uri.ok()?.map(|(uri, _)| uri.to_owned()),
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
        if let Some((prefix, at)) = prefix
            && let Some(line) = self.seen_before(prefixes, prefix, at)
        {
            self.error(
                at,
                format!(
                    "the route for `{prefix}` duplicates the one on line {line}; remove one of \
                     them"
                ),
            );
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
        let rate_limit = self.rate_limit(&s);
        Some(Route {
            rate_limit: rate_limit.ok()?,
            path_prefix: prefix?.0.to_owned(),
            pool: pool?.0.to_owned(),
        })
    }

    /// `rate_limit = { key = "src", requests = N, per = "10s", table_size = N }`.
    fn rate_limit(&mut self, s: &Section<'_, '_>) -> Result<Option<RateLimit>, Reported> {
        let Some(value) = s.get("rate_limit") else {
            return Ok(None);
        };
        let what = "the `rate_limit` table".to_owned();
        let t = self
            .section(value, "rate_limit", what, RATE_LIMIT_KEYS)
            .ok_or(Reported)?;
        match self.string(&t, "key")? {
            None | Some(("src", _)) => {}
            Some((other, at)) => {
                self.error(
                    at,
                    format!(
                        "`key = \"{other}\"` is not a rate-limit key; the one supported is \"src\" \
                         (the client's address)"
                    ),
                );
                return Err(Reported);
            }
        }
        let requests = self.integer(&t, "requests", 1..=65_535, " per period");
        let requests = self.required(
            &t,
            "requests",
            "add `requests = N`, allowed per period",
            requests,
        );
        let per = self.duration(&t, "per", false);
        let per = self.required(&t, "per", "add `per = \"10s\"`, the period", per);
        let table_size = self.integer(&t, "table_size", 1..=10_000_000, " addresses")?;
        Ok(Some(RateLimit {
            requests: u32::try_from(requests.ok_or(Reported)?).map_err(|_| Reported)?,
            per: per.ok_or(Reported)?,
            table_size: table_size.map_or(100_000, |n| n as usize),
        }))
    }
}
