//! The runtime API's line protocol: reading bounded command lines, splitting them into
//! commands.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::timeout;

/// Why a client was dropped before its line was complete.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The line exceeded the limit.
    TooLong,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// The client closed without sending anything, or the socket failed.
    Closed,
}

/// Reads command lines from a client, keeping what arrived after a line for the next one (a
/// client may send several lines at once: pipelined commands, or a whole interactive
/// session).
#[derive(Debug, Default)]
pub(crate) struct LineReader {
    buf: Vec<u8>,
    closed: bool,
}

impl LineReader {
    /// The next command line (without its `\n` or `\r\n`); a last line without a newline
    /// counts when the client half-closes.
    pub(crate) async fn next_line<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        max: usize,
        idle: Duration,
    ) -> Result<String, Dropped> {
        let mut searched = 0;
        loop {
            if let Some(at) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + at;
                if end > max {
                    return Err(Dropped::TooLong);
                }
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                return Ok(text(&line[..end]));
            }
            searched = self.buf.len();
            if self.buf.len() > max {
                return Err(Dropped::TooLong);
            }
            if self.closed {
                if self.buf.is_empty() {
                    return Err(Dropped::Closed);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(text(&line));
            }
            let mut chunk = [0u8; 4096];
            match timeout(idle, reader.read(&mut chunk)).await {
                Err(_) => return Err(Dropped::Idle),
                Ok(Err(_)) => return Err(Dropped::Closed),
                Ok(Ok(0)) => self.closed = true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether more of the client's input has already arrived (HAProxy's non-interactive
    /// mode answers such pipelined lines before it closes).
    pub(crate) fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }
}

fn text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

/// Splits a line at `;`, `\;` standing for a literal semicolon. Blank commands are skipped,
/// except that a blank line is one (unknown) command, as in HAProxy.
pub(crate) fn split_commands(line: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&';') => {
                current.push(';');
                chars.next();
            }
            ';' => commands.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    commands.push(current);
    let blank_line = commands.iter().all(|c| c.trim().is_empty());
    if blank_line {
        return vec![String::new()];
    }
    commands.retain(|c| !c.trim().is_empty());
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn commands_split_on_semicolons_with_escapes() {
        assert_eq!(
            split_commands("show info;show stat ; help"),
            ["show info", "show stat ", " help"]
        );
        assert_eq!(split_commands(r"help a\;b"), ["help a;b"]);
        assert_eq!(split_commands("show info;"), ["show info"]);
        assert_eq!(split_commands("  "), [""]);
    }

    #[tokio::test]
    async fn lines_are_limited_in_size_and_idle_time() {
        let secs = Duration::from_secs(5);
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(b"show info\r\nshow stat\n").await.unwrap();
        let mut lines = LineReader::default();
        assert_eq!(
            lines.next_line(&mut server, 100, secs).await,
            Ok("show info".to_owned())
        );
        assert!(
            lines.has_pending(),
            "the second line arrived with the first"
        );
        assert_eq!(
            lines.next_line(&mut server, 100, secs).await,
            Ok("show stat".to_owned())
        );
        assert!(!lines.has_pending());

        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(&[b'a'; 101]).await.unwrap();
        assert_eq!(
            LineReader::default()
                .next_line(&mut server, 100, secs)
                .await,
            Err(Dropped::TooLong)
        );
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(&[b'a'; 101]).await.unwrap();
        client.write_all(b"\n").await.unwrap();
        assert_eq!(
            LineReader::default()
                .next_line(&mut server, 100, secs)
                .await,
            Err(Dropped::TooLong),
            "a complete line over the limit too"
        );

        let (_client, mut server) = tokio::io::duplex(1024);
        assert_eq!(
            LineReader::default()
                .next_line(&mut server, 100, Duration::from_millis(20))
                .await,
            Err(Dropped::Idle)
        );

        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"help").await.unwrap();
        drop(client);
        let mut lines = LineReader::default();
        assert_eq!(
            lines.next_line(&mut server, 100, secs).await,
            Ok("help".to_owned()),
            "a last line without newline counts"
        );
        assert_eq!(
            lines.next_line(&mut server, 100, secs).await,
            Err(Dropped::Closed)
        );
    }
}
