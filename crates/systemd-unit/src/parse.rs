//! Reading rendered units back, with systemd's rules, to prove rendering is faithful.
//!
//! This is not a general unit-file parser: it reads what [`crate::Unit::render`] writes (plus
//! comments and blank lines) and refuses anything else loudly.

use crate::Error;

/// A unit file as ordered sections of ordered `(key, value)` assignments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedUnit {
    /// `(section name, assignments)` in file order.
    pub sections: Vec<(String, Vec<(String, String)>)>,
}

impl ParsedUnit {
    /// Every raw value assigned to `key` in `section`, in order.
    pub fn values(&self, section: &str, key: &str) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|(name, _)| name == section)
            .flat_map(|(_, entries)| entries.iter())
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The last raw value of `key` in `section` (later assignments win for scalar settings).
    pub fn value(&self, section: &str, key: &str) -> Option<&str> {
        self.values(section, key).pop()
    }
}

fn parse_error(line: usize, reason: impl Into<String>) -> Error {
    Error::Parse {
        line,
        reason: reason.into(),
    }
}

/// Splits unit-file text into sections and assignments (systemd.syntax(7)).
///
/// # Errors
/// [`Error::Parse`] for a line continuation, an assignment outside a section or a line that
/// is neither a section header, a comment nor `key=value`.
pub fn parse(text: &str) -> Result<ParsedUnit, Error> {
    let mut unit = ParsedUnit::default();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.ends_with('\\') {
            return Err(parse_error(
                line_no,
                "line continuation; rendered units never use one",
            ));
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            unit.sections.push((name.to_owned(), Vec::new()));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(parse_error(line_no, "expected key=value"));
        };
        let Some((_, entries)) = unit.sections.last_mut() else {
            return Err(parse_error(
                line_no,
                "assignment before the first [Section]",
            ));
        };
        entries.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(unit)
}

/// Undoes specifier escaping: `%%` becomes `%`; any other specifier is refused because its
/// value depends on the host.
///
/// # Errors
/// [`Error::Parse`] (line 0) for a real specifier such as `%n`.
pub fn unescape_specifiers(value: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('%') => out.push('%'),
                other => {
                    return Err(parse_error(
                        0,
                        format!("specifier %{} would be expanded", other.unwrap_or(' ')),
                    ));
                }
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Splits a value into words the way `ExecStart=` and `Environment=` do: whitespace separates,
/// single and double quotes group, C escapes (`\n`, `\\`, `\"`, `\xHH`) are decoded.
///
/// # Errors
/// [`Error::Parse`] (line 0) for an unterminated quote or an unknown escape.
pub fn split_words(value: &str) -> Result<Vec<String>, Error> {
    let mut words = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                in_word = true;
                let escaped = chars
                    .next()
                    .ok_or_else(|| parse_error(0, "trailing backslash"))?;
                match escaped {
                    'n' => bytes.push(b'\n'),
                    't' => bytes.push(b'\t'),
                    'r' => bytes.push(b'\r'),
                    '\\' | '"' | '\'' | ' ' => bytes.push(escaped as u8),
                    'x' => {
                        let hex: String =
                            [chars.next(), chars.next()].into_iter().flatten().collect();
                        let byte = u8::from_str_radix(&hex, 16)
                            .map_err(|_| parse_error(0, format!("bad escape \\x{hex}")))?;
                        bytes.push(byte);
                    }
                    other => return Err(parse_error(0, format!("unknown escape \\{other}"))),
                }
            }
            (q @ ('"' | '\''), None) => {
                in_word = true;
                quote = Some(q);
            }
            (q, Some(open)) if q == open => quote = None,
            (c, None) if " \t\n\r".contains(c) => {
                if in_word {
                    words.push(
                        String::from_utf8(std::mem::take(&mut bytes))
                            .map_err(|_| parse_error(0, "escape decodes to invalid UTF-8"))?,
                    );
                    in_word = false;
                }
            }
            (c, _) => {
                in_word = true;
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    if quote.is_some() {
        return Err(parse_error(0, "unterminated quote"));
    }
    if in_word {
        words.push(
            String::from_utf8(bytes)
                .map_err(|_| parse_error(0, "escape decodes to invalid UTF-8"))?,
        );
    }
    Ok(words)
}

/// Reads an `ExecStart=`-style value back into the argument vector the kernel would get,
/// with `${NAME}` references left as written and `$$` turned back into `$`.
///
/// # Errors
/// As [`unescape_specifiers`] and [`split_words`].
pub fn command_words(value: &str) -> Result<Vec<String>, Error> {
    Ok(split_words(&unescape_specifiers(value)?)?
        .into_iter()
        .map(|w| {
            if w.starts_with("${") {
                w
            } else {
                w.replace("$$", "$")
            }
        })
        .collect())
}
