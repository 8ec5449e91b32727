//! `server_template`: a pool's slots filled from a SRV name's records (target, port, weight),
//! as HAProxy's `server-template`. A record keeps its slot while it exists (its sticky cookie
//! and hash keys with it); records that appear take free slots, records that go empty theirs;
//! an empty slot is in maintenance. A failed lookup changes nothing; NXDOMAIN (or no record)
//! empties the slots after `hold_nx`.

use std::time::{Duration, Instant};

use lb_core::{Endpoint, Lookup, fill_slots};

use super::Maintenance;
use crate::config::Config;
use crate::resolve::{Resolvers, SrvLookup};

/// One pool's template.
pub(super) struct Template {
    pub(super) pool: String,
    pub(super) srv: String,
    /// The slots' server names, in order.
    pub(super) slots: Vec<String>,
    /// What fills each slot.
    pub(super) filled: Vec<Option<Endpoint>>,
    missing_since: Option<Instant>,
}

impl Template {
    /// The templates of `written`, keeping what `previous` had for the same pool, name and
    /// slots.
    pub(super) fn of(written: &Config, previous: &mut Vec<Template>) -> Vec<Template> {
        written
            .srv_templates()
            .into_iter()
            .map(|(pool, srv)| {
                let slots: Vec<String> = written
                    .pools
                    .iter()
                    .filter(|p| p.name == pool)
                    .flat_map(|p| p.servers.iter())
                    .filter(|s| s.srv.as_deref() == Some(srv.as_str()))
                    .map(|s| s.name.clone())
                    .collect();
                let kept = previous
                    .iter()
                    .position(|t| t.pool == pool && t.srv == srv && t.slots == slots)
                    .map(|i| previous.swap_remove(i));
                kept.unwrap_or_else(|| Template {
                    filled: vec![None; slots.len()],
                    pool,
                    srv,
                    slots,
                    missing_since: None,
                })
            })
            .collect()
    }

    /// Asks for the records again and fills the slots; the slots that changed between
    /// filled and empty, and whether anything changed (an address or weight too).
    pub(super) async fn refresh(
        &mut self,
        resolvers: &Resolvers,
        hold_nx: Duration,
    ) -> (bool, Vec<Maintenance>) {
        let endpoints = match resolvers.lookup_srv(&self.srv).await {
            SrvLookup::Records(records) => {
                self.missing_since = None;
                let mut endpoints = Vec::new();
                for record in records {
                    let addr = match resolvers.lookup(&record.target).await {
                        Lookup::Addresses(addrs) => addrs.into_iter().min(),
                        _ => None,
                    };
                    // A target that does not resolve now keeps the address it had.
                    let known = || {
                        self.filled
                            .iter()
                            .flatten()
                            .find(|e| e.target == record.target && e.port == record.port)
                    };
                    if let Some(addr) = addr.or_else(|| known().map(|e| e.addr)) {
                        endpoints.push(Endpoint {
                            target: record.target,
                            port: record.port,
                            weight: record.weight.clamp(1, 256),
                            addr,
                        });
                    } else {
                        tracing::warn!(
                            "{}: target {} does not resolve; its record is left out",
                            self.srv,
                            record.target
                        );
                    }
                }
                endpoints
            }
            SrvLookup::NoSuchName => {
                let since = *self.missing_since.get_or_insert_with(Instant::now);
                if since.elapsed() < hold_nx {
                    return (false, Vec::new());
                }
                Vec::new()
            }
            SrvLookup::Failed(why) => {
                tracing::warn!("cannot resolve {}: {why}; keeping its servers", self.srv);
                return (false, Vec::new());
            }
        };
        let filled = fill_slots(&self.filled, &endpoints);
        let changed = filled != self.filled;
        let mut transitions = Vec::new();
        for (i, (before, after)) in self.filled.iter().zip(&filled).enumerate() {
            match (before, after) {
                (None, Some(e)) => {
                    tracing::info!(
                        "{}/{}: {} of {} at {}:{} (weight {})",
                        self.pool,
                        self.slots[i],
                        e.target,
                        self.srv,
                        e.addr,
                        e.port,
                        e.weight
                    );
                    transitions.push(Maintenance {
                        pool: self.pool.clone(),
                        server: self.slots[i].clone(),
                        on: false,
                        reason: format!("{} of {}", e.target, self.srv),
                    });
                }
                (Some(e), None) => {
                    tracing::warn!(
                        "{}/{}: {} left {}; the slot goes to maintenance",
                        self.pool,
                        self.slots[i],
                        e.target,
                        self.srv
                    );
                    transitions.push(Maintenance {
                        pool: self.pool.clone(),
                        server: self.slots[i].clone(),
                        on: true,
                        reason: format!("{} left {}", e.target, self.srv),
                    });
                }
                _ => {}
            }
        }
        self.filled = filled;
        (changed, transitions)
    }

    /// The slots in `config` as filled: an endpoint's address, port, weight and target name;
    /// an empty slot unchecked, at weight 0 and no address.
    pub(super) fn apply(&self, config: &mut Config) {
        let Some(pool) = config.pools.iter_mut().find(|p| p.name == self.pool) else {
            return;
        };
        for (name, filled) in self.slots.iter().zip(&self.filled) {
            let Some(server) = pool.servers.iter_mut().find(|s| &s.name == name) else {
                continue;
            };
            match filled {
                Some(e) => {
                    server.addr = std::net::SocketAddr::new(e.addr, e.port);
                    server.weight = e.weight;
                    // `show servers state` names the target (`srv_fqdn`).
                    server.host = Some(e.target.clone());
                }
                None => {
                    server.addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
                    server.weight = 0;
                    server.check = false;
                    server.host = None;
                }
            }
        }
    }
}
