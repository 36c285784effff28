//! Recovery: what gets an operator back on their feet after a lost disk or a
//! damaged object — ledger backups in the store and their restore, a ledger
//! rebuilt from object metadata, copies of the hold table, and scrubbing
//! (re-reading archived objects to find damage before it is needed).

pub mod backup;
pub mod catch_up;
pub mod hold_copy;
pub mod ids;
pub mod objects;
pub mod rebuild;
pub mod scrub;
