//! The running proxy: binds every frontend's listeners, hands them the routing snapshots,
//! reloads a new configuration whole or not at all, and stops gracefully.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config};
use crate::control::{ControlHandle, ControlTask};
use crate::counters::Counters;
use crate::data::admission::Admission;
use crate::data::frontend::ListenerContext;
use crate::data::passive::PassiveReports;
use crate::data::ratelimit::{RateTable, spawn_sweeper};
use crate::data::routing::{FrontendView, PoolSlot, RouteView};
use crate::data::standby::Standby;
use crate::data::tripwire::Tripwire;
use crate::listen::{self, Purpose};
use crate::observe::ProxyHandle;
use crate::observe::Services;
use crate::stats::FrontendStats;
use crate::tls::{self, TlsCounters};
use crate::{Error, data};

struct Listener {
    addr: SocketAddr,
    /// The address as configured (port 0 stays 0), to recognise it on reload.
    configured: SocketAddr,
    /// An HTTPS listener (`tls.bind`).
    tls: bool,
    stop: Tripwire,
    /// Duplicates of its listening sockets, to hand to a new binary (`upgrade`); closed with
    /// the listener.
    sockets: Vec<OwnedFd>,
    /// `frontend NAME listening on URL (N event loops)`, until it is logged: once everything
    /// the start or reload binds is up, so that no "listening" line precedes a failure.
    announce: Option<String>,
}

struct RunningFrontend {
    view: Arc<ArcSwap<FrontendView>>,
    listeners: Vec<Listener>,
    /// Certificates and server settings, when the frontend has HTTPS listeners.
    tls: Option<Arc<tls::TlsFrontend>>,
    https: Arc<ArcSwap<tls::HttpsPolicy>>,
}

/// Every frontend's certificates, read and checked before anything changes.
fn load_certificates(config: &Config) -> Result<HashMap<String, tls::CertSet>, Error> {
    config
        .frontends
        .iter()
        .filter_map(|fe| Some((fe, fe.tls.as_ref()?)))
        .map(|(fe, t)| Ok((fe.name.clone(), tls::CertSet::load(&fe.name, t)?)))
        .collect()
}

/// Listeners bound for a reload and not yet started, by frontend, address and HTTPS.
type Bound = HashMap<(String, SocketAddr, bool), Vec<std::net::TcpListener>>;

/// Starts accepting on `group` for frontend `name`: its first socket on this event loop,
/// each other one on its own worker event loop, so a connection is served from accept to
/// close on the loop whose socket accepted it.
fn start_listener(
    name: &str,
    group: Vec<std::net::TcpListener>,
    loops: &data::loops::EventLoops,
    configured: SocketAddr,
    tls: bool,
    ctx: &ListenerContext,
) -> Listener {
    let addr = group
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(configured);
    let scheme = if tls { "https" } else { "http" };
    let count = loops.len();
    let announce =
        format!("frontend {name} listening on {scheme}://{addr} ({count} event loop(s))");
    let stop = Tripwire::new();
    let sockets = group
        .iter()
        .filter_map(|s| s.as_fd().try_clone_to_owned().ok())
        .collect();
    // One socket per loop; sockets handed over by an older binary may be more than the
    // loops, and each is accepted from (a queue nobody accepts from would lose connections).
    let loops = loops.handles().enumerate().cycle();
    for (socket, (index, handle)) in group.into_iter().zip(loops) {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        handle.spawn(async move {
            // Registered with the reactor of the loop that accepts on it.
            match TcpListener::from_std(socket) {
                Ok(listener) => data::listener::accept_loop(listener, index, ctx, stop).await,
                Err(e) => tracing::error!("cannot register a listening socket: {e}"),
            }
        });
    }
    Listener {
        addr,
        configured,
        tls,
        stop,
        sockets,
        announce: Some(announce),
    }
}

