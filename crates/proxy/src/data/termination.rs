//! HAProxy's session termination state: two letters in the access log, the first saying who
//! or what ended the session, the second in which phase it was (HAProxy's configuration
//! manual, "Session state at disconnection"). `--` is a normal end.

use std::fmt;

/// What ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Nothing abnormal (`-`).
    Normal,
    /// The client aborted (`C`).
    ClientAbort,
    /// The server aborted, refused or answered something invalid (`S`).
    ServerAbort,
    /// The proxy refused the request (`P`): bad framing, forbidden, a local answer.
    Proxy,
    /// The client timed out (`c`: `timeout_client`, `timeout_tunnel`).
    ClientTimeout,
    /// The server timed out (`s`: `timeout_server`).
    ServerTimeout,
    /// The server was marked DOWN and its sessions shut (`D`: `shutdown-sessions`).
    Down,
    /// The proxy was stopping and closed it (`K`).
    Killed,
}

/// Where the session was when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// It ended normally (`-`).
    Done,
    /// Waiting for or reading the request (`R`).
    Request,
    /// Waiting in a queue for a server's `maxconn` (`Q`).
    Queue,
    /// Connecting to a server (`C`).
    Connect,
    /// Waiting for the response headers (`H`).
    Headers,
    /// Transferring data (`D`).
    Data,
}

/// A termination state, written as HAProxy's two letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Termination {
    pub(crate) cause: Cause,
    pub(crate) phase: Phase,
}

impl Termination {
    /// `--`: the session ended normally.
    pub(crate) const NORMAL: Self = Self::new(Cause::Normal, Phase::Done);
    /// `PR`: the proxy refused the request.
    pub(crate) const REFUSED: Self = Self::new(Cause::Proxy, Phase::Request);
    /// `cR`: the client did not send a complete request head within `timeout_client`.
    pub(crate) const CLIENT_TIMEOUT_REQUEST: Self = Self::new(Cause::ClientTimeout, Phase::Request);
    /// `PD`: the proxy refused the request's body (malformed framing).
    pub(crate) const REFUSED_BODY: Self = Self::new(Cause::Proxy, Phase::Data);
    /// `sQ`: `timeout_queue` passed while the request waited for a server.
    pub(crate) const QUEUE_TIMEOUT: Self = Self::new(Cause::ServerTimeout, Phase::Queue);
    /// `SC`: no server could be connected to (or none was available).
    pub(crate) const NO_SERVER: Self = Self::new(Cause::ServerAbort, Phase::Connect);
    /// `SH`: the server closed or failed before its response headers.
    pub(crate) const SERVER_NO_HEADERS: Self = Self::new(Cause::ServerAbort, Phase::Headers);
    /// `sH`: `timeout_server` before the response headers.
    pub(crate) const SERVER_TIMEOUT_HEADERS: Self = Self::new(Cause::ServerTimeout, Phase::Headers);
    /// `DH`: the server's sessions were shut while waiting for its headers.
    pub(crate) const DOWN_HEADERS: Self = Self::new(Cause::Down, Phase::Headers);
    /// `cD`: the client stopped sending or reading (`timeout_client`, `timeout_tunnel`).
    pub(crate) const CLIENT_TIMEOUT_DATA: Self = Self::new(Cause::ClientTimeout, Phase::Data);
    /// `CD`: the client went away during the data transfer.
    pub(crate) const CLIENT_ABORT_DATA: Self = Self::new(Cause::ClientAbort, Phase::Data);
    /// `SD`: the server failed during the data transfer.
    pub(crate) const SERVER_ABORT_DATA: Self = Self::new(Cause::ServerAbort, Phase::Data);
    /// `sD`: `timeout_server` during the data transfer.
    pub(crate) const SERVER_TIMEOUT_DATA: Self = Self::new(Cause::ServerTimeout, Phase::Data);
    /// `DD`: the server's sessions were shut during the data transfer (tunnels).
    pub(crate) const DOWN_DATA: Self = Self::new(Cause::Down, Phase::Data);
    /// `KD`: the proxy's stop closed it during the data transfer (tunnels).
    pub(crate) const KILLED_DATA: Self = Self::new(Cause::Killed, Phase::Data);

    pub(crate) const fn new(cause: Cause, phase: Phase) -> Self {
        Self { cause, phase }
    }

    /// Whether nothing abnormal was recorded.
    pub(crate) fn is_normal(self) -> bool {
        self.cause == Cause::Normal
    }

    /// HAProxy's two letters.
    pub(crate) fn letters(self) -> [char; 2] {
        let cause = match self.cause {
            Cause::Normal => '-',
            Cause::ClientAbort => 'C',
            Cause::ServerAbort => 'S',
            Cause::Proxy => 'P',
            Cause::ClientTimeout => 'c',
            Cause::ServerTimeout => 's',
            Cause::Down => 'D',
            Cause::Killed => 'K',
        };
        let phase = match self.phase {
            Phase::Done => '-',
            Phase::Request => 'R',
            Phase::Queue => 'Q',
            Phase::Connect => 'C',
            Phase::Headers => 'H',
            Phase::Data => 'D',
        };
        [cause, phase]
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b] = self.letters();
        write!(f, "{a}{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_haproxy_s_letters() {
        let cases = [
            (Termination::NORMAL, "--"),
            (Termination::REFUSED, "PR"),
            (Termination::REFUSED_BODY, "PD"),
            (Termination::NO_SERVER, "SC"),
            (Termination::QUEUE_TIMEOUT, "sQ"),
            (Termination::SERVER_NO_HEADERS, "SH"),
            (Termination::SERVER_TIMEOUT_HEADERS, "sH"),
            (Termination::DOWN_HEADERS, "DH"),
            (Termination::CLIENT_TIMEOUT_DATA, "cD"),
            (Termination::CLIENT_ABORT_DATA, "CD"),
            (Termination::SERVER_ABORT_DATA, "SD"),
            (Termination::SERVER_TIMEOUT_DATA, "sD"),
            (Termination::DOWN_DATA, "DD"),
            (Termination::KILLED_DATA, "KD"),
        ];
        for (t, letters) in cases {
            assert_eq!(t.to_string(), letters);
        }
        assert!(Termination::NORMAL.is_normal());
        assert!(!Termination::CLIENT_ABORT_DATA.is_normal());
    }
}
