//! The runtime API's commands: parsing one command into a [`Command`], the access level
//! each needs, and the help texts, in HAProxy's words.

use std::time::Duration;

use lb_core::AdminState;

use crate::config::{AccessLevel, parse_duration};
use crate::control::{AdminCommand, WeightChange};
use crate::stats::csv::Filter;

/// How `show stat` and `show info` lay out their answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    /// CSV (`show stat`), `Key: value` lines (`show info`).
    #[default]
    Text,
    /// `typed`: one value per line with its position, tags and type.
    Typed,
    /// `json`: the typed values as JSON.
    Json,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Help(Vec<String>),
    ShowInfo(Format),
    ShowStat(Filter, Format),
    ShowServersState(Option<String>),
    /// `clear counters [all]`.
    ClearCounters {
        all: bool,
    },
    GetWeight {
        pool: String,
        server: String,
    },
    SetState(AdminCommand),
    SetWeight {
        pool: String,
        server: String,
        weight: WeightChange,
    },
    Quit,
    /// `prompt`: toggles interactive mode.
    Prompt,
    /// `set timeout cli <delay>`: the session's idle timeout.
    SetTimeout(Duration),
    /// `operator`, `user`: lowers the session's level.
    LowerLevel(AccessLevel),
    /// `show cli level`.
    ShowLevel,
    /// `show table [<name>]`: the rate-limit tables, or one table's entries.
    ShowTable(Option<String>),
    /// `upgrade`: start the executable now at veza-lb's path and hand it the listeners.
    Upgrade,
    /// `set standby on|off`: connections close after their next answer (`true`), or keep
    /// alive again.
    SetStandby(bool),
    /// `show standby`.
    ShowStandby,
    /// Answer this text (a usage error found while parsing).
    Reply(String),
    /// Not a command: answer the help list.
    Unknown(Vec<String>),
}

/// The level a session needs to run `command` (HAProxy's: reads for everyone, clearing the
/// maxima for operators, every change of state for admins). As in HAProxy, the level is
/// checked before the arguments: a `disable server` without its server is refused, not
/// corrected, below admin.
pub(crate) fn required_level(command: &str) -> AccessLevel {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words[..] {
        ["disable" | "enable", "server", ..]
        | ["set", "server" | "weight", ..]
        | ["clear", "counters", "all", ..]
        | ["set", "standby", ..]
        | ["upgrade", ..] => AccessLevel::Admin,
        ["clear", "counters", ..] => AccessLevel::Operator,
        _ => AccessLevel::User,
    }
}

/// The command list, as `help` prints it (HAProxy's layout: name padded to 40 columns).
const HELP: &[(&str, &str)] = &[
    (
        "clear counters [all]",
        "clear max statistics counters (or all counters)",
    ),
    (
        "disable server <bk>/<srv>",
        "disable a server for maintenance (same as 'set server <bk>/<srv> state maint')",
    ),
    (
        "enable server <bk>/<srv>",
        "enable a disabled server (same as 'set server <bk>/<srv> state ready')",
    ),
    ("get weight <bk>/<srv>", "report a server's current weight"),
    (
        "set server <bk>/<srv> [opts]",
        "change a server's state (state ready|drain|maint) or weight (weight <w>[%])",
    ),
    (
        "set weight <bk>/<srv> <w>[%]",
        "change a server's weight (same as 'set server <bk>/<srv> weight')",
    ),
    (
        "operator",
        "lower the level of the current CLI session to operator",
    ),
    (
        "set standby on|off",
        "close every connection after its next answer (before an LB pair's address moves)",
    ),
    ("set timeout [cli] <delay>", "change a timeout setting"),
    (
        "show cli level",
        "display the level of the current CLI session",
    ),
    (
        "show info [json|typed]*",
        "report information about the running process",
    ),
    (
        "show servers state [<backend>]",
        "dump volatile server information (all or for a single backend)",
    ),
    (
        "show standby",
        "report whether connections close after their next answer",
    ),
    (
        "show table [<name>]",
        "report table usage stats or dump this table's contents",
    ),
    (
        "show stat [json|no-maint|typed|up]*",
        "report counters for each proxy and server (also [{<iid>|<proxy>} <type> <sid>])",
    ),
    (
        "upgrade",
        "replace the running binary with the one now at its path, without refusing a connection",
    ),
    ("user", "lower the level of the current CLI session to user"),
    ("help [<command>]", "list matching or all commands"),
    ("prompt", "toggle interactive mode with prompt"),
    ("quit", "disconnect"),
];

