use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::health::{CheckStatus, DownReason};

fn servers(n: usize) -> Vec<ServerSpec> {
    (0..n)
        .map(|i| ServerSpec {
            name: format!("s{i}"),
            weight: 1,
            checked: true,
        })
        .collect()
}

fn rr(servers: Vec<ServerSpec>) -> PoolSpec {
    PoolSpec {
        balance: Balance::RoundRobin,
        sticky: Some(StickyCookie::new("SERVERID").expect("valid")),
        hash_key: None,
        slowstart: None,
        rise: 2,
        fall: 3,
        error_limit: 0,
        servers,
        hash_balance_factor: None,
    }
}

fn hashed(n: usize) -> PoolSpec {
    PoolSpec {
        balance: Balance::JumpHash,
        sticky: None,
        hash_key: Some(HashKeyRule::Path { depth: 2 }),
        slowstart: None,
        rise: 2,
        fall: 3,
        error_limit: 0,
        servers: servers(n),
        hash_balance_factor: None,
    }
}

fn fail() -> CheckResult {
    CheckResult::failed(CheckStatus::L4Connect, None, Duration::from_millis(1))
}

fn ok() -> CheckResult {
    CheckResult::ok(200, Duration::from_millis(1))
}

fn mark_down(pool: &mut PoolState, id: ServerId, now: Instant) {
    for _ in 0..3 {
        pool.observe_check(id, fail(), now).expect("live server");
    }
    assert!(!pool.server(id).expect("exists").health().is_up());
}

fn mark_up(pool: &mut PoolState, id: ServerId, now: Instant) -> Option<Transition> {
    let mut last = None;
    for _ in 0..2 {
        last = pool
            .observe_check(id, ok(), now)
            .expect("live server")
            .or(last);
    }
    last
}

fn pick_key(router: &Router, key: &[u8]) -> ServerId {
    router
        .pick(&PickRequest {
            key: Some(key),
            ..PickRequest::plain()
        })
        .expect("a usable server")
        .server
}

fn pick_with_cookie(router: &Router, header: &str) -> Pick {
    let cookie = router.sticky().expect("sticky").find([header.as_bytes()]);
    router
        .pick(&PickRequest {
            cookie,
            ..PickRequest::plain()
        })
        .expect("a usable server")
}

fn tally(router: &Router, picks: usize, n: usize) -> Vec<usize> {
    let mut counts = vec![0; n];
    for _ in 0..picks {
        counts[router
            .pick(&PickRequest::plain())
            .expect("up")
            .server
            .index()] += 1;
    }
    counts
}

#[test]
fn round_robin_alternates() {
    let now = Instant::now();
    let router = PoolState::new(rr(servers(2)), now).router(now);
    let seq: Vec<_> = (0..6)
        .map(|_| router.pick(&PickRequest::plain()).expect("up").server.0)
        .collect();
    assert_eq!(seq, [0, 1, 0, 1, 0, 1]);
}

#[test]
fn weighted_round_robin_proportions_and_interleaving() {
    let now = Instant::now();
    let mut spec = rr(servers(3));
    for (s, w) in spec.servers.iter_mut().zip([1, 2, 5]) {
        s.weight = w;
    }
    let router = PoolState::new(spec, now).router(now);
    let seq: Vec<_> = (0..16)
        .map(|_| router.pick(&PickRequest::plain()).expect("up").server.0)
        .collect();
    let mut counts = [0; 3];
    for &s in &seq[..8] {
        counts[usize::from(s)] += 1;
    }
    assert_eq!(counts, [1, 2, 5], "{seq:?}");
    assert_eq!(seq[..8], seq[8..], "the cycle repeats");
    assert!(
        seq.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
        "{seq:?}"
    );
}

#[test]
fn down_servers_are_skipped_and_none_left_is_none() {
    let now = Instant::now();
    let mut pool = PoolState::new(rr(servers(3)), now);
    mark_down(&mut pool, ServerId(1), now);
    let counts = tally(&pool.router(now), 100, 3);
    assert_eq!(counts, [50, 0, 50]);
    mark_down(&mut pool, ServerId(0), now);
    mark_down(&mut pool, ServerId(2), now);
    assert!(pool.router(now).pick(&PickRequest::plain()).is_none());
}

