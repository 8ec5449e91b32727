//! Servers found by DNS (service discovery, as HAProxy's `resolvers`): servers written
//! `name:port`, and pools' `server_template` slots filled from SRV records (`srv`). Every name
//! is resolved before the first bind (a server name that does not resolve stops the start, as
//! HAProxy's default `init-addr` does; an empty SRV name only leaves its slots empty), then
//! again every `resolve_interval`. What each answer means is `lb_core::discovery`'s decision;
//! a changed address is applied exactly as a reload applies one (the written configuration
//! with the addresses in use): requests in flight finish on the old address, new ones go to
//! the new one, the server keeps its name, counters and health state, its checks move with
//! it. A name gone for longer than `hold_nx` puts its servers in maintenance until it
//! resolves again, an empty template slot is in maintenance; a resolver that does not answer
//! changes nothing.

mod srv;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use lb_core::{AdminState, Decision, Lookup, NameState};
use tokio::time::Instant;

use crate::config::Config;
use crate::control::AdminCommand;
use crate::observe::ProxyHandle;
use crate::resolve::{Failure, Resolvers};
use srv::Template;

/// A server discovery puts in maintenance or takes out of it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Maintenance {
    pub(crate) pool: String,
    pub(crate) server: String,
    /// Into maintenance (`true`) or out of it.
    pub(crate) on: bool,
    /// Why, in HAProxy's words where it has some (`DNS NX status`, `resolves again`).
    pub(crate) reason: String,
}

/// The resolution of a configuration's server names and SRV names.
pub(crate) struct Discovery {
    /// The configuration as written: names, no addresses for them.
    written: Config,
    names: HashMap<String, NameState>,
    templates: Vec<Template>,
    resolvers: Resolvers,
    /// Names whose servers discovery put in maintenance (and only discovery takes out).
    held_out: HashSet<String>,
    /// Maintenance changes not applied yet (slots found empty at start or on a reload).
    pending: Vec<Maintenance>,
    next: Instant,
}

/// What one round of resolution changed.
pub(crate) struct Round {
    /// The configuration to apply, when an address or weight changed.
    pub(crate) changed: Option<Config>,
    /// Servers going into or out of maintenance.
    pub(crate) maintenance: Vec<Maintenance>,
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
            templates: Vec::new(),
            held_out: HashSet::new(),
            pending: Vec::new(),
        };
        let effective = discovery.adopt(written).await?;
        Ok((discovery, effective))
    }

    /// A reloaded configuration: names and templates already known keep their state; new
    /// names must resolve now, new templates are filled now. The configuration to apply, or
    /// why it is refused.
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
                    let (lookup, failure) = resolvers.lookup_why(&name).await;
                    let now = std::time::Instant::now();
                    if !matches!(
                        state.observe(&lookup, now, Duration::ZERO),
                        Decision::Use(_)
                    ) {
                        let why =
                            failure.map_or_else(|| describe(&lookup).to_owned(), |f| f.to_string());
                        unresolved.push(format!("{name} ({why})"));
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
        let mut templates = Template::of(&written, &mut self.templates);
        for template in &mut templates {
            if template.filled.iter().all(Option::is_none) {
                template.refresh(&resolvers, written.global.hold_nx).await;
            }
            // Every empty slot starts (again) in maintenance: a reload may have brought
            // the slot back as a new server.
            for (name, filled) in template.slots.iter().zip(&template.filled) {
                if filled.is_none() {
                    self.pending.push(Maintenance {
                        pool: template.pool.clone(),
                        server: name.clone(),
                        on: true,
                        reason: format!("no record of {} fills the slot", template.srv),
                    });
                }
            }
        }
        self.held_out.retain(|n| names.contains_key(n));
        self.names = names;
        self.templates = templates;
        self.resolvers = resolvers;
        self.written = written;
        Ok(self.effective())
    }

    /// Maintenance changes to apply now that the proxy runs the configuration.
    pub(crate) fn take_pending(&mut self) -> Vec<Maintenance> {
        std::mem::take(&mut self.pending)
    }

    /// Every name and the address it resolved to, sorted by name.
    pub(crate) fn addresses(&self) -> Vec<(String, IpAddr)> {
        let mut out: Vec<(String, IpAddr)> = self
            .names
            .iter()
            .filter_map(|(name, state)| Some((name.clone(), state.current()?)))
            .collect();
        for template in &self.templates {
            for (slot, filled) in template.slots.iter().zip(&template.filled) {
                if let Some(e) = filled {
                    out.push((
                        format!("{} ({}/{slot}, port {})", e.target, template.srv, e.port),
                        e.addr,
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// Whether there is anything to resolve.
    pub(crate) fn active(&self) -> bool {
        !self.names.is_empty() || !self.templates.is_empty()
    }

    /// The written configuration at the addresses in use.
    fn effective(&self) -> Config {
        let addresses: HashMap<String, IpAddr> = self
            .names
            .iter()
            .filter_map(|(name, state)| Some((name.clone(), state.current()?)))
            .collect();
        let mut config = self.written.with_resolved(&addresses);
        for template in &self.templates {
            template.apply(&mut config);
        }
        config
    }

    /// The servers written with `name`, as maintenance changes for `reason`.
    fn servers_named(&self, name: &str, on: bool, reason: &str) -> Vec<Maintenance> {
        self.written
            .pools
            .iter()
            .flat_map(|p| p.servers.iter().map(move |s| (p, s)))
            .filter(|(_, s)| s.host.as_deref() == Some(name))
            .map(|(p, s)| Maintenance {
                pool: p.name.clone(),
                server: s.name.clone(),
                on,
                reason: reason.to_owned(),
            })
            .collect()
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
            let (lookup, failure) = self.resolvers.lookup_why(&name).await;
            let Some(state) = self.names.get_mut(&name) else {
                continue;
            };
            let before = state.current();
            let decision = state.observe(&lookup, std::time::Instant::now(), hold_nx);
            match decision {
                Decision::Use(addr) if Some(addr) != before => {
                    tracing::info!(
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
                    let reason = format!("{name}: {}", describe(&lookup));
                    maintenance.extend(self.servers_named(&name, true, &reason));
                }
                _ if matches!(lookup, Lookup::Failed) => tracing::warn!(
                    "cannot resolve {name}: {}; keeping {}",
                    failure.unwrap_or(Failure::NoAnswer),
                    before.map_or("no address".to_owned(), |b| b.to_string())
                ),
                _ => {}
            }
            if matches!(decision, Decision::Use(_)) && self.held_out.remove(&name) {
                tracing::info!("{name} resolves again: its servers leave maintenance");
                let reason = format!("{name} resolves again");
                maintenance.extend(self.servers_named(&name, false, &reason));
            }
        }
        for template in &mut self.templates {
            let (moved, transitions) = template.refresh(&self.resolvers, hold_nx).await;
            changed |= moved;
            maintenance.extend(transitions);
        }
        Round {
            changed: changed.then(|| self.effective()),
            maintenance,
        }
    }

    /// Puts servers in (or takes them out of) maintenance.
    pub(crate) async fn set_maintenance(handle: &ProxyHandle, changes: Vec<Maintenance>) {
        for Maintenance {
            pool,
            server,
            on,
            reason,
        } in changes
        {
            let state = if on {
                AdminState::Maint
            } else {
                AdminState::Ready
            };
            let command = AdminCommand::Discovered {
                pool: pool.clone(),
                server: server.clone(),
                state,
                reason,
            };
            if let Err(e) = handle.admin(command).await {
                tracing::error!("cannot set {pool}/{server} to {state:?}: {e}");
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
