//! The stats page for a browser (`GET /stats` on the metrics listener): the same data as
//! `show stat`, one table per frontend group and per pool, every server colored by its
//! state (HAProxy's stats page colors, plus one for slow start), refreshed by the browser on
//! its own (`<meta http-equiv="refresh">`), no script. Rendered with askama from the CSV's
//! cells, so the page and `show stat` cannot disagree.

use askama::Template;

use super::csv::Col;
use super::info::ProcessInfo;

/// A server's (or pool's) state, as the page colors it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// UP and taking its full share.
    Up,
    /// UP, ramping up after a recovery (`throttle` below 100%).
    SlowStart,
    /// UP but failing checks (`UP 1/3`).
    GoingDown,
    /// DOWN.
    Down,
    /// DOWN but passing checks (`DOWN 1/2`).
    GoingUp,
    /// DRAIN: no new balanced traffic.
    Drain,
    /// MAINT: disabled by an operator.
    Maint,
    /// Not checked (`no check`).
    NoCheck,
    /// A frontend accepting connections.
    Open,
}

impl State {
    /// Reads the state from `show stat`'s `status` and `throttle` cells.
    #[must_use]
    pub fn of(status: &str, throttle: &str) -> Self {
        match status {
            "UP" if !throttle.is_empty() => State::SlowStart,
            "UP" => State::Up,
            "DOWN" => State::Down,
            "MAINT" => State::Maint,
            "DRAIN" => State::Drain,
            "no check" => State::NoCheck,
            "OPEN" => State::Open,
            s if s.starts_with("UP ") => State::GoingDown,
            s if s.starts_with("DOWN ") => State::GoingUp,
            _ => State::NoCheck,
        }
    }

    /// The CSS class of the row.
    #[must_use]
    pub fn class(self) -> &'static str {
        match self {
            State::Up => "up",
            State::SlowStart => "slowstart",
            State::GoingDown => "going-down",
            State::Down => "down",
            State::GoingUp => "going-up",
            State::Drain => "drain",
            State::Maint => "maint",
            State::NoCheck => "nocheck",
            State::Open => "open",
        }
    }

    /// The row's background: HAProxy's stats page colors (`active_up`, `active_down`...),
    /// plus a green-yellow of its own for slow start.
    #[must_use]
    pub fn color(self) -> &'static str {
        match self {
            State::Up => "#c0ffc0",
            State::SlowStart => "#e0f070",
            State::GoingDown => "#ffffa0",
            State::Down => "#ff9090",
            State::GoingUp => "#ffd020",
            State::Drain => "#20a0ff",
            State::Maint => "#c07820",
            State::NoCheck => "#e0e0e0",
            State::Open => "#e8e8d0",
        }
    }
}

/// One row of a table: a frontend, a server or a pool's total.
#[derive(Debug, Clone)]
pub struct PageRow {
    /// `svname`: the server's name, `FRONTEND` or `BACKEND`.
    pub name: String,
    /// The state the row is colored by.
    pub state: State,
    /// `status` as `show stat` prints it.
    pub status: String,
    /// The server's address (empty on FRONTEND and BACKEND rows).
    pub addr: String,
    /// `weight` (effective) and, when it differs, `/uweight`.
    pub weight: String,
    /// `throttle` with its `%`, during slow start.
    pub throttle: String,
    /// `scur`, `smax`, `stot`, requests per second (`req_rate` on a frontend, `rate` on a
    /// server or backend), `hrsp_2xx`, `hrsp_5xx`, `econ`, `eresp`.
    pub counts: [String; 8],
    /// The last check: `L7OK/200 in 1ms`; empty when not checked.
    pub check: String,
    /// `check_desc` and `last_chk`, as the check cell's tooltip.
    pub check_detail: String,
    /// `chkfail`/`chkdown`.
    pub failures: String,
    /// Time since the last change (`lastchg`), e.g. `2m5s`.
    pub last_change: String,
    /// Time spent DOWN (`downtime`).
    pub downtime: String,
}

