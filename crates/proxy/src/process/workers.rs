//! The event loops besides the main one: each a current-thread tokio runtime on a thread of
//! its own, driven until the process stops.
//!
//! `threads = N` runs N event loops, like HAProxy's `nbthread` or nginx's worker processes:
//! every listening address has one `SO_REUSEPORT` socket per loop, the kernel spreads new
//! connections across them (a busy loop hands new ones to the least loaded), and a connection
//! lives on its loop. There is no work stealing and so no cross-thread wake-up on the request
//! path: each loop knows its index (`data::loops::current`), and what is per loop (a server's
//! idle connections, the counters' totals) is indexed by it; what loops share (routing
//! snapshots, current session counts) is lock-free.

use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The extra event loops; dropping it stops and joins them.
pub(crate) struct Workers {
    handles: Vec<Handle>,
    running: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Workers {
    /// Starts `count` event loops.
    ///
    /// # Errors
    /// A runtime or thread cannot be created.
    pub(crate) fn start(count: usize) -> std::io::Result<Self> {
        let mut workers = Self {
            handles: Vec::with_capacity(count),
            running: Vec::with_capacity(count),
        };
        for i in 1..=count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            workers.handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("veza-lb-loop-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            workers.running.push((stop, thread));
        }
        Ok(workers)
    }

    /// Handles to spawn onto the loops.
    pub(crate) fn handles(&self) -> Vec<Handle> {
        self.handles.clone()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for (stop, thread) in self.running.drain(..) {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_run_on_their_own_loop_until_dropped() {
        let workers = Workers::start(2).expect("start");
        let (tx, rx) = std::sync::mpsc::channel();
        for handle in workers.handles() {
            let tx = tx.clone();
            handle.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
            });
        }
        let mut names: Vec<_> = (0..2)
            .map(|_| rx.recv().expect("ran").expect("named"))
            .collect();
        names.sort();
        assert_eq!(names, ["veza-lb-loop-1", "veza-lb-loop-2"]);
        drop(workers);
    }
}
