//! A pool's `health` table: the active HTTP check of its servers.

use std::time::Duration;

use toml::de::DeValue;

use super::Ctx;
use super::fields::{Reported, Section, Value, describe};
use crate::config::HealthConfig;
use crate::config::values::describe_char;

const HEALTH_KEYS: &[&str] = &[
    "method",
    "path",
    "interval",
    "timeout",
    "fall",
    "rise",
    "expect_status",
    "host",
];

const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl Ctx<'_> {
    pub(super) fn read_health(&mut self, value: &Value<'_>) -> Option<HealthConfig> {
        let s = self.section(
            value,
            "health",
            "the `health` check".to_owned(),
            HEALTH_KEYS,
        )?;
        let method = match self.string(&s, "method") {
            Ok(Some((method, at))) => self
                .check_token("method", method, at)
                .then(|| method.to_owned()),
            Ok(None) => Some("GET".to_owned()),
            Err(Reported) => None,
        };
        let path = self.string(&s, "path");
        let path = self
            .required(
                &s,
                "path",
                "add the path to request, such as path = \"/health\"",
                path,
            )
            .filter(|&(path, at)| self.check_path("path", path, at, true));
        let interval = self.duration(&s, "interval", false);
        let timeout = self.duration(&s, "timeout", false);
        if let (Ok(interval), Ok(Some(timeout)), Some(v)) = (&interval, &timeout, s.get("timeout"))
        {
            let interval = interval.unwrap_or(DEFAULT_CHECK_INTERVAL);
            if *timeout > interval {
                self.error(
                    v.span().start,
                    format!(
                        "the check `timeout` ({}) is longer than its `interval` ({}); make it at \
                         most the interval",
                        show_duration(*timeout),
                        show_duration(interval)
                    ),
                );
            }
        }
        let fall = self.integer(
            &s,
            "fall",
            1..=1000,
            ": a server is marked DOWN after `fall` failed checks in a row",
        );
        let rise = self.integer(
            &s,
            "rise",
            1..=1000,
            ": a server is marked UP after `rise` passed checks in a row",
        );
        let expect_status = self.expect_status(&s);
        let host = match self.string(&s, "host") {
            Ok(Some((host, at))) => {
                let bad = host
                    .chars()
                    .find(|&c| !(c.is_ascii_alphanumeric() || "-._:[]".contains(c)));
                if host.is_empty() || bad.is_some() {
                    let why = bad.map_or("it is empty".to_owned(), |c| {
                        format!("it contains {}", describe_char(c))
                    });
                    self.error(
                        at,
                        format!("`host` must be a host name such as \"api.veza.example\": {why}"),
                    );
                    None
                } else {
                    Some(Some(host.to_owned()))
                }
            }
            Ok(None) => Some(None),
            Err(Reported) => None,
        };
        let interval = interval.ok()?.unwrap_or(DEFAULT_CHECK_INTERVAL);
        let timeout = timeout.ok()?.unwrap_or(DEFAULT_CHECK_TIMEOUT.min(interval));
        Some(HealthConfig {
            method: method?,
            path: path?.0.to_owned(),
            interval,
            timeout,
            fall: fall.ok()?.map_or(Some(3), |n| u32::try_from(n).ok())?,
            rise: rise.ok()?.map_or(Some(2), |n| u32::try_from(n).ok())?,
            expect_status: expect_status?,
            host: host?,
        })
    }

    fn expect_status(&mut self, s: &Section<'_, '_>) -> Option<Vec<u16>> {
        let Some(value) = s.get("expect_status") else {
            return Some(vec![200]);
        };
        let items: Vec<&Value<'_>> = match value.get_ref() {
            DeValue::Integer(_) => vec![value],
            DeValue::Array(items) => items.iter().collect(),
            other => {
                self.error(
                    value.span().start,
                    format!(
                        "`expect_status` must be an array of status codes such as [200], not {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        if items.is_empty() {
            self.error(
                value.span().start,
                "`expect_status` is empty; list the status codes that mean healthy, such as [200]",
            );
            return None;
        }
        let mut codes = Some(Vec::new());
        for item in items {
            let code = match item.get_ref() {
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .and_then(|c| u16::try_from(c).ok()),
                _ => None,
            };
            match (&mut codes, code) {
                (Some(all), Some(code)) => all.push(code),
                (_, None) => {
                    self.error(
                        item.span().start,
                        "each status code in `expect_status` must be an integer from 100 to 599",
                    );
                    codes = None;
                }
                _ => {}
            }
        }
        codes
    }
}

/// Formats a duration as a user would write it.
fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}
