//! Governance: the rules about keeping and deleting — retention (what is due
//! and the sweep that deletes it), legal holds (what nothing may delete) and
//! the audit trail (who did what, hash-chained). The rules live here; the
//! rows they read and write live in the ledger.

pub mod audit;
pub mod hold;
pub mod retention;
