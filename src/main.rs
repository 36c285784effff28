//! `recvault`: parse the command line, load the config, dispatch, and map
//! outcomes to exit codes (0 ok, 1 something failed, 2 bad config or usage).

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use recvault::cli::{Cli, Command, CompletionShell};
use recvault::config::Config;
use recvault::{commands, logging};

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
    match runtime.block_on(commands::dispatch(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("recvault: {e}");
            ExitCode::from(e.exit_code())
        }
    }
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
