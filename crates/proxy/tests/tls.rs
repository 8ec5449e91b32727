//! HTTPS frontends: Mozilla Intermediate handshakes (rustls and `openssl s_client` clients),
//! ALPN `h2` proxied to HTTP/1.1 servers, SNI selection, certificate reload without dropping
//! connections, `redirect_http`, HSTS, the request-head timeout under TLS, and the startup
//! errors for unusable certificates.
//!
//! Certificates come from the test kit's CA (`testkit::tls`), made with rcgen at test time;
//! the server is a tiny HTTP/1.1 echo that reports what it received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy::config::Config;
use proxy::{Proxy, TlsCounters};
use rustls::client::ClientConfig;
use rustls::crypto::aws_lc_rs;
use rustls::{ProtocolVersion, RootCertStore, SupportedCipherSuite};
use rustls_pki_types::{CertificateDer, ServerName};
use testkit::tls::{Key, Leaf, TestCa};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

/// An HTTP/1.1 server answering every request with what it saw, with a field of its own and
/// an HSTS policy of its own (which the proxy's replaces).
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let h = |name: &str| {
                        let all: Vec<&str> = req
                            .headers()
                            .get_all(name)
                            .iter()
                            .map(|v| v.to_str().unwrap_or("?"))
                            .collect();
                        all.join("|")
                    };
                    let body = format!(
                        "{:?} {} host={} proto={} cookie={}",
                        req.version(),
                        req.uri(),
                        h("host"),
                        h("x-forwarded-proto"),
                        h("cookie"),
                    );
                    let mut resp = Response::new(Full::new(Bytes::from(body)));
                    resp.headers_mut()
                        .insert("x-echo", http::HeaderValue::from_static("1"));
                    resp.headers_mut().insert(
                        "strict-transport-security",
                        http::HeaderValue::from_static("max-age=5"),
                    );
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A frontend `web` with a plain and an HTTPS listener on port 0 in front of `server`;
/// `tls_extra` is appended inside the `tls` table.
fn config(server: SocketAddr, leaf: &Leaf, tls_extra: &str) -> Config {
    config_with_pool(server, leaf, tls_extra, "")
}

/// [`config`], with `pool_extra` added to the pool's table.
fn config_with_pool(server: SocketAddr, leaf: &Leaf, tls_extra: &str, pool_extra: &str) -> Config {
    let text = format!(
        r#"
[[frontend]]
name = "web"
bind = ["127.0.0.1:0"]
default_pool = "app"
tls = {{ bind = ["127.0.0.1:0"], cert = "{}", key = "{}"{tls_extra} }}

[pool.app]
{pool_extra}
servers = [{{ name = "app-1", addr = "{server}" }}]
"#,
        leaf.cert.display(),
        leaf.key.display(),
    );
    Config::parse(&text, "veza-lb.toml").expect("valid config")
}

fn sni_entry(names: &[&str], leaf: &Leaf) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        "{{ server_names = [{}], cert = \"{}\", key = \"{}\" }}",
        names.join(", "),
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// What a test client offers.
struct Client<'a> {
    roots: &'a RootCertStore,
    alpn: &'a [&'a [u8]],
    suites: Option<Vec<SupportedCipherSuite>>,
}

