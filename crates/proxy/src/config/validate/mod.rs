//! The walk over the parsed TOML document that builds a [`Config`] and collects every
//! problem on the way.
//!
//! Each `read_*` function checks one section completely, reporting each problem at its
//! position, and returns `None` when something it needs was invalid; the caller keeps going so
//! that one run reports everything. Cross-references (pool names) are resolved at the end,
//! against every pool the file defines, so a broken pool does not also make every reference
//! to it an error.
//!
//! This module holds the entry point, the context every reader reports into, and the walk over
//! the root table; each section's rules live in the submodule named after it.

mod defaults;
mod fields;
mod frontend;
mod global;
mod health;
mod lexical;
mod pool;
mod references;
mod servers;
mod tls;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::values::closest;
use super::{Config, Diagnostic, Diagnostics, Global};
use defaults::Inherited;

const ROOT_KEYS: &[&str] = &["global", "defaults", "frontend", "pool"];

pub(super) fn parse(text: &str, origin: &str) -> Result<Config, Diagnostics> {
    let mut ctx = Ctx {
        source: text,
        origin,
        base_dir: Path::new(origin)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        errors: Vec::new(),
        warnings: Vec::new(),
        listeners: HashMap::new(),
    };
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // What the parser recovered is a guess; checking it would add confusing errors.
        for error in &syntax_errors {
            let span = error.span().unwrap_or(0..0);
            let message = syntax_message(text, error.message(), span.clone());
            ctx.error(span.start, message);
        }
        return Err(ctx.into_errors());
    }
    let root_span = root.span();
    let root = root.into_inner();
    let config = ctx.read_config(&root, root_span);
    match config {
        Some(config) if ctx.errors.is_empty() => Ok(Config {
            warnings: Diagnostics::new(ctx.warnings).into_iter().collect(),
            ..config
        }),
        _ => Err(ctx.into_errors()),
    }
}

fn syntax_message(source: &str, message: &str, span: Range<usize>) -> String {
    let message = message.replace('\n', " ");
    if message == "duplicate key"
        && let Some(key) = source.get(span)
    {
        return format!(
            "invalid TOML: the key `{key}` is defined twice; each key may appear once per table"
        );
    }
    format!("invalid TOML: {message}")
}

struct Ctx<'s> {
    source: &'s str,
    origin: &'s str,
    base_dir: PathBuf,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    /// Every TCP listening address seen so far: where, and who listens there.
    listeners: HashMap<SocketAddr, (usize, String)>,
}

impl<'s> Ctx<'s> {
    fn error(&mut self, at: usize, message: impl Into<String>) {
        let diagnostic = Diagnostic::at(self.origin, self.source, at, message.into());
        self.errors.push(diagnostic);
    }

    fn warn(&mut self, at: usize, message: impl Into<String>) {
        let diagnostic = Diagnostic::at(self.origin, self.source, at, message.into());
        self.warnings.push(diagnostic);
    }

    fn into_errors(self) -> Diagnostics {
        Diagnostics::new(self.errors)
    }

    fn line_of(&self, at: usize) -> usize {
        Diagnostic::at(self.origin, self.source, at, String::new()).line
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    fn read_config(&mut self, root: &DeTable<'_>, span: Range<usize>) -> Option<Config> {
        for (key, _) in root.iter() {
            let name: &str = key.get_ref();
            if !ROOT_KEYS.contains(&name) {
                let hint = match name {
                    "backend" | "backends" | "listen" => {
                        " veza-lb calls backends pools: write [pool.NAME]".to_owned()
                    }
                    _ => match closest(name, ROOT_KEYS.iter().copied()) {
                        Some(s) => format!(" did you mean `{s}`?"),
                        None => String::new(),
                    },
                };
                self.error(
                    key.span().start,
                    format!(
                        "unknown section `{name}`; the sections are [global], [defaults], \
                         [[frontend]] and [pool.NAME].{hint}"
                    ),
                );
            }
        }
        let global = match root.get("global") {
            Some(value) => self.read_global(value),
            None => Some(Global::default()),
        };
        let defaults = match root.get("defaults") {
            Some(value) => self.read_defaults(value),
            None => Some(Inherited::default()),
        };
        let defaults = defaults.unwrap_or_default();

        let pool_values = match root.get("pool") {
            Some(value) => self.pool_entries(value),
            None => Vec::new(),
        };
        let pool_names: HashSet<&str> = pool_values.iter().map(|(name, _, _)| *name).collect();

        let mut pool_refs = Vec::new();
        let frontends = match root.get("frontend") {
            Some(value) => self.read_frontends(value, &mut pool_refs),
            None => {
                self.error(
                    span.start,
                    "the configuration has no frontend; add a [[frontend]] with a `name`, a \
                     `bind` address and a `default_pool`",
                );
                None
            }
        };

        self.check_pool_refs(&pool_refs, &pool_names);

        let used: HashSet<&str> = pool_refs.iter().map(|r| r.name.as_str()).collect();
        let mut pools = Some(Vec::new());
        for (name, name_at, value) in &pool_values {
            if !used.contains(name) && frontends.is_some() {
                self.warn(
                    *name_at,
                    format!("pool `{name}` is not used by any frontend or route"),
                );
            }
            let pool = self.read_pool(name, *name_at, value, &defaults);
            match (&mut pools, pool) {
                (Some(pools), Some(pool)) => pools.push(pool),
                _ => pools = None,
            }
        }

        Some(Config {
            global: global?,
            frontends: frontends?,
            pools: pools?,
            warnings: Vec::new(),
        })
    }
}
