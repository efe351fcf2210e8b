//! A real HTTP subscriber on `127.0.0.1` that records every request and answers from a
//! script: queued [`Reply`]s first, then a fallback function (default: `200` with no body).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// One request the subscriber received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request head arrived.
    pub at: tokio::time::Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Whether the request is a structured-mode event.
    pub fn is_structured(&self) -> bool {
        self.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/cloudevents+json"))
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A context attribute or extension as a string: the percent-decoded `ce-` header in
    /// binary mode, the JSON member in structured mode.
    pub fn attr(&self, name: &str) -> Option<String> {
        if self.is_structured() {
            return match self.json().get(name)? {
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
        }
        let raw = self.headers.get(format!("ce-{name}"))?;
        let decoded: Vec<u8> = percent_encoding::percent_decode(raw.as_bytes()).collect();
        Some(String::from_utf8(decoded).expect("ce- header is UTF-8 after decoding"))
    }

    /// The event id (panics when the request carries none).
    pub fn id(&self) -> String {
        self.attr("id")
            .unwrap_or_else(|| panic!("request has no event id: {self:?}"))
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Wait this long before answering (to simulate a slow subscriber or a timeout).
    pub delay: Duration,
}

impl Default for Reply {
    fn default() -> Self {
        Self::status(200)
    }
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// `200` carrying a binary-mode reply event with JSON data.
    pub fn binary_event(id: &str, ty: &str, source: &str, data: &serde_json::Value) -> Self {
        Self::status(200)
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-type", ty)
            .header("ce-source", source)
            .header("content-type", "application/json")
            .body(data.to_string())
    }

    /// `200` carrying a structured-mode reply event.
    pub fn structured_event(event: &serde_json::Value) -> Self {
        Self::status(200)
            .header("content-type", "application/cloudevents+json")
            .body(event.to_string())
    }
}

type Script = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    queue: Mutex<VecDeque<Reply>>,
    script: Mutex<Script>,
    notify: Notify,
}

/// An HTTP server on `127.0.0.1` recording requests; stops when dropped.
pub struct Subscriber {
    port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subscriber(127.0.0.1:{})", self.port)
    }
}

impl Subscriber {
    /// A subscriber on a free port, answering `200` until scripted otherwise.
    pub async fn start() -> Subscriber {
        Self::start_on(0).await
    }

    /// A subscriber on `port` (e.g. one reserved with [`crate::process::free_port`] and
    /// handed to herald while nothing listened there).
    pub async fn start_on(port: u16) -> Subscriber {
        let listener = bind(port).await;
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            script: Mutex::new(Arc::new(|_: &Recorded| Reply::default())),
            notify: Notify::new(),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Subscriber { port, shared, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queues `reply` for the next request (queued replies go before the script).
    pub fn push(&self, reply: Reply) {
        self.shared.queue.lock().unwrap().push_back(reply);
    }

    /// Queues `reply` `n` times.
    pub fn push_n(&self, reply: Reply, n: usize) {
        let mut queue = self.shared.queue.lock().unwrap();
        for _ in 0..n {
            queue.push_back(reply.clone());
        }
    }

    /// Answers requests the queue does not cover with `script(request)`.
    pub fn set_script(&self, script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *self.shared.script.lock().unwrap() = Arc::new(script);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Waits until at least `n` requests arrived; panics after `timeout` with what came.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            let count = self.count();
            if count >= n {
                return self.requests();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen: Vec<_> = self
                    .requests()
                    .iter()
                    .map(|r| r.attr("id").unwrap_or_default())
                    .collect();
                panic!(
                    "subscriber {}: {count} of {n} requests within {timeout:?}; ids seen: {seen:?}",
                    self.port
                );
            }
        }
    }

    /// Waits until no request arrived for `quiet` (at most `timeout`); returns all requests.
    pub async fn settle(&self, quiet: Duration, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let before = self.count();
            tokio::time::sleep(quiet).await;
            if self.count() == before {
                return self.requests();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "subscriber {} still receiving requests after {timeout:?}",
                    self.port
                );
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn bind(port: u16) -> tokio::net::TcpListener {
    // A reserved port may still be in TIME_WAIT use for a moment; retry briefly.
    let mut tries = 0;
    loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("subscriber cannot bind 127.0.0.1:{port}: {e}"),
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = tokio::time::Instant::now();
    let (parts, body) = request.into_parts();
    let body = match http_body_util::Limited::new(body, 64 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
        at,
    };
    let queued = shared.queue.lock().unwrap().pop_front();
    let reply = match queued {
        Some(reply) => reply,
        None => {
            let script = shared.script.lock().unwrap().clone();
            script(&recorded)
        }
    };
    shared.requests.lock().unwrap().push(recorded);
    shared.notify.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("valid status");
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(&value).expect("header value"),
        );
    }
    response
}
