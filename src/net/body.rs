//! A request body with a size limit and a deadline for the whole of it.
//!
//! `axum`'s body limit only applies where a handler reads the body through its extractors, and
//! nothing bounds how long the body takes; this wrapper does both for every handler, and records
//! what went wrong so the server can answer 413 or 408 whatever the handler made of the error.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyProblem {
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the request body did not arrive within {} s", after.as_secs_f64())]
    TimedOut { after: Duration },
}

impl BodyProblem {
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "body_too_large",
            Self::TimedOut { .. } => "body_timeout",
        }
    }
}

/// `inner`, failing once it exceeds `limit` bytes or is still unfinished at the deadline.
pub struct Bounded<B> {
    inner: B,
    received: u64,
    limit: u64,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    problem: Arc<OnceLock<BodyProblem>>,
}

impl<B> Bounded<B> {
    /// The deadline starts now, when the request's head has been read. `problem` is set when the
    /// body is cut off.
    pub fn new(inner: B, limit: u64, timeout: Duration, problem: Arc<OnceLock<BodyProblem>>) -> Self {
        Self { inner, received: 0, limit, timeout, deadline: Box::pin(tokio::time::sleep(timeout)), problem }
    }

    fn fail(&self, problem: BodyProblem) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let problem = *self.problem.get_or_init(|| problem);
        Poll::Ready(Some(Err(Box::new(problem))))
    }
}

impl<B> Body for Bounded<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(problem) = self.problem.get() {
            return self.fail(*problem);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let size = frame.data_ref().map_or(0, |data| data.len() as u64);
                self.received = self.received.saturating_add(size);
                if self.received > self.limit {
                    return self.fail(BodyProblem::TooLarge { limit: self.limit });
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|result| result.map_err(Into::into))),
            Poll::Pending => {
                if self.deadline.as_mut().poll(cx).is_ready() {
                    let after = self.timeout;
                    return self.fail(BodyProblem::TimedOut { after });
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.problem.get().is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_util::{Stream, StreamExt};
    use http_body_util::{BodyExt, StreamBody};

    fn frames(sizes: &[usize]) -> impl Stream<Item = Result<Frame<Bytes>, BoxError>> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            sizes.iter().map(|&size| Ok(Frame::data(Bytes::from(vec![b'x'; size])))).collect();
        futures_util::stream::iter(frames)
    }

    #[tokio::test]
    async fn a_body_within_the_limit_passes_untouched() {
        let problem = Arc::new(OnceLock::new());
        let body = Bounded::new(StreamBody::new(frames(&[10, 20])), 30, Duration::from_secs(5), problem.clone());
        let bytes = body.collect().await.expect("within the limit").to_bytes();
        assert_eq!(bytes.len(), 30);
        assert!(problem.get().is_none());
    }

    #[tokio::test]
    async fn a_body_growing_past_the_limit_fails_and_says_so() {
        let problem = Arc::new(OnceLock::new());
        let body = Bounded::new(StreamBody::new(frames(&[20, 20])), 30, Duration::from_secs(5), problem.clone());
        let error = body.collect().await.expect_err("over the limit");
        assert_eq!(error.to_string(), "the request body is larger than 30 bytes");
        assert_eq!(problem.get(), Some(&BodyProblem::TooLarge { limit: 30 }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_times_out() {
        let problem = Arc::new(OnceLock::new());
        let stalled = frames(&[5]).chain(futures_util::stream::pending());
        let body = Bounded::new(StreamBody::new(stalled), 100, Duration::from_secs(3), problem.clone());
        let error = body.collect().await.expect_err("cut off");
        assert_eq!(error.to_string(), "the request body did not arrive within 3 s");
        assert_eq!(problem.get().map(|p| p.status()), Some(StatusCode::REQUEST_TIMEOUT));
    }
}
