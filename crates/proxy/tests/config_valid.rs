//! Valid configurations parse to exactly the values they describe.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proxy::config::{
    AccessLevel, Balance, Config, CookieConfig, FrontendTls, HashKey, HealthConfig, OnMarkedDown,
    RateLimit, Route, ServerConfig, SniCert, StatsSocket, StatsSocketAddr, Timeouts,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn the_brief_example_parses_to_what_it_says() {
    let config = Config::load(&fixture("brief.toml")).unwrap();
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    assert_eq!(
        config.summary(),
        "Configuration file is valid: 1 frontend, 2 pools, 4 servers"
    );

    let global = &config.global;
    assert_eq!(
        global.stats_sockets,
        [StatsSocket {
            addr: StatsSocketAddr::Tcp(addr("127.0.0.1:9100")),
            level: AccessLevel::Operator,
            mode: 0o600,
        }],
        "a TCP socket is operator unless the configuration says otherwise"
    );
    assert_eq!(global.metrics_listen, Some(addr("127.0.0.1:9101")));
    assert_eq!(global.shutdown_grace, secs(30));
    assert_eq!(global.drain_window, secs(5), "the default");
    assert_eq!(global.threads, NonZeroUsize::new(2));

    let [frontend] = config.frontends.as_slice() else {
        panic!("one frontend expected");
    };
    assert_eq!(frontend.name, "veza");
    assert_eq!(frontend.bind, vec![addr("0.0.0.0:8080")]);
    assert_eq!(frontend.default_pool, "api_pool");
    assert_eq!(
        frontend.routes,
        vec![Route {
            path_prefix: "/stream/".into(),
            pool: "stream_pool".into(),
            rate_limit: None,
        }]
    );
    assert_eq!(frontend.tls, None);

    let names: Vec<&str> = config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["api_pool", "stream_pool"], "file order");
    let defaults = Timeouts {
        connect: secs(5),
        client: secs(30),
        server: secs(30),
        tunnel: secs(3600),
        http_request: secs(30),
        queue: secs(5),
    };

    let api = config.pool("api_pool").unwrap();
    assert_eq!(api.balance, Balance::RoundRobin);
    assert_eq!(
        api.cookie,
        Some(CookieConfig {
            name: "SERVERID".into(),
            insert: true,
            indirect: true,
            nocache: true,
            httponly: false,
            secure: false,
        })
    );
    assert_eq!(api.hash_key, None);
    assert_eq!(
        api.health,
        Some(HealthConfig {
            method: "GET".into(),
            path: "/api/v1/health".into(),
            interval: secs(5),
            timeout: secs(2),
            fall: 3,
            rise: 2,
            expect_status: vec![200],
            host: None,
        })
    );
    assert_eq!(api.slowstart, Some(secs(30)));
    assert_eq!(api.on_marked_down, OnMarkedDown::ShutdownSessions);
    assert_eq!(
        api.servers,
        vec![
            ServerConfig {
                name: "backend-api-1".into(),
                addr: addr("127.0.0.1:18081"),
                host: None,
                srv: None,
                weight: 1,
                check: true,
                maxconn: None,
            },
            ServerConfig {
                name: "backend-api-2".into(),
                addr: addr("127.0.0.1:18082"),
                host: None,
                srv: None,
                weight: 1,
                check: true,
                maxconn: None,
            },
        ]
    );
    assert_eq!(api.timeouts, defaults);
    assert_eq!(
        (api.retries, api.redispatch, api.retry_idempotent),
        (3, true, true)
    );
    assert_eq!(api.passive_error_limit, 3);

    let stream = config.pool("stream_pool").unwrap();
    assert_eq!(stream.balance, Balance::JumpHash);
    assert_eq!(stream.hash_key, Some(HashKey::Path { depth: 2 }));
    assert_eq!(stream.cookie, None);
    assert_eq!(stream.slowstart, None);
    assert_eq!(stream.on_marked_down, OnMarkedDown::Nothing);
    let health = stream.health.as_ref().unwrap();
    assert_eq!((health.interval, health.timeout), (secs(5), secs(2)));
    assert_eq!(
        stream.server("stream-server-2").unwrap().addr,
        addr("127.0.0.1:18092")
    );
    assert_eq!(stream.timeouts, defaults);
    assert!(config.pool("nope").is_none());
}

