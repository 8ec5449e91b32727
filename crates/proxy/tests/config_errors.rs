//! Broken configurations: each problem is reported at its exact line and column, with a plain
//! sentence, and every problem of a file is reported in one run.

use proxy::config::{Config, ConfigError, Diagnostic};

fn errors(text: &str) -> Vec<Diagnostic> {
    match Config::parse(text, "veza-lb.toml") {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(err) => err.diagnostics().to_vec(),
    }
}

#[test]
fn scratch() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/three-errors.toml")).unwrap();
    let e = Config::parse(&text, "three-errors.toml").unwrap_err();
    println!("{e}");
    let _ = errors;
    let _: Option<ConfigError> = None;
    let c = Config::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/brief.toml"))).unwrap();
    println!("{c:#?}\n{}\n{:#?}", c.summary(), c.warnings());
}
