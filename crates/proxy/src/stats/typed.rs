//! `show stat typed|json` and `show info typed|json`: HAProxy 2.6's typed outputs, in which
//! every value carries its field's position and name, its type (`u32`, `u64`, `s32`, `str`)
//! and three tags (origin, nature, scope), so tools read fields by name and know what a
//! number means (a counter, a gauge, a maximum...).
//!
//! Rendered from the same cells as the CSV (`csv::cells`) and the same lines as `show info`:
//! one source of truth, three layouts. As HAProxy does, an empty cell is not printed, and the
//! CSV's `-` separator is not a field (the modules' fields follow `agg_check_status`). Field
//! types and tags are HAProxy 2.6's, as its own typed output prints them.

use std::fmt::Write as _;

use super::csv::Col;

/// How a value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    U32,
    U64,
    S32,
    Str,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::U32 => "u32",
            Type::U64 => "u64",
            Type::S32 => "s32",
            Type::Str => "str",
        }
    }
}

/// One field: its name, its tags as HAProxy abbreviates them (`MCP`: a metric, a counter,
/// per process) and its type.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    tags: &'static str,
    ty: Type,
}

impl Field {
    const fn new(name: &'static str, tags: &'static str, ty: Type) -> Self {
        Self { name, tags, ty }
    }
}