/// One table: a frontend, or a pool's servers followed by its BACKEND row.
#[derive(Debug, Clone)]
pub struct PageTable {
    /// `pxname`.
    pub name: String,
    /// `frontend` or `backend`, and the pool's `algo`.
    pub kind: String,
    /// Its rows.
    pub rows: Vec<PageRow>,
}

/// The whole page.
#[derive(Template)]
#[template(path = "stats.html")]
pub struct StatsPage {
    /// `Version`, `Pid`, `node`, `Uptime`, `CurrConns`, `CumReq`, `Nbthread`.
    info: ProcessInfo,
    /// Seconds between the browser's refreshes; `None` for none.
    refresh: Option<u32>,
    /// Frontends first, then pools, in `show stat`'s order.
    tables: Vec<PageTable>,
}

impl StatsPage {
    /// The page for `show stat`'s `rows` (from `csv::cells`), refreshed every `refresh`
    /// seconds.
    #[must_use]
    pub fn new(info: ProcessInfo, rows: &[Vec<String>], refresh: Option<u32>) -> Self {
        let mut tables: Vec<PageTable> = Vec::new();
        for cells in rows {
            let cell = |col: Col| cells.get(col as usize).map_or("", String::as_str);
            let kind = match cell(Col::Type) {
                "0" => "frontend".to_owned(),
                _ => format!("backend, {}", cell(Col::Algo)),
            };
            let name = cell(Col::Pxname);
            if tables.last().is_none_or(|t| t.name != name) {
                tables.push(PageTable {
                    name: name.to_owned(),
                    kind: kind.clone(),
                    rows: Vec::new(),
                });
            }
            if let Some(table) = tables.last_mut() {
                table.kind = kind;
                table.rows.push(row(&cell));
            }
        }
        Self {
            info,
            refresh,
            tables,
        }
    }

    /// The tables, for tests.
    #[must_use]
    pub fn tables(&self) -> &[PageTable] {
        &self.tables
    }

    fn uptime(&self) -> String {
        human(self.info.uptime.as_secs())
    }
}