/// A running `veza-lb`: listeners bound, health checks scheduled, control task running.
pub struct Proxy {
    control: ControlHandle,
    passive: PassiveReports,
    frontends: HashMap<String, RunningFrontend>,
    handle: ProxyHandle,
    process: Arc<Counters>,
    /// Stops the observability services (stats socket, metrics, rates).
    drain: CancellationToken,
    /// The data plane's drain: stop accepting (connections close through standby).
    drain_data: Tripwire,
    hard_stop: Tripwire,
    tracker: TaskTracker,
    grace: Duration,
    services: Services,
    /// The event loops that accept and serve connections (the current one first), and the
    /// connections each serves.
    loops: Arc<data::loops::EventLoops>,
}

fn frontend_view(
    fe: &config::Frontend,
    pools: &HashMap<&str, Arc<PoolSlot>>,
    counters: Arc<Counters>,
    previous: Option<&FrontendView>,
) -> Option<FrontendView> {
    // A reload keeps a table (its counts) when its name and limit stay.
    let table = |name: String, limit: &Option<config::RateLimit>| {
        let limit = (*limit)?;
        let kept = previous
            .into_iter()
            .flat_map(FrontendView::tables)
            .find(|t| t.name == name && t.limit == limit);
        Some(kept.cloned().unwrap_or_else(|| {
            let table = RateTable::new(name, limit);
            spawn_sweeper(&table);
            table
        }))
    };
    let mut routes: Vec<RouteView> = fe
        .routes
        .iter()
        .map(|r| {
            Some(RouteView {
                prefix: r.path_prefix.clone(),
                pool: pools.get(r.pool.as_str())?.clone(),
                rate_limit: table(format!("{}:{}", fe.name, r.path_prefix), &r.rate_limit),
            })
        })
        .collect::<Option<_>>()?;
    // Longest prefix first, so `/stream/live/` wins over `/stream/`.
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    Some(FrontendView {
        name: fe.name.as_str().into(),
        routes,
        default_pool: pools.get(fe.default_pool.as_str())?.clone(),
        counters,
        rate_limit: table(fe.name.clone(), &fe.rate_limit),
        monitor_uri: fe.monitor_uri.as_deref().map(Arc::from),
    })
}

/// The connection limit for `config` under this process's open-files limit; a `maxconn` the
/// limit cannot hold is lowered, with a warning.
fn maxconn(config: &Config) -> u64 {
    let (max, warning) =
        listen::effective_maxconn(config.global.maxconn, listen::open_files_limit());
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    max
}

/// A frontend's client timeouts: inactivity, and the request head's
/// (`timeout_http_request`), from its default pool.
fn client_timeouts(config: &Config, fe: &config::Frontend) -> (Duration, Duration) {
    config
        .pool(&fe.default_pool)
        .map_or((Duration::from_secs(30), Duration::from_secs(30)), |p| {
            (p.timeouts.client, p.timeouts.http_request)
        })
}

impl Proxy {
    /// Starts the proxy: binds every frontend (all or nothing), schedules health checks and
    /// starts serving. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// A listener cannot be bound.
    pub async fn start(config: Config) -> Result<Self, Error> {
        Self::start_on(config, Vec::new()).await
    }

    /// [`Proxy::start`], with connections also accepted and served on each of `workers`
    /// (current-thread runtimes on threads of their own): every listening address gets one
    /// `SO_REUSEPORT` socket per event loop.
    ///
    /// # Errors
    /// A listener cannot be bound.
    pub async fn start_on(config: Config, workers: Vec<Handle>) -> Result<Self, Error> {
        let certs = load_certificates(&config)?;
        // Before any server state: servers keep their idle connections per loop.
        let loops = Arc::new(data::loops::EventLoops::new(
            std::iter::once(Handle::current()).chain(workers),
        ));
        let (task, control, passive, slots) = ControlTask::new(&config);
        tokio::spawn(task.run());
        let process = Arc::new(Counters::default());
        let mut proxy = Proxy {
            control: control.clone(),
            passive,
            frontends: HashMap::new(),
            handle: ProxyHandle {
                control,
                frontends: Arc::new(ArcSwap::from_pointee(Vec::new())),
                process: process.clone(),
                started: SystemTime::now(),
                admission: Admission::new(maxconn(&config)),
                tables: Arc::default(),
                upgrades: Arc::default(),
                standby: Arc::new(Standby::new()),
            },
            process,
            drain: CancellationToken::new(),
            drain_data: Tripwire::new(),
            hard_stop: Tripwire::new(),
            tracker: TaskTracker::new(),
            grace: config.global.shutdown_grace,
            services: Services::default(),
            loops,
        };
        proxy.apply_frontends(&config, &slots, certs)?;
        // The stats socket and metrics listener; a reload keeps them as they are.
        let loops = proxy.loops.handles().cloned().collect();
        match Services::start(
            &config.global,
            &proxy.handle,
            &proxy.drain,
            &proxy.tracker,
            loops,
        ) {
            Ok(services) => proxy.services = services,
            Err(e) => {
                proxy.abort();
                return Err(e);
            }
        }
        proxy.announce_listeners(&config);
        Ok(proxy)
    }

