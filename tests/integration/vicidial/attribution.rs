//! Attribution of default `FULLDATE_CUSTPHONE` recordings from the database.

use std::time::Duration;

use recvault::vicidial::attribution::{Attributed, AttributionSource, CallAttribution, FileQuery};
use recvault::vicidial::row_match::FileTimes;

use super::{Fixture, SERVER_IP};
use crate::vicidial_fixture;

/// `[naming] time_tolerance`'s default.
pub const DAY: Duration = Duration::from_secs(86_400);

/// A file written after every call of these tests (2033), of unknown
/// length: the only row of a name is its row.
pub const LATE: FileTimes = FileTimes {
    mtime: 2_000_000_000,
    name_time: None,
    duration: None,
};

/// An outbound call (vicidial_log), an inbound call (vicidial_closer_log)
/// and two that only the lead's list attributes.
async fn calls(fx: &mut Fixture) {
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, channel, server_ip, extension, start_time, \
             start_epoch, length_in_sec, filename, location, lead_id, user, vicidial_id) VALUES \
         (1001, 'Local/58600051@default', '{SERVER_IP}', '5551234567', '2026-03-01 10:15:00', \
             1772360100, 95, '20260301-101500_5551234567', \
             'http://{SERVER_IP}/RECORDINGS/20260301-101500_5551234567-all.wav', 501, 'VDAD', \
             '1772360100.1234'), \
         (1002, 'SIP/1002-0000001', '{SERVER_IP}', '8600051', '2026-03-01 11:15:00', \
             1772363700, 240, '20260301-111500_5559876543', NULL, 502, '1002', '7001'), \
         (1003, 'SIP/1003-0000002', '{SERVER_IP}', '8600052', '2026-03-01 12:00:00', \
             1772366400, NULL, '20260301-120000_5550001111', NULL, 503, '1003', \
             'M3011200000000503'), \
         (1004, 'SIP/1003-0000003', '{SERVER_IP}', '8600052', '2026-03-01 12:30:00', \
             1772368200, 30, '20260301-123000_5550002222', NULL, 504, '1003', '1772368200.99')"
    ))
    .await;
    fx.exec(
        "INSERT INTO vicidial_log (uniqueid, lead_id, list_id, campaign_id, call_date, \
             start_epoch, end_epoch, length_in_sec, status, phone_code, phone_number, user) VALUES \
         ('1772360100.1234', 501, 101, 'SALES', '2026-03-01 10:14:58', 1772360098, 1772360218, \
             120, 'SALE', '1', '5551234567', '1001')",
    )
    .await;
    fx.exec(
        "INSERT INTO vicidial_closer_log (closecallid, lead_id, list_id, campaign_id, call_date, \
             start_epoch, length_in_sec, status, phone_code, phone_number, user, uniqueid) VALUES \
         (7001, 502, 102, 'SUPPORT_IN', '2026-03-01 11:14:50', 1772363690, 250, 'A', '1', \
             '5559876543', '1002', '1772363690.55')",
    )
    .await;
    // The lists' campaigns differ from the logs': the logs must win.
    fx.exec(
        "INSERT INTO vicidial_list (lead_id, list_id, phone_code, phone_number, status) VALUES \
         (501, 101, '1', '5551234567', 'SALE'), (502, 102, '1', '5559876543', 'A'), \
         (503, 103, '1', '5550001111', 'NEW'), (504, 103, '1', '5550002222', 'NEW')",
    )
    .await;
    fx.exec(
        "INSERT INTO vicidial_lists (list_id, list_name, campaign_id, active) VALUES \
         (101, 'old list', 'OLDCAMP', 'Y'), (102, 'inbound', 'SALES', 'Y'), \
         (103, 'collections', 'COLLECT', 'Y')",
    )
    .await;
}

async fn one(fx: &Fixture, file: &str) -> CallAttribution {
    match fx.db.attribute(file, LATE, DAY).await.unwrap() {
        Attributed::Found(a) => a,
        other => panic!("{file}: {other:?}"),
    }
}

