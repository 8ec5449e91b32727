//! Passive health: what live traffic tells the control plane about a server.
//!
//! The data plane only reports; the control plane feeds each report to lb-core, which
//! decides whether the server is marked DOWN (HAProxy's `observe layer4` with
//! `on-error mark-down`). Reports go through an unbounded channel: sending never waits, and
//! a failed connection costs one message, a successful one nothing unless it follows a
//! failure.

use lb_core::ServerId;
use tokio::sync::mpsc;

/// One connection attempt to a server, made for live traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrafficReport {
    /// The pool's stable id (`PoolSlot::id`).
    pub(crate) pool: usize,
    /// The server's slot in the pool.
    pub(crate) server: ServerId,
    /// Whether the connection was established.
    pub(crate) connected: bool,
}

/// Where the data plane sends [`TrafficReport`]s; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PassiveReports {
    tx: mpsc::UnboundedSender<TrafficReport>,
}

impl PassiveReports {
    /// A sender and the receiver the control plane reads.
    pub(crate) fn channel() -> (Self, mpsc::UnboundedReceiver<TrafficReport>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    /// Reports one attempt; dropped silently when the control plane has stopped.
    pub(crate) fn report(&self, report: TrafficReport) {
        let _ = self.tx.send(report);
    }
}