/// The fields of `show stat`, by position (the CSV's columns without `-`).
const STAT_FIELDS: &[Field] = &[
    Field::new("pxname", "KNS", Type::Str),
    Field::new("svname", "KNS", Type::Str),
    Field::new("qcur", "MGP", Type::U32),
    Field::new("qmax", "MMP", Type::U32),
    Field::new("scur", "MGP", Type::U32),
    Field::new("smax", "MMP", Type::U32),
    Field::new("slim", "CLP", Type::U32),
    Field::new("stot", "MCP", Type::U64),
    Field::new("bin", "MCP", Type::U64),
    Field::new("bout", "MCP", Type::U64),
    Field::new("dreq", "MCP", Type::U64),
    Field::new("dresp", "MCP", Type::U64),
    Field::new("ereq", "MCP", Type::U64),
    Field::new("econ", "MCP", Type::U64),
    Field::new("eresp", "MCP", Type::U64),
    Field::new("wretr", "MCP", Type::U64),
    Field::new("wredis", "MCP", Type::U64),
    Field::new("status", "SGP", Type::Str),
    Field::new("weight", "MaP", Type::U32),
    Field::new("act", "SGP", Type::U32),
    Field::new("bck", "SGP", Type::U32),
    Field::new("chkfail", "MCP", Type::U64),
    Field::new("chkdown", "MCP", Type::U64),
    Field::new("lastchg", "MAP", Type::U32),
    Field::new("downtime", "MCP", Type::U32),
    Field::new("qlimit", "CGS", Type::U32),
    Field::new("pid", "KGP", Type::U32),
    Field::new("iid", "KGS", Type::U32),
    Field::new("sid", "KGS", Type::U32),
    Field::new("throttle", "MaP", Type::U32),
    Field::new("lbtot", "MCP", Type::U64),
    Field::new("tracked", "CNS", Type::Str),
    Field::new("type", "CGS", Type::U32),
    Field::new("rate", "MRP", Type::U32),
    Field::new("rate_lim", "CLP", Type::U32),
    Field::new("rate_max", "MMP", Type::U32),
    Field::new("check_status", "MOP", Type::Str),
    Field::new("check_code", "MOP", Type::U32),
    Field::new("check_duration", "MDP", Type::U64),
    Field::new("hrsp_1xx", "MCP", Type::U64),
    Field::new("hrsp_2xx", "MCP", Type::U64),
    Field::new("hrsp_3xx", "MCP", Type::U64),
    Field::new("hrsp_4xx", "MCP", Type::U64),
    Field::new("hrsp_5xx", "MCP", Type::U64),
    Field::new("hrsp_other", "MCP", Type::U64),
    Field::new("hanafail", "MCP", Type::U64),
    Field::new("req_rate", "MRP", Type::U32),
    Field::new("req_rate_max", "MMP", Type::U32),
    Field::new("req_tot", "MCP", Type::U64),
    Field::new("cli_abrt", "MCP", Type::U64),
    Field::new("srv_abrt", "MCP", Type::U64),
    Field::new("comp_in", "MCP", Type::U64),
    Field::new("comp_out", "MCP", Type::U64),
    Field::new("comp_byp", "MCP", Type::U64),
    Field::new("comp_rsp", "MCP", Type::U64),
    Field::new("lastsess", "MAP", Type::S32),
    Field::new("last_chk", "MOP", Type::Str),
    Field::new("last_agt", "MOP", Type::Str),
    Field::new("qtime", "MaP", Type::U32),
    Field::new("ctime", "MaP", Type::U32),
    Field::new("rtime", "MaP", Type::U32),
    Field::new("ttime", "MaP", Type::U32),
    Field::new("agent_status", "MOP", Type::Str),
    Field::new("agent_code", "MOP", Type::U32),
    Field::new("agent_duration", "MDP", Type::U64),
    Field::new("check_desc", "MOP", Type::Str),
    Field::new("agent_desc", "MOP", Type::Str),
    Field::new("check_rise", "CGS", Type::U32),
    Field::new("check_fall", "CGS", Type::U32),
    Field::new("check_health", "CGS", Type::U32),
    Field::new("agent_rise", "CGS", Type::U32),
    Field::new("agent_fall", "CGS", Type::U32),
    Field::new("agent_health", "CGS", Type::U32),
    Field::new("addr", "CGS", Type::Str),
    Field::new("cookie", "CNS", Type::Str),
    Field::new("mode", "CGS", Type::Str),
    Field::new("algo", "CGS", Type::Str),
    Field::new("conn_rate", "MRP", Type::U32),
    Field::new("conn_rate_max", "MMP", Type::U32),
    Field::new("conn_tot", "MCP", Type::U64),
    Field::new("intercepted", "MCP", Type::U64),
    Field::new("dcon", "MCP", Type::U64),
    Field::new("dses", "MCP", Type::U64),
    Field::new("wrew", "MCP", Type::U64),
    Field::new("connect", "MCP", Type::U64),
    Field::new("reuse", "MCP", Type::U64),
    Field::new("cache_lookups", "MCP", Type::U64),
    Field::new("cache_hits", "MCP", Type::U64),
    Field::new("srv_icur", "MGP", Type::U32),
    Field::new("src_ilim", "CLP", Type::U32),
    Field::new("qtime_max", "MMP", Type::U32),
    Field::new("ctime_max", "MMP", Type::U32),
    Field::new("rtime_max", "MMP", Type::U32),
    Field::new("ttime_max", "MMP", Type::U32),
    Field::new("eint", "MCP", Type::U64),
    Field::new("idle_conn_cur", "MGP", Type::U32),
    Field::new("safe_conn_cur", "MGP", Type::U32),
    Field::new("used_conn_cur", "MGP", Type::U32),
    Field::new("need_conn_est", "MGP", Type::U32),
    Field::new("uweight", "MaP", Type::U32),
    Field::new("agg_server_status", "MGP", Type::U32),
    Field::new("agg_server_check_status", "MGP", Type::U32),
    Field::new("agg_check_status", "MGP", Type::U32),
    Field::new("ssl_sess", "MCP", Type::U64),
    Field::new("ssl_reused_sess", "MCP", Type::U64),
    Field::new("ssl_failed_handshake", "MCP", Type::U64),
    Field::new("h2_headers_rcvd", "MCP", Type::U64),
    Field::new("h2_data_rcvd", "MCP", Type::U64),
    Field::new("h2_settings_rcvd", "MCP", Type::U64),
    Field::new("h2_rst_stream_rcvd", "MCP", Type::U64),
    Field::new("h2_goaway_rcvd", "MCP", Type::U64),
    Field::new("h2_detected_conn_protocol_errors", "MCP", Type::U64),
    Field::new("h2_detected_strm_protocol_errors", "MCP", Type::U64),
    Field::new("h2_rst_stream_resp", "MCP", Type::U64),
    Field::new("h2_goaway_resp", "MCP", Type::U64),
    Field::new("h2_open_connections", "MGP", Type::U64),
    Field::new("h2_backend_open_streams", "MGP", Type::U64),
    Field::new("h2_total_connections", "MCP", Type::U64),
    Field::new("h2_backend_total_streams", "MCP", Type::U64),
    Field::new("h1_open_connections", "MGP", Type::U64),
    Field::new("h1_open_streams", "MGP", Type::U64),
    Field::new("h1_total_connections", "MCP", Type::U64),
    Field::new("h1_total_streams", "MCP", Type::U64),
    Field::new("h1_bytes_in", "MCP", Type::U64),
    Field::new("h1_bytes_out", "MCP", Type::U64),
    Field::new("h1_spliced_bytes_in", "MCP", Type::U64),
    Field::new("h1_spliced_bytes_out", "MCP", Type::U64),
];

