//! Response bodies: short texts, and recordings streamed from a file (a
//! local copy, or a decoded file still being written) in bounded chunks.
//! A streamed body counts the bytes it hands over and, when dropped —
//! finished, or because the client went away — reports them once, so every
//! request's audit entry says how much was sent.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::mpsc;

use super::cache::Entry;

/// Bytes read from disk per chunk.
const CHUNK: u64 = 64 * 1024;
/// Chunks waiting for the client per response.
const QUEUED: usize = 2;

/// Where a recording's bytes come from.
#[derive(Clone)]
pub enum Source {
    /// A complete file (the local copy).
    File(Arc<File>),
    /// A decoded file, possibly still being written.
    Cached(Arc<Entry>),
}

/// Called once with the bytes sent and whether the body ended complete.
pub type OnEnd = Box<dyn FnOnce(u64, bool) + Send>;

/// A response body.
pub enum Body {
    Text(Option<Bytes>),
    Stream(StreamBody),
    /// Pieces made as they are asked for (a CSV of a million rows), ended
    /// when the sender is dropped.
    Chunks(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn text(text: impl Into<String>) -> Body {
        Body::Text(Some(Bytes::from(text.into())))
    }

    pub fn empty() -> Body {
        Body::Text(None)
    }

    /// Bytes `start..end` of `source`, read by a task of their own.
    pub fn stream(source: Source, start: u64, end: u64, on_end: OnEnd) -> Body {
        let (tx, rx) = mpsc::channel(QUEUED);
        tokio::spawn(pump(source, start, end, tx));
        Body::Stream(StreamBody {
            rx,
            sent: 0,
            expected: end - start,
            on_end: Some(on_end),
        })
    }
}

/// Reads `start..end` of `source` into `tx`, chunk by chunk, waiting for a
/// decode to get there where it must; stops when the body is dropped.
async fn pump(source: Source, mut pos: u64, end: u64, tx: mpsc::Sender<io::Result<Bytes>>) {
    while pos < end {
        let (file, readable) = match &source {
            Source::File(f) => (f.clone(), end),
            Source::Cached(entry) => match entry.readable_past(pos).await {
                Ok(n) => (entry.file.clone(), n.min(end)),
                Err(f) => {
                    let _ = tx.send(Err(io::Error::other(format!("{f:?}")))).await;
                    return;
                }
            },
        };
        let n = (readable - pos).min(CHUNK) as usize;
        let at = pos;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; n];
            file.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf))
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        let failed = read.is_err();
        if tx.send(read).await.is_err() || failed {
            return;
        }
        pos += n as u64;
    }
}

/// A recording's bytes as the pump sends them.
pub struct StreamBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    sent: u64,
    expected: u64,
    on_end: Option<OnEnd>,
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if let Some(f) = self.on_end.take() {
            f(self.sent, self.sent == self.expected);
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Text(text) => Poll::Ready(text.take().map(|b| Ok(Frame::data(b)))),
            Body::Chunks(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
            Body::Stream(s) => {
                if s.sent >= s.expected {
                    return Poll::Ready(None);
                }
                match s.rx.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(Ok(bytes))) => {
                        s.sent += bytes.len() as u64;
                        Poll::Ready(Some(Ok(Frame::data(bytes))))
                    }
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                    Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "recording ended early",
                    )))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Text(text) => text.is_none(),
            Body::Stream(s) => s.sent >= s.expected,
            Body::Chunks(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Text(text) => SizeHint::with_exact(text.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(s) => SizeHint::with_exact(s.expected - s.sent),
            Body::Chunks(_) => SizeHint::default(),
        }
    }
}
