//! The walk over the parsed TOML document that builds a [`Config`] and collects diagnostics.

use super::{Config, Diagnostic, Diagnostics};

pub(super) fn parse(text: &str, origin: &str) -> Result<Config, Diagnostics> {
    Err(Diagnostics::new(vec![Diagnostic::at(
        origin,
        text,
        0,
        "configuration parsing is being implemented".to_owned(),
    )]))
}
