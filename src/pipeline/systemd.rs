//! Talking to systemd: readiness, status, watchdog pings. Each call is a no-op
//! when not started by systemd (no `NOTIFY_SOCKET`).

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Startup is done; systemd may consider the unit active.
pub fn ready(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A config reload is under way.
pub fn reloading() {
    let _ = sd_notify::notify(false, &[NotifyState::Reloading]);
}

/// Reload done (or refused); back to normal.
pub fn reloaded(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Shutdown has begun.
pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// Sends `WATCHDOG=1` from the main loop at half the interval systemd asked for,
/// so a stuck loop (not just a live process) gets the unit restarted.
#[derive(Debug)]
pub struct Watchdog {
    interval: Option<Duration>,
    // Behind a lock so long work (a retention sweep) can ping between batches.
    last: std::sync::Mutex<Instant>,
}

impl Watchdog {
    pub fn from_env() -> Watchdog {
        let mut usec = 0;
        let interval =
            sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
        Watchdog {
            interval,
            last: std::sync::Mutex::new(Instant::now()),
        }
    }

    /// Pings if due.
    pub fn tick(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= interval {
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
            *last = Instant::now();
        }
    }

    /// The latest moment the main loop must wake to ping in time.
    pub fn deadline(&self) -> Option<Instant> {
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        self.interval.map(|i| last + i)
    }
}
