//! The runtime API's listener: TCP or unix socket, one task per client, one line of
//! commands per connection.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use super::session;
use crate::config::AccessLevel;
use crate::observe::source::StatsSource;

pub(crate) enum StatsListener {
    Tcp(TcpListener),
    Unix(UnixSocket),
}

impl StatsListener {
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".to_owned(), |a| a.to_string()),
            Self::Unix(u) => format!("unix:{}", u.path.display()),
        }
    }
}

/// Creates the directory of the unix socket at `path` (and its parents) when it is missing,
/// `rwxr-xr-x` as systemd's `RuntimeDirectory=` makes it: the example configuration's
/// `/run/veza-lb` exists under the unit, not on a fresh machine where veza-lb is started by
/// hand. Returns the directory and why it could not be created, for an error that says what
/// to do.
pub(crate) fn ensure_directory(path: &Path) -> Result<(), (PathBuf, io::Error)> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    // Recursive: a directory already there is no error (and keeps its mode).
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| (dir.to_owned(), e))
}

/// A unix stats socket, created with its final permissions under a temporary name and renamed
/// into place, so it replaces a previous instance's socket atomically and is never reachable
/// with looser permissions at its real path.
pub(crate) struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file, to remove it at exit only if it is still ours.
    identity: (u64, u64),
}

impl UnixSocket {
    pub(crate) fn bind(path: &Path, mode: u32) -> io::Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let _ = fs::remove_file(&tmp);
        let std_listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        std_listener.set_nonblocking(true)?;
        let meta = fs::metadata(path)?;
        Ok(Self {
            listener: UnixListener::from_std(std_listener)?,
            path: path.to_owned(),
            identity: (meta.dev(), meta.ino()),
        })
    }

    fn remove(&self) {
        // A newer instance may have replaced the socket: leave its file alone.
        if fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Accepts clients until `stop`, each served on its own task with the socket's `level`.
pub(crate) async fn serve(
    listener: StatsListener,
    level: AccessLevel,
    source: Arc<StatsSource>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            r = accept(&listener) => r,
            () = stop.cancelled() => break,
        };
        match accepted {
            Ok(Client::Tcp(stream)) => {
                let source = source.clone();
                tokio::spawn(async move { session::serve(stream, level, &source).await });
            }
            Ok(Client::Unix(stream)) => {
                let source = source.clone();
                tokio::spawn(async move { session::serve(stream, level, &source).await });
            }
            Err(e) => {
                tracing::warn!("runtime API accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let StatsListener::Unix(socket) = &listener {
        socket.remove();
    }
}

enum Client {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &StatsListener) -> io::Result<Client> {
    match listener {
        StatsListener::Tcp(l) => Ok(Client::Tcp(l.accept().await?.0)),
        StatsListener::Unix(u) => Ok(Client::Unix(u.listener.accept().await?.0)),
    }
}