#[test]
fn sticky_cookie_pins_valid_and_rebalances_down_maint_unknown_invalid() {
    let now = Instant::now();
    let mut pool = PoolState::new(rr(servers(2)), now);
    let router = pool.router(now);
    for _ in 0..4 {
        let p = pick_with_cookie(&router, "SERVERID=s1");
        assert_eq!(
            (p.server, p.reason, p.cookie, p.set_cookie),
            (ServerId(1), PickReason::Sticky, CookieSeen::Valid, false)
        );
    }
    for (header, seen) in [
        ("SERVERID=nope", CookieSeen::Invalid),
        ("SERVERID=a b", CookieSeen::Invalid),
        ("other=1", CookieSeen::None),
    ] {
        let p = pick_with_cookie(&router, header);
        assert_eq!(
            (p.cookie, p.set_cookie, p.reason),
            (seen, true, PickReason::Balanced),
            "{header}"
        );
    }

    mark_down(&mut pool, ServerId(1), now);
    let router = pool.router(now);
    let p = pick_with_cookie(&router, "SERVERID=s1");
    assert_eq!(
        (p.server, p.cookie, p.set_cookie),
        (ServerId(0), CookieSeen::Down, true)
    );

    mark_up(&mut pool, ServerId(1), now);
    pool.set_admin(ServerId(1), AdminState::Maint, now)
        .expect("live");
    let p = pick_with_cookie(&pool.router(now), "SERVERID=s1");
    assert_eq!((p.server, p.cookie), (ServerId(0), CookieSeen::Down));
}

#[test]
fn drain_keeps_sticky_clients_and_takes_no_new_ones() {
    let now = Instant::now();
    let mut pool = PoolState::new(rr(servers(2)), now);
    pool.set_admin(ServerId(1), AdminState::Drain, now)
        .expect("live");
    let router = pool.router(now);
    assert_eq!(pick_with_cookie(&router, "SERVERID=s1").server, ServerId(1));
    assert_eq!(tally(&router, 10, 2), [10, 0]);
    // Weight 0 behaves the same way for new traffic.
    pool.set_admin(ServerId(1), AdminState::Ready, now)
        .expect("live");
    pool.set_weight(ServerId(1), 0).expect("in range");
    let router = pool.router(now);
    assert_eq!(tally(&router, 10, 2), [10, 0]);
    assert_eq!(pick_with_cookie(&router, "SERVERID=s1").server, ServerId(1));
    assert_eq!(
        pool.set_weight(ServerId(1), 257),
        Err(PoolError::WeightOutOfRange(257))
    );
}

#[test]
fn redispatch_leaves_a_failed_pinned_server() {
    let now = Instant::now();
    let router = PoolState::new(rr(servers(2)), now).router(now);
    let cookie = router.sticky().expect("sticky").find([&b"SERVERID=s0"[..]]);
    let p = router
        .pick(&PickRequest {
            cookie,
            exclude: &[ServerId(0)],
            ..PickRequest::plain()
        })
        .expect("s1 is up");
    assert_eq!(
        (p.server, p.reason, p.set_cookie),
        (ServerId(1), PickReason::Redispatched, true)
    );
    assert!(
        router
            .pick(&PickRequest {
                exclude: &[ServerId(0), ServerId(1)],
                ..PickRequest::plain()
            })
            .is_none()
    );
}

#[test]
fn slow_start_only_after_coming_back_and_shows_in_traffic() {
    let t0 = Instant::now();
    let mut spec = rr(servers(2));
    spec.slowstart = SlowStart::new(Duration::from_secs(30));
    let mut pool = PoolState::new(spec, t0);
    assert_eq!(
        pool.throttle(ServerId(0), t0),
        None,
        "no slow start at process start"
    );
    assert_eq!(pool.next_rebuild(t0), None);

    mark_down(&mut pool, ServerId(1), t0);
    assert_eq!(
        mark_up(&mut pool, ServerId(1), t0),
        Some(Transition::MarkedUp)
    );
    let quarter = t0 + Duration::from_millis(7_500);
    assert_eq!(pool.throttle(ServerId(1), quarter), Some(25));
    assert_eq!(pool.effective_weight(ServerId(1), quarter), 4);
    assert!(pool.next_rebuild(quarter).is_some());
    let counts = tally(&pool.router(quarter), 2000, 2);
    assert_eq!(counts, [1600, 400], "16:4 while at 25%");
    let done = t0 + Duration::from_secs(30);
    assert_eq!(pool.throttle(ServerId(1), done), None);
    assert_eq!(pool.next_rebuild(done), None);
    assert_eq!(tally(&pool.router(done), 100, 2), [50, 50]);
}

