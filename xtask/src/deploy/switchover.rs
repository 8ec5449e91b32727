//! The LB pair's planned switchover: before `cargo xtask deploy` replaces or restarts veza-lb
//! on the host that holds the virtual address, the address moves to the other host, which
//! the deploy has already brought up to date; once the host is done, the address comes back.
//!
//! A move breaks the connections open through the address: the other host's kernel answers
//! their next packet with a reset. So each move is made once nobody keeps a connection to
//! reuse ([`Pair::move_away`]):
//!
//! 1. `set standby on` on the holder's admin socket: every connection closes after its next
//!    answer (`Connection: close`, HTTP/2 GOAWAY), an idle one at the end of veza-lb's
//!    `drain_window`, and so do connections opened meanwhile; clients open their next
//!    connection again and again, each for one request;
//! 2. after the drain window, the holder's priority is lowered below the other's (a number in
//!    keepalived's track file, [`provision::vrrp::STEP_DOWN_PATH`]), and the deploy waits
//!    until the other host holds the address and the holder does not. The holder keeps
//!    serving all along: the address only leaves it when the other host takes it, never
//!    into a void, unlike a stop or a failed health check;
//! 3. the holder's standby ends (its new process starts without it anyway).
//!
//! Giving the address back ([`Pair::give_back`]) is the same move the other way: the other
//! host in standby, the drain window, the track file removed (the host's priority is its own
//! again; with `preempt`, keepalived takes the address back), standby off. Without `preempt`
//! the address stays where it is: the file is removed, nothing moves. A host whose deploy
//! failed keeps its priority lowered, so the address stays on the host that works.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use provision::vrrp::STEP_DOWN_PATH;

use super::{HostRun, Status};
use crate::lbpair::LbPair;
use crate::transport::{Host, words};
use crate::{Error, Result, fail, parse_duration};

/// veza-lb's `drain_window` (its default, which the configuration deploy renders keeps): how
/// long an idle connection of a host in standby stays open for its client's next request.
const DRAIN_WINDOW: Duration = Duration::from_secs(5);

/// What one step of a move took, for the host's report.
#[derive(Debug, Clone)]
pub struct Moved {
    /// Standby and the drain window before the move.
    pub drained: Duration,
    /// From the priority change to the address on the other host alone.
    pub moved: Duration,
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connections closed after their answers for {:.1}s (standby), address moved in {:.1}s",
            self.drained.as_secs_f64(),
            self.moved.as_secs_f64()
        )
    }
}

/// The pair as the switchover needs it.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The virtual address watched (the first of `virtual_ipaddress`).
    pub address: IpAddr,
    /// Whether the higher priority takes the address back.
    pub preempt: bool,
    /// Each host's name and priority.
    priorities: Vec<(String, u8)>,
    /// The longest a move may take: keepalived's master-down interval (3 adverts and a
    /// skew) with room to spare.
    settle: Duration,
    /// veza-lb on the hosts, which sends runtime API commands (`ctl`).
    veza_lb: String,
    /// The admin runtime API socket (`unix:/run/veza-lb/admin.sock`).
    admin_socket: String,
    /// The drain window waited in standby.
    drain_window: Duration,
}

