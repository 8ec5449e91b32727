//! `veza-lb probe URL`: one HTTP GET with a deadline, exit 0 on a 2xx answer. What keepalived's
//! `vrrp_script` runs against the frontend's `monitor_uri`, so a veza-lb that stopped answering
//! (dead or hung) gives its virtual address away; no shell, no curl needed on the host.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Why a probe failed, as one line.
pub type Failure = String;

/// `http://host:port/path` into `(host:port, path)`.
fn split(url: &str) -> Result<(String, String), Failure> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs can be probed"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || path.contains(char::is_whitespace) {
        return Err(format!(
            "{url} is not a URL like http://127.0.0.1:8080/veza-lb/health"
        ));
    }
    let authority = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

/// GETs `url` within `timeout` (connect, send, status line); the status code on success.
pub fn probe(url: &str, timeout: Duration) -> Result<u16, Failure> {
    let deadline = Instant::now() + timeout;
    let (authority, path) = split(url)?;
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} resolves to nothing"))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut stream = TcpStream::connect_timeout(&addr, left())
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_write_timeout(Some(left()))
        .and_then(|()| {
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: veza-lb-probe\r\nConnection: close\r\n\r\n"
            )
        })
        .map_err(|e| format!("cannot send the request to {addr}: {e}"))?;
    // Read until the status line is complete, within what is left of the deadline.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') {
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| format!("{addr}: {e}"))?;
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("no answer from {addr} within {timeout:?}: {e}"))?;
        if n == 0 || head.len() > 4096 {
            return Err(format!(
                "{addr} closed the connection without a status line"
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("{addr} did not answer HTTP: {:?}", line.lines().next()))?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("{url} answered {status}"))
    }
}

/// Probes `url` again and again for `span` (at least once), `every` apart; the first failure
/// ends it. keepalived runs its scripts every whole second at best: a probe that watches the
/// whole second reports a dead veza-lb within `every` of its death, not a second later.
pub fn watch(
    url: &str,
    timeout: Duration,
    span: Duration,
    every: Duration,
) -> Result<u16, Failure> {
    let end = Instant::now() + span;
    loop {
        let status = probe(url, timeout)?;
        if Instant::now() + every >= end {
            return Ok(status);
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            split("http://127.0.0.1:8080/veza-lb/health").unwrap(),
            ("127.0.0.1:8080".to_owned(), "/veza-lb/health".to_owned())
        );
        assert_eq!(
            split("http://lb").unwrap(),
            ("lb:80".to_owned(), "/".to_owned())
        );
        assert!(split("https://lb/").is_err());
        assert!(split("http:///x").is_err());
        assert!(split("http://lb/a b").is_err());
    }

    #[test]
    fn a_refused_connection_fails_with_its_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error =
            probe(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(1)).unwrap_err();
        assert!(error.contains("cannot connect"), "{error}");
    }

    #[test]
    fn watching_fails_as_soon_as_the_server_goes() {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/veza-lb/health", listener.local_addr().unwrap());
        // Answers three probes, then closes its listener.
        let server = std::thread::spawn(move || {
            for _ in 0..3 {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                (&stream)
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .unwrap();
            }
        });
        let error = watch(
            &url,
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_millis(10),
        )
        .unwrap_err();
        assert!(error.contains("cannot connect"), "{error}");
        server.join().unwrap();
        // A span shorter than a pause: one probe, its answer.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(
            watch(
                &format!("http://127.0.0.1:{port}/"),
                Duration::from_millis(100),
                Duration::ZERO,
                Duration::from_secs(1)
            )
            .is_err()
        );
    }

    #[test]
    fn a_silent_server_fails_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        // Accepted by the kernel's backlog, never answered.
        let error = probe(&url, Duration::from_millis(200)).unwrap_err();
        assert!(error.contains("no answer"), "{error}");
        drop(listener);
    }
}
