//! A small HTTP/1.1 client for publishing to herald and reading its endpoints.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Legacy;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Every request of the harness gives up after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` field of a JSON error body; panics with the body when there is none.
    pub fn error(&self) -> String {
        let value: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {:?}", self.text()));
        value["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no string field `error` in {value}"))
            .to_owned()
    }
}

/// A pooled keep-alive client.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Legacy<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

fn header_pair(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
        HeaderValue::from_bytes(value.as_bytes()).expect("valid header value"),
    )
}

impl Client {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let inner = Legacy::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build(connector);
        Self { inner }
    }

    /// Sends a request, reading the whole answer; `Err` on transport errors and timeouts.
    pub async fn try_request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Response, String> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            let (name, value) = header_pair(name, value);
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
    }

    /// Like [`Client::try_request`], panicking on transport errors.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Response {
        self.try_request(method, url, headers, body, REQUEST_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("request to {url} failed: {e}"))
    }

    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Response {
        self.request(Method::POST, url, headers, body).await
    }

    pub async fn get(&self, url: &str) -> Response {
        self.request(Method::GET, url, &[], Bytes::new()).await
    }

    pub async fn get_with_timeout(&self, url: &str, timeout: Duration) -> Result<Response, String> {
        self.try_request(Method::GET, url, &[], Bytes::new(), timeout)
            .await
    }

    /// POSTs `event` as `application/cloudevents+json`.
    pub async fn post_structured(&self, url: &str, event: &serde_json::Value) -> Response {
        self.post(
            url,
            &[("content-type", "application/cloudevents+json")],
            event.to_string(),
        )
        .await
    }

    /// POSTs `events` as `application/cloudevents-batch+json`.
    pub async fn post_batch(&self, url: &str, events: &[serde_json::Value]) -> Response {
        self.post(
            url,
            &[("content-type", "application/cloudevents-batch+json")],
            serde_json::Value::Array(events.to_vec()).to_string(),
        )
        .await
    }
}

/// POSTs `chunks` with `Transfer-Encoding: chunked` (no Content-Length) over a raw TCP
/// connection, reading concurrently: returns the status line's code and the head as soon as
/// the answer arrives, even when the server stops reading the body (as it should past a
/// limit). A client library would report the broken pipe instead of the answer.
pub async fn post_chunked(url: &str, headers: &[(&str, &str)], chunks: Vec<Bytes>) -> Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let uri: http::Uri = url.parse().expect("valid URL");
    let authority = uri.authority().expect("URL has host:port").to_string();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| e.to_string())?;
        let (mut read, mut write) = stream.into_split();
        let mut head =
            format!("POST {path} HTTP/1.1\r\nhost: {authority}\r\ntransfer-encoding: chunked\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        // The write half is returned, not dropped, so no FIN goes out before the answer is
        // read: hyper servers close a half-closed connection without answering.
        let writer = tokio::spawn(async move {
            let result = async {
                write.write_all(head.as_bytes()).await?;
                for chunk in chunks {
                    write
                        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                    write.write_all(&chunk).await?;
                    write.write_all(b"\r\n").await?;
                }
                write.write_all(b"0\r\n\r\n").await?;
                write.flush().await
            }
            .await;
            (result, write)
        });
        let mut buf = Vec::new();
        let mut piece = [0u8; 8192];
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let n = read
                .read(&mut piece)
                .await
                .map_err(|e| format!("reading the answer failed after {} bytes: {e}", buf.len()))?;
            if n == 0 {
                return Err(format!(
                    "connection closed before an answer: {:?}",
                    String::from_utf8_lossy(&buf)
                ));
            }
            buf.extend_from_slice(&piece[..n]);
        };
        let text = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line in {text:?}"))?;
        let mut response_headers = HeaderMap::new();
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = header_pair(&name.to_ascii_lowercase(), value.trim());
                response_headers.append(name, value);
            }
        }
        writer.abort();
        Ok::<_, String>(Response {
            status,
            headers: response_headers,
            body: Bytes::copy_from_slice(&buf[end + 4..]),
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("chunked POST to {url}: no answer within {REQUEST_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("chunked POST to {url} failed: {e}"))
}
