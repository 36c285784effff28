//! Step 1 of VICIdial's recording chain without cron: what
//! `AST_CRON_audio_1_move_mix.pl --MIX` does every three minutes, done as
//! each call's legs are finished (`[vicidial] move_mix = true`).
//!
//! What the script does (VICIdial 2.14, its 160523 revision), and recvault
//! with it:
//! - in `PATHmonitor/MIX` (`PATHmonitor` without `--MIX`) it takes each file
//!   whose size held over a 5-second sleep (15 s in VICIdial's 2023 scripts);
//!   recvault takes legs untouched for `[spool] settle` and open for
//!   writing by no process (`legs`), both legs of a pair, not just `-in`;
//! - `-out` is `-in`'s name with `-in.wav` replaced; the mix is
//!   `sox -m IN OUT PATHDONEmonitor/NAME-all.wav` (each input scaled by ½,
//!   dithered); recvault sums the samples as sox does, without the dither
//!   (`mix`), into a temporary file that is fsynced and then renamed;
//! - the row: the newest `recording_log` with `filename` = the leg's name
//!   without `-in.wav`; `location` becomes
//!   `http(s)://VARserver_ip/RECORDINGS/NAME-all.wav` (`--HTTPS`), and where
//!   `length_in_sec` is NULL or 0, it and `length_in_min` come from
//!   `soxi -D` of the mix (seconds cut at the point, minutes `%.2f`)
//!   (`recording_log`; recvault also asks for this server's row);
//! - both legs go to `PATHDONEmonitor/ORIG/` with `mv -f`.
//!
//! Where the script is wrong, and what recvault does instead:
//! - a failed mix (missing `-out` leg, unreadable audio) is not noticed: the
//!   row still points at a mix that does not exist and the `-in` leg goes to
//!   ORIG; a lone `-out` leg stays in MIX for ever. recvault leaves such legs
//!   in MIX and, after `move_mix_orphan_after`, moves them to ORIG unmixed,
//!   with the row untouched, counted in `status` and logged;
//! - a name with no row updates the previous file's row (`$recording_id`
//!   is never reset); recvault writes no row then;
//! - sox writes the mix in place and `mv -f` replaces: a crash leaves half a
//!   mix under its final name, and a repeated name overwrites another call's
//!   mix or legs. recvault never replaces a file: a name taken by other
//!   bytes holds the pair back (then ORIG, unmixed), the same bytes mean an
//!   interrupted run got that far;
//! - only the `-in` leg's size is checked, so a still-growing `-out` leg can
//!   be mixed short; the file name goes into SQL unescaped; there is no lock
//!   between two overlapping runs.
//!
//! Progress lives in names on disk, checked by content, in an order that
//! makes every step repeatable after `kill -9`: the mix is written under a
//! temporary name (in a directory of its own, never a spool directory); the
//! row is written; the mix is renamed into place; the legs are moved. While a
//! leg is in MIX its work is not done, and doing it again gives the same
//! result. The ledger only counts what happened, for `status`.

pub mod cron;
mod files;
pub mod legs;
pub mod mix;
mod pair;
pub mod recording_log;
mod waiting;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::legs::{LegFile, Legs, Side};
use self::mix::Mixed;
use self::pair::Existing;
use self::recording_log::MixRecord;
use self::waiting::Waiting;
use super::db::{DbError, VicidialDb};
use crate::config::MoveMixConfig;
use crate::ledger::Ledger;
use crate::ledger::move_mix::MixEvent;
use crate::units::{nanos, now_ns, now_secs};

/// Why a pair (or a lone leg) is not done this time.
#[derive(Debug)]
pub enum Hold {
    /// Something recvault will not do with it (the reason says what).
    Unmixable(String),
    /// A leg changed while it was mixed: it was not finished after all.
    Changed,
    /// VICIdial's database did not answer: everything waits for it.
    Db(DbError),
    Io(std::io::Error),
}

