//! Broken configurations: each problem is reported at its exact line and column with a plain
//! sentence, and every problem of a file is reported in one run.

use std::path::Path;

use proxy::config::{Config, ConfigError};

/// A valid configuration the tests break in one place. Line 7 holds the server list.
const BASE: &str = r#"[[frontend]]
name = "web"
bind = ["0.0.0.0:8080"]
default_pool = "api"

[pool.api]
servers = [{ name = "api-1", addr = "127.0.0.1:18081" }]
"#;

/// `(line, column, message)` of every error of `text`, in file order.
fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match Config::parse(text, "veza-lb.toml") {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(err) => err
            .diagnostics()
            .iter()
            .map(|d| (d.line, d.column, d.message.clone()))
            .collect(),
    }
}

/// The single error of `text`.
#[track_caller]
fn error(text: &str) -> (usize, usize, String) {
    let all = errors(text);
    assert_eq!(all.len(), 1, "expected exactly one error, got {all:#?}");
    all.into_iter().next().unwrap()
}

#[track_caller]
fn assert_error(text: &str, line: usize, column: usize, message: &str) {
    assert_eq!(error(text), (line, column, message.to_owned()));
}

/// `BASE` with `from` replaced by `to` (which must occur exactly once).
#[track_caller]
fn base_with(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from:?}");
    BASE.replace(from, to)
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

#[test]
fn the_base_configuration_is_valid() {
    Config::parse(BASE, "veza-lb.toml").unwrap();
}

#[test]
fn unknown_keys_are_reported_with_a_suggestion() {
    let text = format!("[defaults]\ntimeout_conect = \"5s\"\n{BASE}");
    assert_error(
        &text,
        2,
        1,
        "unknown key `timeout_conect` in [defaults]; did you mean `timeout_connect`?",
    );
    let text = base_with("[pool.api]\n", "[pool.api]\nsticky = true\n");
    let (line, column, message) = error(&text);
    assert_eq!((line, column), (7, 1));
    assert!(
        message.starts_with("unknown key `sticky` in pool `api`; the keys allowed here are "),
        "{message}"
    );
}

#[test]
fn haproxy_section_names_get_a_hint() {
    let text = format!("{BASE}[backend.api]\n");
    assert_error(
        &text,
        8,
        2,
        "unknown section `backend`; the sections are [global], [defaults], [[frontend]] and \
         [pool.NAME]. veza-lb calls backends pools: write [pool.NAME]",
    );
}

#[test]
fn dangling_pool_names() {
    let text = base_with("default_pool = \"api\"", "default_pool = \"apj\"");
    assert_error(
        &text,
        4,
        16,
        "`default_pool` names the pool `apj`, which is not defined; did you mean `api`?",
    );
    let text = format!("{BASE}\n[[frontend.route]]\npath_prefix = \"/s/\"\npool = \"stream\"\n");
    let all = errors(&text);
    // The route after [pool.api] belongs to the frontend anyway: TOML attaches
    // [[frontend.route]] to the last [[frontend]].
    assert_eq!(
        all,
        vec![(
            11,
            8,
            "`pool` names the pool `stream`, which is not defined; the pools are `api`".to_owned()
        )]
    );
}

#[test]
fn duplicate_names() {
    let text = format!(
        "{BASE}\n[[frontend]]\nname = \"web\"\nbind = [\"0.0.0.0:8081\"]\ndefault_pool = \"api\"\n"
    );
    assert_error(
        &text,
        10,
        8,
        "duplicate frontend name `web`, already used on line 2; frontend names must be unique",
    );

    let text = format!("{BASE}\n[pool.api]\n");
    assert_error(
        &text,
        9,
        7,
        "invalid TOML: the key `api` is defined twice; each key may appear once per table",
    );

    let text = base_with(
        "servers = [{ name = \"api-1\", addr = \"127.0.0.1:18081\" }]",
        "servers = [\n  { name = \"api-1\", addr = \"127.0.0.1:18081\" },\n  { name = \"api-1\", addr = \"127.0.0.1:18082\" },\n]",
    );
    assert_error(
        &text,
        9,
        12,
        "duplicate server name `api-1`, already used on line 8; server names must be unique",
    );
}

