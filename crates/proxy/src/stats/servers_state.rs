//! `show servers state`: HAProxy's format version 1, as `server-state-file` reads it.
//!
//! [`render`] is pure: a snapshot in, text out.

use std::fmt::Write as _;

use lb_core::AdminState;

use super::StatsSnapshot;
use super::csv::{check_status_number, pool_iid, sid_of};

/// The column line that follows the version line.
pub const HEADER: &str = "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state \
srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result \
srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn \
srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port";

/// HAProxy's `srv_admin_state` bits.
const ADMF_FMAINT: u8 = 0x01;
const ADMF_FDRAIN: u8 = 0x08;
/// HAProxy's `srv_check_state` bits.
const CHK_ST_CONFIGURED: u8 = 0x02;
const CHK_ST_ENABLED: u8 = 0x04;
const CHK_ST_PAUSED: u8 = 0x08;

/// Renders `show servers state [<backend>]` for a proxy with `frontends` frontends (they
/// take the first `be_id`s). Unknown `backend`: HAProxy's `Can't find backend.` answer.
/// Every answer ends with the runtime API's empty line.
#[must_use]
pub fn render(frontends: usize, snapshot: &StatsSnapshot, backend: Option<&str>) -> String {
    if let Some(name) = backend
        && !snapshot.pools.iter().any(|p| p.name == name)
    {
        return "Can't find backend.\n\n".to_owned();
    }
    let mut out = format!("1\n{HEADER}\n");
    for (i, pool) in snapshot.pools.iter().enumerate() {
        if backend.is_some_and(|name| name != pool.name) {
            continue;
        }
        for s in &pool.servers {
            let op_state = if s.admin == AdminState::Maint || !s.up {
                0 // stopped
            } else if s.throttle.is_some() {
                1 // starting: slow start
            } else {
                2 // running
            };
            let admin_state = match s.admin {
                AdminState::Ready => 0,
                AdminState::Drain => ADMF_FDRAIN,
                AdminState::Maint => ADMF_FMAINT,
            };
            let config = pool.settings.server(&s.name);
            let initial_weight = config.map_or(s.weight, |c| c.weight);
            // A server written `name:port`, or the target of the SRV record filling a
            // template slot; and that SRV name.
            let fqdn = config.and_then(|c| c.host.as_deref()).unwrap_or("-");
            let srv_record = config.and_then(|c| c.srv.as_deref()).unwrap_or("-");
            let (check_status, check_result) = match (s.checked, s.last_check) {
                (false, _) => (0, 0),
                (true, None) => (1, 0), // HCHK_STATUS_INI, CHK_RES_UNKNOWN
                (true, Some(c)) => (
                    check_status_number(c.status),
                    if c.status.passed() { 3 } else { 2 },
                ),
            };
            let check_state = match (s.checked, s.admin) {
                (false, _) => 0,
                (true, AdminState::Maint) => CHK_ST_CONFIGURED | CHK_ST_ENABLED | CHK_ST_PAUSED,
                (true, _) => CHK_ST_CONFIGURED | CHK_ST_ENABLED,
            };
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{} {} {} {} {} {op_state} {admin_state} {} {initial_weight} {} {check_status} \
                 {check_result} {} {check_state} 0 0 0 {fqdn} {} {srv_record} 0 0 - - 0",
                pool_iid(frontends, i),
                pool.name,
                sid_of(s),
                s.name,
                s.addr.ip(),
                s.weight,
                s.last_change.as_secs(),
                s.health,
                s.addr.port(),
            );
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::fixture;

    /// HAProxy 2.6.12's answer in the fixture's state, except `be_id` (HAProxy counts its
    /// internal proxies: 3 there, 2 here).
    const HAPROXY: &str = "1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
2 api_pool 1 backend-api-1 127.0.0.1 1 0 1 1 2 15 3 4 6 0 0 0 - 36191 - 0 0 - - 0
2 api_pool 2 backend-api-2 127.0.0.1 0 0 5 5 7 8 2 0 6 0 0 0 - 53581 - 0 0 - - 0

";

    #[test]
    fn matches_haproxy_format_version_1() {
        let (frontends, snapshot) = fixture::snapshot();
        assert_eq!(render(frontends.len(), &snapshot, None), HAPROXY);
        assert_eq!(
            render(frontends.len(), &snapshot, Some("api_pool")),
            HAPROXY
        );
    }

    #[test]
    fn admin_states_and_unknown_backend() {
        let (frontends, mut snapshot) = fixture::snapshot();
        snapshot.pools[0].servers[0].admin = AdminState::Maint;
        snapshot.pools[0].servers[1].admin = AdminState::Drain;
        let text = render(frontends.len(), &snapshot, None);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(2)
            .filter(|l| !l.is_empty())
            .map(|l| l.split(' ').collect())
            .collect();
        // op_state, admin_state, check_state
        assert_eq!((rows[0][5], rows[0][6], rows[0][13]), ("0", "1", "14"));
        assert_eq!((rows[1][6], rows[1][13]), ("8", "6"));
        assert_eq!(
            render(frontends.len(), &snapshot, Some("nope")),
            "Can't find backend.\n\n"
        );
    }
}