#[test]
fn every_key_with_non_default_values() {
    let path = fixture("full.toml");
    let config = Config::load(&path).unwrap();
    let dir = path.parent().unwrap();
    assert_eq!(
        config.global.stats_sockets,
        [
            StatsSocket {
                addr: StatsSocketAddr::Unix(dir.join("run/admin.sock")),
                level: AccessLevel::Admin,
                mode: 0o660,
            },
            StatsSocket {
                addr: StatsSocketAddr::Tcp(addr("127.0.0.1:9102")),
                level: AccessLevel::User,
                mode: 0o660, // the default; meaningless on TCP
            },
            StatsSocket {
                addr: StatsSocketAddr::Unix(dir.join("run/ops.sock")),
                level: AccessLevel::Operator,
                mode: 0o640,
            },
        ]
    );
    assert_eq!(config.global.shutdown_grace, Duration::ZERO);
    assert_eq!(config.global.maxconn, Some(20_000));
    assert_eq!(config.global.threads, None);

    let public = config.frontend("public").unwrap();
    assert_eq!(public.rate_limit, None);
    assert_eq!(
        public.routes[0].rate_limit,
        Some(RateLimit {
            requests: 600,
            per: secs(60),
            table_size: 5000,
        })
    );
    assert_eq!(public.bind, vec![addr("[::]:8080")]);
    assert_eq!(
        public.tls,
        Some(FrontendTls {
            bind: vec![addr("0.0.0.0:8443"), addr("[::]:8443")],
            cert: dir.join("certs/fullchain.pem"),
            key: PathBuf::from("/etc/veza/key.pem"),
            sni: vec![SniCert {
                server_names: vec!["stream.veza.example".into(), "*.cdn.veza.example".into()],
                cert: dir.join("stream.pem"),
                key: dir.join("stream.key"),
            }],
            redirect_http: true,
            hsts: Some(secs(365 * 86_400)),
        })
    );
    assert_eq!(config.frontends[1].name, "internal");

    let stream = config.pool("stream").unwrap();
    assert_eq!(
        stream.hash_key,
        Some(HashKey::Header {
            name: "X-Track".into()
        })
    );
    assert_eq!(
        stream.health,
        Some(HealthConfig {
            method: "HEAD".into(),
            path: "/health?full=1".into(),
            interval: secs(1),
            timeout: secs(1),
            fall: 5,
            rise: 1,
            expect_status: vec![200, 204],
            host: Some("stream.internal".into()),
        })
    );
    assert_eq!(
        stream.timeouts,
        Timeouts {
            connect: secs(1),
            client: secs(10),
            server: secs(20),
            tunnel: secs(90),
            http_request: secs(5),
            queue: secs(3),
        }
    );
    assert_eq!(stream.hash_balance_factor, Some(150));
    assert!(!stream.maxconn_counts_tunnels);
    assert_eq!(stream.servers[0].maxconn, None, "maxconn = 0: no limit");
    assert_eq!(
        (stream.retries, stream.redispatch, stream.retry_idempotent),
        (0, false, false)
    );
    assert_eq!(stream.passive_error_limit, 0);
    assert_eq!(
        stream.servers[1],
        ServerConfig {
            name: "s2".into(),
            addr: addr("[fd00::2]:9000"),
            host: None,
            srv: None,
            weight: 0,
            check: false,
            maxconn: Some(100),
        }
    );
    assert_eq!(stream.servers[0].weight, 256);

    let api = config.pool("api").unwrap();
    assert_eq!(
        api.cookie,
        Some(CookieConfig {
            name: "VEZA_SRV".into(),
            insert: false,
            indirect: false,
            nocache: false,
            httponly: true,
            secure: true,
        })
    );
    assert_eq!(api.slowstart, None, "0s turns slow start off");
    assert_eq!(api.on_marked_down, OnMarkedDown::Nothing);
    assert_eq!(
        api.passive_error_limit, 2,
        "defaults to the health check's fall"
    );
    assert_eq!(api.health.as_ref().unwrap().interval, secs(2));
    assert_eq!(
        (api.retries, api.redispatch),
        (1, true),
        "pools override [defaults]"
    );
    assert_eq!(
        api.timeouts.http_request,
        secs(10),
        "defaults to the client timeout"
    );
    assert_eq!(
        config.summary(),
        "Configuration file is valid: 2 frontends, 2 pools, 3 servers"
    );
}

#[test]
fn parse_resolves_relative_paths_against_the_origin_directory() {
    let text = r#"
[global]
stats_socket = "unix:admin.sock"
[[frontend]]
name = "f"
default_pool = "p"
tls = { bind = ["127.0.0.1:0"], cert = "c.pem", key = "k.pem" }
[pool.p]
servers = [{ name = "s", addr = "127.0.0.1:1" }]
"#;
    let config = Config::parse(text, "/etc/veza-lb/veza-lb.toml").unwrap();
    let tls = config.frontends[0].tls.as_ref().unwrap();
    assert_eq!(tls.cert, Path::new("/etc/veza-lb/c.pem"));
    assert_eq!(
        config.global.stats_sockets[0].addr,
        StatsSocketAddr::Unix("/etc/veza-lb/admin.sock".into())
    );
    let config = Config::parse(text, "veza-lb.toml").unwrap();
    assert_eq!(
        config.frontends[0].tls.as_ref().unwrap().key,
        Path::new("k.pem")
    );
}