/// Position of the CSV's `-` column: the fields after it are one position lower.
const MODULES_SEPARATOR: usize = Col::ModulesSeparator as usize;

/// The tags of a BACKEND row where they differ from a server's (`act` and `bck` count
/// servers there; the rates are gauges).
fn backend_tags(name: &str) -> Option<&'static str> {
    matches!(name, "act" | "bck" | "rate" | "rate_max").then_some("MGP")
}

/// The `show info` keys veza-lb prints: HAProxy's position of each, its tags and type.
const INFO_FIELDS: &[(&str, usize, &str, Type)] = &[
    ("Name", 0, "POS", Type::Str),
    ("Version", 1, "POS", Type::Str),
    ("Release_date", 2, "POS", Type::Str),
    ("Nbthread", 3, "CGS", Type::U32),
    ("Nbproc", 4, "CGS", Type::U32),
    ("Process_num", 5, "KGP", Type::U32),
    ("Pid", 6, "SGP", Type::U32),
    ("Uptime", 7, "MDP", Type::Str),
    ("Uptime_sec", 8, "MDP", Type::U32),
    ("Ulimit-n", 13, "CLP", Type::U32),
    ("Maxconn", 15, "CLP", Type::U32),
    ("CurrConns", 17, "MGP", Type::U32),
    ("CumConns", 18, "MCP", Type::U32),
    ("CumReq", 19, "MCP", Type::U32),
    ("CurrSslConns", 21, "MGP", Type::U32),
    ("CumSslConns", 22, "MCP", Type::U32),
    ("Maxpipes", 23, "CLP", Type::U32),
    ("PipesUsed", 24, "MGP", Type::U32),
    ("PipesFree", 25, "MGP", Type::U32),
    ("ConnRate", 26, "MRP", Type::U32),
    ("MaxConnRate", 28, "MMP", Type::U32),
    ("SessRate", 29, "MRP", Type::U32),
    ("MaxSessRate", 31, "MRP", Type::U32),
    ("Tasks", 47, "MGP", Type::U32),
    ("Run_queue", 48, "MGP", Type::U32),
    ("Idle_pct", 49, "MaP", Type::U32),
    ("node", 50, "COS", Type::Str),
    ("Stopping", 52, "MGP", Type::U32),
    ("TotalBytesOut", 61, "MGP", Type::U64),
    ("Start_time_sec", 70, "MDP", Type::U32),
];

/// One value to print: where, what, and the cell's text.
struct Typed<'a> {
    pos: usize,
    name: &'a str,
    tags: &'a str,
    ty: Type,
    value: &'a str,
}

impl Typed<'_> {
    /// A number that does not parse is printed as a string, so the output stays valid.
    fn ty(&self) -> Type {
        let number = match self.ty {
            Type::Str => return Type::Str,
            Type::S32 => self.value.parse::<i64>().is_ok(),
            Type::U32 | Type::U64 => self.value.parse::<u64>().is_ok(),
        };
        if number { self.ty } else { Type::Str }
    }

    /// `MCP:u64:12`
    fn typed(&self, out: &mut String) {
        let _ = writeln!(out, "{}:{}:{}", self.tags, self.ty().name(), self.value);
    }

    /// `"tags":{...},"value":{"type":"u64","value":12}}`
    fn json(&self, out: &mut String) {
        let tag = self.tags.as_bytes();
        let _ = write!(
            out,
            "\"tags\":{{\"origin\":\"{}\",\"nature\":\"{}\",\"scope\":\"{}\"}},",
            origin(tag[0]),
            nature(tag[1]),
            scope(tag[2])
        );
        let ty = self.ty();
        let _ = write!(out, "\"value\":{{\"type\":\"{}\",\"value\":", ty.name());
        if ty == Type::Str {
            json_string(out, self.value);
        } else {
            out.push_str(self.value);
        }
        out.push_str("}}");
    }
}

fn origin(letter: u8) -> &'static str {
    match letter {
        b'M' => "Metric",
        b'S' => "Status",
        b'K' => "Key",
        b'C' => "Config",
        b'P' => "Product",
        _ => "Unknown",
    }
}