    /// Logs the listeners started since the last call, in configuration order (they are all
    /// up by now).
    fn announce_listeners(&mut self, config: &Config) {
        for fe in &config.frontends {
            let Some(running) = self.frontends.get_mut(&fe.name) else {
                continue;
            };
            for line in running
                .listeners
                .iter_mut()
                .filter_map(|l| l.announce.take())
            {
                tracing::info!("{line}");
            }
        }
    }

    /// Binds new listeners first, then swaps routing and closes listeners no longer wanted,
    /// so a reload never refuses a connection on an address that stays.
    fn apply_frontends(
        &mut self,
        config: &Config,
        slots: &[Arc<PoolSlot>],
        certs: HashMap<String, tls::CertSet>,
    ) -> Result<(), Error> {
        let pools: HashMap<&str, Arc<PoolSlot>> =
            slots.iter().map(|s| (&*s.name, s.clone())).collect();
        // Everything that can fail happens before anything changes: all or nothing.
        let mut bound = self.bind_new_listeners(config)?;
        let mut tls_states = self.prepare_tls(config, certs)?;
        let mut next = HashMap::new();
        for fe in &config.frontends {
            let previous = self.frontends.remove(&fe.name);
            let tls_state = tls_states.remove(&fe.name);
            if let Some(running) =
                self.apply_frontend(config, fe, previous, &pools, &mut bound, tls_state)
            {
                next.insert(fe.name.clone(), running);
            }
        }
        for (name, removed) in self.frontends.drain() {
            tracing::info!("frontend {name} removed");
            for l in removed.listeners {
                l.stop.trip();
            }
        }
        self.frontends = next;
        self.publish_frontend_stats(config);
        Ok(())
    }

    /// Binds every listening address of `config` no running listener holds yet.
    fn bind_new_listeners(&self, config: &Config) -> Result<Bound, Error> {
        let mut bound = HashMap::new();
        for fe in &config.frontends {
            let existing = self.frontends.get(&fe.name);
            for (addr, tls) in listen::frontend(fe) {
                let held = existing.is_some_and(|r| {
                    r.listeners
                        .iter()
                        .any(|l| l.configured == addr && l.tls == tls)
                });
                if !held {
                    let purpose = Purpose::frontend(&fe.name, tls);
                    let group = listen::bind_group(purpose, addr, self.loops.len())?;
                    bound.insert((fe.name.clone(), addr, tls), group);
                }
            }
        }
        Ok(bound)
    }

    /// The TLS state of every frontend with certificates: a running one has its
    /// certificates swapped in place (when applied); a new one gets its server settings
    /// built now, before anything is changed.
    fn prepare_tls(
        &self,
        config: &Config,
        mut certs: HashMap<String, tls::CertSet>,
    ) -> Result<HashMap<String, Arc<tls::TlsFrontend>>, Error> {
        let mut states = HashMap::new();
        let mut swaps = Vec::new();
        for fe in &config.frontends {
            let Some(set) = certs.remove(&fe.name) else {
                continue;
            };
            let state = match self.frontends.get(&fe.name).and_then(|r| r.tls.clone()) {
                Some(running) => {
                    swaps.push((running.clone(), set));
                    running
                }
                None => Arc::new(tls::TlsFrontend::new(&fe.name, set)?),
            };
            states.insert(fe.name.clone(), state);
        }
        // Nothing can fail any more: new handshakes get the new certificates.
        for (state, set) in swaps {
            state.resolver.replace(set);
        }
        Ok(states)
    }