#[test]
fn warnings_do_not_fail_validation() {
    let text = r#"[[frontend]]
name = "f"
bind = ["127.0.0.1:0"]
default_pool = "used"

[pool.used]
servers = [{ name = "a", addr = "127.0.0.1:1", weight = 0 }]

[pool.spare]
servers = [{ name = "a", addr = "127.0.0.1:2" }, { name = "b", addr = "127.0.0.1:2" }]
"#;
    let config = Config::parse(text, "veza-lb.toml").unwrap();
    let warnings: Vec<(usize, usize, &str)> = config
        .warnings()
        .iter()
        .map(|w| (w.line, w.column, w.message.as_str()))
        .collect();
    assert_eq!(
        warnings,
        [
            (
                7,
                11,
                "every server of pool `used` has weight 0, so it only serves sticky clients"
            ),
            (9, 7, "pool `spare` is not used by any frontend or route"),
            (
                10,
                50,
                "servers `a` and `b` have the same address, 127.0.0.1:2"
            ),
        ]
    );
}

#[test]
fn a_server_template_expands_into_its_slots_and_names_are_kept_for_dns() {
    let text = r#"
[global]
resolvers = ["127.0.0.1:5353"]
resolve_interval = "5s"
hold_nx = "0s"
[[frontend]]
name = "web"
bind = ["127.0.0.1:8080"]
default_pool = "api"
[pool.api]
server_template = { prefix = "api-", count = 3, srv = "_API._tcp.veza.internal." }
servers = [{ name = "fixed", addr = "Backend.veza.internal:8080" }]
"#;
    let config = Config::parse(text, "t.toml").expect("valid");
    let api = &config.pools[0];
    let names: Vec<&str> = api.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api-1", "api-2", "api-3", "fixed"]);
    assert!(
        api.servers[..3]
            .iter()
            .all(|s| s.srv.as_deref() == Some("_api._tcp.veza.internal"))
    );
    assert_eq!(
        api.servers[3].host.as_deref(),
        Some("backend.veza.internal")
    );
    assert_eq!(api.servers[3].addr.port(), 8080);
    assert_eq!(config.server_names(), ["backend.veza.internal"]);
    assert_eq!(
        config.srv_templates(),
        [("api".to_owned(), "_api._tcp.veza.internal".to_owned())]
    );
    assert_eq!(config.global.resolve_interval, Duration::from_secs(5));
    assert_eq!(config.global.hold_nx, Duration::ZERO);

    let template =
        "server_template = { prefix = \"api-\", count = 3, srv = \"_API._tcp.veza.internal.\" }";
    for (bad, needle) in [
        (
            "{ prefix = \"api-\", count = 0, srv = \"_a._tcp.x\" }",
            "`count` must be at least 1",
        ),
        (
            "{ prefix = \"api-\", count = 3, srv = \"no spaces\" }",
            "is not a DNS name",
        ),
        ("{ prefix = \"api-\", count = 3 }", "add `srv ="),
        (
            "{ prefix = \"a b\", count = 3, srv = \"_a._tcp.x\" }",
            "cookie characters",
        ),
    ] {
        let broken = text.replace(template, &format!("server_template = {bad}"));
        assert_ne!(broken, text);
        let error = Config::parse(&broken, "t.toml").unwrap_err().to_string();
        assert!(error.contains(needle), "{bad}: {error}");
    }
    let clash = text.replace("name = \"fixed\"", "name = \"api-2\"");
    let error = Config::parse(&clash, "t.toml").unwrap_err().to_string();
    assert!(error.contains("api-2"), "{error}");
}

#[test]
fn a_drain_window_is_read_and_one_past_shutdown_grace_is_warned_about() {
    let config = |global: &str| {
        Config::parse(
            &format!(
                "[global]\n{global}\n[[frontend]]\nname = \"f\"\nbind = [\"127.0.0.1:0\"]\n\
                 default_pool = \"p\"\n[pool.p]\nservers = [{{ name = \"a\", addr = \"127.0.0.1:1\" }}]\n"
            ),
            "veza-lb.toml",
        )
        .unwrap()
    };
    let within = config("shutdown_grace = \"30s\"\ndrain_window = \"2s\"");
    assert_eq!(within.global.drain_window, Duration::from_secs(2));
    assert!(within.warnings().is_empty(), "{:?}", within.warnings());
    let zero = config("drain_window = \"0s\"");
    assert_eq!(
        zero.global.drain_window,
        Duration::ZERO,
        "0 closes idle connections at once"
    );

    let past = config("shutdown_grace = \"10s\"\ndrain_window = \"1m\"");
    let warnings: Vec<(usize, &str)> = past
        .warnings()
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        warnings,
        [(
            3,
            "`drain_window` (60s) is longer than half of `shutdown_grace` (10s): a draining \
             process keeps idle connections 5s, so that the last requests they bring have the \
             other half to complete"
        )]
    );
}
