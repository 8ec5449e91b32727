//! The example configuration shipped in `examples/` stays valid and means what it says.

use std::path::Path;

use proxy::config::{Balance, Config, OnMarkedDown};

#[test]
fn shipped_example_is_valid_and_matches_the_seed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/veza-lb.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.summary(),
        "Configuration file is valid: 1 frontend, 2 pools, 4 servers"
    );
    let api = config.pool("api_pool").expect("api_pool");
    assert_eq!(api.balance, Balance::RoundRobin);
    assert_eq!(
        api.cookie.as_ref().map(|c| c.name.as_str()),
        Some("SERVERID")
    );
    assert_eq!(api.on_marked_down, OnMarkedDown::ShutdownSessions);
    let health = api.health.as_ref().expect("checked");
    assert_eq!(
        (health.fall, health.rise, health.path.as_str()),
        (3, 2, "/api/v1/health")
    );
    assert_eq!(
        config.pool("stream_pool").map(|p| p.balance),
        Some(Balance::JumpHash)
    );
}
