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
}
