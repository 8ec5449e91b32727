//! Tiny loopback peers, each misbehaving in one way a health check must classify.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// How a [`Peer`] treats each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Reads the request and answers with the current status (see [`Peer::set_status`]).
    Answer,
    /// Reads the request and sends a response head announcing a large body it never sends.
    HeadOnly,
    /// Accepts and never reads or writes.
    Silent,
    /// Reads the request and answers with something that is not HTTP.
    Garbage,
    /// Reads the request and closes without answering.
    CloseAfterRequest,
    /// Accepts and resets the connection at once.
    Reset,
}

/// A server on 127.0.0.1:0 that stops when dropped.
pub struct Peer {
    pub addr: SocketAddr,
    status: Arc<AtomicU16>,
    served: Arc<[AtomicUsize; 600]>,
    requests: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Peer {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let served: Arc<[AtomicUsize; 600]> =
            Arc::new(std::array::from_fn(|_| AtomicUsize::new(0)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = (status.clone(), served.clone(), requests.clone());
        let task = tokio::spawn(async move {
            // Silent connections stay open for the peer's lifetime.
            let mut held = Vec::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                if behaviour == Behaviour::Silent {
                    held.push(stream);
                    continue;
                }
                let (status, served, requests) = shared.clone();
                tokio::spawn(serve(stream, behaviour, status, served, requests));
            }
        });
        Self {
            addr,
            status,
            served,
            requests,
            task,
        }
    }

    /// The status that [`Behaviour::Answer`] sends from now on.
    pub fn set_status(&self, code: u16) {
        self.status.store(code, Ordering::SeqCst);
    }

    /// How many responses with `code` were sent.
    pub fn served(&self, code: u16) -> usize {
        self.served[usize::from(code)].load(Ordering::SeqCst)
    }

    /// Every request head received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    behaviour: Behaviour,
    status: Arc<AtomicU16>,
    served: Arc<[AtomicUsize; 600]>,
    requests: Arc<Mutex<Vec<String>>>,
) {
    if behaviour == Behaviour::Reset {
        stream.set_zero_linger().unwrap();
        return;
    }
    let head = read_head(&mut stream).await;
    requests.lock().unwrap().push(head);
    match behaviour {
        Behaviour::Answer => {
            let code = status.load(Ordering::SeqCst);
            let response = format!(
                "HTTP/1.1 {code} Whatever\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
            let _ = stream.write_all(response.as_bytes()).await;
            served[usize::from(code)].fetch_add(1, Ordering::SeqCst);
        }
        Behaviour::HeadOnly => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
                .await;
            // Keep the connection open, the body owed: a check waiting for it would time out.
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Behaviour::Garbage => {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\n").await;
        }
        Behaviour::CloseAfterRequest | Behaviour::Silent | Behaviour::Reset => {}
    }
    // Closing after the request was fully read sends FIN, never RST.
    let _ = stream.shutdown().await;
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// An address where nothing listens: connections are refused.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A listener whose accept queue is full and never drained: Linux drops further SYNs, so a
/// connection attempt hangs until its timeout. Keep the returned value alive.
pub async fn black_hole() -> (SocketAddr, TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            Ok(Err(e)) => panic!("filling the accept queue: {e}"),
            Err(_) => return (addr, listener, fillers),
        }
    }
    panic!("the accept queue of a backlog-1 listener never filled");
}