fn nature(letter: u8) -> &'static str {
    match letter {
        b'G' => "Gauge",
        b'L' => "Limit",
        b'm' => "Min",
        b'M' => "Max",
        b'R' => "Rate",
        b'C' => "Counter",
        b'D' => "Duration",
        b'A' => "Age",
        b'T' => "Time",
        b'N' => "Name",
        b'O' => "Output",
        b'a' => "Avg",
        _ => "Unknown",
    }
}

fn scope(letter: u8) -> &'static str {
    match letter {
        b'P' => "Process",
        b'S' => "Service",
        b's' => "System",
        b'C' => "Cluster",
        _ => "Unknown",
    }
}

fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A `show stat` row's values with their fields, empty cells left out.
fn stat_fields(cells: &[String]) -> impl Iterator<Item = Typed<'_>> {
    let backend = cells.get(Col::Type as usize).is_some_and(|t| t == "1");
    cells.iter().enumerate().filter_map(move |(column, value)| {
        if column == MODULES_SEPARATOR || value.is_empty() {
            return None;
        }
        let pos = if column > MODULES_SEPARATOR {
            column - 1
        } else {
            column
        };
        let field = STAT_FIELDS.get(pos)?;
        let tags = backend
            .then(|| backend_tags(field.name))
            .flatten()
            .unwrap_or(field.tags);
        Some(Typed {
            pos,
            name: field.name,
            tags,
            ty: field.ty,
            value,
        })
    })
}

/// `(objType letter, objType, iid, sid)` of a row, from its `type`, `iid` and `sid` cells.
fn object(cells: &[String]) -> (char, &'static str, &str, &str) {
    let cell = |i: usize| cells.get(i).map_or("0", String::as_str);
    let (letter, name) = match cell(Col::Type as usize) {
        "0" => ('F', "Frontend"),
        "1" => ('B', "Backend"),
        "2" => ('S', "Server"),
        _ => ('?', "Unknown"),
    };
    let sid = cell(Col::Sid as usize);
    let sid = if sid.is_empty() { "0" } else { sid };
    (letter, name, cell(Col::Iid as usize), sid)
}

/// `show stat typed`: `F.<iid>.<sid>.<pos>.<name>.1:<tags>:<type>:<value>` per value, then
/// the answer's empty line.
#[must_use]
pub fn stat_typed(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for cells in rows {
        let (letter, _, iid, sid) = object(cells);
        for field in stat_fields(cells) {
            let _ = write!(out, "{letter}.{iid}.{sid}.{}.{}.1:", field.pos, field.name);
            field.typed(&mut out);
        }
    }
    out.push('\n');
    out
}

/// `show stat json`: an array with one array of values per row, then the answer's empty line.
#[must_use]
pub fn stat_json(rows: &[Vec<String>]) -> String {
    let mut out = String::from("[");
    for (i, cells) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (_, obj_type, iid, sid) = object(cells);
        out.push('[');
        for (j, field) in stat_fields(cells).enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"objType\":\"{obj_type}\",\"proxyId\":{iid},\"id\":{sid},\"field\":{{\"pos\":{},\
                 \"name\":\"{}\"}},\"processNum\":1,",
                field.pos, field.name
            );
            field.json(&mut out);
        }
        out.push(']');
    }
    out.push_str("]\n\n");
    out
}

