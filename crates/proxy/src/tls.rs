//! TLS termination: certificates, SNI selection and the Mozilla Intermediate server settings.
//!
//! A frontend's certificates live in a [`CertResolver`], an `ArcSwap` of a [`CertSet`]: the
//! handshake reads the current set without a lock, and a reload swaps in a new one, so new
//! handshakes see new certificates while established connections keep the keys they
//! negotiated. The [`ServerConfig`] itself never changes after the frontend first starts.
//!
//! Expiry is read with a small DER walk of the certificate's `validity` field (rustls and
//! `rustls-pki-types` do not expose it, and a full X.509 parser is not worth a dependency for
//! one warning).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::HeaderValue;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite, kx_group};
use rustls::server::{ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;
use crate::config::{self, FrontendTls};

/// ALPN protocols offered, in server preference order.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Sessions kept for resumption (HAProxy's default `tune.ssl.cachesize`).
const SESSION_CACHE: usize = 20_000;

/// Certificates expiring within this long get a warning at load time.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// Mozilla's "Intermediate" recommendation (v6) restricted to what the aws-lc-rs provider
/// offers: TLS 1.3 suites, then ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2, in
/// Mozilla's order; X25519MLKEM768 first, then X25519, P-256 and P-384.
pub(crate) fn mozilla_intermediate() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![
            kx_group::X25519MLKEM768,
            kx_group::X25519,
            kx_group::SECP256R1,
            kx_group::SECP384R1,
        ],
        ..aws_lc_rs::default_provider()
    }
}

/// The certificates of one frontend: a default one and those selected by SNI.
#[derive(Debug)]
pub(crate) struct CertSet {
    default: Arc<CertifiedKey>,
    /// Exact host names, lowercase.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` entries, keyed by `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertSet {
    /// Reads and checks every certificate and key of a frontend's `tls` table.
    ///
    /// # Errors
    /// A file is missing or unreadable, holds no certificate or key, the key does not match
    /// its certificate, or an SNI certificate is not valid for a name it is listed for.
    pub(crate) fn load(frontend: &str, tls: &FrontendTls) -> Result<Self, Error> {
        let default = Arc::new(load_certified_key(frontend, &tls.cert, &tls.key)?);
        let mut set = CertSet {
            default,
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        for sni in &tls.sni {
            let key = Arc::new(load_certified_key(frontend, &sni.cert, &sni.key)?);
            for name in &sni.server_names {
                check_covers(frontend, &sni.cert, &key, name)?;
                match name.strip_prefix("*.") {
                    Some(parent) => set.wildcard.insert(parent.to_owned(), key.clone()),
                    None => set.exact.insert(name.clone(), key.clone()),
                };
            }
        }
        Ok(set)
    }

    fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(key) = self.exact.get(name) {
            return key;
        }
        // A wildcard covers exactly one label.
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .unwrap_or(&self.default)
    }
}

/// Picks a frontend's certificate by SNI from a swappable [`CertSet`]; clients naming no
/// host, or a host no `sni` entry lists, get the default certificate (as HAProxy does).
#[derive(Debug)]
pub(crate) struct CertResolver {
    current: ArcSwap<CertSet>,
}

impl CertResolver {
    pub(crate) fn new(set: CertSet) -> Self {
        Self {
            current: ArcSwap::from_pointee(set),
        }
    }

    /// Serves `set` to every handshake from now on.
    pub(crate) fn replace(&self, set: CertSet) {
        self.current.store(Arc::new(set));
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().pick(client_hello.server_name()).clone())
    }
}

/// TLS counters of one frontend: HAProxy's `ssl` statistics module (the `ssl_sess`,
/// `ssl_reused_sess` and `ssl_failed_handshake` columns that follow `agg_check_status` in
/// `show stat`) and the per-frontend part of `show info`'s `CurrSslConns`/`CumSslConns`.
#[derive(Debug, Default)]
pub struct TlsCounters {
    /// `ssl_sess`: handshakes completed.
    pub sessions: AtomicU64,
    /// `ssl_reused_sess`: completed handshakes that resumed an earlier session.
    pub reused_sessions: AtomicU64,
    /// `ssl_failed_handshake`: handshakes that failed or timed out.
    pub failed_handshakes: AtomicU64,
    /// `CurrSslConns`: TLS connections open now.
    pub current: AtomicU64,
}

impl TlsCounters {
    /// Reads a counter.
    #[must_use]
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub(crate) fn handshake(&self, conn: &rustls::ServerConnection) -> TlsConnGuard<'_> {
        self.sessions.fetch_add(1, Relaxed);
        if conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            self.reused_sessions.fetch_add(1, Relaxed);
        }
        self.current.fetch_add(1, Relaxed);
        TlsConnGuard(self)
    }

    pub(crate) fn failed(&self) {
        self.failed_handshakes.fetch_add(1, Relaxed);
    }
}

/// Counts one open TLS connection in [`TlsCounters::current`] while it lives.
pub(crate) struct TlsConnGuard<'a>(&'a TlsCounters);

impl Drop for TlsConnGuard<'_> {
    fn drop(&mut self) {
        self.0.current.fetch_sub(1, Relaxed);
    }
}

