//! Servers written `name:port` (service discovery by DNS, as HAProxy's `resolvers`): every
//! name is resolved before the first bind (a name that does not resolve stops the start, as
//! HAProxy's default `init-addr` does), then again every `resolve_interval`. What each answer
//! means is `lb_core::discovery`'s decision; a changed address is applied exactly as a reload
//! applies one (the written configuration with the new addresses): requests in flight finish
//! on the old address, new ones go to the new one, the server keeps its name, counters and
//! health state, its checks move with it. A name gone for longer than `hold_nx` puts its
//! servers in maintenance until it resolves again; a resolver that does not answer changes
//! nothing.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use lb_core::{AdminState, Decision, Lookup, NameState};
use tokio::time::Instant;

use crate::config::Config;
use crate::control::AdminCommand;
use crate::observe::ProxyHandle;
use crate::resolve::Resolvers;

/// The resolution of a configuration's server names.
pub(crate) struct Discovery {
    /// The configuration as written: names, no addresses for them.
    written: Config,
    names: HashMap<String, NameState>,
    resolvers: Resolvers,
    /// Names whose servers discovery put in maintenance (and only discovery takes out).
    held_out: HashSet<String>,
    next: Instant,
}

/// What one round of resolution changed.
pub(crate) struct Round {
    /// The configuration to apply, when an address changed.
    pub(crate) changed: Option<Config>,
    /// `(name, into maintenance)` for names that went away or came back.
    pub(crate) maintenance: Vec<(String, bool)>,
}

fn resolvers_of(config: &Config) -> Resolvers {
    let timeout = config.global.resolve_timeout;
    if config.global.resolvers.is_empty() {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        Resolvers::from_resolv_conf(&text, timeout)
    } else {
        Resolvers {
            servers: config.global.resolvers.clone(),
            timeout,
        }
    }
}

impl Discovery {
    /// Resolves every name of `written`; the configuration to run, or why it cannot run.
    pub(crate) async fn start(written: Config) -> Result<(Discovery, Config), String> {
        let mut discovery = Discovery {
            resolvers: resolvers_of(&written),
            next: Instant::now() + written.global.resolve_interval,
            written: written.clone(),
            names: HashMap::new(),
            held_out: HashSet::new(),
        };
        let effective = discovery.adopt(written).await?;
        Ok((discovery, effective))
    }

    /// A reloaded configuration: names already known keep their state; new ones must resolve
    /// now. The configuration to apply, or why it is refused.
    pub(crate) async fn adopt(&mut self, written: Config) -> Result<Config, String> {
        let resolvers = resolvers_of(&written);
        let mut names = HashMap::new();
        let mut unresolved = Vec::new();
        for name in written.server_names() {
            let known = self.names.remove(&name);
            let state = match known {
                Some(state) if state.current().is_some() => state,
                _ => {
                    let mut state = NameState::new(None);
                    let lookup = resolvers.lookup(&name).await;
                    let decision =
                        state.observe(&lookup, std::time::Instant::now(), Duration::ZERO);
                    if !matches!(decision, Decision::Use(_)) {
                        unresolved.push(format!("{name} ({})", describe(&lookup)));
                    }
                    state
                }
            };
            names.insert(name, state);
        }
        if !unresolved.is_empty() {
            let asked: Vec<String> = resolvers.servers.iter().map(ToString::to_string).collect();
            return Err(format!(
                "cannot resolve {} (asked {}); fix the names or the resolvers",
                unresolved.join(", "),
                if asked.is_empty() {
                    "no resolver: /etc/resolv.conf lists none".to_owned()
                } else {
                    asked.join(", ")
                }
            ));
        }
        self.held_out.retain(|n| names.contains_key(n));
        self.names = names;
        self.resolvers = resolvers;
        self.written = written;
        Ok(self.effective())
    }

    /// Every name and the address it resolved to, sorted by name.
    pub(crate) fn addresses(&self) -> Vec<(String, IpAddr)> {
        let mut out: Vec<(String, IpAddr)> = self
            .names
            .iter()
            .filter_map(|(name, state)| Some((name.clone(), state.current()?)))
            .collect();
        out.sort();
        out
    }

    /// Whether there is anything to resolve.
    pub(crate) fn active(&self) -> bool {
        !self.names.is_empty()
    }

    /// The written configuration at the addresses in use.
    fn effective(&self) -> Config {
        let addresses: HashMap<String, IpAddr> = self
            .names
            .iter()
            .filter_map(|(name, state)| Some((name.clone(), state.current()?)))
            .collect();
        self.written.with_resolved(&addresses)
    }

    /// Waits for the next round, resolves every name and says what changed.
    pub(crate) async fn round(&mut self) -> Round {
        tokio::time::sleep_until(self.next).await;
        self.next = Instant::now() + self.written.global.resolve_interval;
        let hold_nx = self.written.global.hold_nx;
        let mut changed = false;
        let mut maintenance = Vec::new();
        let names: Vec<String> = self.names.keys().cloned().collect();
        for name in names {
            let lookup = self.resolvers.lookup(&name).await;
            let Some(state) = self.names.get_mut(&name) else {
                continue;
            };
            let before = state.current();
            let decision = state.observe(&lookup, std::time::Instant::now(), hold_nx);
            match decision {
                Decision::Use(addr) if Some(addr) != before => {
                    tracing::warn!(
                        "{name} now resolves to {addr} (was {}): its servers move there; requests in flight finish where they are",
                        before.map_or("unresolved".to_owned(), |b| b.to_string())
                    );
                    changed = true;
                }
                Decision::Maintenance if self.held_out.insert(name.clone()) => {
                    tracing::error!(
                        "{name} has not existed for {hold_nx:?} ({}): its servers go to maintenance until it resolves again",
                        describe(&lookup)
                    );
                    maintenance.push((name.clone(), true));
                }
                _ if matches!(lookup, Lookup::Failed) => tracing::warn!(
                    "cannot resolve {name}: no resolver answered; keeping {}",
                    before.map_or("no address".to_owned(), |b| b.to_string())
                ),
                _ => {}
            }
            if matches!(decision, Decision::Use(_)) && self.held_out.remove(&name) {
                tracing::warn!("{name} resolves again: its servers leave maintenance");
                maintenance.push((name.clone(), false));
            }
        }
        Round {
            changed: changed.then(|| self.effective()),
            maintenance,
        }
    }

    /// Puts the servers of `name` in (or takes them out of) maintenance.
    pub(crate) async fn set_maintenance(&self, handle: &ProxyHandle, name: &str, on: bool) {
        let state = if on {
            AdminState::Maint
        } else {
            AdminState::Ready
        };
        for pool in &self.written.pools {
            for server in pool
                .servers
                .iter()
                .filter(|s| s.host.as_deref() == Some(name))
            {
                let command = AdminCommand::SetState {
                    pool: pool.name.clone(),
                    server: server.name.clone(),
                    state,
                };
                if let Err(e) = handle.admin(command).await {
                    tracing::error!("cannot set {}/{} to {state:?}: {e}", pool.name, server.name);
                }
            }
        }
    }
}

fn describe(lookup: &Lookup) -> &'static str {
    match lookup {
        Lookup::Addresses(a) if a.is_empty() => "no address record",
        Lookup::Addresses(_) => "resolved",
        Lookup::NoSuchName => "NXDOMAIN",
        Lookup::Failed => "no resolver answered",
    }
}
