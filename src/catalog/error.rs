//! A catalog's failures, sorted by what the caller can do about them: try
//! again later (the shared database or the ledger did not answer), change
//! the request (refused as asked), or have an operator look (failed).

use crate::error::Error;
use crate::ledger::LedgerError;

/// Why a catalog could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Cannot be answered now: the shared database is down, cut off or
    /// slow (or the ledger is busy). Nothing was changed; trying again
    /// later can help. The message names what was asked, never a secret.
    #[error("{0} (nothing was changed; try again later)")]
    Unavailable(String),
    /// No such recording, case or request.
    #[error("{0}")]
    NotFound(String),
    /// Refused as asked (a bad selector, no reason, a hold not active, a
    /// policy that is a config file's): the same request will be refused again.
    #[error(transparent)]
    Refused(Error),
    /// Something broke that an operator must look at.
    #[error(transparent)]
    Failed(Error),
}

impl CatalogError {
    /// True when trying again later can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CatalogError::Unavailable(_))
    }

    /// A refusal worded by the caller.
    pub fn refused(message: impl Into<String>) -> CatalogError {
        CatalogError::Refused(Error::Usage(message.into()))
    }
}

impl From<Error> for CatalogError {
    fn from(e: Error) -> CatalogError {
        match e {
            Error::Database {
                retryable: true,
                message,
            } => CatalogError::Unavailable(message),
            Error::NoSuchRecording(_) => CatalogError::NotFound(e.to_string()),
            Error::Ledger(LedgerError::NoSuchRecording(_)) => CatalogError::NotFound(e.to_string()),
            Error::Usage(_) | Error::Hold { .. } | Error::Config(_) => CatalogError::Refused(e),
            e => CatalogError::Failed(e),
        }
    }
}

impl From<LedgerError> for CatalogError {
    fn from(e: LedgerError) -> CatalogError {
        Error::Ledger(e).into()
    }
}

impl From<CatalogError> for Error {
    fn from(e: CatalogError) -> Error {
        match e {
            CatalogError::Unavailable(message) => Error::Database {
                message: format!("{message} (nothing was changed; try again later)"),
                retryable: true,
            },
            CatalogError::NotFound(message) => Error::Usage(message),
            CatalogError::Refused(e) | CatalogError::Failed(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_whether_retrying_helps() {
        let down = CatalogError::from(Error::Database {
            message: "fleet database root@10.0.0.9:3306/asterisk: no connection".into(),
            retryable: true,
        });
        assert!(down.is_retryable());
        assert!(down.to_string().contains("try again later"), "{down}");
        let refused = CatalogError::from(Error::Usage("--reason must say why".into()));
        assert!(!refused.is_retryable());
        let back: Error = refused.into();
        assert_eq!(back.exit_code(), 2);
        let denied = CatalogError::from(Error::Database {
            message: "access denied".into(),
            retryable: false,
        });
        assert!(matches!(denied, CatalogError::Failed(_)));
    }
}
