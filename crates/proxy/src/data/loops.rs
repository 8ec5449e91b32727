//! The event loops connections are served on, and how many each serves now.
//!
//! Each loop accepts from its own `SO_REUSEPORT` socket, and the kernel spreads connections
//! over those sockets by a hash of their addresses: 64 connections land 40/24 as often as
//! 32/32, and the busier loop then answers late while the other idles. So, as HAProxy picks
//! the least loaded thread for a connection it accepts, a loop keeps a connection it accepts
//! unless it already serves more than [`MARGIN`] connections above the least loaded loop,
//! which then gets it. Moving a connection costs a cross-thread spawn and a move of the
//! socket from one reactor to the other, once per moved connection; requests never cross
//! loops.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tokio::runtime::{Handle, RuntimeFlavor};

use crate::counters;

/// How many connections a loop may serve above the least loaded one before it hands new
/// ones over.
const MARGIN: usize = 1;

/// How many event loops the process runs (set by [`EventLoops::new`]; 1 until then).
static COUNT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The index of the event loop this thread drives (0: the main loop).
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Records how many event loops the process runs.
fn set_count(loops: usize) {
    COUNT.store(loops.max(1), Relaxed);
}

/// How many event loops the process runs.
pub(crate) fn count() -> usize {
    COUNT.load(Relaxed)
}

/// Marks this thread as driving event loop `index`.
fn set_current(index: usize) {
    CURRENT.with(|c| c.set(index));
}

/// The index of the event loop the caller runs on. What is per loop (a server's idle
/// connections, whose sockets are registered with one loop's reactor) is indexed by it.
pub(crate) fn current() -> usize {
    CURRENT.with(Cell::get)
}

/// The process's event loops (the first is the one the supervisor runs on).
#[derive(Debug)]
pub(crate) struct EventLoops {
    loops: Box<[EventLoop]>,
}

/// One event loop: where to spawn on it, and the connections it serves. Aligned so that two
/// loops' counters never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
struct EventLoop {
    handle: Handle,
    connections: AtomicUsize,
}

/// A connection placed on a loop, counted there until it is dropped.
#[derive(Debug)]
pub(crate) struct Placed {
    loops: Arc<EventLoops>,
    index: usize,
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.loops.loops[self.index]
            .connections
            .fetch_sub(1, Relaxed);
    }
}

impl EventLoops {
    /// The loops of these runtimes (current-thread ones, each driven by its own thread), in
    /// index order. Each loop's thread learns its index (its first task says so, before any
    /// connection reaches it), and the process its number of loops, before any server state
    /// or counter set that is kept per loop is built.
    pub(crate) fn new(handles: impl IntoIterator<Item = Handle>) -> Self {
        let loops: Box<[EventLoop]> = handles
            .into_iter()
            .map(|handle| EventLoop {
                handle,
                connections: AtomicUsize::new(0),
            })
            .collect();
        for (index, l) in loops.iter().enumerate() {
            // A current-thread runtime is driven by one thread: that thread alone writes
            // the loop's block of every counter set. A multi-threaded one (a runtime an
            // embedder starts the proxy on) runs tasks on any of its threads, which write
            // the shared block.
            let owned =
                (l.handle.runtime_flavor() == RuntimeFlavor::CurrentThread).then_some(index);
            l.handle.spawn(async move {
                set_current(index);
                counters::own_loop_block(owned);
            });
        }
        set_count(loops.len());
        counters::set_loop_blocks(loops.len());
        Self { loops }
    }

    /// How many loops there are.
    pub(crate) fn len(&self) -> usize {
        self.loops.len()
    }

    /// Each loop's runtime, in index order.
    pub(crate) fn handles(&self) -> impl Iterator<Item = &Handle> + Clone {
        self.loops.iter().map(|l| &l.handle)
    }

    /// The loop a connection accepted on loop `here` is served on, counted there.
    pub(crate) fn place(self: &Arc<Self>, here: usize) -> Placed {
        let load = |i: usize| self.loops[i].connections.load(Relaxed);
        let least = (0..self.loops.len())
            .min_by_key(|&i| load(i))
            .unwrap_or(here);
        let index = if load(here) > load(least) + MARGIN {
            least
        } else {
            here
        };
        self.loops[index].connections.fetch_add(1, Relaxed);
        Placed {
            loops: self.clone(),
            index,
        }
    }

    /// Where to spawn a connection's task: the loop it was placed on.
    pub(crate) fn handle(&self, placed: &Placed) -> &Handle {
        &self.loops[placed.index].handle
    }
}

impl Placed {
    /// The loop's index.
    pub(crate) fn index(&self) -> usize {
        self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loops(n: usize) -> Arc<EventLoops> {
        let handle = Handle::current();
        Arc::new(EventLoops::new((0..n).map(|_| handle.clone())))
    }

    #[tokio::test]
    async fn a_busy_loop_hands_new_connections_to_the_least_loaded() {
        let loops = loops(3);
        // Every connection accepted on loop 0, as an unlucky reuseport hash would have it.
        let placed: Vec<Placed> = (0..30).map(|_| loops.place(0)).collect();
        let mut per_loop = [0; 3];
        for s in &placed {
            per_loop[s.index()] += 1;
        }
        assert_eq!(per_loop, [11, 10, 9], "spread within the margin");
        // Connections that end free their loop.
        let kept: Vec<Placed> = placed.into_iter().filter(|s| s.index() != 1).collect();
        assert_eq!(loops.loops[1].connections.load(Relaxed), 0);
        assert_eq!(loops.place(0).index(), 1, "the idle loop gets the next one");
        drop(kept);
        assert!(loops.loops.iter().all(|l| l.connections.load(Relaxed) == 0));
    }

    #[tokio::test]
    async fn a_loop_within_the_margin_keeps_its_connections() {
        let loops = loops(2);
        let placed: Vec<Placed> = (0..3).map(|_| loops.place(1)).collect();
        let kept: Vec<usize> = placed.iter().map(Placed::index).collect();
        // 0 and 1 above an idle loop are within the margin; 2 above is not.
        assert_eq!(kept, [1, 1, 0]);
    }
}