/// What a frontend's listeners need to speak HTTPS, shared by all of them and kept across
/// reloads (only the certificates and the policy change).
#[derive(Debug)]
pub(crate) struct TlsFrontend {
    pub(crate) resolver: Arc<CertResolver>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) counters: Arc<TlsCounters>,
}

impl TlsFrontend {
    /// Builds the Mozilla Intermediate server configuration around `set`.
    pub(crate) fn new(frontend: &str, set: CertSet) -> Result<Self, Error> {
        let resolver = Arc::new(CertResolver::new(set));
        let mut config = ServerConfig::builder_with_provider(Arc::new(mozilla_intermediate()))
            .with_protocol_versions(&[&version::TLS13, &version::TLS12])
            .map_err(|e| Error::Tls {
                frontend: frontend.to_owned(),
                path: PathBuf::new(),
                reason: format!("the TLS settings are inconsistent: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        // No stateless tickets: their key would have to rotate (Mozilla). Resumption is
        // stateful instead, from a server-side cache: TLS 1.2 by session ID, TLS 1.3 by
        // single-use tickets that are only keys into that cache (what HAProxy does with
        // `no-tls-tickets`). Without it every reconnect pays a full handshake.
        config.send_tls13_tickets = 2;
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        Ok(Self {
            resolver,
            config: Arc::new(config),
            counters: Arc::default(),
        })
    }
}

/// HTTPS behaviour of one frontend that may change on reload: the redirect of its plain
/// listeners and the HSTS header of its TLS ones.
#[derive(Debug, Default, Clone)]
pub(crate) struct HttpsPolicy {
    /// `redirect_http`: the port to redirect plain requests to.
    pub(crate) redirect_port: Option<u16>,
    /// `hsts`: the `Strict-Transport-Security` value.
    pub(crate) hsts: Option<HeaderValue>,
}

impl HttpsPolicy {
    /// The policy `fe` asks for; `tls_port` is the first HTTPS listener's actual port.
    pub(crate) fn of(fe: &config::Frontend, tls_port: Option<u16>) -> Self {
        let Some(tls) = &fe.tls else {
            return Self::default();
        };
        Self {
            redirect_port: tls
                .redirect_http
                .then(|| tls_port.or_else(|| tls.bind.first().map(|a| a.port())))
                .flatten(),
            hsts: tls
                .hsts
                .and_then(|d| HeaderValue::try_from(format!("max-age={}", d.as_secs())).ok()),
        }
    }

    /// The `Location` of the redirect for a plain request to `host` and `path_and_query`.
    pub(crate) fn location(&self, host: &str, path_and_query: &str) -> Option<HeaderValue> {
        let port = self.redirect_port?;
        // Drop the plain port (or keep an IPv6 literal whole), then add the HTTPS one.
        let host = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host,
        };
        let location = if port == 443 {
            format!("https://{host}{path_and_query}")
        } else {
            format!("https://{host}:{port}{path_and_query}")
        };
        HeaderValue::try_from(location).ok()
    }
}

fn tls_error(frontend: &str, path: &Path, reason: impl Into<String>) -> Error {
    Error::Tls {
        frontend: frontend.to_owned(),
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_error(
    frontend: &str,
    path: &Path,
    what: &str,
    key: &str,
    e: rustls_pki_types::pem::Error,
) -> Error {
    use rustls_pki_types::pem::Error as Pem;
    let reason = match e {
        Pem::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("the {what} file does not exist; check `{key}` in the `tls` table")
        }
        Pem::Io(e) => format!("cannot read the {what} file: {e}"),
        Pem::NoItemsFound => format!(
            "the file holds no PEM {what}; `{key}` must name a PEM file (\"-----BEGIN ...\")"
        ),
        e => format!("the {what} file is not valid PEM: {e}"),
    };
    tls_error(frontend, path, reason)
}

/// Reads a PEM certificate chain and its key, and checks that they belong together.
fn load_certified_key(frontend: &str, cert: &Path, key: &Path) -> Result<CertifiedKey, Error> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read_error(frontend, cert, "certificate", "cert", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(frontend, cert, "certificate", "cert", e))?;
    if chain.is_empty() {
        return Err(read_error(
            frontend,
            cert,
            "certificate",
            "cert",
            rustls_pki_types::pem::Error::NoItemsFound,
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| read_error(frontend, key, "private key", "key", e))?;
    let signing = aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| {
            tls_error(
                frontend,
                key,
                format!("the private key is not a usable RSA, ECDSA or Ed25519 key: {e}"),
            )
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(tls_error(
                frontend,
                key,
                format!(
                    "this private key does not match the certificate in {}; `cert` and `key` \
                     must be the two halves of one key pair",
                    cert.display()
                ),
            ));
        }
        Err(e) => {
            return Err(tls_error(
                frontend,
                cert,
                format!("the first certificate cannot be parsed as X.509: {e}"),
            ));
        }
    }
    warn_on_validity(frontend, cert, &certified.cert[0], SystemTime::now());
    Ok(certified)
}

/// Refuses an `sni` certificate that would fail verification for a name it is listed for.
fn check_covers(
    frontend: &str,
    cert: &Path,
    key: &Arc<CertifiedKey>,
    name: &str,
) -> Result<(), Error> {
    // A `*.example.com` entry must be covered for any one label under it.
    let probe = match name.strip_prefix("*.") {
        Some(parent) => format!("veza-sni-probe.{parent}"),
        None => name.to_owned(),
    };
    let mut check = ResolvesServerCertUsingSni::new();
    check.add(&probe, key.as_ref().clone()).map_err(|_| {
        tls_error(
            frontend,
            cert,
            format!(
                "this certificate is not valid for `{name}`, listed in its `server_names`: \
                 clients asking for `{name}` would refuse it; use a certificate whose \
                 subjectAltName covers it, or remove the name"
            ),
        )
    })
}

fn warn_on_validity(frontend: &str, path: &Path, cert: &CertificateDer<'_>, now: SystemTime) {
    let Some((not_before, not_after)) = validity(cert) else {
        tracing::warn!(
            "frontend {frontend}: {}: cannot read the certificate's validity dates",
            path.display()
        );
        return;
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now > not_after.unix {
        tracing::warn!(
            "frontend {frontend}: {}: the certificate expired on {}; clients will refuse it \
             until it is renewed",
            path.display(),
            not_after.text
        );
    } else if now + EXPIRY_WARNING.as_secs() as i64 > not_after.unix {
        tracing::warn!(
            "frontend {frontend}: {}: the certificate expires on {}; renew it soon",
            path.display(),
            not_after.text
        );
    } else if now < not_before.unix {
        tracing::warn!(
            "frontend {frontend}: {}: the certificate is not valid before {}; clients will \
             refuse it until then (is the clock right?)",
            path.display(),
            not_before.text
        );
    }
}

/// A certificate time: Unix seconds and `YYYY-MM-DD HH:MM:SS UTC`.
#[derive(Debug, PartialEq, Eq)]
struct CertTime {
    unix: i64,
    text: String,
}

/// Reads one DER element: (tag, content, what follows).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes.iter().fold(0, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

const SEQUENCE: u8 = 0x30;

/// `notBefore` and `notAfter` of an X.509 certificate (RFC 5280 section 4.1).
fn validity(cert: &[u8]) -> Option<(CertTime, CertTime)> {
    let (SEQUENCE, cert, _) = der(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = der(cert)? else {
        return None;
    };
    // [0] version (optional), serialNumber, signature, issuer, then validity.
    let (tag, _, mut rest) = der(tbs)?;
    let skip = if tag == 0xa0 { 3 } else { 2 };
    for _ in 0..skip {
        rest = der(rest)?.2;
    }
    let (SEQUENCE, validity, _) = der(rest)? else {
        return None;
    };
    let (tag1, before, rest) = der(validity)?;
    let (tag2, after, _) = der(rest)?;
    Some((cert_time(tag1, before)?, cert_time(tag2, after)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as RFC 5280 restricts them.
fn cert_time(tag: u8, value: &[u8]) -> Option<CertTime> {
    let s = std::str::from_utf8(value).ok()?.strip_suffix('Z')?;
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, s.len()) {
        (0x17, 12) => {
            let yy: i64 = s[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &s[2..])
        }
        (0x18, 14) => (s[..4].parse().ok()?, &s[4..]),
        _ => return None,
    };
    let field = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(CertTime {
        unix: days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second,
        text: format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC"),
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2038, 1, 19), 24_855);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn validity_is_read_from_generated_certificates() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["lb.test".to_owned()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(2051, 6, 7);
        let cert = params.self_signed(&key).expect("cert");
        let (before, after) = validity(cert.der()).expect("validity");
        assert_eq!(before.text, "2001-02-03 00:00:00 UTC");
        assert_eq!(before.unix, 981_158_400);
        // 2051 is past 2049: rcgen switches to GeneralizedTime, as RFC 5280 requires.
        assert_eq!(after.text, "2051-06-07 00:00:00 UTC");
        assert_eq!(after.unix, days_from_civil(2051, 6, 7) * 86_400);
    }

    #[test]
    fn malformed_der_is_not_a_date() {
        assert_eq!(validity(&[]), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(cert_time(0x17, b"991301000000Z"), None);
        assert_eq!(cert_time(0x18, b"20200101000000"), None);
    }

    #[test]
    fn redirect_location_swaps_the_port() {
        let policy = HttpsPolicy {
            redirect_port: Some(8443),
            hsts: None,
        };
        let at = |host, pq| policy.location(host, pq).expect("location");
        assert_eq!(at("lb.test:8080", "/a?b=1"), "https://lb.test:8443/a?b=1");
        assert_eq!(at("lb.test", "/"), "https://lb.test:8443/");
        assert_eq!(at("[::1]:8080", "/"), "https://[::1]:8443/");
        assert_eq!(at("[::1]", "/"), "https://[::1]:8443/");
        let standard = HttpsPolicy {
            redirect_port: Some(443),
            hsts: None,
        };
        assert_eq!(
            standard.location("lb.test:80", "/x").expect("location"),
            "https://lb.test/x"
        );
    }
}
