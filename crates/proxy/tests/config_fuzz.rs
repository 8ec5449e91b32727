//! Parsing never panics, whatever the input, and every diagnostic points into the file.

use proptest::prelude::*;
use proxy::config::Config;

const SEEDS: [&str; 3] = [
    include_str!("configs/brief.toml"),
    include_str!("configs/full.toml"),
    include_str!("configs/three-errors.toml"),
];

/// Fragments that are likely to make interesting breakage when spliced into a configuration.
const FRAGMENTS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "=",
    ",",
    ".",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "#",
    "\\",
    "\\u",
    "0",
    "-1",
    "+1",
    "256",
    "257",
    "0x10",
    "0o777",
    "1e400",
    "inf",
    "nan",
    "1.5",
    "true",
    "1979-05-27T07:32:00Z",
    "99999999999999999999999",
    "é",
    "\u{0}",
    "\u{feff}",
    "\u{1F600}",
    "ms",
    "5x",
    "\"\"",
    "[]",
    "{}",
    "[pool.x]\n",
    "[[frontend]]\n",
    "[[frontend.route]]\n",
    "[global]\n",
    "servers = []\n",
    "name = \"a\"\n",
    "unix:",
    "[::1]",
    ":0",
    "localhost",
    "jump-hash",
    "roundrobin",
    "hash_key = {}\n",
    "cookie = {}\n",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete { at: f64, len: usize },
    Insert { at: f64, fragment: usize },
    Truncate { at: f64 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0.0..1.0, 1usize..12).prop_map(|(at, len)| Edit::Delete { at, len }),
        (0.0..1.0, 0..FRAGMENTS.len()).prop_map(|(at, fragment)| Edit::Insert { at, fragment }),
        (0.0..1.0).prop_map(|at| Edit::Truncate { at }),
    ]
}

fn boundary(text: &str, at: f64) -> usize {
    let mut i = ((text.len() as f64) * at) as usize;
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_owned();
    for edit in edits {
        match *edit {
            Edit::Delete { at, len } => {
                let start = boundary(&text, at);
                let mut end = (start + len).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(start..end, "");
            }
            Edit::Insert { at, fragment } => {
                let i = boundary(&text, at);
                text.insert_str(i, FRAGMENTS[fragment]);
            }
            Edit::Truncate { at } => {
                let i = boundary(&text, at);
                text.truncate(i);
            }
        }
    }
    text
}

/// Parses `text` and checks that every diagnostic is well-formed.
fn check(text: &str) {
    match Config::parse(text, "fuzz.toml") {
        Ok(config) => {
            assert!(!config.frontends.is_empty());
            assert!(config.pools.iter().all(|p| !p.servers.is_empty()));
            let _ = config.summary();
        }
        Err(err) => {
            let diagnostics = err.diagnostics();
            assert!(!diagnostics.is_empty());
            let lines: Vec<&str> = text.split('\n').collect();
            for d in diagnostics {
                assert!(d.line >= 1 && d.line <= lines.len(), "{d:?}");
                let line = lines[d.line - 1];
                assert_eq!(d.snippet, line.strip_suffix('\r').unwrap_or(line), "{d:?}");
                assert!(
                    d.column >= 1 && d.column <= d.snippet.chars().count() + 1,
                    "{d:?}"
                );
                assert!(!d.message.is_empty());
            }
            assert!(err.to_string().starts_with("fuzz.toml:"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_configurations_never_panic(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        check(&apply(SEEDS[seed], &edits));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn fragment_soup_never_panics(parts in prop::collection::vec(0..FRAGMENTS.len(), 0..40)) {
        let text: String = parts.into_iter().map(|i| FRAGMENTS[i]).collect();
        check(&text);
    }
}

#[test]
fn seeds_are_what_the_tests_think_they_are() {
    assert!(Config::parse(SEEDS[0], "brief.toml").is_ok());
    assert!(Config::parse(SEEDS[1], "full.toml").is_ok());
    assert_eq!(
        Config::parse(SEEDS[2], "t.toml")
            .unwrap_err()
            .diagnostics()
            .len(),
        3
    );
}