#[tokio::test]
async fn outbound_call_from_vicidial_log() {
    let Some(mut fx) = vicidial_fixture!("outbound") else {
        return;
    };
    calls(&mut fx).await;
    let a = one(&fx, "20260301-101500_5551234567-all.wav").await;
    assert_eq!(a.recording_id, 1001);
    assert_eq!(a.source, AttributionSource::OutboundCall);
    assert_eq!(a.campaign.as_deref(), Some("SALES"));
    assert_eq!(a.lead_id, Some(501));
    assert_eq!(a.phone.as_deref(), Some("5551234567"));
    // recording_log.user is the dialer's VDAD; the call's agent is in the log.
    assert_eq!(a.agent.as_deref(), Some("1001"));
    assert_eq!((a.started_at, a.length_secs), (Some(1772360100), Some(95)));
    assert_eq!(a.vicidial_id.as_deref(), Some("1772360100.1234"));
}

#[tokio::test]
async fn inbound_call_from_vicidial_closer_log() {
    let Some(mut fx) = vicidial_fixture!("inbound") else {
        return;
    };
    calls(&mut fx).await;
    // The ORIG/ leg names the same row.
    let a = one(&fx, "20260301-111500_5559876543-in.wav").await;
    assert_eq!(a.recording_id, 1002);
    assert_eq!(a.source, AttributionSource::InboundCall);
    assert_eq!(a.campaign.as_deref(), Some("SUPPORT_IN"));
    assert_eq!(a.lead_id, Some(502));
    assert_eq!(a.phone.as_deref(), Some("5559876543"));
    assert_eq!(a.agent.as_deref(), Some("1002"));
    assert_eq!((a.started_at, a.length_secs), (Some(1772363700), Some(240)));
}

#[tokio::test]
async fn fallback_through_the_leads_list() {
    let Some(mut fx) = vicidial_fixture!("fallback") else {
        return;
    };
    calls(&mut fx).await;
    // A manual-dial caller id never replaced by the uniqueid.
    let a = one(&fx, "20260301-120000_5550001111-all.mp3").await;
    assert_eq!(a.source, AttributionSource::LeadList);
    assert_eq!(a.campaign.as_deref(), Some("COLLECT"));
    assert_eq!(a.phone.as_deref(), Some("5550001111"));
    assert_eq!(a.agent.as_deref(), Some("1003"));
    // Length not written yet (the recording was never mixed).
    assert_eq!((a.started_at, a.length_secs), (Some(1772366400), None));
    // A uniqueid whose vicidial_log row is gone (archived).
    let a = one(&fx, "20260301-123000_5550002222-ALL.WAV").await;
    assert_eq!(a.source, AttributionSource::LeadList);
    assert_eq!(a.campaign.as_deref(), Some("COLLECT"));
    assert_eq!(a.lead_id, Some(504));
}

#[tokio::test]
async fn only_the_recording_row() {
    let Some(mut fx) = vicidial_fixture!("rec_only") else {
        return;
    };
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, start_epoch, filename, lead_id, \
             user, vicidial_id) VALUES (1, '{SERVER_IP}', 1772360100, 'conf_8600051', 0, 'VDCL', '')"
    ))
    .await;
    let a = one(&fx, "conf_8600051-all.wav").await;
    assert_eq!(a.source, AttributionSource::RecordingOnly);
    assert_eq!(
        (a.campaign, a.lead_id, a.agent, a.phone),
        (None, None, None, None)
    );
}

