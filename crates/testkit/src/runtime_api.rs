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

/// A runtime API session in HAProxy's interactive mode, driven as hatop and people at a
/// terminal drive it: `prompt` first, then one command at a time, each answer read up to the
/// `> ` prompt that follows it.
pub struct Interactive<S> {
    stream: S,
}

impl Interactive<TcpStream> {
    /// Connects to `addr` and enters interactive mode.
    ///
    /// # Errors
    /// Connecting fails, or the prompt does not come.
    pub async fn tcp(addr: SocketAddr) -> io::Result<Self> {
        Self::start(TcpStream::connect(addr).await?).await
    }
}

impl Interactive<UnixStream> {
    /// Connects to the unix socket at `path` and enters interactive mode.
    ///
    /// # Errors
    /// As [`Interactive::tcp`].
    pub async fn unix(path: &Path) -> io::Result<Self> {
        Self::start(UnixStream::connect(path).await?).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Interactive<S> {
    async fn start(stream: S) -> io::Result<Self> {
        let mut session = Self { stream };
        let first = session.send("prompt").await?;
        if first.is_empty() {
            Ok(session)
        } else {
            Err(io::Error::other(format!(
                "`prompt` answered {first:?} before its prompt"
            )))
        }
    }

    /// Sends one command line; returns its answer, the prompt after it left out.
    ///
    /// # Errors
    /// Writing fails, or the connection closes or stays silent for [`WAIT`] before the
    /// prompt.
    pub async fn send(&mut self, line: &str) -> io::Result<String> {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .await?;
        self.answer().await
    }

    /// Reads the next answer, up to its prompt (the second one, after a line with two
    /// commands).
    ///
    /// # Errors
    /// As [`Interactive::send`].
    pub async fn answer(&mut self) -> io::Result<String> {
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !answer.ends_with(b"\n> ") {
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no prompt in time"))??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "closed before the prompt, after {:?}",
                        String::from_utf8_lossy(&answer)
                    ),
                ));
            }
            answer.extend_from_slice(&chunk[..n]);
        }
        answer.truncate(answer.len() - "\n> ".len());
        String::from_utf8(answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Sends `quit` and returns what came before the server closed (nothing, from
    /// veza-lb and HAProxy).
    ///
    /// # Errors
    /// Writing or reading fails, or the server keeps the connection open past [`WAIT`].
    pub async fn quit(mut self) -> io::Result<String> {
        self.stream.write_all(b"quit\n").await?;
        let mut rest = String::new();
        tokio::time::timeout(WAIT, self.stream.read_to_string(&mut rest))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "still open after quit"))??;
        Ok(rest)
    }
}
