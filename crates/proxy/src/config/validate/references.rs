//! Cross-references and duplicates: pool names used by frontends and routes, names that must
//! be unique, and listening addresses that only one listener may claim.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use super::Ctx;
use super::fields::list;
use crate::config::values::closest;

/// A pool name used by a frontend, checked once every pool is known.
pub(super) struct PoolRef {
    pub(super) name: String,
    pub(super) at: usize,
    pub(super) key: &'static str,
}

impl Ctx<'_> {
    /// Reports every reference to a pool the file does not define.
    pub(super) fn check_pool_refs(&mut self, pool_refs: &[PoolRef], pool_names: &HashSet<&str>) {
        for pool_ref in pool_refs {
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
    }

    /// Reports `name` if it was already seen in `seen`, else records it.
    pub(super) fn check_unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        kind: &str,
        name: &str,
        at: usize,
    ) {
        if let Some(line) = self.seen_before(seen, name, at) {
            self.error(
                at,
                format!("duplicate {kind} name `{name}`, already used on line {line}; {kind} names must be unique"),
            );
        }
    }

    /// The line where `key` was first recorded in `seen`; `None` if this is the first time,
    /// and then `at` is recorded for it.
    pub(super) fn seen_before(
        &self,
        seen: &mut HashMap<String, usize>,
        key: &str,
        at: usize,
    ) -> Option<usize> {
        match seen.get(key) {
            Some(&first) => Some(self.line_of(first)),
            None => {
                seen.insert(key.to_owned(), at);
                None
            }
        }
    }

    /// Records a listening address; two listeners on one address would fail at startup, so
    /// that is reported now.
    pub(super) fn listen(&mut self, addr: SocketAddr, at: usize, owner: String) {
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
