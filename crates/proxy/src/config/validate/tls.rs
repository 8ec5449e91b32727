//! A frontend's `tls` table: HTTPS listeners, certificate files and SNI certificates.

use std::collections::HashMap;
use std::path::PathBuf;

use toml::de::DeValue;

use super::Ctx;
use super::fields::{Section, Value, describe};
use crate::config::values::{describe_char, first_invalid};
use crate::config::{FrontendTls, SniCert};

const TLS_KEYS: &[&str] = &["bind", "cert", "key", "sni", "redirect_http", "hsts"];
const SNI_KEYS: &[&str] = &["server_names", "cert", "key"];

impl Ctx<'_> {
    pub(super) fn read_tls(&mut self, value: &Value<'_>, owner: &str) -> Option<FrontendTls> {
        let s = self.section(value, "tls", "the `tls` table".to_owned(), TLS_KEYS)?;
        let bind = self.addresses(&s, "bind");
        let bind = self.required(
            &s,
            "bind",
            "add `bind = [\"0.0.0.0:8443\"]`, where HTTPS is served",
            bind,
        );
        if let Some(bind) = &bind
            && bind.is_empty()
            && let Some(v) = s.get("bind")
        {
            self.error(
                v.span().start,
                "`bind` in `tls` is empty; add an address such as \"0.0.0.0:8443\"",
            );
        }
        for &(addr, at) in bind.iter().flatten() {
            self.listen(addr, at, owner.to_owned());
        }
        let cert = self.file(
            &s,
            "cert",
            "add `cert = \"fullchain.pem\"`, the PEM certificate chain",
        );
        let key = self.file(
            &s,
            "key",
            "add `key = \"privkey.pem\"`, the PEM private key",
        );
        let sni = match s.get("sni") {
            Some(value) => self.read_sni(value),
            None => Some(Vec::new()),
        };
        let redirect_http = self.boolean(&s, "redirect_http");
        let hsts = self.duration(&s, "hsts", false);
        if let (Ok(Some(hsts)), Some(v)) = (&hsts, s.get("hsts"))
            && hsts.subsec_millis() != 0
        {
            self.error(
                v.span().start,
                "`hsts` is sent in whole seconds; use a duration such as \"365d\"",
            );
        }
        Some(FrontendTls {
            bind: bind?.into_iter().map(|(a, _)| a).collect(),
            cert: cert?,
            key: key?,
            sni: sni?,
            redirect_http: redirect_http.ok()?.unwrap_or(false),
            hsts: hsts.ok()?,
        })
    }

    /// A required, non-empty file path, resolved against the configuration's directory.
    fn file(&mut self, s: &Section<'_, '_>, key: &str, hint: &str) -> Option<PathBuf> {
        let path = self.string(s, key);
        let (path, at) = self.required(s, key, hint, path)?;
        if path.is_empty() {
            self.error(at, format!("`{key}` is empty; {hint}"));
            return None;
        }
        Some(self.resolve(path))
    }

    fn read_sni(&mut self, value: &Value<'_>) -> Option<Vec<SniCert>> {
        let hint = "write it as sni = [{ server_names = [\"www.example.com\"], cert = \"...\", key = \"...\" }]";
        let tables = self.tables(value, "sni", hint)?;
        let mut seen = HashMap::new();
        let mut certs = Some(Vec::new());
        for table in tables {
            let cert = self.read_sni_cert(table, &mut seen);
            match (&mut certs, cert) {
                (Some(all), Some(cert)) => all.push(cert),
                _ => certs = None,
            }
        }
        certs
    }

    fn read_sni_cert(
        &mut self,
        value: &Value<'_>,
        seen: &mut HashMap<String, usize>,
    ) -> Option<SniCert> {
        let s = self.section(value, "sni", "this `sni` certificate".to_owned(), SNI_KEYS)?;
        let names = match s.get("server_names") {
            None => {
                self.error(
                    s.start,
                    "this `sni` certificate has no `server_names`; add the host names it \
                     serves, such as server_names = [\"www.example.com\"]",
                );
                None
            }
            Some(v) => self.server_names(v, seen),
        };
        let cert = self.file(
            &s,
            "cert",
            "add `cert = \"...\"`, the PEM certificate chain",
        );
        let key = self.file(&s, "key", "add `key = \"...\"`, the PEM private key");
        Some(SniCert {
            server_names: names?,
            cert: cert?,
            key: key?,
        })
    }

    fn server_names(
        &mut self,
        value: &Value<'_>,
        seen: &mut HashMap<String, usize>,
    ) -> Option<Vec<String>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                value.span().start,
                format!(
                    "`server_names` must be an array of host names, not {}",
                    describe(value.get_ref())
                ),
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                value.span().start,
                "`server_names` is empty; add the host names this certificate serves",
            );
            return None;
        }
        let mut names = Some(Vec::new());
        for item in items.iter() {
            let at = item.span().start;
            let name = match item.get_ref() {
                DeValue::String(name) => {
                    let name = name.to_ascii_lowercase();
                    match host_name_problem(&name) {
                        None => Some(name),
                        Some(why) => {
                            self.error(at, format!("`{name}` is not a valid server name: {why}"));
                            None
                        }
                    }
                }
                other => {
                    self.error(
                        at,
                        format!("each server name must be a string, not {}", describe(other)),
                    );
                    None
                }
            };
            if let Some(name) = &name
                && let Some(line) = self.seen_before(seen, name, at)
            {
                self.error(
                    at,
                    format!(
                        "the server name `{name}` is already served by the certificate on line \
                         {line}"
                    ),
                );
            }
            match (&mut names, name) {
                (Some(all), Some(name)) => all.push(name),
                _ => names = None,
            }
        }
        names
    }
}

/// Why `name` is not a valid (lowercase) SNI host name, if it is not.
fn host_name_problem(name: &str) -> Option<String> {
    let labels = name.strip_prefix("*.").unwrap_or(name);
    if name.is_empty() {
        return Some("it is empty".to_owned());
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters".to_owned());
    }
    for label in labels.split('.') {
        if label.is_empty() {
            return Some(
                "it has an empty label (two dots in a row, or a dot at an end)".to_owned(),
            );
        }
        if let Some(c) = first_invalid(label, |c| c.is_ascii_alphanumeric() || c == '-') {
            return Some(format!(
                "it contains {}; use letters, digits, `-` and `.`, with `*.` only at the start",
                describe_char(c)
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("a label starts or ends with `-`".to_owned());
        }
        if label.len() > 63 {
            return Some("a label is longer than 63 characters".to_owned());
        }
    }
    None
}