#[test]
fn pools_without_servers() {
    let text = base_with("[{ name = \"api-1\", addr = \"127.0.0.1:18081\" }]", "[]");
    assert_error(
        &text,
        7,
        11,
        "pool `api` has no servers; add at least one: write them as servers = [{ name = \
         \"app-1\", addr = \"10.0.0.1:8080\" }]",
    );
    let text = base_with(
        "servers = [{ name = \"api-1\", addr = \"127.0.0.1:18081\" }]",
        "balance = \"roundrobin\"",
    );
    assert_error(
        &text,
        6,
        1,
        "pool `api` has no servers; add `servers`: write them as servers = [{ name = \"app-1\", \
         addr = \"10.0.0.1:8080\" }], or a `server_template`",
    );
}

#[test]
fn bad_durations() {
    let cases = [
        ("\"5x\"", "unknown unit `x`; use ms, s, m, h or d"),
        (
            "\"\"",
            "it is empty; write a whole number and a unit (ms, s, m, h or d), such as \"500ms\", \"5s\" or \"1m30s\"",
        ),
        ("\"-1s\"", "durations cannot be negative"),
        (
            "\"5\"",
            "the number has no unit; add one, such as \"5s\" or \"5ms\"",
        ),
    ];
    for (value, why) in cases {
        let text = format!("[defaults]\ntimeout_server = {value}\n{BASE}");
        assert_error(
            &text,
            2,
            18,
            &format!("`timeout_server` is not a valid duration: {why}"),
        );
    }
    let text = format!("[defaults]\ntimeout_server = 5\n{BASE}");
    assert_error(
        &text,
        2,
        18,
        "`timeout_server` must be a duration string such as \"5s\", not an integer",
    );
    let text = format!("[defaults]\ntimeout_connect = \"0s\"\n{BASE}");
    assert_error(&text, 2, 19, "`timeout_connect` must be longer than 0");
}

#[test]
fn bad_addresses() {
    let cases = [
        (
            // A host name is fine (resolved by DNS); this is neither a name nor an IP.
            "bad_name:18081",
            "write an IP address and port, such as \"127.0.0.1:8080\" or \"[::1]:8080\"",
        ),
        (
            "127.0.0.1",
            "it has no port; write it as \"127.0.0.1:PORT\"",
        ),
        (
            "::1:18081",
            "write IPv6 addresses in brackets, as \"[::1]:18081\"",
        ),
        (
            "127.0.0.1:70000",
            "`70000` is not a port; a port is a number from 0 to 65535",
        ),
    ];
    for (addr, why) in cases {
        let text = base_with("127.0.0.1:18081", addr);
        assert_error(
            &text,
            7,
            37,
            &format!("`addr` is not a valid address: {why}"),
        );
    }
    let text = base_with("127.0.0.1:18081", "127.0.0.1:0");
    assert_error(
        &text,
        7,
        37,
        "a server's port cannot be 0; write the port it listens on",
    );
    let text = base_with("\"0.0.0.0:8080\"", "\"0.0.0.0:8080\", \"web:80\"");
    let (line, column, message) = error(&text);
    assert_eq!((line, column), (3, 25));
    assert!(message.starts_with("`bind` is not a valid address: `web` is a host name"));
}

#[test]
fn fall_and_rise_of_zero() {
    let text = base_with(
        "[pool.api]\n",
        "[pool.api]\nhealth = { path = \"/health\", fall = 0, rise = 0 }\n",
    );
    assert_eq!(
        errors(&text),
        vec![
            (
                7,
                37,
                "`fall` must be at least 1: a server is marked DOWN after `fall` failed checks \
                 in a row"
                    .to_owned()
            ),
            (
                7,
                47,
                "`rise` must be at least 1: a server is marked UP after `rise` passed checks in \
                 a row"
                    .to_owned()
            ),
        ]
    );
}