    /// One frontend of the new configuration: its routing view swapped in, listeners it no
    /// longer has closed, new ones started.
    fn apply_frontend(
        &self,
        config: &Config,
        fe: &config::Frontend,
        previous: Option<RunningFrontend>,
        pools: &HashMap<&str, Arc<PoolSlot>>,
        bound: &mut Bound,
        tls_state: Option<Arc<tls::TlsFrontend>>,
    ) -> Option<RunningFrontend> {
        let before = previous.as_ref().map(|r| r.view.load_full());
        let counters = before
            .as_ref()
            .map_or_else(Arc::default, |v| v.counters.clone());
        // Validation guarantees every pool exists.
        let view = frontend_view(fe, pools, counters, before.as_deref())?;
        let (view, mut listeners, https) = match previous {
            Some(r) => {
                r.view.store(Arc::new(view));
                (r.view, r.listeners, r.https)
            }
            None => (
                Arc::new(ArcSwap::from_pointee(view)),
                Vec::new(),
                Arc::default(),
            ),
        };
        listeners.retain(|l| {
            let keep = listen::frontend(fe).any(|b| b == (l.configured, l.tls));
            if !keep {
                l.stop.trip();
            }
            keep
        });
        let (client_timeout, head_timeout) = client_timeouts(config, fe);
        let ctx = ListenerContext {
            view: view.clone(),
            passive: self.passive.clone(),
            client_timeout,
            head_timeout,
            process: self.process.clone(),
            tls: None,
            https: https.clone(),
            drain: self.drain_data.clone(),
            standby: self.handle.standby.clone(),
            drain_window: config.global.drain_window_in_effect(),
            hard_stop: self.hard_stop.clone(),
            tracker: self.tracker.clone(),
            admission: self.handle.admission.clone(),
            loops: self.loops.clone(),
        };
        for (addr, tls) in listen::frontend(fe) {
            if let Some(group) = bound.remove(&(fe.name.clone(), addr, tls)) {
                let mut ctx = ctx.clone();
                if tls {
                    ctx.tls = tls_state.clone();
                }
                listeners.push(start_listener(
                    &fe.name,
                    group,
                    &self.loops,
                    addr,
                    tls,
                    &ctx,
                ));
            }
        }
        let tls_port = listeners.iter().find(|l| l.tls).map(|l| l.addr.port());
        https.store(Arc::new(tls::HttpsPolicy::of(fe, tls_port)));
        Some(RunningFrontend {
            view,
            listeners,
            tls: tls_state,
            https,
        })
    }

    /// What `show stat` lists as frontends, in configuration order.
    fn publish_frontend_stats(&self, config: &Config) {
        let stats = config
            .frontends
            .iter()
            .filter_map(|fe| {
                let r = self.frontends.get(&fe.name)?;
                Some(FrontendStats {
                    name: fe.name.clone(),
                    counters: r.view.load().counters.clone(),
                    tls: r.tls.as_ref().map(|t| t.counters.clone()),
                })
            })
            .collect();
        self.handle.frontends.store(Arc::new(stats));
        let tables = config
            .frontends
            .iter()
            .filter_map(|fe| self.frontends.get(&fe.name))
            .flat_map(|r| r.view.load().tables().cloned().collect::<Vec<_>>())
            .collect();
        self.handle.tables.store(Arc::new(tables));
    }

    /// The plain HTTP addresses a frontend is listening on (with the real port when
    /// configured as 0).
    #[must_use]
    pub fn frontend_addrs(&self, name: &str) -> Vec<SocketAddr> {
        self.listener_addrs(name, false)
    }

    /// The HTTPS addresses a frontend is listening on (`tls.bind`, with the real port when
    /// configured as 0).
    #[must_use]
    pub fn tls_addrs(&self, name: &str) -> Vec<SocketAddr> {
        self.listener_addrs(name, true)
    }

    /// A frontend's TLS counters (`ssl_sess`, `ssl_reused_sess`, `ssl_failed_handshake`,
    /// `CurrSslConns`); `None` when it has no HTTPS listener.
    #[must_use]
    pub fn tls_counters(&self, name: &str) -> Option<Arc<TlsCounters>> {
        Some(self.frontends.get(name)?.tls.as_ref()?.counters.clone())
    }

