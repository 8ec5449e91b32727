//! `veza-lb ctl top`: a live view of `show stat`, refreshed every second, like `top` for the
//! load balancer: one line per frontend, server and pool with what an operator watches
//! during an incident (status, weight and slow start, sessions, rates, errors, last check).

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::Duration;

use proxy::stats::StatTable;

/// The columns shown, as `(title, show stat column)`.
const COLUMNS: [(&str, &str); 12] = [
    ("STATUS", "status"),
    ("WEIGHT", "weight"),
    ("THRTL", "throttle"),
    ("CUR", "scur"),
    ("MAX", "smax"),
    ("TOTAL", "stot"),
    ("REQ/S", "req_rate"),
    ("2XX", "hrsp_2xx"),
    ("5XX", "hrsp_5xx"),
    ("ECON", "econ"),
    ("CHECK", "check_status"),
    ("LASTCHG", "lastchg"),
];

/// Renders `show stat`'s CSV as the `top` table. Columns are found by name in the header,
/// so the view does not depend on their positions.
pub(crate) fn table(csv: &str) -> Result<String, String> {
    let stats = StatTable::parse(csv).map_err(|e| e.to_string())?;
    let (px, sv) = (
        stats.column("pxname").ok_or("no pxname column")?,
        stats.column("svname").ok_or("no svname column")?,
    );
    let picks: Vec<Option<usize>> = COLUMNS.iter().map(|(_, c)| stats.column(c)).collect();

    let mut rows: Vec<Vec<String>> = vec![
        std::iter::once("NAME".to_owned())
            .chain(COLUMNS.iter().map(|(t, _)| (*t).to_owned()))
            .collect(),
    ];
    for cells in stats.rows() {
        let cell = |i: Option<usize>| i.and_then(|i| cells.get(i)).map_or("", String::as_str);
        let (proxy, server) = (cell(Some(px)), cell(Some(sv)));
        let name = match server {
            "FRONTEND" | "BACKEND" => format!("{proxy} ({})", server.to_lowercase()),
            _ => format!("  {proxy}/{server}"),
        };
        let mut row = vec![name];
        row.extend(COLUMNS.iter().zip(&picks).map(|((_, column), &i)| {
            let v = cell(i);
            if *column == "throttle" && !v.is_empty() {
                format!("{v}%")
            } else {
                v.to_owned()
            }
        }));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, value) in row.iter().enumerate() {
            if c == 0 {
                let _ = write!(line, "{value:<w$}", w = widths[c]);
            } else {
                let _ = write!(line, "  {value:>w$}", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Prints the table once, or refreshes it every `every` until interrupted.
pub(crate) fn run(
    fetch: impl Fn() -> Result<String, String>,
    once: bool,
    every: Duration,
) -> Result<(), String> {
    let live = !once && std::io::stdout().is_terminal();
    loop {
        let view = table(&fetch()?)?;
        if live {
            // Clear the screen and go home, as `top` does.
            print!("\x1b[2J\x1b[H");
        }
        print!("{view}");
        if once {
            return Ok(());
        }
        println!();
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_columns_by_name_and_aligns() {
        let csv = "# pxname,svname,scur,smax,stot,econ,status,weight,throttle,lastchg,check_status,req_rate,hrsp_2xx,hrsp_5xx,\n\
                   veza,FRONTEND,3,9,120,,OPEN,,,,,5,110,2,\n\
                   api_pool,backend-api-1,1,4,60,0,UP,1,25,12,L7OK,,55,1,\n\
                   api_pool,BACKEND,1,4,60,0,UP,2,,12,,,55,1,\n\n";
        let t = table(csv).expect("table");
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME"));
        assert!(lines[0].contains("STATUS") && lines[0].contains("REQ/S"));
        assert!(lines[1].starts_with("veza (frontend)"));
        assert!(lines[2].starts_with("  api_pool/backend-api-1"));
        assert!(
            lines[2].contains("25%"),
            "throttle shown as a percentage: {}",
            lines[2]
        );
        assert!(lines[2].contains("L7OK"));
        assert!(lines[3].starts_with("api_pool (backend)"));
        // Right-aligned numeric columns end at the same place on every line.
        let status_end = |l: &str, v: &str| l.find(v).map(|i| i + v.len());
        assert_eq!(status_end(lines[2], "UP"), status_end(lines[3], "UP"));
    }

    #[test]
    fn an_answer_without_a_header_is_an_error() {
        assert!(table("Unknown command.\n\n").is_err());
    }
}
