//! A pool's `servers`: names, addresses, weights, and the warnings a server list can earn.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::Ctx;
use super::fields::{Section, Value};
use crate::config::ServerConfig;
use crate::config::values::{describe_char, first_invalid, is_cookie_octet};

const SERVER_KEYS: &[&str] = &["name", "addr", "weight", "check", "maxconn"];
const TEMPLATE_KEYS: &[&str] = &["prefix", "count", "srv"];
/// Slots a `server_template` may have.
const MAX_TEMPLATE_SLOTS: i64 = 256;

impl Ctx<'_> {
    pub(super) fn read_servers(&mut self, s: &Section<'_, '_>) -> Option<Vec<ServerConfig>> {
        let hint = "write them as servers = [{ name = \"app-1\", addr = \"10.0.0.1:8080\" }]";
        let mut names = HashMap::new();
        let template = match s.get("server_template") {
            Some(value) => Some(self.read_template(value, &mut names)?),
            None => None,
        };
        let Some(value) = s.get("servers") else {
            if let Some(slots) = template {
                return Some(slots);
            }
            self.error(
                s.start,
                format!(
                    "{} has no servers; add `servers`: {hint}, or a `server_template`",
                    s.what
                ),
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
        let mut addrs: HashMap<SocketAddr, String> = HashMap::new();
        let mut servers = Some(template.unwrap_or_default());
        for table in tables {
            let server = self.read_server(table, &mut names);
            if let Some((server, at)) = &server
                && server.host.is_none()
            {
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
            && all
                .iter()
                .all(|server| server.weight == 0 && server.srv.is_none())
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
        let mut host = None;
        let addr = addr.and_then(|(text, at)| {
            if let Some((name, port)) = host_name_and_port(text) {
                if port == 0 {
                    self.error(at, "a server's port cannot be 0; write the port it listens on");
                    return None;
                }
                host = Some(name);
                return Some(SocketAddr::from(([0, 0, 0, 0], port)));
            }
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
        let maxconn = self.integer(&s, "maxconn", 0..=1_000_000, "; 0 means no limit");
        Some((
            ServerConfig {
                name: name?.0.to_owned(),
                addr: addr?,
                host,
                srv: None,
                weight: weight.ok()?.map_or(Some(1), |w| u16::try_from(w).ok())?,
                check: check.ok()?.unwrap_or(true),
                maxconn: maxconn.ok()?.and_then(|n| u32::try_from(n).ok()),
            },
            s.start,
        ))
    }
}

impl Ctx<'_> {
    /// `server_template = { prefix = "api-", count = 8, srv = "_api._tcp.veza.internal" }`:
    /// `count` servers named `prefix1`..`prefixN`, filled from the SRV records of `srv`.
    fn read_template(
        &mut self,
        value: &Value<'_>,
        names: &mut HashMap<String, usize>,
    ) -> Option<Vec<ServerConfig>> {
        let s = self.section(
            value,
            "server_template",
            "the `server_template`".to_owned(),
            TEMPLATE_KEYS,
        )?;
        let prefix = self.string(&s, "prefix");
        let prefix = self.required(&s, "prefix", "add `prefix = \"api-\"`", prefix);
        let count = self.integer(&s, "count", 1..=MAX_TEMPLATE_SLOTS, "");
        let count = self.required(
            &s,
            "count",
            "add `count = 8`, the most servers it holds",
            count.map(|c| c.map(|c| (c, s.start))),
        );
        let srv = self.string(&s, "srv");
        let srv = self.required(&s, "srv", "add `srv = \"_api._tcp.veza.internal\"`", srv);
        let srv = srv.filter(|&(srv, at)| {
            let name = srv.strip_suffix('.').unwrap_or(srv);
            let valid = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| (1..=63).contains(&l.len()))
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !valid {
                self.error(
                    at,
                    format!("`{srv}` is not a DNS name such as \"_api._tcp.veza.internal\""),
                );
            }
            valid
        });
        let prefix = prefix.filter(|&(prefix, at)| {
            let valid = !prefix.is_empty() && first_invalid(prefix, is_cookie_octet).is_none();
            if !valid {
                self.error(at, format!("the prefix `{prefix}` must be made of cookie characters (no spaces, quotes, `,`, `;`, `\\`)"));
            }
            valid
        });
        let ((prefix, at), (count, _), (srv, _)) = (prefix?, count?, srv?);
        let srv = srv.strip_suffix('.').unwrap_or(srv).to_ascii_lowercase();
        let slots = (1..=count)
            .map(|i| {
                let name = format!("{prefix}{i}");
                self.check_unique(names, "server", &name, at);
                ServerConfig {
                    name,
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    host: None,
                    srv: Some(srv.clone()),
                    weight: 1,
                    check: true,
                    maxconn: None,
                }
            })
            .collect();
        Some(slots)
    }
}

/// `name:port` where `name` is a DNS host name (RFC 1123 labels of letters, digits and `-`,
/// at least one letter, 253 bytes at most): the name, lowercased without a final dot, and the
/// port. `None` for anything else (an IP address is not a name).
pub(crate) fn host_name_and_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.parse::<std::net::IpAddr>().is_err()
        && host.chars().any(|c| c.is_ascii_alphabetic())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    valid.then(|| (host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::host_name_and_port;

    #[test]
    fn host_names_with_ports_are_recognised() {
        assert_eq!(
            host_name_and_port("Backend-API-1.veza.internal.:8080"),
            Some(("backend-api-1.veza.internal".to_owned(), 8080))
        );
        assert_eq!(
            host_name_and_port("localhost:80"),
            Some(("localhost".to_owned(), 80))
        );
        for not_a_name in [
            "10.0.0.1:80",
            "backend:http",
            "backend",
            "-bad.veza:80",
            "bad-.veza:80",
            "a..b:80",
            "under_score.veza:80",
            "123.456:80",
            "[::1]:80",
        ] {
            assert_eq!(host_name_and_port(not_a_name), None, "{not_a_name}");
        }
    }
}
