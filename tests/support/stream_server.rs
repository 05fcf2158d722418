//! A tiny upstream that writes an SSE response in separate pieces, each flushed on its own,
//! optionally waiting for the test's permission before each piece. wiremock sends a body
//! at once, so streams that must arrive in timed pieces use this server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How the server paces its pieces.
#[derive(Clone)]
pub enum Pace {
    /// Sleep this long before each piece after the first.
    Every(Duration),
    /// Wait for one permit of the gate before each piece after the first.
    Gated(Arc<Semaphore>),
}

/// What the server received and how far it got.
#[derive(Default)]
pub struct Seen {
    pub bodies: Vec<Vec<u8>>,
    pub pieces_written: usize,
    /// True when a write failed because the reader went away.
    pub reader_gone: bool,
}

pub struct StreamServer {
    pub url: String,
    pub seen: Arc<Mutex<Seen>>,
}

/// What to answer to each request.
#[derive(Clone)]
pub struct Script {
    pub status: u16,
    pub pieces: Vec<Vec<u8>>,
    pub pace: Pace,
    /// Close the connection after this many pieces without finishing the chunked body.
    pub break_after: Option<usize>,
}

impl Script {
    pub fn sse(pieces: Vec<String>, pace: Pace) -> Script {
        Script {
            status: 200,
            pieces: pieces.into_iter().map(String::into_bytes).collect(),
            pace,
            break_after: None,
        }
    }
}

impl StreamServer {
    pub async fn start(script: Script) -> StreamServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = Arc::clone(&seen);
        tollgate::task::spawn_named("test-stream-server", async move {
            while let Ok((socket, _)) = listener.accept().await {
                let script = script.clone();
                let seen = Arc::clone(&state);
                tollgate::task::spawn_named("test-stream-connection", serve(socket, script, seen));
            }
        });
        StreamServer { url, seen }
    }

    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.seen
            .lock()
            .expect("stream server state")
            .bodies
            .clone()
    }

    pub fn pieces_written(&self) -> usize {
        self.seen
            .lock()
            .expect("stream server state")
            .pieces_written
    }
}

async fn serve(mut socket: TcpStream, script: Script, seen: Arc<Mutex<Seen>>) {
    let _ = socket.set_nodelay(true);
    let Some(body) = read_request(&mut socket).await else {
        return;
    };
    seen.lock().expect("stream server state").bodies.push(body);
    let head = format!(
        "HTTP/1.1 {} OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nx-request-id: req_stream\r\n\r\n",
        script.status
    );
    if socket.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for (index, piece) in script.pieces.iter().enumerate() {
        if script.break_after == Some(index) {
            return;
        }
        if index > 0 {
            match &script.pace {
                Pace::Every(delay) => tokio::time::sleep(*delay).await,
                Pace::Gated(gate) => gate.acquire().await.expect("gate open").forget(),
            }
        }
        let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
        chunk.extend_from_slice(piece);
        chunk.extend_from_slice(b"\r\n");
        if socket.write_all(&chunk).await.is_err() || socket.flush().await.is_err() {
            seen.lock().expect("stream server state").reader_gone = true;
            return;
        }
        seen.lock().expect("stream server state").pieces_written += 1;
    }
    if script.break_after.is_none() {
        let _ = socket.write_all(b"0\r\n\r\n").await;
    }
}

/// Reads one HTTP/1.1 request with a Content-Length body; returns the body.
async fn read_request(socket: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 65536];
    let header_end = loop {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Some(buffer[header_end..header_end + length].to_vec())
}
