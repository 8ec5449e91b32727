//! The client's side of the pair test: plain HTTP GETs from inside the client namespace, and
//! the probe that hits the virtual address every 10 ms and records every attempt.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{FRONT_PORT, RETRY_BUDGET, SETTLE, VIP};
use crate::netns::Network;
use crate::{Error, Result, fail};

/// What a backend answered.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) served_by: String,
    pub(super) set_cookie: Option<String>,
}

/// How long a client waits: to connect, then for each answer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Patience {
    connect: Duration,
    answer: Duration,
}

/// The failover rounds' probe: quick to give up, so that an outage shows at once.
pub(super) const QUICK: Patience = Patience {
    connect: Duration::from_millis(200),
    answer: Duration::from_millis(1000),
};

/// A client's own patience (a browser's is longer): a SYN lost while the address moves is
/// sent again after TCP's 1 s, which delays a request without failing it.
pub(super) const CLIENT: Patience = Patience {
    connect: Duration::from_secs(3),
    answer: Duration::from_secs(3),
};

/// One GET on a fresh connection (`Connection: close`), within 200 ms to connect and 1 s
/// to answer.
pub(super) fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Result<Answer, String> {
    get_within(addr, path, cookie, QUICK)
}

/// [`get`] with `patience`.
fn get_within(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    patience: Patience,
) -> Result<Answer, String> {
    let timeout = patience.answer;
    let mut stream =
        TcpStream::connect_timeout(&addr, patience.connect).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    stream.read_to_end(&mut text).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", head.lines().next()))?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    Ok(Answer {
        status,
        served_by: header("x-served-by").unwrap_or_default(),
        set_cookie: header("set-cookie")
            .map(|c| c.split(';').next().unwrap_or_default().to_owned()),
    })
}

/// A client that keeps its connection alive, as browsers do: GETs on it until the server
/// says `Connection: close` (then a new one), each within its patience. A request that fails on a
/// connection reused without such a warning is what a planned switchover must not cause.
struct KeepAlive {
    addr: SocketAddr,
    conn: Option<std::io::BufReader<TcpStream>>,
    patience: Patience,
}

impl KeepAlive {
    /// One GET; `Ok` with the status.
    fn get(&mut self, path: &str) -> Result<u16, String> {
        use std::io::BufRead;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let stream = TcpStream::connect_timeout(&self.addr, self.patience.connect)
                    .map_err(|e| e.to_string())?;
                let timeout = Some(self.patience.answer);
                stream
                    .set_read_timeout(timeout)
                    .map_err(|e| e.to_string())?;
                stream
                    .set_write_timeout(timeout)
                    .map_err(|e| e.to_string())?;
                self.conn.insert(std::io::BufReader::new(stream))
            }
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        conn.get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let (mut status, mut length, mut close) = (0, 0, false);
        let mut line = String::new();
        loop {
            line.clear();
            if conn.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the connection closed under the request".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status == 0 {
                status = l.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            } else if let Some((name, value)) = l.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = vec![0; length];
        conn.read_exact(&mut body).map_err(|e| e.to_string())?;
        if close {
            self.conn = None;
        }
        Ok(status)
    }
}

/// The client: a GET through the virtual address every 10 ms, each attempt recorded.
pub(super) struct Probe {
    attempts: Arc<Mutex<Vec<(Instant, bool)>>>,
    stop: Arc<AtomicBool>,
}

impl Probe {
    /// A GET on a new connection every 10 ms, [`QUICK`] to give up.
    pub(super) fn start(net: &Network) -> Result<Probe> {
        Probe::spawn(net, false, QUICK)
    }

    /// A GET every 10 ms, on a new connection each or on a connection kept alive
    /// ([`KeepAlive`]), with a client's [`CLIENT`] patience: what a planned change must not
    /// fail (a request it only delays is not lost).
    pub(super) fn client(net: &Network, keep_alive: bool) -> Result<Probe> {
        Probe::spawn(net, keep_alive, CLIENT)
    }

