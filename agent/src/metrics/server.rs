//! A bounded HTTP/1.x server for one kind of request (`GET /metrics`): a
//! fixed pool of [`WORKERS`] threads, at most [`QUEUE`] accepted
//! connections waiting for one (a connection beyond that is closed at
//! once), and a deadline for each client to send its request head and to
//! take the answer. Whatever a local user does (thousands of idle
//! connections, one byte a second), the agent spends at most
//! `1 + WORKERS` threads and `WORKERS + QUEUE + 1` descriptors here, so
//! pushes never run out of either. Each answer closes its connection
//! (`Connection: close`), as Prometheus' scrapes expect nothing more.
//!
//! The thread-per-connection server it replaces (tiny_http) gave 2,901
//! threads and 6,032 descriptors to 3,000 idle connections, and pushes
//! failed with EMFILE meanwhile (issue 14, item 7), and offers no limit to
//! set; an async server crate would bring a runtime for one GET.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Threads answering requests.
pub const WORKERS: usize = 2;
/// Accepted connections waiting for a worker.
pub const QUEUE: usize = 16;
/// Time a client has, from the moment it was accepted, to send its whole
/// request head, and again to take the answer (a scrape sends its request
/// at once). Time spent in the queue counts: idle connections ahead of a
/// scrape expire together instead of one after another.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
/// Shortest wait for a request head that may already have arrived, for a
/// connection whose deadline passed while it was queued.
const LAST_LOOK: Duration = Duration::from_millis(10);
/// Longest request head read (bytes); a longer one is answered 431.
const HEAD_MAX: usize = 8 * 1024;
/// How often idle threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// A connection and when it was accepted.
type Accepted = (TcpStream, Instant);

/// A request as the handler sees it.
pub struct Request<'a> {
    /// `GET`, `HEAD`, …
    pub method: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
}

/// An answer: status code, content type, body.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// Binds `address` (errors: in use, not local, no permission) with a
/// non-blocking listener, so that the accepting thread can notice `stop`.
pub fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves `listener` with `handler` until `stop` is set: one accepting
/// thread (the returned one), which starts and at the end joins the
/// workers. Errors: a thread cannot be started.
pub fn serve(
    listener: TcpListener,
    handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let (queue, waiting) = mpsc::sync_channel::<Accepted>(QUEUE);
    let waiting = Arc::new(Mutex::new(waiting));
    let handler = Arc::new(handler);
    let mut workers = Vec::with_capacity(WORKERS);
    for n in 0..WORKERS {
        let (waiting, handler, stop) = (waiting.clone(), handler.clone(), stop.clone());
        workers.push(
            std::thread::Builder::new()
                .name(format!("metrics-{n}"))
                .spawn(move || work(&waiting, &*handler, &stop))?,
        );
    }
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            accept(&listener, &queue, &stop);
            drop(queue);
            for worker in workers {
                let _ = worker.join();
            }
        })
}

/// Accepts connections into the queue until `stop`; a connection that finds
/// the queue full is closed at once.
fn accept(listener: &TcpListener, queue: &SyncSender<Accepted>, stop: &AtomicBool) {
    let mut refused = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => match queue.try_send((stream, Instant::now())) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    refused += 1;
                    if refused.is_power_of_two() {
                        tracing::warn!(
                            refused,
                            "metrics endpoint: too many connections at once; closing new ones"
                        );
                    }
                }
                Err(TrySendError::Disconnected(_)) => return,
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                tracing::warn!(error = %e, "metrics endpoint: cannot accept a connection");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// A worker: answers queued connections one at a time until `stop`.
fn work(
    waiting: &Mutex<Receiver<Accepted>>,
    handler: &dyn Fn(&Request) -> Response,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let next = waiting.lock().expect("queue lock").recv_timeout(POLL);
        match next {
            Ok((stream, accepted)) => {
                if let Err(e) = answer(stream, accepted + CLIENT_DEADLINE, handler) {
                    tracing::debug!(error = %e, "metrics endpoint: client went away or was too slow");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Reads one request head by `deadline`, answers it, closes.
fn answer(
    mut stream: TcpStream,
    deadline: Instant,
    handler: &dyn Fn(&Request) -> Response,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let response = match read_head(&mut stream, deadline)? {
        Some(head) => match parse(&head) {
            Some(request) => handler(&request),
            None => plain(400, "bad request\n"),
        },
        None => plain(431, "request head too large\n"),
    };
    stream.set_write_timeout(Some(CLIENT_DEADLINE))?;
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.body.as_bytes())?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Write)?;
    drain(&mut stream)
}

/// Reads and drops what the client still sends (the rest of a head too
/// long to read) for at most [`LAST_LOOK`] × a few: closing a socket with
/// unread input resets the connection, and the client may lose our answer.
fn drain(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(LAST_LOOK * 5))?;
    let mut buffer = [0u8; 4096];
    for _ in 0..16 {
        if stream.read(&mut buffer)? == 0 {
            break;
        }
    }
    Ok(())
}

/// A `text/plain` answer.
pub fn plain(status: u16, body: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.to_string(),
    }
}

