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
            retries: self.retries.or(defaults.retries),
            redispatch: self.redispatch.or(defaults.redispatch),
            retry_idempotent: self.retry_idempotent.or(defaults.retry_idempotent),
        }
    }

    pub(super) fn timeouts(&self) -> Timeouts {
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
}
