//! The command line: every subcommand and option, in one place so the man
//! page and shell completions are generated from the same definitions.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Status {
        /// Every box of the fleet (`[fleet]`), from the fleet's database.
        #[arg(long)]
        fleet: bool,
    },
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
        /// Every box of the fleet (`[fleet]`), from the fleet's catalog: the
        /// same columns after the box's name; --since/--until on the time shown.
        #[arg(long)]
        fleet: bool,
    },
    /// Every recording of a person, agent, lead, campaign or time, wherever
    /// it is (local, archived, deleted, erased), with the holds covering it.
    Find {
        #[command(flatten)]
        select: SelectorArgs,
        /// One JSON array of objects, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Export recordings (subject access, audits) into a zip: each restored
    /// and checked against its SHA-256, with recordings.csv and SHA256SUMS.
    /// Exit 1 if any failed its check (each is named).
    Export {
        #[command(flatten)]
        select: SelectorArgs,
        /// The zip to write.
        #[arg(short, long, value_name = "FILE.zip")]
        output: PathBuf,
        /// Replace the zip if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Erase a person's recordings (right to be forgotten). Without
    /// --confirm: a preview of what would be erased, where each copy is and
    /// what a legal hold keeps, ending with the command that erases exactly
    /// that set. Every copy goes (local, staging, every stored version);
    /// the ledger keeps the row with pseudonyms for the personal data.
    Erase {
        #[command(flatten)]
        select: SelectorArgs,
        /// The request's reference (ticket or case number), kept with the
        /// erasure and in the audit trail. Do not put the person's name or
        /// number in it.
        #[arg(long, value_name = "REF")]
        request: String,
        /// The token the preview printed: erase exactly the previewed set.
        #[arg(long, value_name = "TOKEN")]
        confirm: Option<String>,
    },
    /// A cluster of dialers governed as one (`[fleet]`): create recvault's
    /// tables in the shared MariaDB, list every box, forget a wiped one.
    Fleet {
        #[command(subcommand)]
        action: FleetCommand,
    },
    /// Retention: what is due for deletion, and deleting it.
    Retention {
        #[command(subcommand)]
        action: RetentionCommand,
    },
    /// Legal holds: recordings that nothing may delete.
    Hold {
        #[command(subcommand)]
        action: HoldCommand,
    },
    /// The audit trail of deletions, holds, restores and policy changes.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        /// Only entries from this date on (YYYY-MM-DD[ HH:MM:SS], local time).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// Only entries about this legal-hold case.
        #[arg(long, value_name = "CASE")]
        case: Option<String>,
        /// Only entries about this recording (file name, object key or
        /// ledger id): who listened to it, and when.
        #[arg(long, value_name = "NAME|KEY|ID")]
        recording: Option<OsString>,
        /// Only entries of this kind (listen, local-delete, retention-delete,
        /// restore, hold-add, hold-release, retention-run, policy-change,
        /// erase-request, erase, export).
        #[arg(long = "action", value_name = "ACTION")]
        kind: Option<String>,
        #[command(subcommand)]
        action: Option<AuditCommand>,
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
    /// Print a signed listen link for a recording (what a CRM or an email to
    /// a supervisor needs): it plays the original while the recording exists,
    /// and never any other recording. Also: revoke a link, rotate the key.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Url {
        /// The recording's file name, object key or ledger id.
        #[arg(value_name = "NAME|KEY|ID", required = true)]
        recording: Option<OsString>,
        /// How long the link works.
        #[arg(
            long,
            value_name = "DURATION",
            default_value = "15m",
            conflicts_with = "permanent"
        )]
        ttl: String,
        /// A link that never expires (like the ones written into VICIdial).
        #[arg(long)]
        permanent: bool,
        /// A presigned URL of the stored object itself instead (S3 stores;
        /// at most 7 days; playable directly only for recordings stored as is).
        #[arg(long)]
        presigned: bool,
        #[command(subcommand)]
        action: Option<UrlCommand>,
    },
    /// VICIdial's side: listen links in recording_log.location; whether
    /// cron is in move_mix's way.
    Vicidial {
        #[command(subcommand)]
        action: VicidialCommand,
    },
    /// The compliance console's local accounts (`[console]`).
    Console {
        #[command(subcommand)]
        action: ConsoleCommand,
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

/// Which recordings a data-subject request (find, export, erase) is about.
/// Selectors of one kind are alternatives; a recording must match every
/// kind given. At least one is required: no selection means nothing, never
/// everything.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectorArgs {
    /// Calls with this phone number (`+1 555-123-4567`, `15551234567` and
    /// `5551234567` are one number).
    #[arg(long, value_name = "NUMBER")]
    pub phone: Vec<String>,
    /// Calls taken by this agent.
    #[arg(long, value_name = "AGENT")]
    pub agent: Vec<String>,
    /// Calls of this VICIdial lead.
    #[arg(long, value_name = "LEAD")]
    pub lead: Vec<String>,
    /// Calls of this campaign (or in-group).
    #[arg(long, value_name = "CAMPAIGN")]
    pub campaign: Vec<String>,
    /// A recording by ledger id, file name or object key.
    #[arg(long, value_name = "ID|NAME|KEY")]
    pub recording: Vec<String>,
    /// Calls from this date on (YYYY-MM-DD[ HH:MM:SS], local time).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Calls up to this date; a plain date includes the whole day.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
}

