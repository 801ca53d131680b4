//! Bounded reads of upstream response bodies: the one way a body from an upstream is read.
//! A body is streamed chunk by chunk under a size cap and a deadline, so an upstream that
//! answers with a huge body, or sends its headers and then stalls, fails the call with a typed
//! error instead of filling memory or hanging the actor that called.
//!
//! - [`read`] / [`read_prefix`]: what the shared [`UpstreamClient`](super::UpstreamClient)
//!   reads a body with, before the attempt's outcome is recorded.
//! - [`BoundedBody`]: the same bounds for a caller with its own HTTP stack (the Kubernetes
//!   layer, whose bodies kube-rs reads): an `http_body::Body` that fails with a
//!   [`BodyError`] past its cap or deadline, and settles the attempt (metrics and circuit)
//!   when the body ends, fails, or is dropped unread.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use reqwest::Response;
use tokio::time::{Instant, Sleep};

use super::circuit::CallPermit;
use super::metrics::ProviderMetrics;
use super::outcome::Outcome;

/// The default cap of a body, unless the upstream's client or the call sets another.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// The most of a 5xx answer's body that is read (for the error text; longer ones are cut).
pub const ERROR_TEXT_MAX_BYTES: usize = 64 << 10;
/// Characters of a 5xx body kept in [`UpstreamError::Status`](super::UpstreamError::Status).
pub const ERROR_TEXT_KEPT_CHARS: usize = 200;

/// How much of a body is read, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimit {
    /// Largest body accepted, in bytes.
    pub max_bytes: usize,
    /// Time allowed for the whole body, from the response headers on.
    pub timeout: Duration,
}

impl BodyLimit {
    /// This limit with another size cap.
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        BodyLimit { max_bytes, ..self }
    }

    /// This limit with another deadline.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        BodyLimit { timeout, ..self }
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is larger than the cap (said by `Content-Length`, or found while reading).
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// The body did not arrive within its deadline.
    #[error("body not read within {timeout:?}")]
    Timeout {
        /// The deadline.
        timeout: Duration,
    },
    /// The connection failed while reading.
    #[error("body read failed: {0}")]
    Transport(String),
}

/// Reads the whole body of `resp` within `limit`.
pub async fn read(resp: Response, limit: BodyLimit) -> Result<Vec<u8>, BodyError> {
    let too_large = BodyError::TooLarge {
        limit: limit.max_bytes,
    };
    if resp
        .content_length()
        .is_some_and(|n| n > limit.max_bytes as u64)
    {
        return Err(too_large);
    }
    let mut buf = Vec::new();
    let overflow = stream(resp, limit, &mut buf).await?;
    if overflow {
        return Err(too_large);
    }
    Ok(buf)
}

/// Reads at most `limit.max_bytes` of the body of `resp` within `limit.timeout` and returns
/// what arrived (for error texts: a cut, late or broken body gives what was read so far).
pub async fn read_prefix(resp: Response, limit: BodyLimit) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Err(e) = stream(resp, limit, &mut buf).await {
        tracing::debug!(error = %e, "error text not read in full");
    }
    buf.truncate(limit.max_bytes);
    buf
}

/// Streams chunks into `buf` until the body ends (`Ok(false)`) or exceeds the cap
/// (`Ok(true)`, `buf` holding at least the cap).
async fn stream(
    mut resp: Response,
    limit: BodyLimit,
    buf: &mut Vec<u8>,
) -> Result<bool, BodyError> {
    let deadline = Instant::now() + limit.timeout;
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .map_err(|_| BodyError::Timeout {
                timeout: limit.timeout,
            })?
            .map_err(|e| BodyError::Transport(super::client::error_chain(&e)))?;
        let Some(chunk) = chunk else {
            return Ok(false);
        };
        if buf.len() + chunk.len() > limit.max_bytes {
            let room = limit.max_bytes - buf.len();
            buf.extend_from_slice(&chunk[..room]);
            return Ok(true);
        }
        buf.extend_from_slice(&chunk);
    }
}

/// The pending account of one attempt whose body is still to be read: counted in
/// `sre_upstream_requests_total` and recorded in the circuit once the body ends or fails.
/// Dropped before that (the reader lost interest), the attempt is counted by its headers'
/// outcome and its permit released.
#[derive(Debug)]
pub struct Settle {
    permit: Option<CallPermit>,
    metrics: ProviderMetrics,
    provider: String,
    outcome: Outcome,
}

impl Settle {
    /// The account of an attempt of `provider` whose headers came to `outcome`.
    pub fn new(
        permit: CallPermit,
        metrics: ProviderMetrics,
        provider: String,
        outcome: Outcome,
    ) -> Self {
        Settle {
            permit: Some(permit),
            metrics,
            provider,
            outcome,
        }
    }