#[tokio::test]
async fn repeated_names_are_told_apart_by_their_times_never_by_the_newest() {
    let Some(mut fx) = vicidial_fixture!("repeated") else {
        return;
    };
    const T: i64 = 1_772_360_100;
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, start_epoch, end_epoch, length_in_sec, \
             filename, lead_id, user) VALUES \
         (2001, '{SERVER_IP}', {T}, {}, 60, '5551234567', 601, 'a1'), \
         (2005, '{SERVER_IP}', {}, {}, 30, '5551234567', 602, 'a2'), \
         (2009, '10.0.0.6', {T}, {}, 60, '5551234567', 603, 'a4'), \
         (2010, '10.0.0.6', {T}, {}, 60, '5557770000', 603, 'a5'), \
         (2011, '{SERVER_IP}', NULL, NULL, NULL, 'conf_1', 0, 'a6'), \
         (2012, '{SERVER_IP}', NULL, NULL, NULL, 'conf_1', 0, 'a7')",
        T + 60,
        T + 3 * 86_400,
        T + 3 * 86_400 + 30,
        T + 60,
        T + 60,
    ))
    .await;
    let file = |mtime: i64, duration: u32| FileTimes {
        mtime,
        name_time: None,
        duration: Some(duration),
    };
    let name = "5551234567-all.wav";
    // The older call's file, attributed after the newer call happened.
    let older = fx.db.attribute(name, file(T + 240, 60), DAY).await.unwrap();
    assert_eq!(
        older.found().map(|a| (a.recording_id, a.agent.as_deref())),
        Some((2001, Some("a1")))
    );
    let newer = fx
        .db
        .attribute(name, file(T + 3 * 86_400 + 200, 30), DAY)
        .await
        .unwrap();
    assert_eq!(newer.found().map(|a| a.recording_id), Some(2005));
    // The row's own times come back, for the ledger's event.
    let a = older.found().unwrap();
    assert_eq!(
        (a.row.start, a.row.end, a.row.length),
        (Some(T), Some(T + 60), Some(60))
    );
    // Finished before either call began: neither, said and not guessed.
    let Attributed::Ambiguous(why) = fx
        .db
        .attribute(name, file(T - 3600, 60), DAY)
        .await
        .unwrap()
    else {
        panic!("guessed a row for a file older than both calls");
    };
    assert!(why.contains("2001, 2005"), "{why}");
    // Two rows without times: nothing to tell them apart.
    let Attributed::Ambiguous(why) = fx.db.attribute("conf_1-all.wav", LATE, DAY).await.unwrap()
    else {
        panic!("guessed between rows without times");
    };
    assert!(why.contains("2011, 2012"), "{why}");
    // Only another server recorded this name: not ours.
    assert_eq!(
        fx.db
            .attribute("5557770000-all.wav", LATE, DAY)
            .await
            .unwrap(),
        Attributed::Missing
    );
    assert_eq!(
        fx.db
            .attribute("20991231-000000_0000000000-all.wav", LATE, DAY)
            .await
            .unwrap(),
        Attributed::Missing
    );
}

#[tokio::test]
async fn batch_keeps_order_across_statements() {
    let Some(mut fx) = vicidial_fixture!("batch") else {
        return;
    };
    calls(&mut fx).await;
    // 150 more rows: the batch needs two statements of 100 names.
    let rows: Vec<String> = (0..150)
        .map(|i| format!("({}, '{SERVER_IP}', 'bulk_{i:03}', 503)", 5000 + i))
        .collect();
    fx.exec(&format!(
        "INSERT INTO recording_log (recording_id, server_ip, filename, lead_id) VALUES {}",
        rows.join(", ")
    ))
    .await;
    let mut names: Vec<String> = (0..150)
        .rev()
        .map(|i| format!("bulk_{i:03}-all.wav"))
        .collect();
    names.insert(3, "20260301-111500_5559876543-all.wav".into());
    names.insert(7, "missing-all.wav".into());
    names.insert(120, "20260301-101500_5551234567-out.wav".into());
    let files: Vec<FileQuery<'_>> = names
        .iter()
        .map(|name| FileQuery { name, times: LATE })
        .collect();
    let got = fx.db.attribute_batch(&files, DAY).await.unwrap();
    assert_eq!(got.len(), names.len());
    for (name, a) in names.iter().zip(&got) {
        match name.strip_prefix("bulk_") {
            Some(rest) => {
                let i: u32 = rest[..3].parse().unwrap();
                let a = a.found().unwrap_or_else(|| panic!("{name}"));
                assert_eq!(a.recording_id, 5000 + i, "{name}");
                assert_eq!(a.campaign.as_deref(), Some("COLLECT"), "{name}");
            }
            None if name.starts_with("missing") => assert_eq!(a, &Attributed::Missing),
            None => assert!(a.found().is_some(), "{name}"),
        }
    }
    assert_eq!(got[3].found().unwrap().recording_id, 1002);
    assert_eq!(got[120].found().unwrap().recording_id, 1001);
    assert!(fx.db.attribute_batch(&[], DAY).await.unwrap().is_empty());
}