/// The request head (up to the empty line), or `None` when it is longer
/// than [`HEAD_MAX`]. Errors: the client closed, failed, or had not sent it
/// by `deadline` (however slowly it trickles in).
fn read_head(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() && !head.is_empty() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left.max(LAST_LOOK)))?;
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buffer[..n]);
        if let Some(end) = find_end(&head) {
            head.truncate(end);
            return Ok((end <= HEAD_MAX).then_some(head));
        }
        if head.len() > HEAD_MAX {
            return Ok(None);
        }
    }
}

/// Where the head ends: the first empty line (CRLF or bare LF).
fn find_end(head: &[u8]) -> Option<usize> {
    let crlf = head.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = head.windows(2).position(|w| w == b"\n\n");
    crlf.into_iter().chain(lf).min()
}

/// The request line: `METHOD TARGET HTTP/x.y`.
fn parse(head: &[u8]) -> Option<Request<'_>> {
    let line = std::str::from_utf8(head).ok()?.lines().next()?;
    let mut parts = line.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or_default();
    Some(Request { method, path })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> (SocketAddr, Arc<AtomicBool>, JoinHandle<()>) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = |r: &Request| match (r.method, r.path) {
            ("GET", "/metrics") => plain(200, "up 1\n"),
            _ => plain(404, "not found\n"),
        };
        let thread = serve(listener, handler, stop.clone()).unwrap();
        (address, stop, thread)
    }

    fn get(address: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn answers_get_and_closes_and_refuses_what_it_does_not_serve() {
        let (address, stop, thread) = start();
        let ok = get(address, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Length: 5\r\n") && ok.ends_with("\r\n\r\nup 1\n"),
            "{ok}"
        );
        assert!(get(address, "GET /other HTTP/1.0\n\n").starts_with("HTTP/1.1 404 "));
        assert!(get(address, "nonsense\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(HEAD_MAX)
        );
        let refused = get(address, &huge);
        assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
        let endless = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(4 * HEAD_MAX));
        let refused = get(address, &endless);
        assert!(refused.starts_with("HTTP/1.1 431 "), "{refused}");
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        assert!(
            TcpStream::connect(address).is_err(),
            "stopped with the flag"
        );
    }

    #[test]
    fn idle_connections_cost_no_threads_and_a_silent_client_is_cut_off() {
        let (address, stop, thread) = start();
        let idle: Vec<TcpStream> = (0..200)
            .map(|_| TcpStream::connect(address).unwrap())
            .collect();
        // The pool's threads do not grow with connections.
        let threads = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Threads:")
                        .map(|n| n.trim().parse::<usize>().unwrap())
                })
                .unwrap()
        };
        assert!(threads() < 64, "{} threads", threads());
        // Idle ones are closed by the server: at once beyond the queue, after
        // the deadline within it.
        for mut stream in idle {
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest);
            assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        }
        let after = get(address, "GET /metrics HTTP/1.0\r\n\r\n");
        assert!(after.starts_with("HTTP/1.1 200 OK\r\n"), "{after}");
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
}