fn help_lines<'a>(entries: impl Iterator<Item = &'a (&'a str, &'a str)>) -> String {
    entries
        .map(|(usage, what)| format!("  {usage:<40}: {what}\n"))
        .collect()
}

pub(super) fn help(words: &[String]) -> String {
    let matching: Vec<_> = HELP
        .iter()
        .filter(|(usage, _)| usage.split(' ').zip(words).all(|(u, w)| u == w.as_str()))
        .collect();
    if words.is_empty() || matching.is_empty() {
        format!(
            "The following commands are valid at this level:\n{}\n",
            help_lines(HELP.iter())
        )
    } else {
        format!(
            "The following commands are valid at this level:\n{}\n",
            help_lines(matching.into_iter())
        )
    }
}

pub(super) fn unknown(words: &[String]) -> String {
    let first = words.first().map(String::as_str);
    let near: Vec<_> = HELP
        .iter()
        .filter(|(usage, _)| first.is_some() && usage.split(' ').next() == first)
        .collect();
    if near.is_empty() {
        format!(
            "Unknown command. Please enter one of the following commands only:\n{}\n",
            help_lines(HELP.iter())
        )
    } else {
        format!(
            "Unknown command, but maybe one of the following ones is a better match:\n{}\n",
            help_lines(near.into_iter())
        )
    }
}

const REQUIRE_SERVER: &str = "Require 'backend/server'.";

fn pool_server(arg: Option<&String>) -> Result<(String, String), Command> {
    arg.and_then(|a| a.split_once('/'))
        .filter(|(p, s)| !p.is_empty() && !s.is_empty())
        .map(|(p, s)| (p.to_owned(), s.to_owned()))
        .ok_or_else(|| Command::Reply(REQUIRE_SERVER.to_owned()))
}

/// HAProxy's weight syntax: `N` (0..=256) or `N%` of the initial weight.
fn parse_weight(text: Option<&String>) -> Result<WeightChange, Command> {
    let text = text.map_or("", String::as_str);
    let digits_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(text.len(), |(i, _)| i);
    let (number, rest) = text.split_at(digits_end);
    let reply = |s: &str| Command::Reply(s.to_owned());
    let Ok(value) = number.parse::<i64>() else {
        return Err(reply("Empty weight string empty or preceded by garbage"));
    };
    match rest {
        "%" if value < 0 => Err(reply("Relative weight must be positive.")),
        "%" => Ok(WeightChange::Percent(value.min(25_600) as u32)),
        _ if !(0..=i64::from(lb_core::MAX_WEIGHT)).contains(&value) => Err(reply(
            "Absolute weight can only be between 0 and 256 inclusive.",
        )),
        "" => Ok(WeightChange::Absolute(value as u32)),
        _ => Err(reply("Trailing garbage in weight string")),
    }
}

/// `set timeout cli <delay>`: seconds by default, or with a unit (`500ms`, `1m`).
fn parse_timeout(args: &[&str]) -> Command {
    match args {
        ["cli", delay, ..] => {
            let parsed = if delay.bytes().all(|b| b.is_ascii_digit()) {
                delay.parse::<u64>().map(Duration::from_secs).ok()
            } else {
                parse_duration(delay).ok()
            };
            match parsed {
                Some(d) if d >= Duration::from_secs(1) => Command::SetTimeout(d),
                _ => Command::Reply("Invalid timeout value.".to_owned()),
            }
        }
        ["cli"] => Command::Reply("Expects an integer value.".to_owned()),
        _ => Command::Reply("'set timeout' only supports 'cli'.".to_owned()),
    }
}

