//! Request bodies, bounded: a body must arrive within the body read timeout, and all bodies
//! being received share one budget of bytes. A request reserves its `Content-Length` (at most
//! `--max-body`, which ingress enforces anyway) before the router sees it, and is answered
//! `503` at once when the budget cannot cover it; a chunked body reserves as it arrives and
//! fails with [`BodyError::Busy`] when it cannot. A reservation is released when the answer
//! is ready, so memory held by half-received bodies stays under the budget.
//!
//! A body costs more than its bytes while it streams in: hyper reads one chunk ahead of the
//! handler, so up to two of its read buffers (each up to [`MAX_READ_BUFFER`]) are alive per
//! connection. [`cost`] counts them, so the budget bounds memory, not only payload.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::service::TowerToHyperService;
use tokio::time::{Instant, Sleep};

use super::idle::{Activity, Open};
use super::{ListenerOptions, MAX_READ_BUFFER};
use crate::identity::SenderIdentity;
use crate::ingress::IngressError;

/// Why a request body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body did not arrive within {after:?} (--body-read-timeout)")]
    Timeout { after: Duration },
    #[error(
        "too many request body bytes in flight (limit {limit} bytes, \
         --max-body-bytes-in-flight); retry later"
    )]
    Busy { limit: usize },
    #[error("reading the request body failed: {0}")]
    Read(#[from] hyper::Error),
}

/// The shared budget and the per-request body limits.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    budget: Arc<Budget>,
    timeout: Duration,
    max_body: usize,
}

impl BodyLimits {
    pub fn new(options: &ListenerOptions, max_body: usize) -> Self {
        Self {
            budget: Arc::new(Budget {
                in_flight: AtomicUsize::new(0),
                limit: options.max_body_bytes_in_flight,
            }),
            timeout: options.body_read_timeout,
            max_body,
        }
    }
}

#[derive(Debug)]
struct Budget {
    in_flight: AtomicUsize,
    limit: usize,
}

impl Budget {
    fn try_add(&self, bytes: usize) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }
}

/// The memory a body of `bytes` occupies while it is received: itself plus hyper's read
/// buffers, which grow with it up to two of [`MAX_READ_BUFFER`].
fn cost(bytes: usize) -> usize {
    bytes.saturating_add(bytes.min(2 * MAX_READ_BUFFER))
}

/// Bytes of the budget held by one request; given back on drop.
#[derive(Debug)]
struct Reservation {
    budget: Arc<Budget>,
    reserved: AtomicUsize,
}

impl Reservation {
    /// Makes the reservation cover `received` bytes of body; false when the budget cannot.
    fn cover(&self, received: usize) -> bool {
        let needed = cost(received);
        let reserved = self.reserved.load(Ordering::Acquire);
        if needed <= reserved {
            return true;
        }
        let more = needed - reserved;
        if !self.budget.try_add(more) {
            return false;
        }
        self.reserved.fetch_add(more, Ordering::AcqRel);
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .in_flight
            .fetch_sub(*self.reserved.get_mut(), Ordering::AcqRel);
    }
}

/// hyper's body with the read deadline and the budget applied.
pub struct GuardedBody {
    inner: Incoming,
    received: usize,
    reservation: Option<Arc<Reservation>>,
    deadline: Instant,
    timeout: Duration,
    /// Made on the first wait only: a body already buffered never touches the timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(reservation)) = (frame.data_ref(), &this.reservation) {
                    this.received += data.len();
                    if !reservation.cover(this.received) {
                        let limit = reservation.budget.limit;
                        return Poll::Ready(Some(Err(BodyError::Busy { limit })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(BodyError::Read(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Timeout {
                        after: this.timeout,
                    }))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The router behind the body limits: the hyper service of every connection.
#[derive(Clone)]
pub struct Guarded {
    app: TowerToHyperService<axum::Router>,
    limits: BodyLimits,
    /// The sender of every request on this connection (an mTLS client certificate's subject).
    identity: Option<SenderIdentity>,
    /// Counts this connection's requests being answered (HTTP/2: its idle timeout).
    activity: Option<Arc<Activity>>,
}

impl Guarded {
    pub fn new(app: axum::Router, limits: BodyLimits) -> Self {
        Self {
            app: TowerToHyperService::new(app),
            limits,
            identity: None,
            activity: None,
        }
    }

    /// This connection's service, counting its open requests in `activity`.
    pub fn with_activity(mut self, activity: Arc<Activity>) -> Self {
        self.activity = Some(activity);
        self
    }

    /// This connection's service, putting `identity` in each request's extensions.
    pub fn with_identity(mut self, identity: Option<SenderIdentity>) -> Self {
        self.identity = identity;
        self
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for Guarded {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, request: hyper::Request<Incoming>) -> Answer {
        let open = self.activity.clone().map(Open::new);
        let (mut parts, inner) = request.into_parts();
        if let Some(identity) = &self.identity {
            parts.extensions.insert(identity.clone());
        }
        let reservation = if inner.is_end_stream() {
            None
        } else {
            let declared = inner.size_hint().exact().unwrap_or(0);
            let upfront = cost(
                usize::try_from(declared)
                    .unwrap_or(usize::MAX)
                    .min(self.limits.max_body),
            );
            let budget = self.limits.budget.clone();
            if !budget.try_add(upfront) {
                let limit = budget.limit;
                return Box::pin(std::future::ready(Ok(
                    IngressError::Busy { limit }.into_response()
                )));
            }
            Some(Arc::new(Reservation {
                budget,
                reserved: AtomicUsize::new(upfront),
            }))
        };
        let body = GuardedBody {
            inner,
            received: 0,
            reservation: reservation.clone(),
            deadline: Instant::now() + self.limits.timeout,
            timeout: self.limits.timeout,
            sleep: None,
        };
        let request = hyper::Request::from_parts(parts, Body::new(body));
        let answer = hyper::service::Service::call(&self.app, request);
        Box::pin(async move {
            let response = answer.await;
            drop((reservation, open));
            response
        })
    }
}

/// The [`BodyError`] behind a body-reading error, if it is one (it arrives wrapped by axum
/// and `http_body_util::Limited`).
pub fn body_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<BodyError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_what_it_cannot_cover_and_gets_it_back_on_drop() {
        let budget = Arc::new(Budget {
            in_flight: AtomicUsize::new(0),
            limit: 100,
        });
        assert!(budget.try_add(60));
        let first = Reservation {
            budget: budget.clone(),
            reserved: AtomicUsize::new(60),
        };
        assert!(!budget.try_add(41), "60 + 41 is over 100");
        assert!(first.cover(45), "45 bytes of body cost 90, which fits");
        assert!(!first.cover(51), "51 bytes cost 102, which does not");
        assert_eq!(budget.in_flight.load(Ordering::Acquire), 90);
        drop(first);
        assert_eq!(budget.in_flight.load(Ordering::Acquire), 0);
        assert!(budget.try_add(100));
        assert!(!budget.try_add(usize::MAX), "no overflow");
    }

    #[test]
    fn a_body_costs_its_bytes_plus_at_most_two_read_buffers() {
        assert_eq!(cost(0), 0);
        assert_eq!(cost(1000), 2000);
        assert_eq!(cost(1 << 20), (1 << 20) + 2 * MAX_READ_BUFFER);
        assert_eq!(cost(usize::MAX), usize::MAX);
    }
}
