//! Where a test box lives on the network: its own network namespace (a
//! veth pair with 10.x addresses the test creates), reaching MariaDB and
//! Garage only through forwarders the test runs on the host side of its
//! veth — which the test can cut (a partition: bytes stop flowing, nothing
//! is refused, so the box sees timeouts, as across a real network) and heal.
//! Without the privileges for namespaces (outside CI), the forwarders listen
//! on 127.0.0.1 and the box runs in the test's own namespace.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A network namespace with a veth pair to the test's namespace.
pub struct Netns {
    pub name: String,
    /// The host side's address: where the box finds MariaDB and Garage.
    pub host_ip: String,
    /// The box's own address (where its `[serve]` listens).
    pub ns_ip: String,
    veth: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// A new namespace, or why there cannot be one here.
    pub fn create() -> Result<Netns, String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("{}x{n}", pid % 100_000);
        let (name, veth, peer) = (
            format!("rvf{tag}"),
            format!("rvh{tag}"),
            format!("rvn{tag}"),
        );
        // 10.(64 + pid % 64).(n).(1|2)/30: apart per test process and box.
        let net = format!("10.{}.{}", 64 + pid % 64, n % 250);
        let (host_ip, ns_ip) = (format!("{net}.1"), format!("{net}.2"));
        let ns = Netns {
            name: name.clone(),
            host_ip: host_ip.clone(),
            ns_ip: ns_ip.clone(),
            veth: veth.clone(),
        };
        ip(&["netns", "add", &name])?;
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &veth])?;
        ip(&["link", "set", &veth, "up"])?;
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &peer,
        ])?;
        ip(&["netns", "exec", &name, "ip", "link", "set", &peer, "up"])?;
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.veth]);
    }
}

/// A TCP forwarder to 127.0.0.1:`upstream` that a test can cut and heal.
pub struct Link {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Bumped by `heal`: connections held while cut are closed then.
    healed: watch::Sender<u64>,
    /// Bumped by `cut`: live connections stop forwarding.
    cuts: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Listens on `ip` (a free port), forwarding to 127.0.0.1:`upstream`.
    pub async fn start(ip: &str, upstream: u16) -> Link {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (healed, _) = watch::channel(0u64);
        let (cuts, _) = watch::channel(0u64);
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            up.clone(),
            cuts.clone(),
            healed.clone(),
        ));
        Link {
            addr,
            up,
            healed,
            cuts,
            accept,
        }
    }

    /// A partition: live connections stop forwarding (held open, silent),
    /// new ones are accepted and never answered.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// The partition heals: connections held while cut are closed (their
    /// ends see a reset), new ones are forwarded again.
    pub fn heal(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.healed.send_modify(|n| *n += 1);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
        self.heal();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: u16,
    up: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    healed: watch::Sender<u64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let (mut cut, mut heal) = (cuts.subscribe(), healed.subscribe());
        let live = up.load(Ordering::SeqCst);
        tokio::spawn(async move {
            if live && let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                let mut client = client;
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                    _ = cut.changed() => {}
                }
                // Cut: both ends held open and silent until healed.
                let _ = heal.changed().await;
                return;
            }
            let _ = heal.changed().await;
            drop(client);
        });
    }
}
