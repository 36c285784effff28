//! Listen links in VICIdial: once a recording's local copy is gone, its
//! `recording_log.location` is pointed at recvault's link — only where it
//! still points at the local file recvault archived (never over what
//! another script wrote). The old value is recorded in the ledger first,
//! durably; the database is changed with one compare-and-set, so a kill at
//! any moment is finished by doing that again. In the background, with
//! back-off, like attribution.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::attribution::QuietLog;
use super::outage::backoff;
use crate::config::VicidialConfig;
use crate::error::Error;
use crate::ledger::Ledger;
use crate::ledger::locations::LocationTodo;
use crate::recording::{Recording, State};
use crate::serve::link::Signer;
use crate::units::now_secs;
use crate::vicidial::db::VicidialDb;
use crate::vicidial::location::{LocationUpdate, points_at_local_file};

/// `recording_log.location`'s width.
const MAX_LOCATION: usize = 255;
const BATCH: usize = 50;
const IDLE: Duration = Duration::from_secs(5);
/// How long this server's addresses (`servers`) are reused.
const HOSTS_FOR: Duration = Duration::from_secs(300);

/// Everything a rewrite needs.
pub struct Rewriter {
    pub ledger: Arc<Ledger>,
    pub db: Arc<VicidialDb>,
    pub config: VicidialConfig,
    pub signer: Signer,
    /// Where links start (`http://VARserver_ip:8089`).
    pub base: String,
}

/// What one location came to.
enum Step {
    Done,
    /// The database could not be asked.
    Failed(Error),
}

