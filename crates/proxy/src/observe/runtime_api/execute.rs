//! Running a parsed command against the proxy and writing HAProxy's answer.

use std::sync::atomic::Ordering;

use crate::control::{AdminCommand, AdminError, WeightChange};
use crate::data::ratelimit::RateTable;
use crate::observe::source::StatsSource;
use crate::stats::{StatsSnapshot, csv, servers_state, typed};

use super::command::{Command, Format, help, reply, unknown};

const STOPPING: &str = "The proxy is shutting down.";

/// Runs one command and returns its answer, empty line included.
pub(crate) async fn execute(command: Command, source: &StatsSource) -> String {
    match command {
        Command::Help(words) => help(&words),
        Command::Unknown(words) => unknown(&words),
        Command::Reply(text) => reply(text),
        // The session's own commands, answered by the session.
        Command::Quit
        | Command::Prompt
        | Command::SetTimeout(_)
        | Command::LowerLevel(_)
        | Command::ShowLevel => String::new(),
        Command::ShowInfo(format) => match source.report().await {
            Some(report) => {
                let info = source.process_info(&report);
                match format {
                    Format::Text => info.render(),
                    Format::Typed => info.render_typed(),
                    Format::Json => info.render_json(),
                }
            }
            None => reply(STOPPING),
        },
        Command::ShowStat(filter, format) => match source.report().await {
            Some(r) if format == Format::Text => {
                csv::render(&r.frontends, &r.snapshot, r.now_unix, &filter)
            }
            Some(r) => {
                let rows = csv::cells(&r.frontends, &r.snapshot, r.now_unix, &filter);
                if format == Format::Json {
                    typed::stat_json(&rows)
                } else {
                    typed::stat_typed(&rows)
                }
            }
            None => reply(STOPPING),
        },
        Command::ClearCounters { all } => match source.report().await {
            Some(r) => {
                let pools = r.snapshot.pools.iter();
                let counters = r
                    .frontends
                    .iter()
                    .map(|f| &f.counters)
                    .chain(pools.flat_map(|p| {
                        std::iter::once(&p.counters).chain(p.servers.iter().map(|s| &s.counters))
                    }));
                for c in counters.chain(std::iter::once(&source.handle.process)) {
                    if all { c.clear_all() } else { c.clear_maxima() }
                }
                "\n".to_owned()
            }
            None => reply(STOPPING),
        },
        Command::ShowTable(name) => tables(source, name.as_deref()),
        Command::Upgrade => {
            let Some(daemon) = source.handle.upgrades.get() else {
                return reply(
                    "Upgrades are only available to a veza-lb started with `veza-lb run`.",
                );
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            if daemon.send(tx).await.is_err() {
                return reply(STOPPING);
            }
            match rx.await {
                Ok(Ok(done)) => reply(done),
                Ok(Err(why)) => reply(format!("Upgrade failed: {why}")),
                Err(_) => reply(STOPPING),
            }
        }
        Command::SetStandby(on) => standby(source, Some(on)),
        Command::ShowStandby => standby(source, None),
        Command::ShowServersState(backend) => match source.report().await {
            Some(r) => servers_state::render(r.frontends.len(), &r.snapshot, backend.as_deref()),
            None => reply(STOPPING),
        },
        Command::GetWeight { pool, server } => match source.report().await {
            Some(r) => match weights(&r.snapshot, &pool, &server) {
                Ok((current, initial)) => reply(format!("{current} (initial {initial})")),
                Err(e) => reply(e),
            },
            None => reply(STOPPING),
        },
        Command::SetState(admin) => match source.handle.admin(admin).await {
            Ok(()) => "\n".to_owned(),
            Err(e) => reply(e),
        },
        Command::SetWeight {
            pool,
            server,
            weight,
        } => {
            // HAProxy's relative weights are a share of the initial weight, capped at 256.
            let absolute = match weight {
                WeightChange::Absolute(w) => Ok(w),
                WeightChange::Percent(pct) => match source.report().await {
                    Some(r) => weights(&r.snapshot, &pool, &server).map(|(_, initial)| {
                        (u32::from(initial) * pct / 100).min(u32::from(lb_core::MAX_WEIGHT))
                    }),
                    None => Err(AdminError::Stopped),
                },
            };
            let done = match absolute {
                Ok(w) => {
                    source
                        .handle
                        .admin(AdminCommand::SetWeight {
                            pool,
                            server,
                            weight: WeightChange::Absolute(w),
                        })
                        .await
                }
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => "\n".to_owned(),
                Err(e) => reply(e),
            }
        }
    }
}

/// `set standby on|off` (`Some`) and `show standby`: the state after the command, and what
/// it means for connections.
fn standby(source: &StatsSource, set: Option<bool>) -> String {
    let standby = &source.handle.standby;
    match set {
        Some(true) => {
            standby.enter();
        }
        Some(false) => {
            standby.leave();
        }
        None => {}
    }
    reply(if standby.is_on() {
        "Standby: on. Every connection closes after its next answer (an idle one at the end of \
         drain_window; HTTP/2 gets GOAWAY); listeners still accept."
    } else {
        "Standby: off. Connections keep alive."
    })
}

/// `show table`: one line per table (HAProxy's layout); with a name, that table's entries,
/// most active first: `key=`, the rate over the table's period, and its limit.
fn tables(source: &StatsSource, name: Option<&str>) -> String {
    let tables = source.handle.tables.load();
    let head = |t: &RateTable| {
        format!(
            "# table: {}, type: ip, size:{}, used:{}, limit: {} per {}s, denied:{}, untracked:{}\n",
            t.name,
            t.limit.table_size,
            t.len(),
            t.limit.requests,
            t.limit.per.as_secs_f64(),
            t.denied.load(Ordering::Relaxed),
            t.untracked.load(Ordering::Relaxed),
        )
    };
    let Some(name) = name else {
        return reply(
            tables
                .iter()
                .map(|t| head(t))
                .collect::<String>()
                .trim_end(),
        );
    };
    let Some(table) = tables.iter().find(|t| t.name == name) else {
        return reply("No such table");
    };
    let mut out = head(table);
    let per_ms = table.limit.per.as_millis();
    for (i, (ip, rate)) in table.entries().iter().enumerate() {
        out.push_str(&format!("{i}: key={ip} http_req_rate({per_ms})={rate}\n"));
    }
    out.push('\n');
    out
}

/// A server's current and initial (configured) weight.
fn weights(snapshot: &StatsSnapshot, pool: &str, server: &str) -> Result<(u16, u16), AdminError> {
    let p = snapshot
        .pools
        .iter()
        .find(|p| p.name == pool)
        .ok_or(AdminError::NoSuchPool)?;
    let s = p
        .servers
        .iter()
        .find(|s| s.name == server)
        .ok_or(AdminError::NoSuchServer)?;
    let initial = p.settings.server(server).map_or(s.weight, |c| c.weight);
    Ok((s.weight, initial))
}