impl Client<'_> {
    async fn connect(&self, addr: SocketAddr, name: &str) -> TlsStream<TcpStream> {
        self.try_connect(addr, name).await.expect("TLS handshake")
    }

    async fn try_connect(
        &self,
        addr: SocketAddr,
        name: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        connect_with(self.config(), addr, name).await
    }

    /// A client configuration; connections made with the same one may resume sessions.
    fn config(&self) -> Arc<ClientConfig> {
        let mut provider = aws_lc_rs::default_provider();
        if let Some(suites) = &self.suites {
            provider.cipher_suites = suites.clone();
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = self.alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

async fn connect_with(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let server_name = ServerName::try_from(name.to_owned()).expect("server name");
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(server_name, tcp).await
}

fn peer_leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("server sent certificates")[0]
        .clone()
}

/// An HTTP/1.1 connection over an established TLS stream.
async fn http1(
    stream: TlsStream<TcpStream>,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http1 handshake");
    tokio::spawn(conn);
    sender
}

async fn get_h1(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> (Response<()>, String) {
    let req = Request::get(path)
        .header("host", "lb.test")
        .body(Empty::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    read(resp).await
}

async fn read(resp: Response<Incoming>) -> (Response<()>, String) {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        Response::from_parts(parts, ()),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

struct Running {
    proxy: Proxy,
    plain: SocketAddr,
    tls: SocketAddr,
}

async fn start(config: Config) -> Running {
    let proxy = Proxy::start(config).await.expect("proxy starts");
    let plain = proxy.frontend_addrs("web")[0];
    let tls = proxy.tls_addrs("web")[0];
    Running { proxy, plain, tls }
}

#[tokio::test]
async fn tls12_and_tls13_handshakes_succeed_with_every_intermediate_suite() {
    let pki = TestCa::new();
    let ecdsa = pki.leaf("ecdsa", &["lb.test"], Key::Ecdsa);
    let rsa = pki.leaf("rsa", &["rsa.test"], Key::Rsa);
    let server = echo_server().await;
    let lb = start(config(
        server,
        &ecdsa,
        &format!(", sni = [{}]", sni_entry(&["rsa.test"], &rsa)),
    ))
    .await;
    let roots = pki.roots();
    use aws_lc_rs::cipher_suite as cs;
    let cases = [
        (cs::TLS13_AES_128_GCM_SHA256, "lb.test"),
        (cs::TLS13_AES_256_GCM_SHA384, "lb.test"),
        (cs::TLS13_CHACHA20_POLY1305_SHA256, "lb.test"),
        (cs::TLS13_AES_128_GCM_SHA256, "rsa.test"),
        (cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "lb.test"),
        (cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "lb.test"),
        (cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "lb.test"),
        (cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, "rsa.test"),
        (cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "rsa.test"),
        (cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, "rsa.test"),
    ];
    for (suite, name) in cases {
        let client = Client {
            roots: &roots,
            alpn: &[b"http/1.1"],
            suites: Some(vec![suite]),
        };
        let stream = client.connect(lb.tls, name).await;
        let conn = stream.get_ref().1;
        assert_eq!(conn.negotiated_cipher_suite(), Some(suite), "{name}");
        let expected_version = match suite {
            SupportedCipherSuite::Tls13(_) => ProtocolVersion::TLSv1_3,
            SupportedCipherSuite::Tls12(_) => ProtocolVersion::TLSv1_2,
        };
        assert_eq!(conn.protocol_version(), Some(expected_version));
        let mut sender = http1(stream).await;
        let (resp, body) = get_h1(&mut sender, "/suite").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(body.contains("proto=https"), "{body}");
    }
    let counters = lb.proxy.tls_counters("web").expect("TLS counters");
    assert_eq!(TlsCounters::get(&counters.sessions), cases.len() as u64);
    assert_eq!(TlsCounters::get(&counters.failed_handshakes), 0);
    lb.proxy.abort();
}

/// Runs `openssl s_client` against `addr` without the system configuration (Debian's raises
/// the client's own minimum to TLS 1.2, which would hide what the server does).
async fn s_client(addr: SocketAddr, args: &[&str]) -> Option<(bool, String)> {
    let connect = addr.to_string();
    let output = tokio::process::Command::new("openssl")
        .arg("s_client")
        .args(["-connect", &connect, "-servername", "lb.test", "-brief"])
        .args(args)
        .env("OPENSSL_CONF", "/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match output {
        Ok(out) => Some((
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run openssl: {e}"),
    }
}

#[tokio::test]
async fn openssl_sees_only_mozilla_intermediate() {
    let pki = TestCa::new();
    let leaf = pki.leaf("lb", &["lb.test"], Key::Ecdsa);
    let lb = start(config(echo_server().await, &leaf, "")).await;
    if s_client(lb.tls, &["-tls1_3"]).await.is_none() {
        eprintln!("skipped: `openssl` is not installed (apt-get install openssl)");
        return;
    }
    let allowed: [&[&str]; 4] = [
        &["-tls1_3"],
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
    ];
    for args in allowed {
        let (ok, out) = s_client(lb.tls, args).await.expect("openssl runs");
        assert!(ok, "{args:?} refused:\n{out}");
        assert!(out.contains("Protocol version: TLSv1."), "{args:?}:\n{out}");
    }
    let (_, out) = s_client(
        lb.tls,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    )
    .await
    .expect("openssl runs");
    assert!(
        out.contains("Ciphersuite: ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{out}"
    );

    // Old protocol versions, CBC and non-ECDHE suites, and curves outside the list.
    let refused: [&[&str]; 6] = [
        &["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        &["-tls1_2", "-cipher", "AES128-SHA"],
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        &["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        &["-tls1_3", "-groups", "ffdhe2048"],
    ];
    for args in refused {
        let (ok, out) = s_client(lb.tls, args).await.expect("openssl runs");
        assert!(!ok, "{args:?} was accepted:\n{out}");
        // The refusal comes from the server (an alert), not from the client giving up.
        assert!(
            out.contains("alert") && !out.contains("no protocols available"),
            "{args:?}:\n{out}"
        );
    }
    let counters = lb.proxy.tls_counters("web").expect("TLS counters");
    // The server counts after the client may have exited: give it a moment.
    let expected = (refused.len() as u64, allowed.len() as u64 + 2);
    for _ in 0..100 {
        let seen = (
            TlsCounters::get(&counters.failed_handshakes),
            TlsCounters::get(&counters.sessions),
        );
        if seen == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(TlsCounters::get(&counters.failed_handshakes), expected.0);
    assert_eq!(TlsCounters::get(&counters.sessions), expected.1);
    lb.proxy.abort();
}

/// The `Strict-Transport-Security` values of an answer.
fn hsts<B>(resp: &Response<B>) -> Vec<&str> {
    resp.headers()
        .get_all("strict-transport-security")
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn alpn_h2_is_served_and_forwarded_as_http11() {
    let pki = TestCa::new();
    let leaf = pki.leaf("lb", &["lb.test"], Key::Ecdsa);
    let lb = start(config(echo_server().await, &leaf, ", hsts = \"365d\"")).await;
    let roots = pki.roots();
    let client = Client {
        roots: &roots,
        alpn: H2_AND_H1,
        suites: None,
    };
    let stream = client.connect(lb.tls, "lb.test").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    for round in 0..2 {
        let req = Request::get(format!("https://lb.test/h2/{round}?q=1"))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let (resp, body) = read(sender.send_request(req).await.expect("response")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(
            hsts(&resp),
            ["max-age=31536000"],
            "the proxy's policy, once"
        );
        // The server's own fields reach an HTTP/2 client, its length included.
        assert_eq!(resp.headers()["x-echo"], "1");
        let length = body.len().to_string();
        assert_eq!(
            resp.headers()["content-length"].to_str().ok(),
            Some(&*length)
        );
        // The server got HTTP/1.1 in origin form, a Host from `:authority`, one Cookie.
        assert_eq!(
            body,
            format!("HTTP/1.1 /h2/{round}?q=1 host=lb.test proto=https cookie=a=1; b=2")
        );
    }

    // Clients without h2 get HTTP/1.1 on the same listener.
    for alpn in [&[&b"http/1.1"[..]][..], &[]] {
        let client = Client {
            roots: &roots,
            alpn,
            suites: None,
        };
        let stream = client.connect(lb.tls, "lb.test").await;
        assert_ne!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let mut sender = http1(stream).await;
        let (resp, body) = get_h1(&mut sender, "/h1").await;
        assert_eq!(
            hsts(&resp),
            ["max-age=31536000"],
            "the proxy's policy, once"
        );
        assert_eq!(resp.headers()["x-echo"], "1");
        assert_eq!(body, "HTTP/1.1 /h1 host=lb.test proto=https cookie=");
    }

    // The plain listener says `http` and sends no HSTS.
    let tcp = TcpStream::connect(lb.plain).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::get("/plain")
        .header("host", "lb.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (resp, body) = read(sender.send_request(req).await.expect("response")).await;
    // The server's own HSTS passes on plain HTTP: the proxy adds and replaces only on TLS.
    assert_eq!(resp.headers()["strict-transport-security"], "max-age=5");
    assert_eq!(body, "HTTP/1.1 /plain host=lb.test proto=http cookie=");
    lb.proxy.abort();
}

#[tokio::test]
async fn sni_picks_the_certificate() {
    let pki = TestCa::new();
    let default = pki.leaf("default", &["lb.test"], Key::Ecdsa);
    let api = pki.leaf("api", &["api.test", "api2.test"], Key::Rsa);
    let wild = pki.leaf("wild", &["*.wild.test"], Key::Ecdsa);
    let sni = format!(
        ", sni = [{}, {}]",
        sni_entry(&["api.test", "api2.test"], &api),
        sni_entry(&["*.wild.test"], &wild)
    );
    let lb = start(config(echo_server().await, &default, &sni)).await;
    let roots = pki.roots();
    let client = Client {
        roots: &roots,
        alpn: H2_AND_H1,
        suites: None,
    };
    for (name, expected) in [
        ("api.test", &api),
        ("API2.test", &api),
        ("a.wild.test", &wild),
        ("lb.test", &default),
    ] {
        let stream = client.connect(lb.tls, name).await;
        assert!(peer_leaf(&stream) == expected.der, "{name}");
    }
    // No SNI (an IP address) and unknown names get the default certificate, which the
    // client then refuses for a name it does not cover.
    let err = client
        .try_connect(lb.tls, "other.test")
        .await
        .expect_err("default certificate does not cover other.test");
    assert!(err.to_string().contains("certificate"), "{err}");
    let err = client
        .try_connect(lb.tls, "b.a.wild.test")
        .await
        .expect_err("a wildcard covers one label only");
    assert!(err.to_string().contains("certificate"), "{err}");
    lb.proxy.abort();
}

#[tokio::test]
async fn reload_serves_new_certificates_and_keeps_old_connections() {
    let pki = TestCa::new();
    let first = pki.leaf("lb", &["lb.test"], Key::Ecdsa);
    let server = echo_server().await;
    let config_text = config(server, &first, "");
    let mut lb = start(config_text.clone()).await;
    let roots = pki.roots();
    let client = Client {
        roots: &roots,
        alpn: &[b"http/1.1"],
        suites: None,
    };
    let old = client.connect(lb.tls, "lb.test").await;
    assert!(peer_leaf(&old) == first.der);
    let mut old = http1(old).await;
    assert_eq!(get_h1(&mut old, "/before").await.0.status(), StatusCode::OK);

    // Renew in place (same paths, new key) and reload.
    let second = pki.leaf("lb", &["lb.test"], Key::Rsa);
    assert!(second.der != first.der);
    lb.proxy.reload(config_text.clone()).await.expect("reload");
    assert_eq!(lb.proxy.tls_addrs("web"), [lb.tls], "the listener stays");
    let new = client.connect(lb.tls, "lb.test").await;
    assert!(
        peer_leaf(&new) == second.der,
        "new handshakes get the new certificate"
    );
    let (resp, body) = get_h1(&mut old, "/after").await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the old connection still works"
    );
    assert!(body.contains("/after"), "{body}");

    // A broken renewal (key of another certificate) is refused; the current one stays.
    let other = pki.leaf("other", &["lb.test"], Key::Ecdsa);
    std::fs::copy(&other.key, &second.key).expect("copy");
    let err = lb
        .proxy
        .reload(config_text)
        .await
        .expect_err("mismatched key refused");
    assert!(err.to_string().contains("does not match"), "{err}");
    let again = client.connect(lb.tls, "lb.test").await;
    assert!(peer_leaf(&again) == second.der);
    lb.proxy.abort();
}

#[tokio::test]
async fn redirect_http_sends_plain_clients_to_https() {
    let pki = TestCa::new();
    let leaf = pki.leaf("lb", &["lb.test"], Key::Ecdsa);
    let lb = start(config(echo_server().await, &leaf, ", redirect_http = true")).await;
    let tcp = TcpStream::connect(lb.plain).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::post("/a/b?c=1")
        .header("host", format!("lb.test:{}", lb.plain.port()))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let (resp, body) = read(sender.send_request(req).await.expect("response")).await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()["location"],
        format!("https://lb.test:{}/a/b?c=1", lb.tls.port())
    );
    assert_eq!(body, "");
    lb.proxy.abort();
}

async fn start_error(config: Config) -> String {
    match Proxy::start(config).await {
        Ok(proxy) => {
            proxy.abort();
            panic!("the proxy started");
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn unusable_certificates_are_refused_at_startup() {
    let pki = TestCa::new();
    let good = pki.leaf("good", &["lb.test"], Key::Ecdsa);
    let other = pki.leaf("other", &["other.test"], Key::Rsa);
    let server = echo_server().await;

    let missing = Leaf {
        cert: pki.dir().join("missing.pem"),
        key: good.key.clone(),
        der: good.der.clone(),
    };
    let err = start_error(config(server, &missing, "")).await;
    assert_eq!(
        err,
        format!(
            "frontend web: {}: the certificate file does not exist; check `cert` in the `tls` table",
            missing.cert.display()
        )
    );

    let swapped = Leaf {
        cert: good.cert.clone(),
        key: other.key.clone(),
        der: good.der.clone(),
    };
    let err = start_error(config(server, &swapped, "")).await;
    assert!(
        err.starts_with(&format!(
            "frontend web: {}: this private key does not match",
            other.key.display()
        )),
        "{err}"
    );

    let not_pem = Leaf {
        cert: good.key.clone(),
        key: good.key.clone(),
        der: good.der.clone(),
    };
    let err = start_error(config(server, &not_pem, "")).await;
    assert!(err.contains("holds no PEM certificate"), "{err}");

    let uncovered = format!(", sni = [{}]", sni_entry(&["api.test"], &other));
    let err = start_error(config(server, &good, &uncovered)).await;
    assert!(
        err.contains(&other.cert.display().to_string())
            && err.contains("is not valid for `api.test`"),
        "{err}"
    );

    // Expired: a warning only, the proxy starts (clients decide).
    let expired = pki.leaf_with("expired", &["lb.test"], Key::Ecdsa, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    let lb = start(config(server, &expired, "")).await;
    lb.proxy.abort();
}

#[tokio::test]
async fn websocket_over_tls_is_tunnelled_on_http11() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let pki = TestCa::new();
    let leaf = pki.leaf("lb", &["lb.test"], Key::Ecdsa);
    let backend = veza_demo_backend::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        veza_demo_backend::BackendConfig::new("ws-1"),
    )
    .await
    .expect("backend");
    let lb = start(config(backend.addr(), &leaf, "")).await;
    let roots = pki.roots();
    // Browsers open WebSockets on an HTTP/1.1 connection when the server does not offer
    // RFC 8441 over h2.
    let client = Client {
        roots: &roots,
        alpn: &[b"http/1.1"],
        suites: None,
    };
    let stream = client.connect(lb.tls, "lb.test").await;
    let (mut ws, resp) = tokio_tungstenite::client_async("wss://lb.test/ws", stream)
        .await
        .expect("WebSocket handshake through the proxy");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    let greeting = ws.next().await.expect("message").expect("frame");
    assert_eq!(greeting, Message::text("ws-1"));
    ws.send(Message::text("over tls")).await.expect("send");
    let echo = ws.next().await.expect("message").expect("frame");
    assert_eq!(echo, Message::text("over tls"));
    lb.proxy.abort();
}

#[tokio::test]
async fn sessions_resume_from_the_server_cache_without_stateless_tickets() {
    let pki = TestCa::new();
    let leaf = pki.leaf("lb", &["lb.test"], Key::Ecdsa);
    let lb = start(config(echo_server().await, &leaf, "")).await;
    let roots = pki.roots();
    use aws_lc_rs::cipher_suite as cs;
    let tls13 = Client {
        roots: &roots,
        alpn: &[b"http/1.1"],
        suites: None,
    };
    let tls12 = Client {
        roots: &roots,
        alpn: &[b"http/1.1"],
        suites: Some(vec![cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]),
    };
    for (client, version) in [
        (tls13, ProtocolVersion::TLSv1_3),
        (tls12, ProtocolVersion::TLSv1_2),
    ] {
        let config = client.config();
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let stream = connect_with(config.clone(), lb.tls, "lb.test")
                .await
                .expect("handshake");
            let conn = stream.get_ref().1;
            assert_eq!(conn.protocol_version(), Some(version));
            kinds.push(conn.handshake_kind());
            // A request reads the TLS 1.3 tickets sent after the handshake.
            let mut sender = http1(stream).await;
            assert_eq!(get_h1(&mut sender, "/").await.0.status(), StatusCode::OK);
        }
        assert_eq!(
            kinds,
            [
                Some(rustls::HandshakeKind::Full),
                Some(rustls::HandshakeKind::Resumed)
            ],
            "{version:?}"
        );
    }
    let counters = lb.proxy.tls_counters("web").expect("TLS counters");
    assert_eq!(TlsCounters::get(&counters.sessions), 4);
    assert_eq!(TlsCounters::get(&counters.reused_sessions), 2);

    // The same counters in `show stat`'s SSL columns of the frontend's row.
    let (frontends, snapshot) = lb.proxy.handle().stats().await.expect("running");
    let csv = proxy::stats::csv::render(&frontends, &snapshot, 0, &Default::default());
    let header: Vec<&str> = csv.lines().next().expect("header")[2..]
        .split(',')
        .collect();
    let row: Vec<&str> = csv
        .lines()
        .find(|l| l.starts_with("web,FRONTEND,"))
        .expect("frontend row")
        .split(',')
        .collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).expect(name)];
    assert_eq!((col("ssl_sess"), col("ssl_reused_sess")), ("4", "2"));
    assert_eq!(col("ssl_failed_handshake"), "0");
    lb.proxy.abort();
}

/// HAProxy's `timeout http-request` under TLS: a head that starts and stalls gets a 408
/// through the TLS session (hyper could only close), an idle connection is closed silently.
#[tokio::test]
async fn a_stalled_request_head_gets_408_over_tls_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = TestCa::new();
    let leaf = pki.leaf("lb", &["lb.test"], Key::Ecdsa);
    let server = echo_server().await;
    let lb = start(config_with_pool(
        server,
        &leaf,
        "",
        "timeout_http_request = \"300ms\"",
    ))
    .await;
    let roots = pki.roots();
    let client = Client {
        roots: &roots,
        alpn: &[b"http/1.1"],
        suites: None,
    };
    let read_all = |mut s: TlsStream<TcpStream>| async move {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("closed within the timeout");
        String::from_utf8_lossy(&buf).into_owned()
    };

    let mut s = client.connect(lb.tls, "lb.test").await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: lb.test\r\n")
        .await
        .expect("write");
    s.flush().await.expect("flush");
    let answer = read_all(s).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");

    let s = client.connect(lb.tls, "lb.test").await;
    assert_eq!(read_all(s).await, "", "an idle connection gets no 408");
    lb.proxy.abort();
}
