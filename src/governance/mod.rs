//! Governance: the rules about keeping and deleting — retention (what is due
//! and the sweep that deletes it), legal holds (what nothing may delete),
//! data-subject requests (finding and erasing a person's recordings) and
//! the audit trail (who did what, hash-chained). The rules live here; the
//! rows they read and write live in the ledger.

pub mod audit;
pub mod copies;
pub mod gate;
pub mod hold;
pub mod requests;
pub mod retention;
