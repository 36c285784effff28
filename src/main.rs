//! `recvault`: parse the command line, load the config, dispatch, and map
//! outcomes to exit codes (0 ok, 1 something failed, 2 bad config or usage).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use recvault::cli::{Cli, Command, CompletionShell};
use recvault::config::Config;
use recvault::daemon::{self, RunOptions};
use recvault::ledger::{Ledger, ListFilter};
use recvault::{check, logging, recovery, report, restore, store};

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
    let mut stdout = std::io::stdout().lock();
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
                    "archived {} recordings ({} -> {}), {} failed, {} not attempted",
                    summary.archived,
                    report::human_bytes(summary.bytes),
                    report::human_bytes(summary.object_bytes),
                    summary.failed,
                    summary.not_attempted
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