#[test]
fn passive_errors_take_a_server_out_between_checks() {
    let now = Instant::now();
    let mut spec = rr(servers(2));
    spec.error_limit = 2;
    let mut pool = PoolState::new(spec, now);
    assert_eq!(pool.observe_traffic(ServerId(0), false, now), Ok(None));
    assert!(matches!(
        pool.observe_traffic(ServerId(0), false, now),
        Ok(Some(Transition::MarkedDown(DownReason::Passive {
            consecutive_errors: 2
        })))
    ));
    assert_eq!(pool.servers_in_service(), 1);
}

#[test]
fn hash_pins_every_segment_of_a_track() {
    let now = Instant::now();
    let pool = PoolState::new(hashed(2), now);
    let router = pool.router(now);
    let rule = router.hash_key().expect("configured").clone();
    for track in 0..50 {
        let picks: Vec<_> = (0..10)
            .map(|seg| {
                let path = format!("/stream/t{track}/seg-{seg}.ts");
                let key = rule.extract(&path, |_| None).expect("a path key");
                pick_key(&router, key)
            })
            .collect();
        assert!(
            picks.windows(2).all(|w| w[0] == w[1]),
            "track {track}: {picks:?}"
        );
    }
}

#[test]
fn hash_without_key_falls_back_to_round_robin() {
    let now = Instant::now();
    let router = PoolState::new(hashed(2), now).router(now);
    assert_eq!(tally(&router, 10, 2), [5, 5]);
}

#[test]
fn hash_balance_10_servers_1m_keys() {
    let now = Instant::now();
    let router = PoolState::new(hashed(10), now).router(now);
    let mut counts = [0_u32; 10];
    for k in 0..1_000_000_u32 {
        counts[pick_key(&router, &k.to_le_bytes()).index()] += 1;
    }
    let max = f64::from(*counts.iter().max().expect("10 buckets"));
    assert!(max / 100_000.0 <= 1.05, "{counts:?}");
}

#[test]
fn one_unusable_server_moves_exactly_its_keys_evenly() {
    let now = Instant::now();
    let n = 8;
    let mut pool = PoolState::new(hashed(n), now);
    let before = pool.router(now);
    mark_down(&mut pool, ServerId(3), now);
    let after = pool.router(now);
    let mut moved_to = vec![0_u32; n];
    for k in 0..200_000_u32 {
        let key = format!("/stream/{k}");
        let (a, b) = (
            pick_key(&before, key.as_bytes()),
            pick_key(&after, key.as_bytes()),
        );
        if a == ServerId(3) {
            assert_ne!(b, ServerId(3));
            moved_to[b.index()] += 1;
        } else {
            assert_eq!(a, b, "key {key} of a usable server moved");
        }
    }
    let survivors: Vec<_> = moved_to.iter().copied().filter(|&c| c > 0).collect();
    assert_eq!(survivors.len(), n - 1);
    let mean = f64::from(survivors.iter().sum::<u32>()) / survivors.len() as f64;
    let max = f64::from(*survivors.iter().max().expect("non-empty"));
    assert!(max / mean <= 1.1, "{moved_to:?}");
}

#[test]
fn reload_keeps_state_and_slots_and_tombstones_removed_servers() {
    let now = Instant::now();
    let mut pool = PoolState::new(hashed(3), now);
    mark_down(&mut pool, ServerId(1), now);
    pool.set_admin(ServerId(2), AdminState::Drain, now)
        .expect("live");

    // Remove s0, keep s1 (DOWN) and s2 (DRAIN), add s3.
    let mut spec = hashed(4);
    spec.servers.remove(0);
    let changes = pool.reconfigure(spec, now);
    assert_eq!(changes.removed, [ServerId(0)]);
    assert_eq!(
        changes.added,
        [ServerId(0)],
        "the new server takes the free slot"
    );
    assert_eq!(
        pool.server(ServerId(1)).expect("kept").health().status(),
        "DOWN"
    );
    assert_eq!(
        pool.server(ServerId(2)).expect("kept").health().status(),
        "DRAIN 1/3"
    );
    assert_eq!(pool.find("s3"), Some(ServerId(0)));
}

