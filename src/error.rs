//! The crate's error: every way a command or a pipeline step can end without
//! doing what it was asked, and the one place that words it for an operator.
//! The layers below keep their own errors (`ConfigError`, `LedgerError`,
//! `StoreError`, `EncodeError`, `LockError`), wrapped here unchanged, so a
//! retry decision reads a kind ([`Error::is_store_outage`]), never a message.

use std::io;
use std::path::PathBuf;

use crate::codec::EncodeError;
use crate::config::ConfigError;
use crate::ledger::LedgerError;
use crate::ledger::lock::LockError;
use crate::recording::FailureKind;
use crate::store::StoreError;

/// Why something recvault was asked to do did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A value on the command line that means nothing (a date, a selector).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The lock is held, and what the operator asked for happens anyway.
    #[error("{source}; {hint}")]
    Busy {
        source: LockError,
        hint: &'static str,
    },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The report could not be written (a closed pipe, a full disk).
    #[error("output: {0}")]
    Output(#[from] io::Error),
    /// A local step failed in a way its message describes (a spool file
    /// outside the spool, a staging file that could not be removed, …).
    #[error("{0}")]
    Local(String),
    #[error("no store is configured in {0}: set [store] first")]
    NoStore(PathBuf),
    /// The store's copy is not the bytes recvault hashed.
    #[error("verification failed: {0}")]
    Verification(String),
    #[error("hold {case}: {problem}")]
    Hold { case: String, problem: HoldProblem },
    #[error("no recording in the ledger has the name or object key `{0}`")]
    NoSuchRecording(String),
    #[error("`{wanted}` names {count} recordings; restore one by object key:\n{keys}")]
    Ambiguous {
        wanted: String,
        count: usize,
        keys: String,
    },
    #[error("recording `{0}` was never uploaded; its local copy is {1}")]
    NotArchived(String, String),
    #[error("recording `{0}` was deleted by retention {1}")]
    Deleted(String, String),
    #[error("recording `{0}` is erased (erasure request {1}): nothing of it may be restored")]
    Erased(String, String),
    /// A file the command would write exists, and `--force` was not given.
    #[error("{path} {hint}")]
    Exists { path: PathBuf, hint: &'static str },
    #[error(
        "restored data does not match the original: SHA-256 {got}, expected {want}; nothing written"
    )]
    RestoredMismatch { got: String, want: String },
    #[error("audit trail broken at entry {id}: {problem}")]
    AuditBroken { id: i64, problem: String },
    #[error("no ledger backup for host `{host}` under `{prefix}` in the store")]
    NoBackup { host: String, prefix: String },
    #[error("ledger backup `{key}` is damaged: {problem}; nothing restored")]
    BackupDamaged { key: String, problem: String },
    #[error("hold copy {key}: {message}")]
    HoldCopy { key: String, message: String },
    #[error("legal holds could not be restored from the store: {0}")]
    HoldsNotRecovered(Box<Error>),
    /// VICIdial's database failed or refused; the message names the
    /// database and what recvault was doing, never the password.
    #[error("{message}")]
    Database { message: String, retryable: bool },
    /// `recvault check` found the store not working; `step` says where.
    #[error("check failed: {step}: {message}")]
    Probe { step: &'static str, message: String },
}

/// Why a legal hold could not be placed or released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldProblem {
    #[error("give at least one selector (--recording, --campaign, --phone, --agent, --from/--to)")]
    NoSelector,
    #[error("--reason must say why")]
    NoReason,
    #[error("a selector is empty")]
    EmptySelector,
    #[error("{0} is not a hold selector")]
    NotForHolds(&'static str),
    #[error("--from is not before --to")]
    BadRange,
    #[error("no active hold for this case")]
    NotActive,
    #[error("no hold for this case")]
    NoSuchCase,
}

impl Error {
    /// An error reading or writing the file at `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// True if the store could not be reached: every recording would fail
    /// the same way, so the daemon pauses uploads instead of retrying each.
    pub fn is_store_outage(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_transient())
    }

    /// What kind of failure this is, for the ledger and for retry decisions.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Error::Store(e) if e.is_transient() => FailureKind::StoreOutage,
            Error::Store(StoreError::Local(_)) => FailureKind::Local,
            Error::Store(_) => FailureKind::Refused,
            Error::Verification(_) => FailureKind::Verification,
            _ => FailureKind::Local,
        }
    }

    /// The process exit code for this error: 2 for a bad config or command
    /// line (nothing was tried), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Ledger(LedgerError::Sql(e))
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
