//! Lexical rules that several sections share: frontend and pool names, HTTP tokens and paths.

use super::Ctx;
use crate::config::values::{describe_char, first_invalid, is_name_char, is_tchar};

impl Ctx<'_> {
    /// Checks a frontend or pool name: non-empty, HAProxy identifier characters.
    pub(super) fn check_name(&mut self, kind: &str, name: &str, at: usize) -> bool {
        if name.is_empty() {
            self.error(at, format!("the {kind} name is empty; give it a name"));
            return false;
        }
        if let Some(c) = first_invalid(name, is_name_char) {
            self.error(
                at,
                format!(
                    "the {kind} name `{name}` contains {}; use only letters, digits, `-`, `_`, \
                     `.` and `:`",
                    describe_char(c)
                ),
            );
            return false;
        }
        true
    }

    /// Checks an RFC 9110 token (header names, methods).
    pub(super) fn check_token(&mut self, kind: &str, text: &str, at: usize) -> bool {
        if text.is_empty() {
            self.error(at, format!("the {kind} is empty"));
            return false;
        }
        if let Some(c) = first_invalid(text, is_tchar) {
            self.error(
                at,
                format!(
                    "the {kind} `{text}` contains {}; it may only contain letters, digits and \
                     !#$%&'*+-.^_`|~",
                    describe_char(c)
                ),
            );
            return false;
        }
        true
    }

    /// Checks an HTTP path: starts with `/`, no spaces or control characters; a query string
    /// is allowed only when `query_ok`.
    pub(super) fn check_path(&mut self, key: &str, path: &str, at: usize, query_ok: bool) -> bool {
        if !path.starts_with('/') {
            self.error(
                at,
                format!(
                    "`{key}` must start with `/`, such as \"/{}\"",
                    path.trim_start_matches('/')
                ),
            );
            return false;
        }
        let forbidden =
            |c: char| c.is_whitespace() || c.is_control() || c == '#' || (!query_ok && c == '?');
        if let Some(c) = path.chars().find(|&c| forbidden(c)) {
            self.error(
                at,
                format!(
                    "`{key}` contains {}, which cannot appear in it",
                    describe_char(c)
                ),
            );
            return false;
        }
        true
    }
}