/// `recvault retention ...`
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Dry run: what would be deleted, when and why, with totals per campaign.
    Plan {
        /// Only this campaign.
        #[arg(long, value_name = "CAMPAIGN")]
        campaign: Option<String>,
        /// Also what becomes due up to this date (default: now).
        #[arg(long, value_name = "DATE")]
        until: Option<String>,
        /// Only the totals, not one line per recording.
        #[arg(long)]
        totals: bool,
    },
    /// Delete everything due now (one sweep; the daemon must not be running).
    Run,
    /// Fleet: keep CAMPAIGN's recordings for DURATION (`default` for every
    /// campaign without a rule). Prints what it would delete and when;
    /// changes the fleet's policy only with --confirm.
    Set {
        #[arg(value_name = "CAMPAIGN")]
        campaign: String,
        /// `90d`, `7y`, `forever`.
        #[arg(value_name = "DURATION")]
        duration: String,
        #[arg(long)]
        confirm: bool,
    },
    /// Fleet: remove CAMPAIGN's rule (the default applies to it again).
    /// Previewed first; applied with --confirm.
    Unset {
        #[arg(value_name = "CAMPAIGN")]
        campaign: String,
        #[arg(long)]
        confirm: bool,
    },
}

/// `recvault fleet ...`
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Create or migrate recvault's tables in the fleet's database: prints
    /// the SQL and the GRANTs the daemons need, applies with --confirm.
    Init {
        #[arg(long)]
        confirm: bool,
    },
    /// Every box: version, last heartbeat, backlog, last error, reachable.
    Status,
    /// The operator says HOST is wiped: its erasures close, its recordings
    /// are governed by the fleet's leader. Previewed; applied with --confirm.
    Forget {
        #[arg(value_name = "HOST")]
        host: String,
        #[arg(long)]
        confirm: bool,
    },
}

/// `recvault console ...`
#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Local accounts of the console.
    User {
        #[command(subcommand)]
        action: ConsoleUserCommand,
    },
}

/// `recvault console user ...`
#[derive(Debug, Subcommand)]
pub enum ConsoleUserCommand {
    /// Add an account, or set an existing one's role and password. The
    /// password is read from the terminal (not echoed) or from standard
    /// input's first line; it is kept only as its argon2id hash.
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        /// listener (search, listen), compliance (+ holds, erasure
        /// requests, audit) or admin (+ release holds, confirm erasures).
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
    /// Every account and its role.
    List,
    /// Remove an account (its open sessions end within `idle_timeout`).
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// `recvault hold ...`
#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Place a hold. Selectors of one kind are alternatives; a recording must
    /// match every kind given. Recordings that arrive later are covered too.
    Add {
        /// The case (matter, ticket) the hold is for.
        #[arg(value_name = "CASE")]
        case: String,
        /// Why (recorded in the audit trail).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// A recording by ledger id, file name or object key.
        #[arg(long, value_name = "ID|NAME")]
        recording: Vec<String>,
        /// Every recording of a campaign (or in-group).
        #[arg(long, value_name = "CAMPAIGN")]
        campaign: Vec<String>,
        /// Every call with this phone number (`+1 555-123-4567`, `15551234567`
        /// and `5551234567` are one number).
        #[arg(long, value_name = "NUMBER")]
        phone: Vec<String>,
        /// Every call taken by this agent.
        #[arg(long, value_name = "AGENT")]
        agent: Vec<String>,
        /// Calls from this date on (local time).
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Calls up to this date; a plain date includes the whole day.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
    },
    /// Release every active hold of a case; retention resumes at the next sweep.
    Release {
        #[arg(value_name = "CASE")]
        case: String,
        /// Why (recorded in the audit trail).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Every hold, active ones first.
    List,
    /// A case's holds and the recordings they cover, with where each is.
    Show {
        #[arg(value_name = "CASE")]
        case: String,
    },
}

/// `recvault audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; fails naming the first edited or removed entry.
    Verify,
}

/// `recvault url …`: links as a whole.
#[derive(Debug, Subcommand)]
pub enum UrlCommand {
    /// Revoke one link (given whole, as printed or as recording_log.location
    /// holds it), or every permanent link of a recording (given its ledger
    /// id). Prints what it will revoke; --confirm revokes. The running
    /// server refuses a revoked link from its next request on.
    Revoke {
        #[arg(value_name = "LINK|ID")]
        target: String,
        /// Revoke (without it, only print what would be revoked).
        #[arg(long)]
        confirm: bool,
    },
    /// Make FILE the link key: re-sign every recording_log.location recvault
    /// wrote (a compare-and-set each: a row VICIdial changed meanwhile is
    /// left alone and reported), then replace serve.key_file with FILE.
    /// Links signed with the old key stop playing. Prints the plan; --confirm
    /// applies it, with the daemon stopped.
    RotateKey {
        /// The new key (at least 32 bytes; e.g. `head -c 48 /dev/urandom | base64`).
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
        /// Apply the plan (without it, only print it).
        #[arg(long)]
        confirm: bool,
    },
    /// Re-sign every recording_log.location recvault wrote in today's form
    /// (bound to the recording, ending with its file name) under the same
    /// key: once after upgrading from links without file names. Prints the
    /// plan; --confirm applies it, with the daemon stopped.
    Resign {
        /// Apply the plan (without it, only print it).
        #[arg(long)]
        confirm: bool,
    },
}

/// `recvault vicidial …`
#[derive(Debug, Subcommand)]
pub enum VicidialCommand {
    /// Put back every recording_log.location recvault replaced with a
    /// listen link (e.g. before uninstalling), where it still holds that
    /// link. Prints each change before making it. The daemon must be stopped.
    RestoreLocations {
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// With [vicidial] move_mix on: fail, naming file and line, while a
    /// crontab (root's, asterisk's, /etc/crontab, /etc/cron.d) still runs
    /// AST_CRON_audio_1_move_mix.pl. The unit runs it as root before start.
    CronCheck,
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
mod tests;
