//! The command line: every subcommand and option, in one place so the man
//! page and shell completions are generated from the same definitions.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_CONFIG_PATH;
use crate::recording::State;

/// Keeps Asterisk/VICIdial call recordings: compresses them, uploads them to
/// S3/R2 with verified SHA-256, and removes local copies only once verified.
#[derive(Debug, Parser)]
#[command(name = "recvault", version, about, max_term_width = 100)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, env = "RECVAULT_CONFIG", default_value = DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// What recvault is asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch the spool and archive recordings as they become due.
    Run {
        /// One full pass over the spool, then exit (non-zero if anything failed).
        #[arg(long)]
        once: bool,
    },
    /// Validate the config and test the store (put, head, get, delete a probe).
    Check {
        /// Do not contact the store.
        #[arg(long)]
        offline: bool,
    },
    /// Counts and bytes per state, the backlog and the last errors.
    Status,
    /// Download a recording, decode it and check it against the original's SHA-256.
    Restore {
        /// The recording's file name or object key.
        #[arg(value_name = "NAME|KEY")]
        target: OsString,
        /// Where to write the restored recording.
        #[arg(short, long, value_name = "PATH")]
        output: PathBuf,
        /// Replace PATH if it exists.
        #[arg(long)]
        force: bool,
    },
    /// List what the ledger knows, one recording per line.
    Ls {
        /// Only recordings in this state.
        #[arg(long, value_name = "STATE", value_parser = parse_state)]
        state: Option<State>,
        /// Only recordings from this date on (YYYY-MM-DD[ HH:MM:SS], local time).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only recordings before this date.
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Only file names matching this glob (`*`, `?`).
        #[arg(long, value_name = "GLOB")]
        name: Option<OsString>,
    },
    /// Check, back up, restore or rebuild the ledger.
    Ledger {
        #[command(subcommand)]
        action: LedgerCommand,
    },
    /// Re-read archived objects from the store and check their SHA-256 and
    /// size against the ledger (exit 1 on any missing or mismatched object).
    Verify {
        /// Re-read a random sample of this many archived recordings.
        #[arg(long, value_name = "N", conflicts_with = "all", default_value_t = 100)]
        sample: usize,
        /// Re-read every archived recording.
        #[arg(long)]
        all: bool,
        /// Only recordings from this date on (YYYY-MM-DD[ HH:MM:SS], local time).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Print a line for every object, not only for problems.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Print the man page (roff) to stdout.
    #[command(hide = true)]
    Man,
    /// Print a shell completion script to stdout.
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// `recvault ledger …`: the operator's tools for a damaged or lost ledger.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// SQLite's integrity check plus recvault's invariants (exit 1 on any problem).
    Check,
    /// Back the ledger up to the store now (as the daemon does on its schedule).
    Backup,
    /// Replace the ledger with the newest backup in the store (the daemon
    /// must be stopped; the current ledger is kept beside it).
    Restore,
    /// Build a new ledger from the objects in the store and their metadata
    /// (the daemon must be stopped).
    Rebuild {
        /// Read the store (the only source there is; required as a safeguard).
        #[arg(long, required = true)]
        from_store: bool,
        /// Move an existing ledger aside instead of refusing.
        #[arg(long)]
        force: bool,
    },
}

/// Shells completions are generated for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
}

fn parse_state(s: &str) -> Result<State, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_goes_before_or_after_the_subcommand() {
        let a = Cli::try_parse_from(["recvault", "--config", "/x.toml", "status"]).unwrap();
        let b = Cli::try_parse_from(["recvault", "status", "--config", "/x.toml"]).unwrap();
        assert_eq!(a.config, b.config);
        assert!(Cli::try_parse_from(["recvault", "ls", "--state", "bogus"]).is_err());
    }

    #[test]
    fn recovery_commands_parse() {
        assert!(Cli::try_parse_from(["recvault", "ledger", "rebuild"]).is_err());
        assert!(Cli::try_parse_from(["recvault", "ledger", "rebuild", "--from-store"]).is_ok());
        assert!(Cli::try_parse_from(["recvault", "verify", "--all", "--sample", "3"]).is_err());
        let c = Cli::try_parse_from(["recvault", "verify", "--since", "2026-03-01"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Verify {
                sample: 100,
                all: false,
                ..
            }
        ));
    }
}