#[test]
fn weights_outside_0_to_256() {
    for weight in ["257", "-1"] {
        let text = base_with(" }]", &format!(", weight = {weight} }}]"));
        assert_error(&text, 7, 65, "`weight` must be between 0 and 256");
    }
    let text = base_with(" }]", ", weight = 1.5 }]");
    assert_error(&text, 7, 65, "`weight` must be an integer, not a float");
}

#[test]
fn cookie_names_must_be_tokens() {
    for (name, what) in [("SERVER ID", "a space"), ("a;b", "`;`"), ("ID=1", "`=`")] {
        let text = base_with(
            "[pool.api]\n",
            &format!("[pool.api]\ncookie = {{ name = \"{name}\" }}\n"),
        );
        assert_error(
            &text,
            7,
            19,
            &format!(
                "the cookie name `{name}` contains {what}; a cookie name may only contain \
                 letters, digits and !#$%&'*+-.^_`|~"
            ),
        );
    }
}

#[test]
fn server_names_must_be_cookie_values() {
    for (name, what) in [
        ("api 1", "a space"),
        ("api;1", "`;`"),
        ("api,1", "`,`"),
        ("é", "`é`"),
    ] {
        let text = base_with("\"api-1\"", &format!("\"{name}\""));
        assert_error(
            &text,
            7,
            21,
            &format!(
                "the server name `{name}` contains {what}; server names are sticky-cookie \
                 values, so they cannot contain spaces, quotes, `,`, `;`, `\\` or non-ASCII \
                 characters"
            ),
        );
    }
}

#[test]
fn balance_specific_keys() {
    let text = base_with(
        "[pool.api]\n",
        "[pool.api]\nhash_key = { source = \"path\", depth = 1 }\n",
    );
    assert_error(
        &text,
        7,
        12,
        "pool `api` uses round-robin, which ignores `hash_key`; remove `hash_key` or set \
         balance = \"jump-hash\"",
    );
    let text = base_with(
        "[pool.api]\n",
        "[pool.api]\nbalance = \"jump-hash\"\nhash_key = { source = \"query\", param = \"t\" }\ncookie = { name = \"SERVERID\" }\n",
    );
    assert_error(
        &text,
        9,
        10,
        "pool `api` uses jump-hash, which cannot honour a sticky cookie: the hash already pins \
         each key to a server; remove `cookie` or set balance = \"roundrobin\"",
    );
    let text = base_with("[pool.api]\n", "[pool.api]\nbalance = \"jump-hash\"\n");
    assert_error(
        &text,
        7,
        11,
        "pool `api` uses jump-hash but has no `hash_key`; add one such as hash_key = { source = \
         \"path\", depth = 2 }",
    );
    let text = base_with(
        "[pool.api]\n",
        "[pool.api]\nbalance = \"jump-hash\"\nhash_key = { source = \"path\", param = \"t\" }\n",
    );
    assert_error(
        &text,
        8,
        39,
        "`param` does not apply to source = \"path\"; remove it",
    );
    let text = base_with("[pool.api]\n", "[pool.api]\nbalance = \"leastconn\"\n");
    assert_error(
        &text,
        7,
        11,
        "unknown balance algorithm `leastconn`; use \"roundrobin\" or \"jump-hash\"",
    );
}

#[test]
fn routes_need_a_path_prefix_starting_with_a_slash() {
    let text = format!("{BASE}\n[[frontend.route]]\npath_prefix = \"stream/\"\npool = \"api\"\n");
    assert_error(
        &text,
        10,
        15,
        "`path_prefix` must start with `/`, such as \"/stream/\"",
    );
    let text = format!(
        "{BASE}\n[[frontend.route]]\npath_prefix = \"/s/\"\npool = \"api\"\n\
         [[frontend.route]]\npath_prefix = \"/s/\"\npool = \"api\"\n"
    );
    assert_error(
        &text,
        13,
        15,
        "the route for `/s/` duplicates the one on line 10; remove one of them",
    );
}