/// `show info [desc|float|json|typed]*`: the last layout named wins, as in HAProxy.
fn parse_format(args: &[String]) -> Format {
    args.iter()
        .fold(Format::Text, |format, arg| match arg.as_str() {
            "json" => Format::Json,
            "typed" => Format::Typed,
            _ => format,
        })
}

fn parse_show_stat(args: &[String]) -> Command {
    let mut filter = Filter::default();
    let mut positional = Vec::new();
    let mut args = args.iter();
    let mut format = Format::Text;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "typed" => format = Format::Typed,
            "json" => format = Format::Json,
            "up" => filter.only_up = true,
            "no-maint" => filter.no_maint = true,
            "desc" => {}
            "domain" => {
                args.next();
            }
            _ => positional.push(arg.as_str()),
        }
    }
    match positional[..] {
        [] => {}
        [proxy, kind, sid] => {
            let (Ok(kind), Ok(sid)) = (kind.parse::<i32>(), sid.parse::<i64>()) else {
                return Command::Reply(
                    "Usage: show stat [{<iid>|<proxy>} <type> <sid>]: <type> and <sid> are \
                     numbers, -1 for all."
                        .to_owned(),
                );
            };
            filter.proxy = (proxy != "-1").then(|| proxy.to_owned());
            if kind != -1 {
                filter.types = (kind & 0x7) as u8;
            }
            filter.sid = u32::try_from(sid).ok();
        }
        _ => {
            return Command::Reply(
                "Usage: show stat [{<iid>|<proxy>} <type> <sid>] [up|no-maint]".to_owned(),
            );
        }
    }
    Command::ShowStat(filter, format)
}

/// Parses one command.
pub(crate) fn parse(command: &str) -> Command {
    let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let result = match w[..] {
        ["help", ..] => Ok(Command::Help(words[1..].to_vec())),
        ["quit"] => Ok(Command::Quit),
        ["prompt", ..] => Ok(Command::Prompt),
        ["operator", ..] => Ok(Command::LowerLevel(AccessLevel::Operator)),
        ["user", ..] => Ok(Command::LowerLevel(AccessLevel::User)),
        ["show", "cli", "level", ..] => Ok(Command::ShowLevel),
        ["upgrade"] => Ok(Command::Upgrade),
        ["set", "standby", "on"] => Ok(Command::SetStandby(true)),
        ["set", "standby", "off"] => Ok(Command::SetStandby(false)),
        ["set", "standby", ..] => Ok(Command::Reply("Usage: set standby on|off".to_owned())),
        ["show", "standby"] => Ok(Command::ShowStandby),
        ["show", "table"] => Ok(Command::ShowTable(None)),
        ["show", "table", name, ..] => Ok(Command::ShowTable(Some(name.to_owned()))),
        ["set", "timeout", ..] => Ok(parse_timeout(&w[2..])),
        ["clear", "counters"] => Ok(Command::ClearCounters { all: false }),
        ["clear", "counters", "all", ..] => Ok(Command::ClearCounters { all: true }),
        ["show", "info", ..] => Ok(Command::ShowInfo(parse_format(&words[2..]))),
        ["show", "stat", ..] => Ok(parse_show_stat(&words[2..])),
        ["show", "servers", "state"] => Ok(Command::ShowServersState(None)),
        ["show", "servers", "state", backend] => {
            Ok(Command::ShowServersState(Some(backend.to_owned())))
        }
        ["disable" | "enable", "server", ..] => pool_server(words.get(2)).map(|(pool, server)| {
            Command::SetState(AdminCommand::SetState {
                pool,
                server,
                state: if w[0] == "disable" {
                    AdminState::Maint
                } else {
                    AdminState::Ready
                },
            })
        }),
        ["get", "weight", ..] => {
            pool_server(words.get(2)).map(|(pool, server)| Command::GetWeight { pool, server })
        }
        ["set", "weight", ..] => pool_server(words.get(2)).and_then(|(pool, server)| {
            Ok(Command::SetWeight {
                pool,
                server,
                weight: parse_weight(words.get(3))?,
            })
        }),
        ["set", "server", ..] => {
            pool_server(words.get(2)).and_then(|(pool, server)| match w.get(3..) {
                Some(["state", state]) => {
                    let state = match *state {
                        "ready" => AdminState::Ready,
                        "drain" => AdminState::Drain,
                        "maint" => AdminState::Maint,
                        _ => return Err(state_usage()),
                    };
                    Ok(Command::SetState(AdminCommand::SetState {
                        pool,
                        server,
                        state,
                    }))
                }
                Some(["state", ..]) => Err(state_usage()),
                Some(["weight", ..]) => Ok(Command::SetWeight {
                    pool,
                    server,
                    weight: parse_weight(words.get(4))?,
                }),
                _ => Err(Command::Reply(
                    "usage: set server <backend>/<server> state | weight".to_owned(),
                )),
            })
        }
        _ => Ok(Command::Unknown(words.clone())),
    };
    result.unwrap_or_else(|reply| reply)
}