/// What one pass did, and when another is due.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Pairs mixed, placed and recorded.
    pub mixed: usize,
    /// Legs moved to ORIG without a mix.
    pub unmixed: usize,
    /// Names whose legs wait in MIX.
    pub waiting: usize,
    /// The earliest moment (ns) a waiting leg may be finished, or given up on.
    pub next_due_ns: Option<i64>,
    /// The database did not answer: pairs wait for it.
    pub database_down: bool,
}

impl Pass {
    fn due(&mut self, at_ns: i64) {
        self.waiting += 1;
        self.next_due_ns = Some(self.next_due_ns.map_or(at_ns, |d| d.min(at_ns)));
    }
}

/// Kills the process at a named step, for the crash tests
/// (`RECVAULT_TEST_MOVE_MIX_KILL_AT`); debug builds only.
fn crash_point(at: &str) {
    if cfg!(debug_assertions)
        && std::env::var("RECVAULT_TEST_MOVE_MIX_KILL_AT").is_ok_and(|want| want == at)
    {
        // SAFETY: signalling our own process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

/// recvault's step 1 for one MIX directory.
pub struct MoveMix {
    config: MoveMixConfig,
    settle: Duration,
    db: Arc<VicidialDb>,
    ledger: Arc<Ledger>,
    waiting: Mutex<Waiting>,
}

impl MoveMix {
    /// `settle` is the spool's: how long a leg must be untouched.
    pub fn new(
        config: MoveMixConfig,
        settle: Duration,
        db: Arc<VicidialDb>,
        ledger: Arc<Ledger>,
    ) -> MoveMix {
        MoveMix {
            config,
            settle,
            db,
            ledger,
            waiting: Mutex::new(Waiting::default()),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &MoveMixConfig {
        &self.config
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before the first pass: removes temporary files interrupted runs left.
    pub async fn start(&self) -> std::io::Result<usize> {
        let dirs = [self.config.done.clone(), self.config.orig()];
        blocking(move || {
            dirs.iter()
                .map(|d| files::clean_temp(d))
                .sum::<std::io::Result<usize>>()
        })
        .await
    }

    /// Looks at the MIX directory once and does what is due.
    pub async fn pass(&self) -> std::io::Result<Pass> {
        let (dir, settle) = (self.config.dir.clone(), self.settle);
        let now = now_ns();
        let (listing, finished) = blocking(move || {
            let listing = legs::list(&dir)?;
            let all: Vec<&LegFile> = listing
                .legs
                .values()
                .flat_map(|l| l.inn.iter().chain(l.out.iter()))
                .collect();
            let finished = legs::finished(&all, now, settle);
            Ok::<_, std::io::Error>((listing, finished))
        })
        .await?;
        self.waiting().forget_gone(&listing);
        let mut pass = Pass::default();
        for (stem, legs) in &listing.legs {
            let ready = legs
                .present()
                .iter()
                .all(|(_, l)| finished.contains(&l.path));
            if !ready {
                pass.due(legs.last_write_ns().max(now - nanos(settle)) + nanos(settle));
                continue;
            }
            if let Some(until) = self.waiting().still_held(stem, legs, now) {
                pass.due(until);
                continue;
            }
            if !self.take(stem, legs, now, &mut pass).await {
                break;
            }
        }
        Ok(pass)
    }

    /// Does what is due for the finished legs of `stem`; false if the
    /// database is down (the pass stops: every pair would wait for it).
    async fn take(&self, stem: &str, legs: &Legs, now: i64, pass: &mut Pass) -> bool {
        let outcome = match (&legs.inn, &legs.out) {
            (Some(inn), Some(out)) => self.take_pair(stem, inn, out).await.map(|()| true),
            (Some(leg), None) => self.take_lone(stem, Side::In, leg).await,
            (None, Some(leg)) => self.take_lone(stem, Side::Out, leg).await,
            (None, None) => return true,
        };
        let hold = match outcome {
            Ok(true) => {
                pass.mixed += 1;
                self.waiting().clear(stem);
                return true;
            }
            Ok(false) => Hold::Unmixable(format!(
                "no {} leg",
                if legs.inn.is_some() {
                    "-out.wav"
                } else {
                    "-in.wav"
                }
            )),
            Err(hold) => hold,
        };
        let retry = now + nanos(self.settle);
        match hold {
            Hold::Db(e) => {
                if self.waiting().database_down(&e.to_string()) {
                    tracing::warn!("move_mix: {e}; the legs wait in MIX until it answers");
                }
                pass.database_down = true;
                pass.due(retry);
                return false;
            }
            Hold::Changed => pass.due(retry),
            Hold::Io(e) => {
                if self.waiting().error(stem, &e.to_string()) {
                    tracing::error!(recording = stem, "move_mix: {e}; tried again later");
                }
                pass.due(retry);
            }
            Hold::Unmixable(why) => self.give_up_or_wait(stem, legs, &why, now, pass).await,
        }
        true
    }

    /// Mixes a pair, writes its row, puts the mix in place, moves the legs.
    async fn take_pair(&self, stem: &str, inn: &LegFile, out: &LegFile) -> Result<(), Hold> {
        let (done, s, i, o) = (
            self.config.done.clone(),
            stem.to_string(),
            inn.clone(),
            out.clone(),
        );
        let prepared = blocking(move || pair::prepare(&done, &s, &i, &o)).await?;
        crash_point("mixed");
        if prepared.existing == Existing::Other {
            return Err(Hold::Unmixable(format!(
                "{} is another recording's mix",
                prepared.dest.display()
            )));
        }
        let row = match self.record(stem, &prepared.mixed).await {
            Ok(row) => row,
            Err(e) => {
                let _ = std::fs::remove_file(&prepared.temp);
                return Err(Hold::Db(e));
            }
        };
        crash_point("located");
        let (orig, i, o) = (self.config.orig(), inn.clone(), out.clone());
        let mixed = prepared.mixed;
        blocking(move || pair::place(&prepared, &i, &o, &orig)).await?;
        self.mixed(stem, &mixed, row).await;
        Ok(())
    }

    /// Writes the mix's location (and length, where missing) into its row;
    /// the row's id, or None where there is no row.
    async fn record(&self, stem: &str, mixed: &Mixed) -> Result<Option<u32>, DbError> {
        let Some(row) = self.db.mix_row(stem).await? else {
            self.database_answers();
            return Ok(None);
        };
        let record = MixRecord {
            location: self.location(stem),
            seconds: mixed.whole_seconds(),
            minutes: mixed.minutes_text(),
        };
        self.db.record_mix(row, &record).await?;
        self.database_answers();
        Ok(Some(row.recording_id))
    }

    fn database_answers(&self) {
        if self.waiting().database_up() {
            tracing::info!(
                "move_mix: VICIdial's database answers again; mixing the legs that waited"
            );
        }
    }

    /// `http(s)://<server_ip>/RECORDINGS/<name>-all.wav`, as the script writes it.
    pub fn location(&self, stem: &str) -> String {
        let scheme = if self.config.https { "https" } else { "http" };
        format!(
            "{scheme}://{}/RECORDINGS/{}",
            self.db.server_ip(),
            pair::mix_name(stem)
        )
    }

    /// Logs and counts a finished pair.
    async fn mixed(&self, stem: &str, mixed: &Mixed, row: Option<u32>) {
        let seconds = mixed.whole_seconds();
        match row {
            Some(id) => tracing::info!(
                recording = stem,
                seconds,
                recording_log = id,
                location = %self.location(stem),
                "mixed the legs into {}, moved them to ORIG",
                pair::mix_name(stem)
            ),
            None => tracing::warn!(
                recording = stem,
                seconds,
                "mixed the legs into {}, moved them to ORIG; no recording_log row of this server has this filename, so no location was written",
                pair::mix_name(stem)
            ),
        }
        self.count(MixEvent::Mixed).await;
        if row.is_none() {
            self.count(MixEvent::NoRow).await;
        }
    }

    /// A leg without its partner: true if it is the rest of a run a crash
    /// cut short between the two moves (and is moved now), false for an
    /// orphan.
    async fn take_lone(&self, stem: &str, side: Side, leg: &LegFile) -> Result<bool, Hold> {
        let (done, orig, s, path) = (
            self.config.done.clone(),
            self.config.orig(),
            stem.to_string(),
            leg.path.clone(),
        );
        let finished = blocking(move || {
            if !pair::interrupted_move(&done, &orig, &s, side, &path)? {
                return Ok(false);
            }
            pair::move_leg(&path, &orig).map(|()| true)
        })
        .await?;
        if finished {
            tracing::info!(
                recording = stem,
                "moved the leg an interrupted run left in MIX to ORIG"
            );
            self.count(MixEvent::Mixed).await;
        }
        Ok(finished)
    }

    /// A pair or leg that cannot be mixed: after `orphan_after` its legs go
    /// to ORIG as they are; until then it waits (logged once, and not read
    /// again while its legs stay the same).
    async fn give_up_or_wait(&self, stem: &str, legs: &Legs, why: &str, now: i64, pass: &mut Pass) {
        let give_up_at = legs.last_write_ns() + nanos(self.config.orphan_after);
        if now < give_up_at {
            if self.waiting().hold(stem, legs, why, give_up_at) {
                tracing::warn!(
                    recording = stem,
                    "move_mix: not mixed ({why}); its legs wait in MIX, and go to ORIG unmixed after move_mix_orphan_after ({})",
                    humantime::format_duration(self.config.orphan_after)
                );
            }
            pass.due(give_up_at);
            return;
        }
        for (_, leg) in legs.present() {
            let (path, orig) = (leg.path.clone(), self.config.orig());
            match blocking(move || pair::move_leg(&path, &orig)).await {
                Ok(()) => {
                    tracing::warn!(path = %leg.path.display(), "move_mix: moved to ORIG unmixed ({why}); recording_log left alone");
                    self.count(MixEvent::Unmixed).await;
                    pass.unmixed += 1;
                }
                Err(hold) => {
                    let text = hold_text(&hold);
                    let retry = now + nanos(self.config.orphan_after);
                    if self.waiting().hold(stem, legs, &text, retry) {
                        tracing::error!(path = %leg.path.display(), "move_mix: cannot move to ORIG ({text}); left in MIX");
                    }
                    pass.due(retry);
                }
            }
        }
    }

    async fn count(&self, event: MixEvent) {
        let at = now_secs();
        if let Err(e) = self
            .ledger
            .call(move |l| l.count_mix_event(event, at))
            .await
        {
            tracing::warn!(
                "move_mix: cannot count {} in the ledger: {e}",
                event.as_str()
            );
        }
    }
}

fn hold_text(hold: &Hold) -> String {
    match hold {
        Hold::Unmixable(why) => why.clone(),
        Hold::Changed => "changed while it was read".into(),
        Hold::Db(e) => e.to_string(),
        Hold::Io(e) => e.to_string(),
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// What the MIX directory holds now, for `recvault status`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Survey {
    /// Names with both legs.
    pub pairs: usize,
    /// Legs without their partner.
    pub lone: usize,
    /// Files that are not legs (never touched).
    pub others: usize,
    /// The oldest last write of a leg there (ns).
    pub oldest_ns: Option<i64>,
}

/// Lists `dir` for `status`.
pub fn survey(dir: &Path) -> std::io::Result<Survey> {
    let listing = legs::list(dir)?;
    let mut s = Survey {
        others: listing.others.len(),
        ..Survey::default()
    };
    for l in listing.legs.values() {
        match l.present().len() {
            2 => s.pairs += 1,
            _ => s.lone += 1,
        }
        for (_, leg) in l.present() {
            let t = leg.identity.mtime_ns;
            s.oldest_ns = Some(s.oldest_ns.map_or(t, |o: i64| o.min(t)));
        }
    }
    Ok(s)
}