fn info_fields<'a>(lines: &'a [(&'a str, String)]) -> impl Iterator<Item = Typed<'a>> {
    lines.iter().filter_map(|(key, value)| {
        let &(name, pos, tags, ty) = INFO_FIELDS.iter().find(|f| f.0 == *key)?;
        Some(Typed {
            pos,
            name,
            tags,
            ty,
            value,
        })
    })
}

/// `show info typed`: `<pos>.<name>.1:<tags>:<type>:<value>` per key.
#[must_use]
pub fn info_typed(lines: &[(&str, String)]) -> String {
    let mut out = String::new();
    for field in info_fields(lines) {
        let _ = write!(out, "{}.{}.1:", field.pos, field.name);
        field.typed(&mut out);
    }
    out.push('\n');
    out
}

/// `show info json`: an array of values.
#[must_use]
pub fn info_json(lines: &[(&str, String)]) -> String {
    let mut out = String::from("[");
    for (i, field) in info_fields(lines).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"field\":{{\"pos\":{},\"name\":\"{}\"}},\"processNum\":1,",
            field.pos, field.name
        );
        field.json(&mut out);
    }
    out.push_str("]\n\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::stats::csv::COLUMNS;

    /// `show stat json` and `show info json` of HAProxy 2.6.12 (a frontend, a backend with two
    /// servers, one of them down), captured from a throwaway instance.
    const HAPROXY_STAT: &str = include_str!("haproxy-2.6/show-stat.json");
    const HAPROXY_INFO: &str = include_str!("haproxy-2.6/show-info.json");

    /// `(pos, tags, type)` of every field HAProxy printed, by object type and name.
    fn haproxy_fields(json: &str) -> HashMap<(String, String), (u64, String, String)> {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let fields: Vec<&serde_json::Value> = match value.as_array().unwrap().first() {
            Some(serde_json::Value::Array(_)) => value
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|row| row.as_array().unwrap())
                .collect(),
            _ => value.as_array().unwrap().iter().collect(),
        };
        fields
            .into_iter()
            .map(|f| {
                let tags = &f["tags"];
                let abbreviated = [&tags["origin"], &tags["nature"], &tags["scope"]]
                    .map(|t| t.as_str().unwrap().to_owned())
                    .join(",");
                (
                    (
                        f["objType"].as_str().unwrap_or("Info").to_owned(),
                        f["field"]["name"].as_str().unwrap().to_owned(),
                    ),
                    (
                        f["field"]["pos"].as_u64().unwrap(),
                        abbreviated,
                        f["value"]["type"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect()
    }

    fn spelled(tags: &str) -> String {
        let t = tags.as_bytes();
        [origin(t[0]), nature(t[1]), scope(t[2])].join(",")
    }

    /// Every field veza-lb prints for a row type has HAProxy's position, tags and type for
    /// that row type, wherever HAProxy printed the field.
    #[test]
    fn stat_fields_are_haproxy_s() {
        let haproxy = haproxy_fields(HAPROXY_STAT);
        let mut compared = 0;
        for (kind, obj_type) in [("0", "Frontend"), ("1", "Backend"), ("2", "Server")] {
            let mut cells = vec!["0".to_owned(); COLUMNS.len()];
            cells[Col::Type as usize] = kind.to_owned();
            for field in stat_fields(&cells) {
                let Some((pos, tags, ty)) = haproxy.get(&(obj_type.to_owned(), field.name.into()))
                else {
                    continue;
                };
                let ours = (field.pos as u64, spelled(field.tags), field.ty.name());
                assert_eq!(
                    ours,
                    (*pos, tags.clone(), ty.as_str()),
                    "{obj_type} {}",
                    field.name
                );
                compared += 1;
            }
        }
        assert!(compared > 200, "only {compared} fields compared");
    }

    #[test]
    fn info_fields_are_haproxy_s() {
        let haproxy = haproxy_fields(HAPROXY_INFO);
        for &(name, pos, tags, ty) in INFO_FIELDS {
            let (h_pos, h_tags, h_ty) = &haproxy[&("Info".to_owned(), name.to_owned())];
            assert_eq!(
                (pos as u64, spelled(tags), ty.name()),
                (*h_pos, h_tags.clone(), h_ty.as_str()),
                "{name}"
            );
        }
    }

    #[test]
    fn layouts_of_one_row() {
        let mut cells = vec![String::new(); COLUMNS.len()];
        cells[0] = "veza".to_owned();
        cells[1] = "FRONTEND".to_owned();
        cells[Col::Iid as usize] = "1".to_owned();
        cells[Col::Type as usize] = "0".to_owned();
        cells[Col::Status as usize] = "OPEN \"quoted\"".to_owned();
        cells[Col::SslSess as usize] = "12".to_owned();
        let rows = [cells];
        assert_eq!(
            stat_typed(&rows),
            "F.1.0.0.pxname.1:KNS:str:veza\nF.1.0.1.svname.1:KNS:str:FRONTEND\n\
             F.1.0.17.status.1:SGP:str:OPEN \"quoted\"\nF.1.0.27.iid.1:KGS:u32:1\n\
             F.1.0.32.type.1:CGS:u32:0\nF.1.0.103.ssl_sess.1:MCP:u64:12\n\n"
        );
        let json = stat_json(&rows);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed[0][2]["value"]["value"], "OPEN \"quoted\"");
        assert_eq!(parsed[0][5]["field"]["pos"], 103, "after `-`, one lower");
        assert_eq!(parsed[0][5]["objType"], "Frontend");
        assert_eq!(stat_json(&[]), "[]\n\n");
    }
}
