//! recvault: keeps Asterisk/VICIdial call recordings safely in S3-compatible
//! storage. The binary is a thin shell over these modules.

pub mod archive;
pub mod audit;
pub mod backup;
pub mod check;
pub mod cli;
pub mod codec;
pub mod config;
pub mod daemon;
pub mod digest;
pub mod hold;
pub mod hold_copy;
pub mod intake;
pub mod keys;
pub mod ledger;
pub mod lock;
pub mod logging;
pub mod naming;
pub mod policy;
pub mod pressure;
pub mod rebuild;
pub mod recording;
pub mod recovery;
pub mod report;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod service;
pub mod spool;
pub mod store;
pub mod throttle;
pub mod verify;