#[test]
fn reload_growing_and_shrinking_moves_only_the_affected_keys() {
    let now = Instant::now();
    let keys: Vec<String> = (0..20_000).map(|k| format!("/stream/{k}")).collect();
    let route = |pool: &PoolState| -> Vec<ServerId> {
        let router = pool.router(now);
        keys.iter()
            .map(|k| pick_key(&router, k.as_bytes()))
            .collect()
    };
    let mut pool = PoolState::new(hashed(3), now);
    let three = route(&pool);

    pool.reconfigure(hashed(4), now);
    let four = route(&pool);
    let mut moved = 0;
    for (a, b) in three.iter().zip(&four) {
        if a != b {
            assert_eq!(*b, ServerId(3), "a key may only move to the new server");
            moved += 1;
        }
    }
    let share = f64::from(moved) / keys.len() as f64;
    assert!((share - 0.25).abs() < 0.02, "moved {share}");

    // Removing s1 leaves a tombstone: only s1's keys move.
    let mut spec = hashed(4);
    spec.servers.remove(1);
    assert_eq!(pool.reconfigure(spec, now).removed, [ServerId(1)]);
    let after = route(&pool);
    for (a, b) in four.iter().zip(&after) {
        if *a == ServerId(1) {
            assert_ne!(b, a);
        } else {
            assert_eq!(a, b);
        }
    }
}

