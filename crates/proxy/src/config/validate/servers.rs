//! A pool's `servers`: names, addresses, weights, and the warnings a server list can earn.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::Ctx;
use super::fields::{Section, Value};
use crate::config::ServerConfig;
use crate::config::values::{describe_char, first_invalid, is_cookie_octet};

const SERVER_KEYS: &[&str] = &["name", "addr", "weight", "check", "maxconn"];

impl Ctx<'_> {
    pub(super) fn read_servers(&mut self, s: &Section<'_, '_>) -> Option<Vec<ServerConfig>> {
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
                weight: weight.ok()?.map_or(Some(1), |w| u16::try_from(w).ok())?,
                check: check.ok()?.unwrap_or(true),
                maxconn: maxconn.ok()?.and_then(|n| u32::try_from(n).ok()),
            },
            s.start,
        ))
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
