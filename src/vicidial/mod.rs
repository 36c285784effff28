//! VICIdial's side of a recording: its configuration file
//! (`/etc/astguiclient.conf`), its database (which call, campaign, lead and
//! agent a recording belongs to; the listen link in `recording_log.location`;
//! GDPR erasure requests; admin users for playback, their failed logins
//! counted toward VICIdial's lockout; VICIdial's own listen report), read the way VICIdial's
//! own scripts read them; and step 1 of its recording chain, the legs in
//! `PATHmonitor/MIX` mixed (`move_mix`).
//!
//! The database modules know nothing of the ledger, the pipeline or the
//! store: callers pass file names and ids in and get plain values or a
//! [`db::DbError`] that says whether to retry. `move_mix` works on the spool
//! directories (with `spool`'s and `codec`'s parts) and counts what it did
//! in the ledger. How to reach the database is configuration
//! (`config::vicidial`, `config::astguiclient`), re-exported here.

pub mod archive;
pub mod attribution;
pub mod db;
pub mod deletion_queue;
pub mod location;
pub mod move_mix;
pub mod recording_access;
pub mod row_match;
pub mod servers;
pub mod users;

pub use crate::config::astguiclient;
pub use crate::config::vicidial as settings;
