//! Connections: the listening socket, optional TLS (rustls), HTTP/1.1
//! (hyper), and what keeps hostile or broken clients from holding the
//! server: an address in neither `allow` nor `metrics_allow` is closed as
//! soon as it is accepted (before it takes a slot, before TLS); one address
//! holds at most an eighth of `max_connections` ([`address_share`]); a cap
//! on open connections, a bounded request head, and a connection closed
//! once nothing has moved on it for `idle_timeout` (a client that stopped
//! reading mid-body, a slow or idle one). On shutdown no new connection is
//! taken and open ones finish their response within the grace period.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::State;
use super::refusals::{self, Refused};
use super::router;
use crate::config::{ServeConfig, TlsFiles};
use crate::error::Error;

/// The largest request head (request line and headers) read.
const MAX_HEAD: usize = 64 * 1024;

/// Builds the TLS acceptor from PEM files.
pub fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, Error> {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        Error::Local(format!("serve.{what} {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad("tls_cert", &files.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad("tls_cert", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(bad("tls_cert", &files.cert, &"no certificate in the file"));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad("tls_key", &files.key, &e))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("tls_key", &files.key, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Connections one address may hold at once: an eighth of
/// `max_connections` (32 of the default 256), at least one.
pub fn address_share(max_connections: usize) -> usize {
    (max_connections / 8).max(1)
}

/// A peer's address as the checks see it (IPv4 on a dual-stack socket as IPv4).
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Whether `client` may connect at all: it may play recordings or read
/// `/healthz` and `/metrics`.
fn may_connect(config: &ServeConfig, client: IpAddr) -> bool {
    config
        .allow
        .iter()
        .chain(&config.metrics_allow)
        .any(|c| c.contains(client))
}

/// Open connections per address.
type Held = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One of an address's connections; given back when dropped.
struct AddressSlot {
    held: Held,
    client: IpAddr,
}

impl AddressSlot {
    /// A slot for `client`, unless it holds `share` already.
    fn take(held: &Held, client: IpAddr, share: usize) -> Option<AddressSlot> {
        let mut map = held.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(client).or_insert(0);
        if *n >= share {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            held: held.clone(),
            client,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

/// Accepts connections on `listener` until `stop`, then gives open ones
/// `grace` to finish. Once a minute, logs the refusals counted since.
pub async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    stop: CancellationToken,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(state.config.max_connections));
    let held: Held = Arc::default();
    let mut connections = JoinSet::new();
    let mut log_refusals = tokio::time::interval(refusals::LOG_EVERY);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = log_refusals.tick() => {
                state.refusals.flush();
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and the like: wait a little instead of spinning.
                tracing::warn!("cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(taken) = admit(&state, &held, &slots, client_of(peer.ip())) else {
            continue;
        };
        let (state, tls, stop) = (state.clone(), tls.clone(), stop.clone());
        connections.spawn(async move {
            serve(stream, peer, tls, state, stop).await;
            drop(taken);
        });
    }
    drop(listener);
    drain(connections, grace).await;
}

/// The slots a connection from `client` takes (its address's and one of
/// all), or `None` — the connection is closed at once, the client sees it
/// close — when the address may not connect, holds its share, or every
/// slot is taken.
fn admit(
    state: &State,
    held: &Held,
    slots: &Arc<Semaphore>,
    client: IpAddr,
) -> Option<(AddressSlot, OwnedSemaphorePermit)> {
    if !may_connect(&state.config, client) {
        state.refusals.note(Refused::AddressNotAllowed, client);
        return None;
    }
    let share = address_share(state.config.max_connections);
    let Some(mine) = AddressSlot::take(held, client, share) else {
        state.refusals.note(Refused::AddressShare, client);
        return None;
    };
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        state.refusals.note(Refused::ConnectionsFull, client);
        return None;
    };
    Some((mine, slot))
}

/// Gives open connections `grace` to finish, then closes them.
async fn drain(mut connections: JoinSet<()>, grace: Duration) {
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            joined = connections.join_next() => if joined.is_none() { return },
            _ = &mut deadline => {
                tracing::warn!(open = connections.len(), "HTTP connections still open after the shutdown grace; closed");
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                return;
            }
        }
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    stop: CancellationToken,
) {
    let idle = state.config.idle_timeout;
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(Stalled::new(stream, idle), peer, state, stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(idle, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(tls)) => http(Stalled::new(tls, idle), peer, state, stop).await,
                Ok(Err(e)) => tracing::debug!(client = %peer.ip(), "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(client = %peer.ip(), "TLS handshake timed out"),
            }
        }
    }
}

async fn http<S>(io: Stalled<S>, peer: SocketAddr, state: Arc<State>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(router::handle(state, peer, req).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Some(Duration::from_secs(30)))
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let finished = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stop.cancelled() => None,
    };
    let result = match finished {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %peer.ip(), "HTTP connection ended: {e}");
    }
}

/// A stream that fails once nothing has been read or written on it for
/// `idle`: the guard against clients that stop reading or never send.
pub struct Stalled<S> {
    inner: S,
    idle: Duration,
    last_progress: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> Stalled<S> {
    pub fn new(inner: S, idle: Duration) -> Stalled<S> {
        let now = Instant::now();
        Stalled {
            inner,
            idle,
            last_progress: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// After a pending read or write: an error once the deadline has passed,
    /// else the timer is armed to wake the connection at the deadline.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = self.last_progress + self.idle;
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "nothing moved on the connection within idle_timeout",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn moved(&mut self) {
        self.last_progress = Instant::now();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stalled<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stalled<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.moved();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.check(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.check(cx).map(Err),
            ready => ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn an_address_holds_at_most_its_share() {
        assert_eq!(address_share(256), 32);
        assert_eq!(address_share(3), 1);
        let held: Held = Arc::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mine: Vec<_> = (0..5)
            .filter_map(|_| AddressSlot::take(&held, a, 3))
            .collect();
        assert_eq!(mine.len(), 3);
        assert!(AddressSlot::take(&held, b, 3).is_some());
        drop(mine);
        assert!(held.lock().unwrap().is_empty(), "given back");
        assert_eq!(
            client_of("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn a_stream_where_nothing_moves_fails_after_idle() {
        let (a, mut b) = tokio::io::duplex(16);
        let mut s = Stalled::new(a, Duration::from_millis(300));
        // Progress keeps it alive.
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        // A writer whose reader stopped: the pipe fills, then the guard trips.
        let started = Instant::now();
        let e = s.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(300));
        drop(b);
    }
}
