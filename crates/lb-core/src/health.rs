//! The health state machine of one server, with HAProxy's semantics and status strings.
//!
//! HAProxy keeps one counter, `health`, in `0..rise + fall`. A server is UP while
//! `health >= rise`. A failed check decrements it, and once it drops below `rise` it is reset
//! to 0 (DOWN); a passed check increments it, and once it reaches `rise` it jumps to
//! `rise + fall - 1` (fully UP). So from fully UP it takes `fall` failures to go DOWN, and
//! from DOWN `rise` successes to come back. A server starts at `health = rise`: UP, but one
//! failure away from DOWN until its first check passes.

use std::time::{Duration, Instant};

/// Outcome class of one health check, named as HAProxy's `check_status` column names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    /// Layer 4 connection established (no layer 7 check configured).
    L4Ok,
    /// Layer 4 connection timed out.
    L4Timeout,
    /// Layer 4 connection refused or reset.
    L4Connect,
    /// The socket could not be created.
    SocketError,
    /// Layer 7 response with an expected status.
    L7Ok,
    /// Layer 7 response did not arrive in time.
    L7Timeout,
    /// Layer 7 response was not valid HTTP.
    L7Response,
    /// Layer 7 response with an unexpected status.
    L7Status,
}

impl CheckStatus {
    /// The short name HAProxy prints in `show stat` (`L7OK`, `L4CON`, ...).
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::L4Ok => "L4OK",
            Self::L4Timeout => "L4TOUT",
            Self::L4Connect => "L4CON",
            Self::SocketError => "SOCKERR",
            Self::L7Ok => "L7OK",
            Self::L7Timeout => "L7TOUT",
            Self::L7Response => "L7RSP",
            Self::L7Status => "L7STS",
        }
    }

    /// HAProxy's description, used in its logs (`reason: Layer7 wrong status`).
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::L4Ok => "Layer4 check passed",
            Self::L4Timeout => "Layer4 timeout",
            Self::L4Connect => "Layer4 connection problem",
            Self::SocketError => "Socket error",
            Self::L7Ok => "Layer7 check passed",
            Self::L7Timeout => "Layer7 timeout",
            Self::L7Response => "Layer7 invalid response",
            Self::L7Status => "Layer7 wrong status",
        }
    }

    /// Whether this outcome counts as a passed check.
    #[must_use]
    pub const fn passed(self) -> bool {
        matches!(self, Self::L4Ok | Self::L7Ok)
    }
}

/// One health check's result, as the checker observed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckResult {
    /// Outcome class.
    pub status: CheckStatus,
    /// HTTP status code, when a response arrived.
    pub code: Option<u16>,
    /// How long the check took.
    pub duration: Duration,
}

impl CheckResult {
    /// A passed layer 7 check with status `code`.
    #[must_use]
    pub const fn ok(code: u16, duration: Duration) -> Self {
        Self {
            status: CheckStatus::L7Ok,
            code: Some(code),
            duration,
        }
    }

    /// A failed check.
    #[must_use]
    pub const fn failed(status: CheckStatus, code: Option<u16>, duration: Duration) -> Self {
        Self {
            status,
            code,
            duration,
        }
    }
}

/// Administrative state, set by an operator through the runtime API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum AdminState {
    /// Normal operation.
    #[default]
    Ready,
    /// No new traffic; clients already pinned by a sticky cookie are still served, and checks
    /// go on.
    Drain,
    /// Maintenance: no traffic at all, and check results are not counted.
    Maint,
}

/// Why a server was marked DOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The last active check failed this way.
    Check(CheckResult),
    /// `error_limit` consecutive connection failures observed on live traffic.
    Passive {
        /// Consecutive failures seen.
        consecutive_errors: u32,
    },
    /// An operator put the server in maintenance.
    Maintenance,
}

/// A change of a server's ability to take traffic, which the proxy must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The server left rotation: with `shutdown-sessions`, close its connections now.
    MarkedDown(DownReason),
    /// The server is back in rotation: slow start begins.
    MarkedUp,
}

/// The health of one server: the `health` counter, admin state and the counters HAProxy shows.
#[derive(Debug, Clone)]
pub struct Health {
    rise: u32,
    fall: u32,
    health: u32,
    checked: bool,
    admin: AdminState,
    error_limit: u32,
    consecutive_errors: u32,
    chkfail: u64,
    chkdown: u64,
    last_change: Instant,
    down_since: Option<Instant>,
    downtime: Duration,
    last_check: Option<CheckResult>,
}

