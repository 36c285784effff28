//! The command line parses as the README says.

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
fn hold_and_audit_commands_parse() {
    let c = Cli::try_parse_from([
        "recvault",
        "hold",
        "add",
        "CASE-1",
        "--reason",
        "subpoena",
        "--phone",
        "555",
        "--phone",
        "777",
        "--from",
        "2026-01-01",
    ])
    .unwrap();
    assert!(matches!(
        c.command,
        Command::Hold { action: HoldCommand::Add { ref phone, .. } } if phone.len() == 2
    ));
    assert!(
        Cli::try_parse_from(["recvault", "hold", "add", "C"]).is_err(),
        "reason required"
    );
    let c = Cli::try_parse_from(["recvault", "audit", "verify"]).unwrap();
    assert!(matches!(
        c.command,
        Command::Audit {
            action: Some(AuditCommand::Verify),
            ..
        }
    ));
    assert!(Cli::try_parse_from(["recvault", "audit", "--case", "C"]).is_ok());
}

#[test]
fn request_commands_parse() {
    let c = Cli::try_parse_from([
        "recvault",
        "find",
        "--phone",
        "+1 555-123-4567",
        "--lead",
        "7",
        "--json",
    ])
    .unwrap();
    assert!(matches!(
        c.command,
        Command::Find { ref select, json: true } if select.phone.len() == 1 && select.lead == ["7"]
    ));
    let c = Cli::try_parse_from([
        "recvault",
        "erase",
        "--phone",
        "555",
        "--request",
        "T-1",
        "--confirm",
        "ab12",
    ])
    .unwrap();
    assert!(matches!(
        c.command,
        Command::Erase { ref request, confirm: Some(_), .. } if request == "T-1"
    ));
    assert!(
        Cli::try_parse_from(["recvault", "erase", "--phone", "555"]).is_err(),
        "a request reference is required"
    );
    let c = Cli::try_parse_from(["recvault", "export", "--campaign", "S", "-o", "a.zip"]).unwrap();
    assert!(matches!(c.command, Command::Export { force: false, .. }));
    assert!(Cli::try_parse_from(["recvault", "export", "--campaign", "S"]).is_err());
    let c = Cli::try_parse_from(["recvault", "find"]).unwrap();
    assert!(matches!(c.command, Command::Find { ref select, .. } if select.phone.is_empty()));
}

#[test]
fn url_commands_parse() {
    let c = Cli::try_parse_from(["recvault", "url", "a-all.wav", "--permanent"]).unwrap();
    assert!(matches!(
        c.command,
        Command::Url {
            recording: Some(_),
            permanent: true,
            action: None,
            ..
        }
    ));
    assert!(Cli::try_parse_from(["recvault", "url"]).is_err());
    let c = Cli::try_parse_from(["recvault", "url", "revoke", "12", "--confirm"]).unwrap();
    assert!(matches!(
        c.command,
        Command::Url { action: Some(UrlCommand::Revoke { confirm: true, ref target }), .. } if target == "12"
    ));
    let c = Cli::try_parse_from(["recvault", "url", "rotate-key", "--new-key-file", "k"]).unwrap();
    assert!(matches!(
        c.command,
        Command::Url {
            action: Some(UrlCommand::RotateKey { confirm: false, .. }),
            ..
        }
    ));
    assert!(Cli::try_parse_from(["recvault", "url", "rotate-key"]).is_err());
    assert!(Cli::try_parse_from(["recvault", "url", "resign"]).is_ok());
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
