//! What the data tests share: synthetic IDX files ([`idx_bytes`], [`gzip`]), and a small
//! HTTP/1.1 server on 127.0.0.1 for the download tests: each path gets a behaviour (serve,
//! 404, cut the body short, drop the first connections, Hub-style file) and every request is
//! counted. One request per connection (`Connection: close`), one thread per connection.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The bytes of an IDX file: magic 0x0000_08dd (dd = number of dims), big-endian sizes, data.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0x08, dims.len() as u8];
    for size in dims {
        bytes.extend_from_slice(&size.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

/// `bytes` compressed with gzip at the given level.
pub fn gzip(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The text of Tiny Shakespeare from `../shared/datasets`, or None (with a note) when this
/// machine does not have it.
pub fn tiny_shakespeare() -> Option<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets/tinyshakespeare/input.txt");
    if !path.exists() {
        println!("skipping: ../shared/datasets not found");
        return None;
    }
    Some(dl_data::read_corpus(&path).unwrap())
}

/// What the server does for one path.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 with the whole body and its Content-Length.
    Serve(Vec<u8>),
    /// 404 Not Found.
    NotFound,
    /// Announces the full Content-Length, sends only the first `sent` bytes, then closes.
    Truncated { body: Vec<u8>, sent: usize },
    /// Like `Truncated` for the first `failures` requests, then serves the whole body.
    DropFirst {
        body: Vec<u8>,
        failures: usize,
        sent: usize,
    },
    /// A Hub file as hf-hub expects it: honours `Range`, answers 206 with Content-Range and
    /// sends the `etag` and `x-repo-commit` headers.
    HubFile {
        body: Vec<u8>,
        etag: String,
        commit: String,
    },
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Behaviour>,
    counts: HashMap<String, usize>,
}

/// The running server; stopped (and its port closed) when dropped.
pub struct TestServer {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stopping = Arc::clone(&stopping);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || handle(stream, &state));
                }
            })
        };
        TestServer {
            address,
            state,
            stopping,
            thread: Some(thread),
        }
    }

    /// Sets what `path` (e.g. "/a/file.bin") answers.
    pub fn route(&self, path: &str, behaviour: Behaviour) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), behaviour);
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// How many requests `path` received.
    pub fn requests(&self, path: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.counts.get(path).copied().unwrap_or(0)
    }

    /// How many requests the server received in all.
    pub fn total_requests(&self) -> usize {
        self.state.lock().unwrap().counts.values().sum()
    }

    /// Stops accepting connections and closes the port.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopping.store(true, Ordering::SeqCst);
            // Wake the accept loop up so that it sees the flag and drops the listener.
            let _ = TcpStream::connect(self.address);
            let _ = thread.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A port on 127.0.0.1 with nothing listening (bound, then released).
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/")
}

/// True when an HTTP proxy is configured: hf-hub would send even 127.0.0.1 through it, so the
/// Hub tests skip rather than send traffic anywhere but the loopback interface.
pub fn proxy_configured() -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

fn handle(mut stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return; // the wake-up connection, or a client that gave up
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let (behaviour, count) = {
        let mut state = state.lock().unwrap();
        let count = state.counts.entry(path.clone()).or_insert(0);
        *count += 1;
        let count = *count;
        (state.routes.get(&path).cloned(), count)
    };
    let _ = match behaviour {
        None | Some(Behaviour::NotFound) => {
            respond(&mut stream, "404 Not Found", &[], b"not found")
        }
        Some(Behaviour::Serve(body)) => respond(&mut stream, "200 OK", &[], &body),
        Some(Behaviour::Truncated { body, sent }) => cut_short(&mut stream, &body, sent),
        Some(Behaviour::DropFirst {
            body,
            failures,
            sent,
        }) => {
            if count <= failures {
                cut_short(&mut stream, &body, sent)
            } else {
                respond(&mut stream, "200 OK", &[], &body)
            }
        }
        Some(Behaviour::HubFile { body, etag, commit }) => {
            let start = range
                .as_deref()
                .and_then(|range| range.strip_prefix("bytes="))
                .and_then(|range| range.split('-').next())
                .and_then(|start| start.parse::<usize>().ok())
                .unwrap_or(0)
                .min(body.len());
            let end = range
                .as_deref()
                .and_then(|range| range.split('-').nth(1))
                .and_then(|end| end.parse::<usize>().ok())
                .map_or(body.len(), |end| (end + 1).min(body.len()));
            let content_range = format!("bytes {start}-{}/{}", end.max(1) - 1, body.len());
            let headers = [
                ("ETag", format!("\"{etag}\"")),
                ("X-Repo-Commit", commit),
                ("Content-Range", content_range),
            ];
            respond(
                &mut stream,
                "206 Partial Content",
                &headers,
                &body[start..end],
            )
        }
    };
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// Promises the whole body, sends `sent` bytes of it and hangs up.
fn cut_short(stream: &mut TcpStream, body: &[u8], sent: usize) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body[..sent.min(body.len())])?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}