impl Health {
    /// A server at process start: UP (`health = rise`), last changed at `now`.
    ///
    /// `checked` is false for servers without active checks (`no check`): they stay UP
    /// unless an operator or passive errors take them out. `error_limit` is the number of
    /// consecutive connection failures on live traffic that mark the server DOWN before the
    /// next active check would (0 disables passive health). `rise` and `fall` are at least 1.
    #[must_use]
    pub fn new(rise: u32, fall: u32, checked: bool, error_limit: u32, now: Instant) -> Self {
        let rise = rise.max(1);
        Self {
            rise,
            fall: fall.max(1),
            health: rise,
            checked,
            admin: AdminState::Ready,
            error_limit,
            consecutive_errors: 0,
            chkfail: 0,
            chkdown: 0,
            last_change: now,
            down_since: None,
            downtime: Duration::ZERO,
            last_check: None,
        }
    }

    fn full(&self) -> u32 {
        self.rise + self.fall - 1
    }

    /// Whether health checks say the server works (ignoring the admin state).
    #[must_use]
    pub fn is_up(&self) -> bool {
        self.health >= self.rise
    }

    /// Whether the server may receive new, unpinned traffic.
    #[must_use]
    pub fn takes_new_traffic(&self) -> bool {
        self.is_up() && self.admin == AdminState::Ready
    }

    /// Whether a client pinned to this server by a sticky cookie may still be sent to it:
    /// UP, and not in maintenance (DRAIN still serves its existing clients).
    #[must_use]
    pub fn takes_sticky_traffic(&self) -> bool {
        self.is_up() && self.admin != AdminState::Maint
    }

    /// Whether the server is in rotation at all (for counting "servers left").
    #[must_use]
    pub fn in_service(&self) -> bool {
        self.is_up() && self.admin != AdminState::Maint
    }

    /// Feeds one active check result. Results are ignored in MAINT, and for servers that are
    /// not checked.
    pub fn observe_check(&mut self, result: CheckResult, now: Instant) -> Option<Transition> {
        if !self.checked || self.admin == AdminState::Maint {
            return None;
        }
        self.last_check = Some(result);
        if result.status.passed() {
            self.consecutive_errors = 0;
            self.pass(now)
        } else {
            self.chkfail += 1;
            self.fail(DownReason::Check(result), now)
        }
    }

    /// Feeds the outcome of a connection attempt made for live traffic (passive health).
    ///
    /// `error_limit` consecutive failures mark the server DOWN at once (HAProxy's
    /// `observe layer4` with `on-error mark-down`), so it leaves rotation before the next
    /// active check notices. Only active checks bring it back: passive observations never
    /// raise `health`, because no traffic is sent to a DOWN server to observe.
    pub fn observe_traffic(&mut self, connected: bool, now: Instant) -> Option<Transition> {
        if connected {
            self.consecutive_errors = 0;
            return None;
        }
        if self.error_limit == 0 || self.admin == AdminState::Maint || !self.is_up() {
            return None;
        }
        self.consecutive_errors += 1;
        if self.consecutive_errors < self.error_limit {
            return None;
        }
        let reason = DownReason::Passive {
            consecutive_errors: self.consecutive_errors,
        };
        self.consecutive_errors = 0;
        self.chkfail += 1;
        self.health = 0;
        self.went_down(reason, now)
    }

    fn pass(&mut self, now: Instant) -> Option<Transition> {
        if self.health >= self.full() {
            return None;
        }
        let was_up = self.is_up();
        self.health += 1;
        if self.health >= self.rise {
            self.health = self.full();
        }
        if !was_up && self.is_up() {
            if let Some(since) = self.down_since.take() {
                self.downtime += now.saturating_duration_since(since);
            }
            self.last_change = now;
            return (self.admin != AdminState::Maint).then_some(Transition::MarkedUp);
        }
        None
    }

    fn fail(&mut self, reason: DownReason, now: Instant) -> Option<Transition> {
        if self.health == 0 {
            return None;
        }
        let was_up = self.is_up();
        self.health -= 1;
        if self.health < self.rise {
            self.health = 0;
        }
        if was_up && !self.is_up() {
            return self.went_down(reason, now);
        }
        None
    }

    fn went_down(&mut self, reason: DownReason, now: Instant) -> Option<Transition> {
        self.chkdown += 1;
        self.last_change = now;
        self.down_since = Some(now);
        Some(Transition::MarkedDown(reason))
    }

