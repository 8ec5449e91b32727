//! The `[defaults]` section and the settings pools inherit from it and may override.

use std::time::Duration;

use super::Ctx;
use super::fields::{Reported, Section, Value};
use crate::config::Timeouts;

pub(super) const INHERITED_KEYS: &[&str] = &[
    "timeout_connect",
    "timeout_client",
    "timeout_server",
    "timeout_tunnel",
    "timeout_http_request",
    "timeout_queue",
    "maxconn",
    "maxconn_counts_tunnels",
    "retries",
    "redispatch",
    "retry_idempotent",
];

/// Settings of `[defaults]` that pools inherit and may override.
#[derive(Default)]
pub(super) struct Inherited {
    pub(super) connect: Option<Duration>,
    pub(super) client: Option<Duration>,
    pub(super) server: Option<Duration>,
    pub(super) tunnel: Option<Duration>,
    pub(super) http_request: Option<Duration>,
    pub(super) queue: Option<Duration>,
    pub(super) maxconn: Option<u32>,
    pub(super) maxconn_counts_tunnels: Option<bool>,
    pub(super) retries: Option<u32>,
    pub(super) redispatch: Option<bool>,
    pub(super) retry_idempotent: Option<bool>,
}

impl Inherited {
    /// `self` where set, else `defaults`.
    pub(super) fn over(&self, defaults: &Inherited) -> Inherited {
        Inherited {
            connect: self.connect.or(defaults.connect),
            client: self.client.or(defaults.client),
            server: self.server.or(defaults.server),
            tunnel: self.tunnel.or(defaults.tunnel),
            http_request: self.http_request.or(defaults.http_request),
            queue: self.queue.or(defaults.queue),
            maxconn: self.maxconn.or(defaults.maxconn),
            maxconn_counts_tunnels: self
                .maxconn_counts_tunnels
                .or(defaults.maxconn_counts_tunnels),
            retries: self.retries.or(defaults.retries),
            redispatch: self.redispatch.or(defaults.redispatch),
            retry_idempotent: self.retry_idempotent.or(defaults.retry_idempotent),
        }
    }

    pub(super) fn timeouts(&self) -> Timeouts {
        let base = Timeouts::default();
        let client = self.client.unwrap_or(base.client);
        let connect = self.connect.unwrap_or(base.connect);
        Timeouts {
            connect,
            // HAProxy's default: a request queues at most as long as a connect may take.
            queue: self.queue.unwrap_or(connect),
            client,
            server: self.server.unwrap_or(base.server),
            tunnel: self.tunnel.unwrap_or(base.tunnel),
            http_request: self.http_request.unwrap_or(client),
        }
    }
}

impl Ctx<'_> {
    pub(super) fn read_defaults(&mut self, value: &Value<'_>) -> Option<Inherited> {
        let s = self.section(value, "defaults", "[defaults]".to_owned(), INHERITED_KEYS)?;
        self.inherited(&s).ok()
    }

    pub(super) fn inherited(&mut self, s: &Section<'_, '_>) -> Result<Inherited, Reported> {
        let connect = self.duration(s, "timeout_connect", false);
        let client = self.duration(s, "timeout_client", false);
        let server = self.duration(s, "timeout_server", false);
        let tunnel = self.duration(s, "timeout_tunnel", false);
        let http_request = self.duration(s, "timeout_http_request", false);
        let queue = self.duration(s, "timeout_queue", false);
        let maxconn = self.integer(s, "maxconn", 0..=1_000_000, "; 0 means no limit");
        let maxconn_counts_tunnels = self.boolean(s, "maxconn_counts_tunnels");
        let retries = self.integer(s, "retries", 0..=100, "");
        let redispatch = self.boolean(s, "redispatch");
        let retry_idempotent = self.boolean(s, "retry_idempotent");
        Ok(Inherited {
            connect: connect?,
            client: client?,
            server: server?,
            tunnel: tunnel?,
            http_request: http_request?,
            queue: queue?,
            maxconn: maxconn?.and_then(|n| u32::try_from(n).ok()),
            maxconn_counts_tunnels: maxconn_counts_tunnels?,
            retries: retries?.and_then(|n| u32::try_from(n).ok()),
            redispatch: redispatch?,
            retry_idempotent: retry_idempotent?,
        })
    }
}
