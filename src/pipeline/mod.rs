//! The way in: from a finished file in the spool to a verified object in the
//! store, and the local copy removed. Uses the ledger, store and codec layers
//! and the retention sweep (the daemon runs it on its schedule); nothing here
//! knows about the command line.
//!
//! - `intake`: recording what the spool holds in the ledger, and settling;
//! - `archive`: the steps of one recording: compress, then (`upload`) upload
//!   and verify, then delete the local copy; `staging` holds objects between;
//! - `run`: the daemon's loop and `--once`; `runner`: the steps of that loop —
//!   intake, dispatching, backing off (`outage`), sweeping; `watch`: inotify;
//!   `background`: ledger backups and scrubs on their schedules; `workers`:
//!   the archive tasks in flight, each handing its recording back however it
//!   ends; `capacity`: how many may be in flight and how recordings are cut
//!   into them;
//! - `services`: what runs beside the loop — `attribution` from VICIdial's
//!   database, listen links written into it (`location`), VICIdial's GDPR
//!   purge queue carried out (`purges`), VICIdial's recording legs mixed
//!   (`move_mix`), the HTTP server;
//! - `pressure`: free space on the spool; `systemd`: readiness and watchdog;
//!   `progress`: the progress line of `--once` on a terminal.

pub mod archive;
mod attribution;
mod background;
mod batch;
mod capacity;
mod erasure;
pub mod intake;
pub(crate) mod location;
mod move_mix;
mod outage;
mod pass;
pub mod pressure;
pub mod progress;
pub mod purges;
mod run;
mod runner;
mod services;
pub use run::{RunOptions, RunSummary, run, run_locked};
pub mod staging;
mod upload;
mod watch;
mod workers;

pub mod systemd;
