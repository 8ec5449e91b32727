//! The runtime API's line protocol: reading one bounded command line, splitting it into
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

/// Reads one command line (without its `\n` or `\r\n`); a last line without a newline counts
/// when the client half-closes.
pub(crate) async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
    idle: Duration,
) -> Result<String, Dropped> {
    let mut line = Vec::with_capacity(128);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match timeout(idle, reader.read(&mut chunk)).await {
            Err(_) => return Err(Dropped::Idle),
            Ok(Err(_)) => return Err(Dropped::Closed),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            if line.is_empty() {
                return Err(Dropped::Closed);
            }
            break;
        }
        let newline = chunk[..n].iter().position(|&b| b == b'\n');
        line.extend_from_slice(&chunk[..newline.unwrap_or(n)]);
        if line.len() > max {
            return Err(Dropped::TooLong);
        }
        if newline.is_some() {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
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
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(b"show info\r\nignored\n").await.unwrap();
        assert_eq!(
            read_line(&mut server, 100, Duration::from_secs(5)).await,
            Ok("show info".to_owned())
        );

        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(&[b'a'; 101]).await.unwrap();
        assert_eq!(
            read_line(&mut server, 100, Duration::from_secs(5)).await,
            Err(Dropped::TooLong)
        );

        let (_client, mut server) = tokio::io::duplex(1024);
        assert_eq!(
            read_line(&mut server, 100, Duration::from_millis(20)).await,
            Err(Dropped::Idle)
        );

        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"help").await.unwrap();
        drop(client);
        assert_eq!(
            read_line(&mut server, 100, Duration::from_secs(5)).await,
            Ok("help".to_owned()),
            "a last line without newline counts"
        );
    }
}