    /// Sets the admin state. Entering MAINT takes an UP server out of rotation
    /// (`MarkedDown(Maintenance)`); leaving it puts a server that checks consider UP back
    /// (`MarkedUp`, so slow start applies).
    pub fn set_admin(&mut self, admin: AdminState, now: Instant) -> Option<Transition> {
        let before = self.admin;
        if before == admin {
            return None;
        }
        self.admin = admin;
        self.last_change = now;
        match (before, admin) {
            (_, AdminState::Maint) if self.is_up() => {
                self.down_since = Some(now);
                Some(Transition::MarkedDown(DownReason::Maintenance))
            }
            (AdminState::Maint, _) if self.is_up() => {
                if let Some(since) = self.down_since.take() {
                    self.downtime += now.saturating_duration_since(since);
                }
                Some(Transition::MarkedUp)
            }
            _ => None,
        }
    }

    /// The same server under new `rise`/`fall`/`checked`/`error_limit` (a reload): it stays
    /// UP (fully) or DOWN, and keeps its admin state and counters.
    #[must_use]
    pub fn retuned(&self, rise: u32, fall: u32, checked: bool, error_limit: u32) -> Self {
        let mut h = self.clone();
        h.rise = rise.max(1);
        h.fall = fall.max(1);
        h.checked = checked;
        h.error_limit = error_limit;
        h.consecutive_errors = 0;
        h.health = if self.is_up() { h.full() } else { 0 };
        h
    }

    /// Current admin state.
    #[must_use]
    pub fn admin(&self) -> AdminState {
        self.admin
    }

    /// HAProxy's `status` string: `UP`, `UP 2/3`, `DOWN`, `DOWN 1/2`, `MAINT`, `DRAIN`,
    /// `DRAIN 1/3` or `no check`.
    #[must_use]
    pub fn status(&self) -> String {
        if self.admin == AdminState::Maint {
            return "MAINT".to_owned();
        }
        if self.is_up() {
            let going_down = self.checked && self.health < self.full();
            let progress = || format!("{}/{}", self.health - self.rise + 1, self.fall);
            return match (self.admin, going_down) {
                (AdminState::Drain, true) => format!("DRAIN {}", progress()),
                (AdminState::Drain, false) => "DRAIN".to_owned(),
                (_, true) => format!("UP {}", progress()),
                (_, false) if !self.checked => "no check".to_owned(),
                (_, false) => "UP".to_owned(),
            };
        }
        if self.checked && self.health > 0 {
            format!("DOWN {}/{}", self.health, self.rise)
        } else {
            "DOWN".to_owned()
        }
    }

    /// The raw `health` counter (`check_health` column).
    #[must_use]
    pub fn health(&self) -> u32 {
        self.health
    }

    /// `rise` (`check_rise` column).
    #[must_use]
    pub fn rise(&self) -> u32 {
        self.rise
    }

    /// `fall` (`check_fall` column).
    #[must_use]
    pub fn fall(&self) -> u32 {
        self.fall
    }

    /// Whether active checks run for this server.
    #[must_use]
    pub fn checked(&self) -> bool {
        self.checked
    }

    /// Failed checks, active and passive (`chkfail` column).
    #[must_use]
    pub fn chkfail(&self) -> u64 {
        self.chkfail
    }

    /// UP to DOWN transitions (`chkdown` column).
    #[must_use]
    pub fn chkdown(&self) -> u64 {
        self.chkdown
    }

    /// When the status last changed (`lastchg` is `now - last_change`).
    #[must_use]
    pub fn last_change(&self) -> Instant {
        self.last_change
    }

