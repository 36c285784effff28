//! Logging: journald (structured fields) when started by systemd, readable
//! lines on a terminal. `RUST_LOG` overrides the configured level.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber. `level` is the config's `daemon.log_level`.
pub fn init(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // The AWS SDK is chatty at info; its errors reach us as values anyway.
    let mut filter = filter
        .add_directive("aws_config=warn".parse().expect("static directive"))
        .add_directive("aws_smithy_runtime=warn".parse().expect("static directive"));
    // Below info these log request URLs, where an Azure SAS token travels,
    // and SSH internals: capped whatever RUST_LOG says.
    for quiet in [
        "reqwest",
        "hyper_util",
        "opendal",
        "reqsign",
        "russh",
        "russh_sftp",
    ] {
        filter = filter.add_directive(format!("{quiet}=info").parse().expect("static directive"));
    }
    let registry = tracing_subscriber::registry().with(filter);
    // systemd sets JOURNAL_STREAM for services whose output goes to the journal.
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        let _ = registry
            .with(journald.with_syslog_identifier("recvault".to_string()))
            .try_init();
        return;
    }
    let _ = registry
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .try_init();
}
