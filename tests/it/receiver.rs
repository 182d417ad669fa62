//! A real HTTP server on loopback that records every request it receives and answers with
//! the statuses a test asks for: the receiving end of webhooks.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The query string, without `?` (empty when none).
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
    /// When it arrived (wall clock, to compare with other processes' times).
    pub received: SystemTime,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    /// Statuses to answer with, in order (with a Retry-After in seconds); then 200.
    answers: Mutex<VecDeque<(u16, Option<u64>)>>,
    /// How long to take over the next requests' answers, in order; then no delay.
    delays: Mutex<VecDeque<Duration>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let (status, retry_after) = shared
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, None));
    shared.requests.lock().unwrap().push(Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
        received: SystemTime::now(),
    });
    let delay = shared.delays.lock().unwrap().pop_front();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut h = HeaderMap::new();
    if let Some(s) = retry_after {
        h.insert("retry-after", HeaderValue::from(s));
    }
    (StatusCode::from_u16(status).unwrap(), h, "answer\n")
}

impl Receiver {
    /// Starts listening on `addr` (retrying for a few seconds while the port is still taken).
    pub fn start(addr: SocketAddr) -> Receiver {
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let app = Router::new().fallback(record).with_state(shared.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                let listener = loop {
                    match tokio::net::TcpListener::bind(addr).await {
                        Ok(l) => break l,
                        Err(e) if Instant::now() > deadline => panic!("binding {addr}: {e}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                };
                ready_tx.send(()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(15))
            .expect("the receiver listens");
        Receiver {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The next requests are answered with these statuses (then 200).
    pub fn answer(&self, statuses: &[(u16, Option<u64>)]) {
        self.shared
            .answers
            .lock()
            .unwrap()
            .extend(statuses.iter().copied());
    }

    /// The next `n` requests are answered only after `d` (a receiver slower than the sender's
    /// timeout).
    pub fn slow(&self, n: usize, d: Duration) {
        self.shared
            .delays
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(d, n));
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests were answered 2xx; returns every request.
    pub fn wait_for_ok(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if r.iter().filter(|q| q.status < 300).count() >= n {
                return r;
            }
            if Instant::now() > deadline {
                panic!(
                    "fewer than {n} accepted requests within {timeout:?}: {:#?}",
                    r.iter()
                        .map(|q| (q.status, q.body.chars().take(120).collect::<String>()))
                        .collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