#[test]
fn frontends_are_required_and_need_an_address() {
    let text = "[pool.api]\nservers = [{ name = \"a\", addr = \"127.0.0.1:1\" }]\n";
    assert_error(
        text,
        1,
        1,
        "the configuration has no frontend; add a [[frontend]] with a `name`, a `bind` address \
         and a `default_pool`",
    );
    let text = base_with("bind = [\"0.0.0.0:8080\"]\n", "");
    assert_error(
        &text,
        1,
        1,
        "frontend `web` has no address to listen on; add `bind = [\"0.0.0.0:8080\"]` or a `tls` \
         table with a `bind`",
    );
    let text = base_with("[[frontend]]", "[frontend]");
    assert_error(
        &text,
        1,
        1,
        "`frontend` must be an array of tables, not a table; write each frontend as a \
         [[frontend]] section",
    );
    let text = base_with("name = \"web\"\n", "");
    assert_error(
        &text,
        1,
        1,
        "this frontend has no `name`; add `name = \"...\"` to identify it in stats and logs",
    );
}

#[test]
fn two_listeners_on_one_address() {
    let text = format!("[global]\nmetrics_listen = \"0.0.0.0:8080\"\n{BASE}");
    assert_error(
        &text,
        5,
        9,
        "frontend `web` listens on 0.0.0.0:8080, which `metrics_listen` already uses on line 2; \
         give each listener its own address",
    );
    // Port 0 means "any free port" and may repeat.
    let text = base_with("\"0.0.0.0:8080\"", "\"127.0.0.1:0\", \"127.0.0.1:0\"");
    Config::parse(&text, "veza-lb.toml").unwrap();
}

#[test]
fn health_check_timing() {
    let text = base_with(
        "[pool.api]\n",
        "[pool.api]\nhealth = { path = \"/h\", interval = \"1s\", timeout = \"2s\" }\n",
    );
    assert_error(
        &text,
        7,
        52,
        "the check `timeout` (2s) is longer than its `interval` (1s); make it at most the \
         interval",
    );
    let text = base_with(
        "[pool.api]\n",
        "[pool.api]\nhealth = { path = \"/h\", interval = \"0ms\" }\n",
    );
    assert_error(&text, 7, 36, "`interval` must be longer than 0");
    let text = base_with(
        "[pool.api]\n",
        "[pool.api]\nhealth = { interval = \"1s\" }\n",
    );
    assert_error(
        &text,
        7,
        10,
        "the `health` check has no `path`; add the path to request, such as path = \"/health\"",
    );
}

#[test]
fn wrong_types() {
    let text = format!("[global]\nthreads = \"2\"\n{BASE}");
    assert_error(&text, 2, 11, "`threads` must be an integer, not a string");
    let text = format!("[global]\nthreads = 0\n{BASE}");
    assert_error(
        &text,
        2,
        11,
        "`threads` must be at least 1; remove it to use one thread per core",
    );
    let text = format!("[defaults]\nredispatch = \"yes\"\n{BASE}");
    assert_error(
        &text,
        2,
        14,
        "`redispatch` must be true or false, not a string",
    );
}

#[test]
fn stats_sockets_with_bad_levels_entries_or_duplicates() {
    let text = format!(
        "[global]\nstats_socket_level = \"root\"\nstats_socket = \"127.0.0.1:9100\"\n{BASE}"
    );
    assert_error(
        &text,
        2,
        22,
        "`stats_socket_level` must be \"user\", \"operator\" or \"admin\" (HAProxy's access \
         levels), not \"root\"",
    );
    let text = format!(
        "[global]\nstats_socket = [\"127.0.0.1:9100\", {{ addr = \"unix:/run/a.sock\", level = \"Admin\" }}]\n{BASE}"
    );
    let (line, column, message) = error(&text);
    assert_eq!((line, column), (2, 72));
    assert!(message.starts_with("`level` must be"), "{message}");
    let text = format!("[global]\nstats_socket = [\"127.0.0.1:9100\", 9100]\n{BASE}");
    assert_error(
        &text,
        2,
        35,
        "each `stats_socket` must be an address string or a table such as { addr = \
         \"127.0.0.1:9100\", level = \"operator\" }, not an integer",
    );
    let text = format!("[global]\nstats_socket = [{{ level = \"admin\" }}]\n{BASE}");
    assert_error(
        &text,
        2,
        17,
        "a `stats_socket` table has no `addr`; write the address as addr = \"127.0.0.1:9100\" or \
         addr = \"unix:/run/veza-lb/admin.sock\"",
    );
    let text = format!(
        "[global]\nstats_socket = [\"unix:/run/a.sock\", {{ addr = \"unix:/run/a.sock\" }}]\n{BASE}"
    );
    assert_error(&text, 2, 37, "this `stats_socket` address is listed twice");
}

