//! Typed access to one table's keys: unknown, missing and mistyped keys are reported at their
//! position.

use std::net::SocketAddr;
use std::time::Duration;

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::Ctx;
use crate::config::values::{closest, parse_duration, parse_socket_addr};

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// Marks a value that was present but invalid; the problem has already been reported.
pub(super) struct Reported;

/// A key's value: absent, present and valid, or present and invalid (already reported).
pub(super) type Got<T> = Result<Option<T>, Reported>;

/// A table being read, with what to call it in messages.
pub(super) struct Section<'a, 'i> {
    table: &'a DeTable<'i>,
    /// Where the table starts: its `[header]`, its `{`, or its first key.
    pub(super) start: usize,
    /// How messages name it: `[global]`, `the \`cookie\` table`, ...
    pub(super) what: String,
}

impl<'a, 'i> Section<'a, 'i> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.table.get(key)
    }
}

impl Ctx<'_> {
    /// Opens `value` as a table, reporting unknown keys (with a suggestion when one is a likely
    /// typo).
    pub(super) fn section<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        key: &str,
        what: String,
        known: &[&str],
    ) -> Option<Section<'a, 'i>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                value.span().start,
                format!(
                    "`{key}` must be a table, not {}; write it as `{key} = {{ ... }}` or as a \
                     [section]",
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        for (k, _) in table.iter() {
            let name: &str = k.get_ref();
            if !known.contains(&name) {
                let hint = match closest(name, known.iter().copied()) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => format!("the keys allowed here are {}", list(known)),
                };
                self.error(
                    k.span().start,
                    format!("unknown key `{name}` in {what}; {hint}"),
                );
            }
        }
        Some(Section {
            table,
            start: value.span().start,
            what,
        })
    }

    /// Reports a required key that is absent.
    pub(super) fn required<T>(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        hint: &str,
        got: Got<T>,
    ) -> Option<T> {
        match got {
            Ok(Some(value)) => Some(value),
            Ok(None) => {
                self.error(
                    section.start,
                    format!("{} has no `{key}`; {hint}", section.what),
                );
                None
            }
            Err(Reported) => None,
        }
    }

    fn typed<'a, 'i, T>(
        &mut self,
        section: &Section<'a, 'i>,
        key: &str,
        expected: &str,
        extract: impl FnOnce(&'a DeValue<'i>) -> Option<T>,
    ) -> Got<(T, usize)> {
        let Some(value) = section.get(key) else {
            return Ok(None);
        };
        match extract(value.get_ref()) {
            Some(v) => Ok(Some((v, value.span().start))),
            None => {
                self.error(
                    value.span().start,
                    format!(
                        "`{key}` must be {expected}, not {}",
                        describe(value.get_ref())
                    ),
                );
                Err(Reported)
            }
        }
    }

    pub(super) fn string<'a>(
        &mut self,
        section: &Section<'a, '_>,
        key: &str,
    ) -> Got<(&'a str, usize)> {
        self.typed(section, key, "a string", DeValue::as_str)
    }

    pub(super) fn boolean(&mut self, section: &Section<'_, '_>, key: &str) -> Got<bool> {
        Ok(self
            .typed(section, key, "true or false", DeValue::as_bool)?
            .map(|(v, _)| v))
    }

    /// An integer in `min..=max`; `why` explains the bounds.
    pub(super) fn integer(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        why: &str,
    ) -> Got<i64> {
        let Some((value, at)) = self.typed(section, key, "an integer", |v| match v {
            DeValue::Integer(i) => Some(i64::from_str_radix(i.as_str(), i.radix()).ok()),
            _ => None,
        })?
        else {
            return Ok(None);
        };
        match value {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => {
                let too_small = value.is_some_and(|n| n < *range.start());
                let bounds = if too_small && *range.start() > 0 {
                    format!("at least {}", range.start())
                } else {
                    format!("between {} and {}", range.start(), range.end())
                };
                self.error(at, format!("`{key}` must be {bounds}{why}"));
                Err(Reported)
            }
        }
    }

    /// A duration string; zero is refused unless `zero_ok`.
    pub(super) fn duration(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
        zero_ok: bool,
    ) -> Got<Duration> {
        let Some((text, at)) = self.typed(
            section,
            key,
            "a duration string such as \"5s\"",
            DeValue::as_str,
        )?
        else {
            return Ok(None);
        };
        match parse_duration(text) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.error(at, format!("`{key}` must be longer than 0"));
                Err(Reported)
            }
            Ok(d) => Ok(Some(d)),
            Err(why) => {
                self.error(at, format!("`{key}` is not a valid duration: {why}"));
                Err(Reported)
            }
        }
    }

    pub(super) fn address(&mut self, key: &str, value: &str, at: usize) -> Option<SocketAddr> {
        match parse_socket_addr(value) {
            Ok(addr) => Some(addr),
            Err(why) => {
                self.error(at, format!("`{key}` is not a valid address: {why}"));
                None
            }
        }
    }

    /// One address or an array of them; each bad element is reported at its position.
    pub(super) fn addresses(
        &mut self,
        section: &Section<'_, '_>,
        key: &str,
    ) -> Got<Vec<(SocketAddr, usize)>> {
        let Some(value) = section.get(key) else {
            return Ok(None);
        };
        let elements: Vec<&Value<'_>> = match value.get_ref() {
            DeValue::String(_) => vec![value],
            DeValue::Array(items) => items.iter().collect(),
            other => {
                self.error(
                    value.span().start,
                    format!(
                        "`{key}` must be an array of addresses such as [\"0.0.0.0:8080\"], not \
                         {}",
                        describe(other)
                    ),
                );
                return Err(Reported);
            }
        };
        let mut addrs = Vec::new();
        let mut ok = true;
        for element in elements {
            let at = element.span().start;
            match element.get_ref() {
                DeValue::String(text) => match self.address(key, text, at) {
                    Some(addr) => addrs.push((addr, at)),
                    None => ok = false,
                },
                other => {
                    self.error(
                        at,
                        format!(
                            "each address in `{key}` must be a string such as \"0.0.0.0:8080\", \
                             not {}",
                            describe(other)
                        ),
                    );
                    ok = false;
                }
            }
        }
        if ok { Ok(Some(addrs)) } else { Err(Reported) }
    }

    /// An array of tables (`[[x]]` or `x = [{ ... }, ...]`).
    pub(super) fn tables<'a, 'i>(
        &mut self,
        value: &'a Value<'i>,
        key: &str,
        hint: &str,
    ) -> Option<Vec<&'a Value<'i>>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                value.span().start,
                format!(
                    "`{key}` must be an array of tables, not {}; {hint}",
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        let mut tables = Vec::new();
        for item in items.iter() {
            if item.get_ref().is_table() {
                tables.push(item);
            } else {
                self.error(
                    item.span().start,
                    format!(
                        "each element of `{key}` must be a table, not {}; {hint}",
                        describe(item.get_ref())
                    ),
                );
            }
        }
        Some(tables)
    }
}

/// Names a TOML value's type for messages, with its article.
pub(super) fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// `a, b and c`, each in backticks.
pub(super) fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}