fn row<'a>(cell: &impl Fn(Col) -> &'a str) -> PageRow {
    let status = cell(Col::Status);
    let (weight, uweight) = (cell(Col::Weight), cell(Col::Uweight));
    // `L7OK/200 in 1ms`; `INI` (no result yet) has neither code nor duration.
    let check = match (cell(Col::CheckStatus), cell(Col::CheckCode)) {
        ("", _) => String::new(),
        (status, "") => status.to_owned(),
        (status, code) => format!("{status}/{code}"),
    };
    let check = match cell(Col::CheckDuration) {
        "" => check,
        ms => format!("{check} in {ms}ms"),
    };
    let seconds = |col: Col| cell(col).parse::<u64>().map(human).unwrap_or_default();
    PageRow {
        name: cell(Col::Svname).to_owned(),
        state: State::of(status, cell(Col::Throttle)),
        status: status.to_owned(),
        addr: cell(Col::Addr).to_owned(),
        weight: if uweight.is_empty() || uweight == weight {
            weight.to_owned()
        } else {
            format!("{weight}/{uweight}")
        },
        throttle: match cell(Col::Throttle) {
            "" => String::new(),
            pct => format!("{pct}%"),
        },
        counts: [
            Col::Scur,
            Col::Smax,
            Col::Stot,
            // A frontend's requests per second (`req_rate`); a server or a backend has no
            // `req_rate` in HAProxy's CSV, and its `rate` counts the requests it was sent.
            if cell(Col::ReqRate).is_empty() {
                Col::Rate
            } else {
                Col::ReqRate
            },
            Col::Hrsp2xx,
            Col::Hrsp5xx,
            Col::Econ,
            Col::Eresp,
        ]
        .map(|col| cell(col).to_owned()),
        check,
        check_detail: [cell(Col::CheckDesc), cell(Col::LastChk)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        failures: match (cell(Col::Chkfail), cell(Col::Chkdown)) {
            ("", _) => String::new(),
            (fail, down) => format!("{fail}/{down}"),
        },
        last_change: seconds(Col::Lastchg),
        downtime: seconds(Col::Downtime),
    }
}

/// `1d2h`, `2m5s`, `42s`, as HAProxy's page abbreviates durations.
fn human(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::csv::{Filter, cells};
    use crate::stats::fixture;

    #[test]
    fn states_from_status_and_throttle() {
        assert_eq!(State::of("UP", ""), State::Up);
        assert_eq!(State::of("UP", "7"), State::SlowStart);
        assert_eq!(State::of("UP 1/3", ""), State::GoingDown);
        assert_eq!(State::of("DOWN", ""), State::Down);
        assert_eq!(State::of("DOWN 1/2", ""), State::GoingUp);
        assert_eq!(State::of("DRAIN", ""), State::Drain);
        assert_eq!(State::of("MAINT", ""), State::Maint);
        assert_eq!(State::of("no check", ""), State::NoCheck);
        assert_eq!(State::Down.color(), "#ff9090", "HAProxy's active_down");
    }

    #[test]
    fn durations_read_like_haproxy_s() {
        assert_eq!(human(42), "42s");
        assert_eq!(human(125), "2m5s");
        assert_eq!(human(7_260), "2h1m");
        assert_eq!(human(90_061), "1d1h");
    }

    #[test]
    fn one_table_per_proxy_with_colored_rows() {
        let (frontends, snapshot) = fixture::snapshot();
        let rows = cells(&frontends, &snapshot, fixture::NOW_UNIX, &Filter::default());
        let page = StatsPage::new(ProcessInfo::default(), &rows, Some(5));
        let names: Vec<&str> = page.tables().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names[..2], ["veza", "api_pool"]);
        let states: Vec<State> = page.tables()[1].rows.iter().map(|r| r.state).collect();
        assert_eq!(
            states[..2],
            [State::SlowStart, State::Down],
            "api-1 ramps up at 7%, api-2 is DOWN"
        );
        assert_eq!(page.tables()[1].rows[0].throttle, "7%");
        let html = page.render().expect("renders");
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        for table in page.tables() {
            for row in &table.rows {
                let tr = format!(
                    "<tr class=\"{}\" data-name=\"{}/{}\" style=\"background: {}\">",
                    row.state.class(),
                    table.name,
                    row.name,
                    row.state.color()
                );
                assert!(html.contains(&tr), "missing {tr} in\n{html}");
            }
        }
        let html = StatsPage::new(ProcessInfo::default(), &rows, None)
            .render()
            .expect("renders");
        assert!(!html.contains("http-equiv"), "no refresh asked");
    }

    #[test]
    fn every_row_shows_its_requests_per_second() {
        let (frontends, snapshot) = fixture::snapshot();
        let rows = cells(&frontends, &snapshot, fixture::NOW_UNIX, &Filter::default());
        let page = StatsPage::new(ProcessInfo::default(), &rows, None);
        let shown: Vec<&str> = page
            .tables()
            .iter()
            .flat_map(|t| t.rows.iter().map(|r| r.counts[3].as_str()))
            .collect();
        let expected: Vec<&str> = rows
            .iter()
            .map(|r| {
                let frontend = r[Col::ReqRate as usize].as_str();
                if frontend.is_empty() {
                    r[Col::Rate as usize].as_str()
                } else {
                    frontend
                }
            })
            .collect();
        assert_eq!(shown, expected);
        assert!(
            shown.iter().all(|cell| !cell.is_empty()),
            "no empty Req/s cell: {shown:?}"
        );
    }

    #[test]
    fn names_are_escaped() {
        let mut row = vec![String::new(); crate::stats::csv::COLUMNS.len()];
        row[Col::Pxname as usize] = "<script>".to_owned();
        row[Col::Svname as usize] = "a\"b".to_owned();
        row[Col::Type as usize] = "2".to_owned();
        let html = StatsPage::new(ProcessInfo::default(), &[row], None)
            .render()
            .expect("renders");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"));
    }
}