#[test]
fn rate_limits_need_a_known_key_a_count_and_a_period() {
    let text = base_with(
        "default_pool = \"api\"",
        "default_pool = \"api\"\nrate_limit = { key = \"hdr(x-user)\", requests = 5, per = \"1s\" }",
    );
    assert_error(
        &text,
        5,
        22,
        "`key = \"hdr(x-user)\"` is not a rate-limit key; the one supported is \"src\" (the \
         client's address)",
    );
    let text = base_with(
        "default_pool = \"api\"",
        "default_pool = \"api\"\nrate_limit = { requests = 0, per = \"1s\" }",
    );
    let (line, _, message) = error(&text);
    assert_eq!(line, 5);
    assert_eq!(message, "`requests` must be at least 1 per period");
    let text = base_with(
        "default_pool = \"api\"",
        "default_pool = \"api\"\nrate_limit = { requests = 10 }",
    );
    let (_, _, message) = error(&text);
    assert!(message.contains("has no `per`"), "{message}");
}

#[test]
fn toml_syntax_errors_have_positions_too() {
    let text = base_with("default_pool = \"api\"", "default_pool = api");
    let (line, column, message) = error(&text);
    assert_eq!((line, column), (4, 16));
    assert!(message.starts_with("invalid TOML: "), "{message}");
    let text = base_with("\"127.0.0.1:18081\" }]", "\"127.0.0.1:18081\" }");
    let all = errors(&text);
    assert!(!all.is_empty());
    assert!(
        all.iter()
            .all(|(line, _, m)| *line == 7 && m.starts_with("invalid TOML: ")),
        "{all:?}"
    );
}

#[test]
fn a_file_with_three_errors_reports_all_three() {
    let err = Config::load(&fixture("three-errors.toml")).unwrap_err();
    let found: Vec<(usize, usize)> = err
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.column))
        .collect();
    assert_eq!(found, vec![(3, 18), (11, 37), (13, 28)]);
    let origin = fixture("three-errors.toml").display().to_string();
    assert!(err.diagnostics().iter().all(|d| d.origin == origin));
}

#[test]
fn display_shows_position_sentence_line_and_caret() {
    let text = format!("[defaults]\nretries = -1\nredispatch = 1\n{BASE}");
    let err = Config::parse(&text, "conf/veza-lb.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "conf/veza-lb.toml:2:11: `retries` must be between 0 and 100\n\
         \x20 retries = -1\n\
         \x20           ^\n\
         conf/veza-lb.toml:3:14: `redispatch` must be true or false, not an integer\n\
         \x20 redispatch = 1\n\
         \x20              ^"
    );
}

#[test]
fn unreadable_and_non_utf8_files() {
    let missing = fixture("does-not-exist.toml");
    let err = Config::load(&missing).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }));
    assert!(err.to_string().starts_with(&format!(
        "cannot read configuration file {}: ",
        missing.display()
    )));

    let dir = std::env::temp_dir().join(format!("veza-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latin1.toml");
    std::fs::write(&path, b"[global]\n# caf\xe9\n").unwrap();
    let err = Config::load(&path).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let d = &err.diagnostics()[0];
    assert_eq!((d.line, d.column), (2, 6));
    assert_eq!(
        d.message,
        "the file is not valid UTF-8; save it as UTF-8 text"
    );
}
