//! Positioned messages about a configuration file, rendered like rustc and `haproxy -c`.

use std::fmt;

/// One problem in a configuration file, at a 1-based line and column.
///
/// Displayed as `FILE:LINE:COLUMN: message`, then the source line and a caret under the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name, as given to [`Config::parse`](super::Config::parse) or
    /// [`Config::load`](super::Config::load).
    pub origin: String,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// A plain sentence saying what is wrong and how to fix it.
    pub message: String,
    /// The source line the problem is on, without its line terminator.
    pub snippet: String,
}

impl Diagnostic {
    /// A diagnostic about `source` at byte `offset` (clamped into the text).
    pub(crate) fn at(origin: &str, source: &str, offset: usize, message: String) -> Diagnostic {
        let mut offset = offset.min(source.len());
        // A position at the very end of a file that ends with a newline reads better at the
        // end of the last line than on an empty line after it.
        if offset == source.len() && offset > 0 && source.ends_with('\n') {
            offset -= 1;
            if offset > 0 && source.as_bytes()[offset - 1] == b'\r' {
                offset -= 1;
            }
        }
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[offset..]
            .find('\n')
            .map_or(source.len(), |i| offset + i);
        let line = source[..line_start].matches('\n').count() + 1;
        let snippet = source[line_start..line_end]
            .strip_suffix('\r')
            .unwrap_or(&source[line_start..line_end]);
        // A position on a line's `\r\n` is shown just after the line's last character.
        let column = source[line_start..offset]
            .chars()
            .count()
            .min(snippet.chars().count())
            + 1;
        Diagnostic {
            origin: origin.to_owned(),
            line,
            column,
            message,
            snippet: snippet.to_owned(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.origin, self.line, self.column, self.message
        )?;
        writeln!(f, "  {}", self.snippet)?;
        // Keep tabs so the caret lines up with the column however the terminal expands them.
        let pad: String = self
            .snippet
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "  {pad}^")
    }
}

/// Every problem found in a configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// Wraps `diagnostics`, sorted by position (stable, so messages about one position keep
    /// the order they were found in).
    pub fn new(mut diagnostics: Vec<Diagnostic>) -> Diagnostics {
        diagnostics.sort_by_key(|d| (d.line, d.column));
        diagnostics.dedup();
        Diagnostics(diagnostics)
    }

    /// The diagnostics, in file order.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.0
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the diagnostics in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let src = "a = 1\nbé = \"x\"\n";
        let d = Diagnostic::at("f.toml", src, src.find("\"x\"").unwrap(), "m".into());
        assert_eq!((d.line, d.column), (2, 6));
        assert_eq!(d.snippet, "bé = \"x\"");
        assert_eq!(d.to_string(), "f.toml:2:6: m\n  bé = \"x\"\n       ^");
    }

    #[test]
    fn end_of_file_points_at_the_end_of_the_last_line() {
        let src = "a = [1,\r\n";
        let d = Diagnostic::at("f", src, src.len(), "m".into());
        assert_eq!((d.line, d.column, d.snippet.as_str()), (1, 8, "a = [1,"));
        let d = Diagnostic::at("f", "", 0, "m".into());
        assert_eq!((d.line, d.column, d.snippet.as_str()), (1, 1, ""));
    }

    #[test]
    fn offsets_inside_a_character_or_past_the_end_do_not_panic() {
        let src = "é";
        assert_eq!(Diagnostic::at("f", src, 1, "m".into()).column, 1);
        assert_eq!(Diagnostic::at("f", src, 99, "m".into()).column, 2);
    }

    #[test]
    fn tabs_are_kept_in_the_caret_line() {
        let d = Diagnostic::at("f", "\tx = 1", 1, "m".into());
        assert_eq!(d.to_string(), "f:1:2: m\n  \tx = 1\n  \t^");
    }

    #[test]
    fn diagnostics_are_sorted_and_displayed_one_after_another() {
        let src = "a\nb\n";
        let all = Diagnostics::new(vec![
            Diagnostic::at("f", src, 2, "second".into()),
            Diagnostic::at("f", src, 0, "first".into()),
        ]);
        assert_eq!(
            all.to_string(),
            "f:1:1: first\n  a\n  ^\nf:2:1: second\n  b\n  ^"
        );
    }
}
