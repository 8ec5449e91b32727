//! One runtime API command: connect, send the line, read the answer until the server closes
//! (HAProxy's non-interactive mode).

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::WAIT;

/// Sends `command` to the runtime API at `addr` and returns the whole answer.
///
/// # Errors
/// Connecting, writing or reading fails, or no complete answer arrives within [`WAIT`].
pub async fn command(addr: SocketAddr, command: &str) -> io::Result<String> {
    exchange(TcpStream::connect(addr).await?, command).await
}

/// The same over a unix socket.
///
/// # Errors
/// As [`command`].
pub async fn command_unix(path: &Path, command: &str) -> io::Result<String> {
    exchange(UnixStream::connect(path).await?, command).await
}

/// [`command`], for tests: panics with the cause instead of returning it.
///
/// # Panics
/// Whenever [`command`] fails.
pub async fn ctl(addr: SocketAddr, line: &str) -> String {
    command(addr, line)
        .await
        .unwrap_or_else(|e| panic!("runtime API {addr}: {line:?}: {e}"))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    command: &str,
) -> io::Result<String> {
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut answer = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut answer))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no complete answer in time"))??;
    Ok(answer)
}