    /// Total time spent DOWN or in MAINT up to `now` (`downtime` column).
    #[must_use]
    pub fn downtime(&self, now: Instant) -> Duration {
        self.downtime
            + self
                .down_since
                .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    /// The last active check result, if any check ran.
    #[must_use]
    pub fn last_check(&self) -> Option<CheckResult> {
        self.last_check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ok() -> CheckResult {
        CheckResult::ok(200, MS)
    }

    fn bad() -> CheckResult {
        CheckResult::failed(CheckStatus::L7Status, Some(503), MS)
    }

    /// rise 2 / fall 3, starting fully UP after the first passed check: every step of the
    /// HAProxy transition table, with its status string and event.
    #[test]
    fn transition_table_rise2_fall3() {
        let t0 = Instant::now();
        let mut h = Health::new(2, 3, true, 0, t0);
        assert_eq!(h.status(), "UP 1/3", "starts at health = rise");
        assert_eq!(h.observe_check(ok(), t0), None);
        assert_eq!((h.health(), h.status().as_str()), (4, "UP"));

        let steps: &[(CheckResult, u32, &str, Option<Transition>)] = &[
            (bad(), 3, "UP 2/3", None),
            (bad(), 2, "UP 1/3", None),
            (ok(), 4, "UP", None),
            (bad(), 3, "UP 2/3", None),
            (bad(), 2, "UP 1/3", None),
            (
                bad(),
                0,
                "DOWN",
                Some(Transition::MarkedDown(DownReason::Check(bad()))),
            ),
            (bad(), 0, "DOWN", None),
            (ok(), 1, "DOWN 1/2", None),
            (bad(), 0, "DOWN", None),
            (ok(), 1, "DOWN 1/2", None),
            (ok(), 4, "UP", Some(Transition::MarkedUp)),
            (ok(), 4, "UP", None),
        ];
        for (i, (result, health, status, event)) in steps.iter().enumerate() {
            let got = h.observe_check(*result, t0 + MS * i as u32);
            assert_eq!(got, *event, "step {i}");
            assert_eq!(h.health(), *health, "step {i}");
            assert_eq!(h.status(), *status, "step {i}");
        }
        assert_eq!(h.chkdown(), 1);
        assert_eq!(h.chkfail(), 7);
    }

    #[test]
    fn maint_ignores_checks_and_drain_keeps_checking() {
        let t0 = Instant::now();
        let mut h = Health::new(2, 3, true, 0, t0);
        h.observe_check(ok(), t0);
        assert_eq!(
            h.set_admin(AdminState::Maint, t0),
            Some(Transition::MarkedDown(DownReason::Maintenance))
        );
        assert_eq!(h.status(), "MAINT");
        assert!(!h.takes_sticky_traffic());
        for _ in 0..5 {
            assert_eq!(h.observe_check(bad(), t0), None);
        }
        assert_eq!(h.chkfail(), 0, "checks in MAINT are not counted");
        assert_eq!(
            h.set_admin(AdminState::Drain, t0),
            Some(Transition::MarkedUp)
        );
        assert_eq!(h.status(), "DRAIN");
        assert!(!h.takes_new_traffic());
        assert!(h.takes_sticky_traffic());
        h.observe_check(bad(), t0);
        assert_eq!(h.status(), "DRAIN 2/3");
        assert_eq!(h.set_admin(AdminState::Ready, t0), None);
        assert_eq!(h.status(), "UP 2/3");
    }

    #[test]
    fn unchecked_server_says_no_check() {
        let t0 = Instant::now();
        let mut h = Health::new(2, 3, false, 0, t0);
        h.observe_check(bad(), t0);
        assert_eq!(h.status(), "no check");
        assert!(h.takes_new_traffic());
    }

    #[test]
    fn passive_errors_mark_down_after_limit_and_success_resets() {
        let t0 = Instant::now();
        let mut h = Health::new(2, 3, true, 3, t0);
        assert_eq!(h.observe_traffic(false, t0), None);
        assert_eq!(h.observe_traffic(false, t0), None);
        assert_eq!(h.observe_traffic(true, t0), None);
        assert_eq!(h.observe_traffic(false, t0), None);
        assert_eq!(h.observe_traffic(false, t0), None);
        assert_eq!(
            h.observe_traffic(false, t0),
            Some(Transition::MarkedDown(DownReason::Passive {
                consecutive_errors: 3
            }))
        );
        assert_eq!(h.status(), "DOWN");
        assert_eq!(h.chkdown(), 1);
        // Active checks bring it back; passive success alone does not.
        assert_eq!(h.observe_traffic(true, t0), None);
        assert!(!h.is_up());
        h.observe_check(ok(), t0);
        assert_eq!(h.observe_check(ok(), t0), Some(Transition::MarkedUp));
    }

    #[test]
    fn downtime_and_last_change_follow_the_clock() {
        let t0 = Instant::now();
        let mut h = Health::new(1, 1, true, 0, t0);
        let down_at = t0 + Duration::from_secs(10);
        assert!(matches!(
            h.observe_check(bad(), down_at),
            Some(Transition::MarkedDown(_))
        ));
        assert_eq!(h.last_change(), down_at);
        assert_eq!(
            h.downtime(down_at + Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        let up_at = down_at + Duration::from_secs(7);
        assert_eq!(h.observe_check(ok(), up_at), Some(Transition::MarkedUp));
        assert_eq!(
            h.downtime(up_at + Duration::from_secs(100)),
            Duration::from_secs(7)
        );
    }
}