proptest! {
    #[test]
    fn jump_is_monotonic(key in any::<u64>(), n in 1_u32..500) {
        let a = jump(key, n);
        let b = jump(key, n + 1);
        prop_assert!(a < n);
        prop_assert!(b == a || b == n, "growing to n+1 may only move a key to the new bucket");
    }

    #[test]
    fn growing_moves_about_one_over_n_plus_one(n in 2_u32..40, seed in any::<u64>()) {
        let keys = 20_000_u64;
        let moved = (0..keys)
            .map(|k| crate::hash::fmix64(k ^ seed))
            .filter(|&h| jump(h, n) != jump(h, n + 1))
            .count() as f64;
        let expected = keys as f64 / f64::from(n + 1);
        prop_assert!((moved - expected).abs() < expected * 0.15 + 30.0, "moved {} expected {}", moved, expected);
    }

    #[test]
    fn wrr_cycle_is_exact_for_any_weights(weights in proptest::collection::vec(0_u16..=256, 1..12)) {
        let now = Instant::now();
        let mut spec = rr(servers(weights.len()));
        for (s, w) in spec.servers.iter_mut().zip(&weights) {
            s.weight = *w;
        }
        let router = PoolState::new(spec, now).router(now);
        let g = weights.iter().fold(0_u32, |g, &w| gcd(g, u32::from(w)));
        match weights.iter().map(|&w| u32::from(w).checked_div(g)).collect::<Option<Vec<_>>>() {
            None => prop_assert!(router.pick(&PickRequest::plain()).is_none()),
            Some(cycle) => {
                let counts = tally(&router, cycle.iter().sum::<u32>() as usize, weights.len());
                for (c, w) in counts.iter().zip(&cycle) {
                    prop_assert_eq!(*c as u32, *w);
                }
            }
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn bounded(n: usize, factor: u32) -> PoolSpec {
    PoolSpec {
        hash_balance_factor: Some(factor),
        ..hashed(n)
    }
}

/// Picks `key` with the given in-flight loads and `maxconn`s.
fn pick_loaded(router: &Router, key: Option<&[u8]>, in_flight: &[u32], maxconn: &[u32]) -> Pick {
    let in_flight = |id: ServerId| in_flight[id.index()];
    let maxconn = |id: ServerId| maxconn[id.index()];
    router
        .pick(&PickRequest {
            key,
            loads: Some(Loads::new(&in_flight, &maxconn)),
            ..PickRequest::plain()
        })
        .expect("a usable server")
}

#[test]
fn round_robin_passes_over_full_servers_until_all_are_full() {
    let now = Instant::now();
    let router = PoolState::new(rr(servers(3)), now).router(now);
    let maxconn = [2, 2, 2];
    for _ in 0..6 {
        let p = pick_loaded(&router, None, &[2, 0, 2], &maxconn);
        assert_eq!(p.server, ServerId(1), "the only one with room");
    }
    // All full: a server is still named (the caller queues for the pool).
    let p = pick_loaded(&router, None, &[2, 2, 2], &maxconn);
    assert_eq!(p.reason, PickReason::Balanced);
    // maxconn 0 is no limit.
    let p = pick_loaded(&router, None, &[50, 50, 50], &[0, 0, 0]);
    assert_eq!(p.reason, PickReason::Balanced);
    // A sticky client keeps its full server (it queues there).
    let cookie = router.sticky().expect("sticky").find([&b"SERVERID=s0"[..]]);
    let in_flight = |id: ServerId| [2, 0, 0][id.index()];
    let max = |_| 2;
    let p = router
        .pick(&PickRequest {
            cookie,
            loads: Some(Loads::new(&in_flight, &max)),
            ..PickRequest::plain()
        })
        .expect("s0");
    assert_eq!((p.server, p.reason), (ServerId(0), PickReason::Sticky));
}

#[test]
fn bounded_hash_keeps_a_key_until_its_server_is_over_the_bound() {
    let now = Instant::now();
    let router = PoolState::new(bounded(4, 125), now).router(now);
    let key = b"/stream/hot-track";
    let home = pick_key(&router, key);
    let mut loads = [0_u32; 4];
    // Balanced load: the key stays home.
    loads.iter_mut().for_each(|l| *l = 10);
    assert_eq!(
        pick_loaded(&router, Some(key), &loads, &[0; 4]).server,
        home
    );
    // At 14 home is under its bound, ceil(1.25 x (44 + 1) / 4) = 15: the key stays...
    loads[home.index()] = 14;
    assert_eq!(
        pick_loaded(&router, Some(key), &loads, &[0; 4]).server,
        home
    );
    // ...at 15 it is not (ceil(1.25 x 46 / 4) = 15): the key moves, always to the same server.
    loads[home.index()] = 15;
    let moved = pick_loaded(&router, Some(key), &loads, &[0; 4]);
    assert_ne!(moved.server, home);
    assert_eq!(
        pick_loaded(&router, Some(key), &loads, &[0; 4]).server,
        moved.server
    );
    // A full home is left too, below the bound...
    loads = [0; 4];
    loads[home.index()] = 1;
    assert_ne!(
        pick_loaded(&router, Some(key), &loads, &[1; 4]).server,
        home
    );
    // ...unless every server is full: none fits, plain jump hash decides (the caller queues).
    assert_eq!(
        pick_loaded(&router, Some(key), &[1; 4], &[1; 4]).server,
        home
    );
    // Without the factor, load never moves a key.
    let plain = PoolState::new(hashed(4), now).router(now);
    loads[home.index()] = 1000;
    assert_eq!(pick_loaded(&plain, Some(key), &loads, &[0; 4]).server, home);
}

proptest! {
    /// Mirrokni et al.'s guarantee: with a hot key among random ones, no server's in-flight
    /// load ever exceeds ceil(factor x average) (equal weights), however skewed the keys.
    #[test]
    fn bounded_loads_stay_under_factor_times_average(
        n in 2_usize..8,
        factor in 110_u32..200,
        keys in proptest::collection::vec(0_u32..40, 50..400),
        hot_share in 0_u32..4,
    ) {
        let now = Instant::now();
        let router = PoolState::new(bounded(n, factor), now).router(now);
        let mut loads = vec![0_u32; n];
        for (i, k) in keys.iter().enumerate() {
            // One request in `hot_share + 1`... mostly the hot key.
            let key = if (i as u32) % 4 <= hot_share { "/stream/hot".to_owned() } else { format!("/stream/t{k}") };
            let p = pick_loaded(&router, Some(key.as_bytes()), &loads, &vec![0; n]);
            loads[p.server.index()] += 1;
            let total: u64 = loads.iter().map(|&l| u64::from(l)).sum();
            let bound = (u64::from(factor) * total).div_ceil(100 * n as u64);
            let max = u64::from(*loads.iter().max().expect("servers"));
            prop_assert!(max <= bound, "max {max} > ceil({factor}% x {total} / {n}) = {bound}: {loads:?}");
        }
    }

    /// Light load never reaches a bound: bounded hashing is then jump hash, and adding a
    /// server moves about 1/(n+1) of the keys, all to the new server.
    #[test]
    fn adding_a_server_moves_few_keys_under_light_load(n in 2_usize..10) {
        let now = Instant::now();
        let before = PoolState::new(bounded(n, 125), now).router(now);
        let after = PoolState::new(bounded(n + 1, 125), now).router(now);
        let idle = vec![0_u32; n + 1];
        let keys = 4000;
        let mut moved = 0;
        for k in 0..keys {
            let key = format!("/stream/track-{k}");
            let a = pick_loaded(&before, Some(key.as_bytes()), &idle[..n], &idle[..n]).server;
            let b = pick_loaded(&after, Some(key.as_bytes()), &idle, &idle).server;
            if a != b {
                prop_assert_eq!(b, ServerId(n as u16), "a key only moves to the new server");
                moved += 1;
            }
        }
        let share = f64::from(moved) / f64::from(keys);
        let expected = 1.0 / (n as f64 + 1.0);
        prop_assert!((share - expected).abs() < 0.04, "moved {share:.3}, expected {expected:.3}");
    }
}
