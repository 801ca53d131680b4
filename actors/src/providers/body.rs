//! Bounded reads of upstream response bodies: the one way the outbound client reads a body.
//! A body is streamed chunk by chunk under a size cap and a deadline, so an upstream that
//! answers with a huge body, or sends its headers and then stalls, fails the call with a typed
//! error instead of filling memory or hanging the actor that called.

use std::time::Duration;

use reqwest::Response;
use tokio::time::Instant;

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
