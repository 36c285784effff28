//! recvault keeps Asterisk/VICIdial call recordings safely in object storage.
//! The binary (`main.rs`) is a thin shell over these modules.
//!
//! # The house
//!
//! Folders by concern; imports only point down these layers (or sideways
//! inside one), never in a circle (`tests/integration/layout.rs` checks it):
//!
//! 1. [`commands`] — one file per operator command: it opens what it needs,
//!    calls the layers below and prints. `main.rs` only parses and dispatches.
//! 2. [`pipeline`] (the way in: spool → store), [`governance`] (retention,
//!    legal holds, data-subject requests and erasure, the audit trail's
//!    rules), [`recovery`] (ledger backups and their restore, rebuild,
//!    hold copies, recording ids reserved in the store, scrubbing), [`retrieve`] (the way out: a recording's original bytes
//!    back, one or a request's worth in a zip), [`vicidial`] (VICIdial's
//!    database), [`serve`] (listen links, health, metrics over HTTP),
//!    [`catalog`] (one interface to what recordings exist and what may
//!    happen to them: one box's ledger answers it, or a fleet's database),
//!    [`fleet`] (a cluster's dialers governed as one through its MariaDB).
//!    [`error`] words their failures.
//! 3. [`ledger`] (everything recvault knows; the only place with SQL),
//!    [`store`] (where objects live), [`codec`] (recording ⇄ object bytes),
//!    [`spool`] (the recordings on disk).
//! 4. [`recording`] (what a recording is) and [`config`] (what the operator
//!    configured), over the leaves [`units`], [`digest`] and [`metrics`].
//!
//! # Where a recording's bytes go
//!
//! `spool` lists the spool directories and `pipeline::intake` records each
//! new file in the ledger as `seen`, then `settled` once it stops changing.
//! `pipeline::run` (the daemon) hands due recordings to `pipeline::archive`,
//! which reads the file once through `codec` into `<staging>/<id>.obj`,
//! hashing the original and the object as they pass (`compressed`);
//! `pipeline::upload` puts the object with its SHA-256 through `store`
//! (`uploaded`) and reads the store's answer back (`verified`, committed with
//! a full fsync); then `spool::remove_local_copy` removes the local file if
//! it is still the one that was hashed (`local_deleted`). Later
//! `governance::retention` deletes what its policy says is due unless a hold
//! covers it, and `retrieve` turns an object back into the original for
//! `recvault restore`. Every state change is one `ledger::transitions` call.

pub mod catalog;
pub mod cli;
pub mod codec;
pub mod commands;
pub mod config;
pub mod console;
pub mod digest;
pub mod error;
pub mod fleet;
pub mod governance;
pub mod ledger;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod recording;
pub mod recovery;
pub mod retrieve;
pub mod serve;
pub mod spool;
pub mod store;
pub mod units;
pub mod vicidial;

pub use error::{Error, Result};