impl Pair {
    /// The switchover of `pair`, with veza-lb at `veza_lb` answering on `admin_socket`.
    pub fn new(pair: &LbPair, veza_lb: &Path, admin_socket: &str) -> Result<Pair> {
        let vip = pair.virtual_ipaddress.first().ok_or_else(|| {
            Error::Message("[lb_pair] virtual_ipaddress: at least one address".into())
        })?;
        let address = vip
            .split('/')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| Error::Message(format!("[lb_pair] {vip:?} is not an address")))?;
        let advert = parse_duration(&pair.advert_interval)
            .map_err(|e| Error::Message(format!("[lb_pair] advert_interval: {e}")))?;
        Ok(Pair {
            address,
            preempt: pair.preempt,
            priorities: pair
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.priority))
                .collect(),
            settle: (advert * 6).max(Duration::from_secs(10)),
            veza_lb: veza_lb.display().to_string(),
            admin_socket: admin_socket.to_owned(),
            drain_window: DRAIN_WINDOW,
        })
    }

    fn priority(&self, host: &Host) -> Result<u8> {
        self.priorities
            .iter()
            .find(|(name, _)| *name == host.name)
            .map(|(_, p)| *p)
            .ok_or_else(|| Error::Message(format!("{} is not in [lb_pair]", host.name)))
    }

    /// Whether `host` holds the virtual address now.
    pub async fn holds(&self, host: &Host) -> Result<bool> {
        let out = host
            .run_ok(&words(&["ip", "-o", "address", "show"]), None)
            .await?;
        let (v4, v6) = (
            format!("inet {}/", self.address),
            format!("inet6 {}/", self.address),
        );
        Ok(out
            .stdout
            .lines()
            .any(|l| l.contains(&v4) || l.contains(&v6)))
    }

    /// `set standby on|off` on `host`'s veza-lb.
    async fn standby(&self, host: &Host, on: bool) -> Result<()> {
        let state = if on { "on" } else { "off" };
        let argv = words(&[
            &self.veza_lb,
            "ctl",
            "--socket",
            &self.admin_socket,
            "set",
            "standby",
            state,
        ]);
        let out = host.run_ok(&argv, None).await?;
        let answer = out.stdout.trim();
        if answer.starts_with(&format!("Standby: {state}.")) {
            Ok(())
        } else {
            fail(format!(
                "{}: `set standby {state}` answered {answer:?}",
                host.label()
            ))
        }
    }

    /// Waits until `to` holds the address and `from` does not.
    async fn wait_moved(&self, from: &Host, to: &Host) -> Result<Duration> {
        let start = Instant::now();
        loop {
            if self.holds(to).await? && !self.holds(from).await? {
                return Ok(start.elapsed());
            }
            if start.elapsed() > self.settle {
                return fail(format!(
                    "the address {} did not move from {} to {} within {:?}",
                    self.address, from.name, to.name, self.settle
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Standby on `host` through the drain window; then `change`, and the wait for the
    /// address to move from `from` to `to`; standby on `host` ends, also on failure.
    async fn drained_move(
        &self,
        host: &Host,
        from: &Host,
        to: &Host,
        change: impl std::future::Future<Output = Result<()>>,
    ) -> Result<Moved> {
        let start = Instant::now();
        self.standby(host, true).await?;
        tokio::time::sleep(self.drain_window).await;
        let drained = start.elapsed();
        let moved = async {
            change.await?;
            self.wait_moved(from, to).await
        }
        .await;
        let standby_off = self.standby(host, false).await;
        let moved = moved?;
        standby_off?;
        Ok(Moved { drained, moved })
    }

    /// Moves the address from `holder` to `other`: standby, the drain window, the holder's
    /// priority lowered below the other's, the wait for the move.
    pub async fn move_away(&self, holder: &Host, other: &Host) -> Result<Moved> {
        let by = step_down_by(self.priority(holder)?, self.priority(other)?);
        let step_down = async {
            holder
                .put(
                    Path::new(STEP_DOWN_PATH),
                    format!("{by}\n").as_bytes(),
                    0o644,
                )
                .await
        };
        self.drained_move(holder, holder, other, step_down).await
    }

    /// Gives `host` its own priority back (the track file removed). With `preempt` and a
    /// priority above `other`'s, the address comes back: `other` in standby first, then the
    /// wait for the move. `None` when the address does not move.
    pub async fn give_back(&self, host: &Host, other: &Host) -> Result<Option<Moved>> {
        let step_up = async {
            host.run_ok(&words(&["rm", "-f", STEP_DOWN_PATH]), None)
                .await
                .map(drop)
        };
        if !self.preempt || self.priority(host)? < self.priority(other)? {
            step_up.await?;
            return Ok(None);
        }
        self.drained_move(other, other, host, step_up)
            .await
            .map(Some)
    }
}

impl HostRun<'_> {
    /// On the LB pair's host that holds the address, before it is changed: the address
    /// moves to the other host ([`Pair::move_away`]). Whether it moved (a host without the
    /// address is changed in place). A move that fails stops this host's deploy.
    pub(super) async fn move_away(&mut self, (pair, other): (&Pair, &Host)) -> Result<bool> {
        if !self.host.has_systemd() {
            return Ok(false);
        }
        let name = format!("address {}", pair.address);
        if !pair.holds(self.host).await? {
            self.record(
                Status::Ok,
                &name,
                &format!("held by {}: this host is changed in place", other.name),
            );
            return Ok(false);
        }
        if self.options.check {
            self.record(
                Status::Changed,
                &name,
                &format!("would move to {} while this host is changed", other.name),
            );
            return Ok(false);
        }
        match pair.move_away(self.host, other).await {
            Ok(moved) => {
                self.record(
                    Status::Changed,
                    &name,
                    &format!("to {}: {moved}", other.name),
                );
                Ok(true)
            }
            Err(e) => {
                // Whatever happened, this host keeps serving; it is not changed now.
                let _ = pair.give_back(self.host, other).await;
                Err(Error::Message(format!(
                    "the address could not move to {} ({e}); {} is left as it was",
                    other.name, self.host.name
                )))
            }
        }
    }

    /// After a host the address moved away from is changed: its priority back, and with it
    /// the address when keepalived preempts. A host whose deploy failed keeps its priority
    /// lowered, so the address stays on the host that works.
    pub(super) async fn give_back(&mut self, pair: &Pair, other: &Host) {
        let name = format!("address {}", pair.address);
        if self.failed {
            self.record(
                Status::Failed,
                &name,
                &format!(
                    "stays on {}: this host's priority stays lowered ({}); deploy again once \
                     it is fixed",
                    other.name,
                    provision::vrrp::STEP_DOWN_PATH
                ),
            );
            return;
        }
        match pair.give_back(self.host, other).await {
            Ok(Some(moved)) => {
                self.record(Status::Changed, &name, &format!("back: {moved}"));
            }
            Ok(None) => self.record(
                Status::Ok,
                &name,
                &format!(
                    "priority restored; the address stays on {} (no preemption)",
                    other.name
                ),
            ),
            Err(e) => self.record(Status::Failed, &name, &format!("not back: {e}")),
        }
    }
}

/// How much to take off priority `mine` to fall below `theirs`.
fn step_down_by(mine: u8, theirs: u8) -> u8 {
    mine.saturating_sub(theirs).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(text: &str) -> LbPair {
        toml::from_str(text).expect("a valid [lb_pair]")
    }

    const PAIR: &str = r#"
virtual_ipaddress = ["192.0.2.100/24", "192.0.2.101/24"]
interface = "eth0"
virtual_router_id = 51
advert_interval = "200ms"
hosts = [
  { name = "lb-1", priority = 150, address = "192.0.2.11" },
  { name = "lb-2", priority = 100, address = "192.0.2.12" },
]
"#;

    #[test]
    fn the_holder_falls_just_below_the_other() {
        assert_eq!(step_down_by(150, 100), 51, "150 - 51 = 99, below 100");
        assert_eq!(step_down_by(101, 100), 2);
        assert_eq!(step_down_by(100, 150), 1, "already below: one less still");
        assert_eq!(
            step_down_by(254, 1),
            254,
            "keepalived floors the priority at 1"
        );
    }

    #[test]
    fn the_first_address_is_watched_and_moves_get_time_to_settle() {
        let p = Pair::new(&pair(PAIR), Path::new("/opt/veza/lb/veza-lb"), "unix:/s").unwrap();
        assert_eq!(p.address.to_string(), "192.0.2.100");
        assert!(p.preempt);
        assert_eq!(p.settle, Duration::from_secs(10), "at least 10 s");
        let slow = pair(&PAIR.replace("200ms", "3s"));
        let p = Pair::new(&slow, Path::new("/x"), "unix:/s").unwrap();
        assert_eq!(p.settle, Duration::from_secs(18), "6 adverts");
        let bad = pair(&PAIR.replace("192.0.2.100/24", "lb.example/24"));
        let e = Pair::new(&bad, Path::new("/x"), "unix:/s").unwrap_err();
        assert!(e.to_string().contains("is not an address"), "{e}");
    }
}