    /// Counts and records the attempt as `outcome` (once).
    fn finish(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            self.metrics.count(&self.provider, outcome);
            permit.record(!outcome.counts_against_circuit());
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.metrics.count(&self.provider, self.outcome);
            permit.release();
        }
    }
}

/// A response body read under a [`BodyLimit`]; past the cap or the deadline it yields a
/// [`BodyError`] and ends. Unlimited (for streams such as watches) it only passes through.
pub struct BoundedBody<B> {
    inner: B,
    limit: Option<(BodyLimit, Pin<Box<Sleep>>)>,
    read: usize,
    settle: Option<Settle>,
    failed: bool,
}

impl<B: Body> BoundedBody<B> {
    /// `inner` under `limit` (the deadline starts now), settling `settle` when it ends.
    pub fn new(inner: B, limit: BodyLimit, settle: Option<Settle>) -> Self {
        let mut body = BoundedBody {
            limit: Some((limit, Box::pin(tokio::time::sleep(limit.timeout)))),
            inner,
            read: 0,
            settle,
            failed: false,
        };
        if body.inner.is_end_stream() {
            body.finish(None);
        }
        body
    }

    /// `inner` as it is (a stream: no cap, no deadline).
    pub fn unlimited(inner: B) -> Self {
        BoundedBody {
            inner,
            limit: None,
            read: 0,
            settle: None,
            failed: false,
        }
    }

    fn finish(&mut self, outcome: Option<Outcome>) {
        if let Some(mut s) = self.settle.take() {
            let outcome = outcome.unwrap_or(s.outcome);
            s.finish(outcome);
        }
    }

    fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        self.failed = true;
        self.finish(Some(match error {
            BodyError::TooLarge { .. } => Outcome::BodyTooLarge,
            BodyError::Timeout { .. } => Outcome::BodyTimeout,
            BodyError::Transport(_) => Outcome::Transport,
        }));
        Poll::Ready(Some(Err(Box::new(error))))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Body for BoundedBody<B>
where
    B: Body + Unpin,
    B::Data: AsRef<[u8]>,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish(None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                this.fail(BodyError::Transport(e.to_string()))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some((limit, _))) = (frame.data_ref(), &this.limit) {
                    this.read += data.as_ref().len();
                    if this.read > limit.max_bytes {
                        let limit = limit.max_bytes;
                        return this.fail(BodyError::TooLarge { limit });
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let expired = match &mut this.limit {
                    Some((limit, deadline)) => deadline
                        .as_mut()
                        .poll(cx)
                        .is_ready()
                        .then_some(limit.timeout),
                    None => None,
                };
                match expired {
                    Some(timeout) => this.fail(BodyError::Timeout { timeout }),
                    None => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.failed {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A body of chunks that, once they are out, ends or (with `stall`) never does.
    struct Chunks {
        chunks: VecDeque<&'static [u8]>,
        stall: bool,
    }

    impl Body for Chunks {
        type Data = &'static [u8];
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<&'static [u8]>, Self::Error>>> {
            match self.chunks.pop_front() {
                Some(c) => Poll::Ready(Some(Ok(Frame::data(c)))),
                None if self.stall => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn chunks(n: usize, size: usize, stall: bool) -> Chunks {
        Chunks {
            chunks: (0..n).map(|_| &*vec![b'x'; size].leak()).collect(),
            stall,
        }
    }

    async fn collect<B>(mut body: BoundedBody<B>) -> Result<usize, BoxError>
    where
        B: Body + Unpin,
        B::Data: AsRef<[u8]>,
        B::Error: Into<BoxError>,
    {
        let mut n = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            n += frame?.into_data().map_or(0, |d| d.as_ref().len());
        }
        Ok(n)
    }

    const LIMIT: BodyLimit = BodyLimit {
        max_bytes: 1000,
        timeout: Duration::from_secs(5),
    };

    #[tokio::test(start_paused = true)]
    async fn a_bounded_body_passes_within_its_cap_and_fails_past_it() {
        assert_eq!(
            collect(BoundedBody::new(chunks(5, 200, false), LIMIT, None))
                .await
                .unwrap(),
            1000
        );
        let err = collect(BoundedBody::new(chunks(6, 200, false), LIMIT, None))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.downcast_ref(),
                Some(BodyError::TooLarge { limit: 1000 })
            ),
            "{err}"
        );
        // A stream has no cap.
        assert_eq!(
            collect(BoundedBody::unlimited(chunks(50, 200, false)))
                .await
                .unwrap(),
            10_000
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_bounded_body_that_stalls_fails_at_its_deadline() {
        let t0 = Instant::now();
        let err = collect(BoundedBody::new(chunks(1, 10, true), LIMIT, None))
            .await
            .unwrap_err();
        assert!(
            matches!(err.downcast_ref(), Some(BodyError::Timeout { timeout }) if *timeout == LIMIT.timeout),
            "{err}"
        );
        assert_eq!(t0.elapsed(), LIMIT.timeout);
    }
}
