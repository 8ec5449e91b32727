//! `Router::pick` cost: round-robin, sticky cookie and jump hash, at 2, 16 and 256 servers.
//! Target: under 100 ns per pick at 16 servers.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lb_core::{
    Balance, HashKeyRule, PickRequest, PoolSpec, PoolState, Router, ServerSpec, StickyCookie,
};

fn router(n: usize, balance: Balance) -> Router {
    let spec = PoolSpec {
        balance,
        sticky: (balance == Balance::RoundRobin)
            .then(|| StickyCookie::new("SERVERID").expect("valid")),
        hash_key: (balance == Balance::JumpHash).then_some(HashKeyRule::Path { depth: 2 }),
        slowstart: None,
        rise: 2,
        fall: 3,
        error_limit: 3,
        servers: (0..n)
            .map(|i| ServerSpec {
                name: format!("backend-api-{i}"),
                weight: 1 + (i % 3) as u16,
                checked: true,
            })
            .collect(),
        hash_balance_factor: None,
    };
    let now = Instant::now();
    PoolState::new(spec, now).router(now)
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for n in [2, 16, 256] {
        let rr = router(n, Balance::RoundRobin);
        group.bench_with_input(BenchmarkId::new("roundrobin", n), &rr, |b, r| {
            b.iter(|| r.pick(black_box(&PickRequest::plain())));
        });

        let header = format!("lang=fr; SERVERID=backend-api-{}; theme=dark", n / 2);
        group.bench_with_input(BenchmarkId::new("cookie", n), &rr, |b, r| {
            let sticky = r.sticky().expect("configured");
            b.iter(|| {
                let cookie = sticky.find([black_box(header.as_bytes())]);
                r.pick(&PickRequest {
                    cookie,
                    ..PickRequest::plain()
                })
            });
        });

        let hashed = router(n, Balance::JumpHash);
        group.bench_with_input(BenchmarkId::new("jump-hash", n), &hashed, |b, r| {
            let rule = r.hash_key().expect("configured");
            b.iter(|| {
                let key = rule.extract(black_box("/stream/track-4242/seg-17.ts"), |_| None);
                r.pick(&PickRequest {
                    key,
                    ..PickRequest::plain()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