    fn spawn(net: &Network, keep_alive: bool, patience: Patience) -> Result<Probe> {
        let attempts: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (record, halt) = (attempts.clone(), stop.clone());
        let vip: SocketAddr = format!("{VIP}:{FRONT_PORT}")
            .parse()
            .map_err(|_| Error::Message("address".into()))?;
        net.thread("client", move || {
            let mut client = KeepAlive {
                addr: vip,
                conn: None,
                patience,
            };
            while !halt.load(Ordering::Relaxed) {
                let ok = if keep_alive {
                    let answer = client.get("/api/v1/health");
                    if answer.is_err() {
                        client.conn = None;
                    }
                    answer == Ok(200)
                } else {
                    matches!(get_within(vip, "/api/v1/health", None, patience), Ok(a) if a.status == 200)
                };
                if let Ok(mut attempts) = record.lock() {
                    attempts.push((Instant::now(), ok));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })?;
        Ok(Probe { attempts, stop })
    }

    fn since(&self, t0: Instant) -> Vec<(Instant, bool)> {
        self.attempts
            .lock()
            .map(|a| a.iter().copied().filter(|(t, _)| *t >= t0).collect())
            .unwrap_or_default()
    }

    /// Waits for a 200 after `t0` that follows every failure since `t0`.
    pub(super) async fn wait_success_after(&self, t0: Instant) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.since(t0).last().is_some_and(|(_, ok)| *ok) {
                return Ok(());
            }
            if start.elapsed() > SETTLE {
                return fail(format!("no 200 through {VIP} within {SETTLE:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets a second of traffic through, so late failures are counted in their round; then,
    /// while a failure has no later success and is younger than [`RETRY_BUDGET`], waits on:
    /// a failure is scored as never recovered only once a retrying client would have given
    /// up on it.
    pub(super) async fn settle(&self) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        loop {
            let now = Instant::now();
            let window = now.checked_sub(RETRY_BUDGET).unwrap_or(start);
            if !undecided(&self.since(window), now) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// From `t0`: the longest time without a success around failures (zero without failure;
    /// for a fault, the time from the fault to the first 200), the failed attempts, and those
    /// not followed by a success within [`RETRY_BUDGET`] (what a retrying client saw fail).
    pub(super) fn outcome_since(&self, t0: Instant) -> (Duration, usize, usize) {
        let attempts = self.since(t0);
        let failed = attempts.iter().filter(|(_, ok)| !ok).count();
        // The longest stretch without a 200 that had a failure in it, from the fault (or
        // the last 200 before the failure) to the next 200: the outage a client saw.
        let mut recovered = Duration::ZERO;
        let mut last_ok = t0;
        let mut failing = false;
        for (t, ok) in &attempts {
            if *ok {
                if failing {
                    recovered = recovered.max(t.duration_since(last_ok));
                }
                last_ok = *t;
                failing = false;
            } else {
                failing = true;
            }
        }
        let hopeless = attempts
            .iter()
            .enumerate()
            .filter(|(i, (t, ok))| {
                !ok && !attempts[i + 1..]
                    .iter()
                    .any(|(later, ok)| *ok && later.duration_since(*t) <= RETRY_BUDGET)
            })
            .count();
        (recovered, failed, hopeless)
    }

    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether a failure in `attempts` is still undecided at `now`: no success after it yet, and
/// younger than [`RETRY_BUDGET`] (a retrying client would still be trying).
fn undecided(attempts: &[(Instant, bool)], now: Instant) -> bool {
    let last_ok = attempts.iter().rev().find(|(_, ok)| *ok).map(|(t, _)| *t);
    attempts.iter().any(|(t, ok)| {
        !ok && last_ok.is_none_or(|l| l < *t) && now.duration_since(*t) < RETRY_BUDGET
    })
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The round that once reported "1 failed with retries" with a 0 ms outage: a failure in
    /// its last second must wait for its verdict, not be scored as never recovered.
    #[test]
    fn a_late_failure_waits_for_its_verdict() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let late = [(at(0), true), (at(900), false)];
        assert!(
            undecided(&late, at(1000)),
            "100 ms old, no success after it yet"
        );
        assert!(
            !undecided(&late, at(900) + RETRY_BUDGET),
            "a client would have given up"
        );
        let recovered = [(at(0), true), (at(900), false), (at(910), true)];
        assert!(!undecided(&recovered, at(1000)), "a success came after it");
        assert!(!undecided(&[(at(0), true)], at(1000)), "no failure at all");
    }
}
