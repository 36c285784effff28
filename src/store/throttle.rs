//! Upload bandwidth limit (`[store] max_upload_rate`): one token bucket shared
//! by every worker, and a file body that paces itself against it, so the dialer's
//! uplink keeps room for calls.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// Bytes a paced body reads and sends at a time.
const SLICE: u64 = 64 * 1024;

/// A shared budget of bytes per second. Callers reserve bytes and are told how
/// long to wait; debt is allowed so large and small senders share fairly.
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(bytes_per_sec: u64) -> RateLimiter {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimiter {
            bytes_per_sec: rate,
            // A quarter second of credit: smooth, but no long idle bursts.
            burst: rate / 4.0,
            state: Mutex::new((rate / 4.0, Instant::now())),
        }
    }

    /// Takes `n` bytes from the budget; returns how long to wait before sending them.
    pub fn reserve(&self, n: u64) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (available, last) = &mut *state;
        let now = Instant::now();
        *available = (*available + now.duration_since(*last).as_secs_f64() * self.bytes_per_sec)
            .min(self.burst);
        *last = now;
        *available -= n as f64;
        if *available >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-*available / self.bytes_per_sec)
        }
    }
}

/// A request body reading `len` bytes of a file from `offset`, paced by a limiter.
pub struct PacedFile {
    file: File,
    remaining: u64,
    limiter: Arc<RateLimiter>,
    sleep: Option<Pin<Box<Sleep>>>,
    pending: Option<Bytes>,
}

impl PacedFile {
    pub fn open(
        path: &Path,
        offset: u64,
        len: u64,
        limiter: Arc<RateLimiter>,
    ) -> io::Result<PacedFile> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(PacedFile {
            file,
            remaining: len,
            limiter,
            sleep: None,
            pending: None,
        })
    }
}

impl Body for PacedFile {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if let Some(sleep) = this.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.sleep = None;
        }
        if let Some(chunk) = this.pending.take() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = this.remaining.min(SLICE);
        let mut buf = vec![0u8; n as usize];
        // A 64 KiB read of a local staging file: short enough to do inline.
        if let Err(e) = this.file.read_exact(&mut buf) {
            return Poll::Ready(Some(Err(e)));
        }
        this.remaining -= n;
        let wait = this.limiter.reserve(n);
        let chunk = Bytes::from(buf);
        if wait.is_zero() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        this.pending = Some(chunk);
        let mut sleep = Box::pin(tokio::time::sleep(wait));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(this.pending.take().map(|c| Ok(Frame::data(c))));
        }
        this.sleep = Some(sleep);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining + self.pending.as_ref().map_or(0, |p| p.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_to_the_rate() {
        let limiter = RateLimiter::new(1_000_000);
        // The first quarter second is credit; after that each MB costs a second.
        assert_eq!(limiter.reserve(250_000), Duration::ZERO);
        let wait = limiter.reserve(1_000_000);
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_millis(1000),
            "{wait:?}"
        );
        let wait2 = limiter.reserve(500_000);
        assert!(
            wait2 > Duration::from_millis(1400),
            "debt accumulates: {wait2:?}"
        );
    }
}