    fn listener_addrs(&self, name: &str, tls: bool) -> Vec<SocketAddr> {
        self.frontends
            .get(name)
            .map(|r| {
                r.listeners
                    .iter()
                    .filter(|l| l.tls == tls)
                    .map(|l| l.addr)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every listening TCP socket (frontends, runtime API, metrics) with its address, as
    /// duplicates for a new binary to take over (`upgrade`): a frontend's whole group, so no
    /// socket's queue is left without anyone accepting from it.
    pub(crate) fn listening_sockets(&self) -> std::io::Result<Vec<(SocketAddr, OwnedFd)>> {
        let frontends = self
            .frontends
            .values()
            .flat_map(|r| &r.listeners)
            .flat_map(|l| l.sockets.iter().map(move |fd| (l.addr, fd)));
        let services = self.services.sockets().iter().map(|(addr, fd)| (*addr, fd));
        frontends
            .chain(services)
            .map(|(addr, fd)| Ok((addr, fd.try_clone()?)))
            .collect()
    }

    /// The runtime API's TCP address (with the real port when configured as 0); `None`
    /// without a `stats_socket` or with a unix one.
    #[must_use]
    pub fn stats_addr(&self) -> Option<SocketAddr> {
        self.services.stats_addr()
    }

    /// The metrics listener's address (with the real port when configured as 0).
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.services.metrics_addr()
    }

    /// The handle for statistics and operator commands.
    #[must_use]
    pub fn handle(&self) -> ProxyHandle {
        self.handle.clone()
    }

    /// Applies a new, validated configuration: pools keep their servers' state, counters
    /// and connections; listeners that stay keep their sockets.
    ///
    /// Certificates are read again: new handshakes get the new ones, established connections
    /// keep theirs.
    ///
    /// # Errors
    /// A new listener cannot be bound, or a certificate or key cannot be used: nothing is
    /// changed then.
    pub async fn reload(&mut self, config: Config) -> Result<(), Error> {
        let certs = load_certificates(&config)?;
        // Bind-check first, so a failing bind leaves the running configuration untouched.
        for fe in &config.frontends {
            for (addr, _) in listen::frontend(fe) {
                let held = self
                    .frontends
                    .values()
                    .any(|r| r.listeners.iter().any(|l| l.addr == addr));
                if !held && addr.port() != 0 {
                    drop(listen::bind_for(Purpose::frontend(&fe.name, false), addr)?);
                }
            }
        }
        let config = Arc::new(config);
        let slots = self
            .control
            .reload(config.clone())
            .await
            .ok_or(Error::Stopped)?;
        self.grace = config.global.shutdown_grace;
        self.handle.admission.set_max(maxconn(&config));
        self.apply_frontends(&config, &slots, certs)?;
        self.announce_listeners(&config);
        Ok(())
    }

    /// Graceful stop: stop accepting, let in-flight requests finish and close idle
    /// connections, then close tunnels and whatever is left once `shutdown_grace` has passed.
    pub async fn shutdown(mut self) {
        // The listening sockets close with the accept loops: no duplicate kept for an upgrade
        // may hold one open (and accepting into a queue nobody reads).
        for running in self.frontends.values_mut() {
            for listener in &mut running.listeners {
                listener.sockets.clear();
            }
        }
        self.services.forget_sockets();
        self.drain.cancel();
        self.drain_data.trip();
        // Connections close as in standby: after their next answer, idle ones at the end of
        // the drain window.
        self.handle.standby.enter();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown grace of {:?} elapsed: closing remaining connections",
                self.grace
            );
        }
        self.hard_stop.trip();
        // Give tasks a moment to observe the hard stop and write their logs.
        let _ = tokio::time::timeout(Duration::from_millis(100), self.tracker.wait()).await;
    }

    /// Stops at once: every connection and tunnel is closed.
    pub fn abort(&self) {
        self.drain.cancel();
        self.drain_data.trip();
        self.hard_stop.trip();
    }
}