impl Rewriter {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut failures = 0u32;
        let mut log = QuietLog::new(Duration::from_secs(300));
        let mut hosts: Option<(Instant, Vec<String>)> = None;
        loop {
            let pause = match self.batch(&mut hosts).await {
                Ok(n) => {
                    failures = 0;
                    if log.success() {
                        tracing::info!("VICIdial database answers again; listen links resume");
                    }
                    if n == BATCH { Duration::ZERO } else { IDLE }
                }
                Err(e) => {
                    failures += 1;
                    let pause = backoff(failures, Duration::from_secs(1), Duration::from_secs(300));
                    if let Some(quiet) = log.failure() {
                        tracing::warn!(retry_in = ?pause, unlogged = quiet, "listen links in recording_log wait: {e}");
                    }
                    pause
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One batch of due locations; stops at the first database failure.
    async fn batch(&self, hosts: &mut Option<(Instant, Vec<String>)>) -> Result<usize, Error> {
        let todo = self
            .ledger
            .call(|l| l.locations_todo(now_secs(), BATCH))
            .await?;
        if todo.is_empty() {
            return Ok(0);
        }
        if hosts
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > HOSTS_FOR)
        {
            *hosts = Some((Instant::now(), self.hosts().await?));
        }
        let known = hosts.as_ref().map(|(_, h)| h.clone()).unwrap_or_default();
        let n = todo.len();
        for item in todo {
            let id = item.recording_id;
            if let Step::Failed(e) = self.one(&item, &known).await? {
                let retry_at = now_secs()
                    + backoff(
                        item.attempts + 1,
                        Duration::from_secs(5),
                        Duration::from_secs(600),
                    )
                    .as_secs() as i64;
                let reason = e.to_string();
                self.ledger
                    .call(move |l| l.location_retry(id, &reason, retry_at))
                    .await?;
                return Err(e);
            }
        }
        Ok(n)
    }

    /// This server's addresses as VICIdial knows them (`servers`), and its
    /// `VARserver_ip`: a location naming any of them is local.
    async fn hosts(&self) -> Result<Vec<String>, Error> {
        let mut hosts = vec![self.config.db.server_ip.clone()];
        if let Some(server) = self.db.this_server().await? {
            hosts.extend(server.hosts().into_iter().map(str::to_string));
        }
        hosts.dedup();
        Ok(hosts)
    }

    async fn one(&self, item: &LocationTodo, hosts: &[String]) -> Result<Step, Error> {
        let id = item.recording_id;
        let vid = item.vicidial_recording_id as u32;
        let (old, new) = match &item.intent {
            Some(intent) => intent.clone(),
            None => match self.decide(item, hosts).await {
                Ok(Ok(intent)) => intent,
                Ok(Err(why)) => return self.finish(id, "skipped", why).await,
                Err(e) => return Ok(Step::Failed(e)),
            },
        };
        if item.intent.is_none() {
            let (o, n) = (old.clone(), new.clone());
            self.ledger
                .call(move |l| l.location_intent(id, &o, &n))
                .await?;
        }
        match self.db.replace_location(vid, &old, &new).await {
            Ok(LocationUpdate::Updated) => {
                // Never the link itself: it is a working key to the call.
                tracing::info!(
                    recording_log = vid,
                    recording = id,
                    "recording_log.location now plays from recvault"
                );
                self.finish(id, "rewritten", format!("was {old}")).await
            }
            Ok(LocationUpdate::Changed { current }) => {
                let now = current.unwrap_or_else(|| "NULL".into());
                self.finish(id, "skipped", format!("changed by someone else to {now}"))
                    .await
            }
            Ok(LocationUpdate::Missing) => {
                self.finish(id, "skipped", "the recording_log row is gone".into())
                    .await
            }
            Err(e) => Ok(Step::Failed(e.into())),
        }
    }

    /// The (old, new) pair for a location that still points at the local
    /// file, else why it is left alone.
    async fn decide(
        &self,
        item: &LocationTodo,
        hosts: &[String],
    ) -> Result<Result<(String, String), String>, Error> {
        if item.state == State::Gone {
            return Ok(Err("the recording was never archived".into()));
        }
        let current = match self.db.location(item.vicidial_recording_id as u32).await? {
            None => return Ok(Err("the recording_log row is gone".into())),
            Some(None) => return Ok(Err("recording_log.location is NULL (purged)".into())),
            Some(Some(c)) => c,
        };
        let Some(relative) = relative(&item.path, &self.config.done_monitor) else {
            return Ok(Err(format!(
                "{} is not under PATHDONEmonitor {}",
                item.path.display(),
                self.config.done_monitor.display()
            )));
        };
        let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
        if !points_at_local_file(&current, &relative, &hosts) {
            return Ok(Err(format!("points elsewhere: {current}")));
        }
        let id = item.recording_id;
        let rec = self.ledger.call(move |l| l.recording(id)).await?;
        match location_link(&self.base, &self.signer, &rec) {
            Some(new) => Ok(Ok((current, new))),
            None => Ok(Err(format!(
                "the link is longer than {MAX_LOCATION} characters"
            ))),
        }
    }

    async fn finish(&self, id: i64, to: &'static str, detail: String) -> Result<Step, Error> {
        self.ledger
            .call(move |l| l.location_done(id, to, &detail))
            .await?;
        Ok(Step::Done)
    }
}

/// The permanent link written into `recording_log.location` for `rec`:
/// ending with its file name (VICIdial's GDPR export names the ZIP entry
/// from it), or without it where the name would not fit in the column's
/// 255 characters; None if even that does not fit.
pub fn location_link(base: &str, signer: &Signer, rec: &Recording) -> Option<String> {
    [signer.path(rec, None), signer.path_unnamed(rec, None)]
        .into_iter()
        .map(|path| format!("{base}{path}"))
        .find(|link| link.len() <= MAX_LOCATION)
}

/// `path` under `root`, `/`-separated, as the URL after `/RECORDINGS/` names it.
fn relative(path: &Path, root: &Path) -> Option<String> {
    let rest = path.strip_prefix(root).ok()?;
    let parts: Option<Vec<&str>> = rest.iter().map(|c| c.to_str()).collect();
    let joined = parts?.join("/");
    (!joined.is_empty()).then_some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_done_monitor() {
        let root = Path::new("/var/spool/asterisk/monitorDONE");
        assert_eq!(
            relative(Path::new("/var/spool/asterisk/monitorDONE/a-all.wav"), root).as_deref(),
            Some("a-all.wav")
        );
        assert_eq!(
            relative(
                Path::new("/var/spool/asterisk/monitorDONE/MP3/2026-03-01/a-all.mp3"),
                root
            )
            .as_deref(),
            Some("MP3/2026-03-01/a-all.mp3")
        );
        assert_eq!(relative(Path::new("/elsewhere/a.wav"), root), None);
        assert_eq!(relative(root, root), None);
    }
}
