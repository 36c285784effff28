//! `recvault`: parse the command line, load the config, dispatch, and map
//! outcomes to exit codes (0 ok, 1 something failed, 2 bad config or usage).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use recvault::audit::{self, Actor, AuditFilter};
use recvault::cli::{AuditCommand, Cli, Command, CompletionShell, HoldCommand, RetentionCommand};
use recvault::config::Config;
use recvault::daemon::{self, RunOptions};
use recvault::hold::{self, Selector};
use recvault::ledger::{Ledger, ListFilter, now_secs};
use recvault::{check, logging, recovery, report, restore, retention, store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Man => return print_man(),
        Command::Completions { shell } => return print_completions(*shell),
        _ => {}
    }
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("recvault: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.daemon.log_level);
    // Few malloc arenas: worker threads otherwise each keep freed buffers,
    // and RSS grows with concurrency instead of staying flat.
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("recvault: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, config)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("recvault: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command, config: Config) -> Result<ExitCode, String> {
    // Buffered: `ls` and `retention plan` may print hundreds of thousands of
    // lines; a line-buffered stdout would make one write per line. Dropping
    // it at the end of `dispatch` flushes it.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match command {
        Command::Run { once } => {
            let summary = daemon::run(
                config,
                RunOptions { once },
                shutdown_signal(),
                reload_signal(),
            )
            .await
            .map_err(|e| e.to_string())?;
            if once {
                println!(
                    "archived {} recordings ({} -> {}), {} failed, {} not attempted, {} waiting for an upload window",
                    summary.archived,
                    report::human_bytes(summary.bytes),
                    report::human_bytes(summary.object_bytes),
                    summary.failed,
                    summary.not_attempted,
                    summary.deferred
                );
                if summary.failed > 0 || summary.not_attempted > 0 {
                    return Ok(ExitCode::FAILURE);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { offline } => {
            check::check(&config, offline, &mut stdout)
                .await
                .map_err(|e| format!("check failed: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let ledger = Ledger::open(&config.ledger.path).map_err(|e| e.to_string())?;
            report::status(&ledger, &mut stdout).map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls {
            state,
            since,
            until,
            name,
        } => {
            let parse = |d: Option<String>| d.map(|d| report::parse_date(&d)).transpose();
            let filter = ListFilter {
                state,
                since: parse(since)?,
                until: parse(until)?,
            };
            let ledger = Ledger::open(&config.ledger.path).map_err(|e| e.to_string())?;
            report::ls(
                &ledger,
                &filter,
                name.as_ref().map(|n| n.as_bytes()),
                &mut stdout,
            )
            .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            target,
            output,
            force,
        } => {
            let store_config = config.store.as_ref().ok_or("no store configured")?;
            let ledger = Ledger::open(&config.ledger.path).map_err(|e| e.to_string())?;
            let store = store::open(store_config).await.map_err(|e| e.to_string())?;
            let bytes = restore::restore(&ledger, &*store, target.as_bytes(), &output, force)
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                stdout,
                "restored {} ({bytes} bytes, SHA-256 verified)",
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Retention { action } => retention_command(action, &config, &mut stdout).await,
        Command::Hold { action } => hold_command(action, &config, &mut stdout).await,
        Command::Audit {
            since,
            case,
            action,
        } => {
            let ledger = Ledger::open(&config.ledger.path).map_err(|e| e.to_string())?;
            if let Some(AuditCommand::Verify) = action {
                let ok = audit::verify(&ledger).map_err(|e| e.to_string())?;
                let _ = writeln!(
                    stdout,
                    "audit trail intact: {} entries, head {}",
                    ok.entries, ok.head
                );
                return Ok(ExitCode::SUCCESS);
            }
            let filter = AuditFilter {
                since: since.map(|d| report::parse_date(&d)).transpose()?,
                case_id: case,
            };
            audit::list(&ledger, &filter, |e| audit::write_entry(&mut stdout, e))
                .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger { action } => {
            clean_exit(recovery::ledger(&config, action, &mut stdout).await?)
        }
        Command::Verify {
            sample,
            all,
            since,
            verbose,
        } => {
            let sample = (!all).then_some(sample);
            clean_exit(recovery::verify(&config, sample, since, verbose, &mut stdout).await?)
        }
        Command::Man | Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

async fn retention_command(
    action: RetentionCommand,
    config: &Config,
    out: &mut impl Write,
) -> Result<ExitCode, String> {
    match action {
        RetentionCommand::Plan {
            campaign,
            until,
            totals,
        } => {
            let now = now_secs();
            let until = until
                .map(|d| report::parse_date(&d))
                .transpose()?
                .unwrap_or(now);
            let ledger = Ledger::open(&config.ledger.path).map_err(|e| e.to_string())?;
            ledger
                .attribute_pending(&config.naming)
                .map_err(|e| e.to_string())?;
            report::retention_plan(
                &ledger,
                &config.retention,
                now,
                until.max(now),
                campaign.as_deref(),
                totals,
                out,
            )
            .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        RetentionCommand::Run => {
            let r = retention::sweep_now(config, &Actor::current(), now_secs())
                .await
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "deleted {} recordings ({} stored, {} local copies), {} held, {} failed",
                r.deleted,
                report::human_bytes(r.object_bytes),
                r.local_removed,
                r.held,
                r.failed
            );
            for (campaign, n) in &r.by_campaign {
                let _ = writeln!(out, "  {campaign}: {n}");
            }
            Ok(if r.failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

async fn hold_command(
    action: HoldCommand,
    config: &Config,
    out: &mut impl Write,
) -> Result<ExitCode, String> {
    let ledger = Ledger::open(&config.ledger.path).map_err(|e| e.to_string())?;
    ledger
        .attribute_pending(&config.naming)
        .map_err(|e| e.to_string())?;
    let actor = Actor::current();
    let case = match action {
        HoldCommand::List => {
            let holds = hold::list(&ledger).map_err(|e| e.to_string())?;
            report::hold_list(&holds, out).map_err(|e| e.to_string())?;
            return Ok(ExitCode::SUCCESS);
        }
        HoldCommand::Show { case } => {
            report::hold_show(&ledger, &case, out).map_err(|e| e.to_string())?;
            return Ok(ExitCode::SUCCESS);
        }
        HoldCommand::Add {
            case,
            reason,
            recording,
            campaign,
            phone,
            agent,
            from,
            to,
        } => {
            let mut selectors: Vec<Selector> =
                recording.into_iter().map(Selector::Recording).collect();
            selectors.extend(campaign.into_iter().map(Selector::Campaign));
            selectors.extend(phone.iter().map(|p| Selector::phone(p)));
            selectors.extend(agent.into_iter().map(Selector::Agent));
            if from.is_some() || to.is_some() {
                selectors.push(Selector::Time {
                    from: from.map(|d| report::parse_date(&d)).transpose()?,
                    to: to.map(|d| report::parse_date_end(&d)).transpose()?,
                });
            }
            let (id, covered) = hold::add(&ledger, &actor, now_secs(), &case, &reason, &selectors)
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "hold #{id} placed for case {case}: covers {covered} recordings now, and any that arrive and match"
            );
            case
        }
        HoldCommand::Release { case, reason } => {
            let n = hold::release(&ledger, &actor, now_secs(), &case, &reason)
                .map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "released {n} hold(s) of case {case}; retention resumes for its recordings at the next sweep"
            );
            case
        }
    };
    copy_holds(config, &ledger, out).await;
    mirror_holds(config, &ledger, &case, out).await
}

/// Stores a copy of the hold table beside the ledger backups, so holds
/// survive a lost disk (`ledger rebuild --from-store`). The ledger's hold
/// stands even if this fails; the daemon's next scheduled backup copies again.
async fn copy_holds(config: &Config, ledger: &Ledger, out: &mut impl Write) {
    let Some(store_config) = config.store.as_ref() else {
        return;
    };
    let scratch = config
        .ledger
        .path
        .parent()
        .unwrap_or(std::path::Path::new("/tmp"));
    let copied = match store::open(store_config).await {
        Ok(store) => recvault::hold_copy::publish(
            ledger,
            &*store,
            &store_config.prefix,
            &config.daemon.host,
            scratch,
        )
        .await
        .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match copied {
        Ok(key) => {
            let _ = writeln!(out, "holds copied to the store: {key}");
        }
        Err(e) => eprintln!(
            "recvault: warning: the hold is in the ledger, but copying the holds to the store failed: {e}"
        ),
    }
}

/// With `[store] object_lock_legal_hold`, sets the objects' legal holds to
/// match the ledger. The ledger's hold stands even if this fails.
async fn mirror_holds(
    config: &Config,
    ledger: &Ledger,
    case: &str,
    out: &mut impl Write,
) -> Result<ExitCode, String> {
    let Some(store_config) = config.store.as_ref().filter(|s| s.object_lock_legal_hold) else {
        return Ok(ExitCode::SUCCESS);
    };
    let store = store::open(store_config).await.map_err(|e| e.to_string())?;
    let r = hold::mirror(ledger, &*store, case)
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "object lock legal holds: {} on, {} off, {} failed",
        r.on,
        r.off,
        r.failed.len()
    );
    for (key, e) in &r.failed {
        eprintln!("recvault: legal hold on `{key}` not mirrored (the ledger hold applies): {e}");
    }
    Ok(if r.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// 0 if a check found nothing wrong, 1 if it found problems.
fn clean_exit(clean: bool) -> Result<ExitCode, String> {
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A message for every SIGHUP: re-read the config.
fn reload_signal() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    if let Ok(mut hup) = signal(SignalKind::hangup()) {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("signal received; stopping (send again to abort)");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        eprintln!("recvault: second signal; aborting (interrupted steps resume at next start)");
        std::process::exit(130);
    });
}

fn print_man() -> ExitCode {
    let man = clap_mangen::Man::new(Cli::command());
    match man.render(&mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recvault: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_completions(shell: CompletionShell) -> ExitCode {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "recvault",
        &mut std::io::stdout(),
    );
    ExitCode::SUCCESS
}