fn state_usage() -> Command {
    Command::Reply("'set server <srv> state' expects 'ready', 'drain' and 'maint'.".to_owned())
}

/// An answer: the text and HAProxy's terminating empty line.
pub(super) fn reply(text: impl std::fmt::Display) -> String {
    format!("{text}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_server_commands() {
        let set = |pool: &str, server: &str, state| {
            Command::SetState(AdminCommand::SetState {
                pool: pool.to_owned(),
                server: server.to_owned(),
                state,
            })
        };
        assert_eq!(
            parse("disable server api/a1"),
            set("api", "a1", AdminState::Maint)
        );
        assert_eq!(
            parse("enable server api/a1"),
            set("api", "a1", AdminState::Ready)
        );
        assert_eq!(
            parse("set server api/a1 state drain"),
            set("api", "a1", AdminState::Drain)
        );
        assert_eq!(
            parse("set weight api/a1 50%"),
            Command::SetWeight {
                pool: "api".to_owned(),
                server: "a1".to_owned(),
                weight: WeightChange::Percent(50)
            }
        );
        assert_eq!(
            parse("set server api/a1 weight 7"),
            Command::SetWeight {
                pool: "api".to_owned(),
                server: "a1".to_owned(),
                weight: WeightChange::Absolute(7)
            }
        );
    }

    /// Error answers are HAProxy 2.6's, word for word.
    #[test]
    fn usage_errors_are_haproxy_s() {
        let reply_of = |c: &str| match parse(c) {
            Command::Reply(text) => text,
            other => panic!("{c}: {other:?}"),
        };
        assert_eq!(reply_of("disable server"), "Require 'backend/server'.");
        assert_eq!(
            reply_of("disable server api_pool"),
            "Require 'backend/server'."
        );
        assert_eq!(reply_of("set weight api_pool"), "Require 'backend/server'.");
        assert_eq!(
            reply_of("set server api/a state bogus"),
            "'set server <srv> state' expects 'ready', 'drain' and 'maint'."
        );
        assert_eq!(
            reply_of("set server api/a state"),
            "'set server <srv> state' expects 'ready', 'drain' and 'maint'."
        );
        assert_eq!(
            reply_of("set weight api/a 300"),
            "Absolute weight can only be between 0 and 256 inclusive."
        );
        assert_eq!(
            reply_of("set weight api/a -1"),
            "Absolute weight can only be between 0 and 256 inclusive."
        );
        assert_eq!(
            reply_of("set weight api/a abc"),
            "Empty weight string empty or preceded by garbage"
        );
        assert_eq!(
            reply_of("set weight api/a -5%"),
            "Relative weight must be positive."
        );
        assert_eq!(
            reply_of("set weight api/a 5x"),
            "Trailing garbage in weight string"
        );
    }

    #[test]
    fn unknown_commands_list_the_nearest_or_all() {
        let near = unknown(&words("show bogus"));
        assert!(near.starts_with(
            "Unknown command, but maybe one of the following ones is a better match:\n"
        ));
        assert!(near.contains("\n  show info [json|typed]*                 : report"));
        assert!(!near.contains("disable server"));
        assert!(near.ends_with("\n\n"));
        let all = unknown(&words("foo bar"));
        assert!(
            all.starts_with("Unknown command. Please enter one of the following commands only:\n")
        );
        assert!(all.contains("  disable server <bk>/<srv>"));
        assert_eq!(parse("show bogus"), Command::Unknown(words("show bogus")));
        assert_eq!(parse(""), Command::Unknown(Vec::new()));
    }

    #[test]
    fn show_stat_filters() {
        assert_eq!(
            parse("show stat -1 4 -1"),
            Command::ShowStat(
                Filter {
                    types: Filter::SERVERS,
                    ..Filter::default()
                },
                Format::Text
            )
        );
        assert_eq!(
            parse("show stat api 2 -1 no-maint"),
            Command::ShowStat(
                Filter {
                    proxy: Some("api".to_owned()),
                    types: Filter::BACKENDS,
                    no_maint: true,
                    ..Filter::default()
                },
                Format::Text
            )
        );
        assert_eq!(
            parse("show stat json"),
            Command::ShowStat(Filter::default(), Format::Json)
        );
        assert_eq!(
            parse("show stat up typed"),
            Command::ShowStat(
                Filter {
                    only_up: true,
                    ..Filter::default()
                },
                Format::Typed
            )
        );
        assert_eq!(parse("show info json"), Command::ShowInfo(Format::Json));
        assert_eq!(parse("show info"), Command::ShowInfo(Format::Text));
    }

    /// Session commands and their errors, as HAProxy 2.6 answers them.
    #[test]
    fn session_commands() {
        assert_eq!(parse("prompt"), Command::Prompt);
        assert_eq!(
            parse("set timeout cli 60"),
            Command::SetTimeout(Duration::from_secs(60))
        );
        assert_eq!(
            parse("set timeout cli 1m"),
            Command::SetTimeout(Duration::from_secs(60))
        );
        let reply = |t: &str| Command::Reply(t.to_owned());
        assert_eq!(parse("set timeout cli"), reply("Expects an integer value."));
        assert_eq!(parse("set timeout cli 0"), reply("Invalid timeout value."));
        assert_eq!(
            parse("set timeout cli 10x"),
            reply("Invalid timeout value.")
        );
        assert_eq!(
            parse("set timeout foo 1"),
            reply("'set timeout' only supports 'cli'.")
        );
        assert_eq!(
            parse("operator"),
            Command::LowerLevel(AccessLevel::Operator)
        );
        assert_eq!(parse("user"), Command::LowerLevel(AccessLevel::User));
        assert_eq!(parse("show cli level"), Command::ShowLevel);
    }

    #[test]
    fn levels_as_haproxy_s() {
        let level = required_level;
        assert_eq!(level("show stat"), AccessLevel::User);
        assert_eq!(level("show info json"), AccessLevel::User);
        assert_eq!(level("get weight api/a"), AccessLevel::User);
        assert_eq!(level("clear counters"), AccessLevel::Operator);
        assert_eq!(level("clear counters all"), AccessLevel::Admin);
        assert_eq!(level("disable server api/a"), AccessLevel::Admin);
        assert_eq!(level("enable server api/a"), AccessLevel::Admin);
        assert_eq!(level("set server api/a state drain"), AccessLevel::Admin);
        assert_eq!(level("set weight api/a 3"), AccessLevel::Admin);
        assert_eq!(level("set server api/a weight 3"), AccessLevel::Admin);
        assert_eq!(
            level("disable server"),
            AccessLevel::Admin,
            "before the arguments"
        );
        assert_eq!(level("  set   weight x"), AccessLevel::Admin);
    }
}
