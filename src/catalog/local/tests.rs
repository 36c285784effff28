//! One box's catalog over a real ledger: what each answer says, and that a
//! change made through it is the same change the commands always made.

use std::sync::Arc;

use super::LocalCatalog;
use crate::catalog::*;
use crate::config::{Config, Keep};
use crate::ledger::Ledger;
use crate::ledger::fixtures::insert_call;

const DAY: i64 = 86_400;

fn site() -> (tempfile::TempDir, Arc<Ledger>, LocalCatalog) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[ledger]\npath = \"{0}/ledger.sqlite3\"\n[spool]\ndirs = [\"{0}/spool\"]\n\
         [daemon]\nhost = \"box-a\"\n[retention]\ndefault = \"30d\"\n",
        dir.path().display()
    );
    let config = Config::parse(&dir.path().join("r.toml"), &text).unwrap();
    let ledger = Arc::new(Ledger::open(&config.ledger.path).unwrap());
    let catalog = LocalCatalog::new(Arc::new(config), ledger.clone());
    (dir, ledger, catalog)
}

fn actor() -> Actor {
    Actor {
        uid: 0,
        user: "root".into(),
    }
}

#[tokio::test]
async fn one_box_answers_for_itself_by_host_and_id() {
    let (_dir, ledger, catalog) = site();
    let now = crate::units::now_secs();
    let old = insert_call(&ledger, "old.wav", "SALES", "5551234567", now - 40 * DAY);
    let new = insert_call(&ledger, "new.wav", "SALES", "5557654321", now - DAY);
    assert_eq!(
        catalog.scope(),
        Scope::Box {
            host: "box-a".into()
        }
    );

    let search = Search {
        selectors: vec![Selector::Campaign("SALES".into())],
        ..Search::default()
    };
    let page = catalog.search(&search).await.unwrap();
    assert_eq!(page.total, Some(2));
    let refs: Vec<String> = page
        .entries
        .iter()
        .map(|e| e.reference().to_string())
        .collect();
    assert_eq!(refs, [format!("box-a/{old}"), format!("box-a/{new}")]);
    let elsewhere = Search {
        host: Some("box-b".into()),
        ..search.clone()
    };
    assert!(catalog.search(&elsewhere).await.unwrap().entries.is_empty());

    // A hold: previewed, placed, shown with what it covers, and on the detail.
    let phone = vec![Selector::Phone("5551234567".into())];
    let preview = catalog.hold_preview(&phone).await.unwrap();
    assert_eq!(preview.recordings, 1);
    assert_eq!(preview.per_host.get("box-a"), Some(&1));
    assert!(
        catalog
            .hold_preview(&[])
            .await
            .unwrap_err()
            .to_string()
            .contains("selector")
    );
    let new_hold = NewHold {
        case_id: "CASE-1".into(),
        reason: "subpoena".into(),
        selectors: phone.clone(),
    };
    let placed = catalog.place_hold(&actor(), &new_hold).await.unwrap();
    assert_eq!(placed.coverage.recordings, 1);
    assert_eq!(
        placed.aftermath,
        Aftermath::default(),
        "no store: nothing copied"
    );
    let holds = catalog.holds(None).await.unwrap();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].coverage.as_ref().unwrap().recordings, 1);
    let which = RecordingRef {
        host: "box-a".into(),
        id: old,
    };
    let detail = catalog.recording(&which).await.unwrap();
    assert_eq!(detail.entry.held_by, ["CASE-1"]);
    assert_eq!(detail.holds[0].case_id, "CASE-1");
    let missing = RecordingRef {
        host: "box-b".into(),
        id: old,
    };
    assert!(matches!(
        catalog.recording(&missing).await,
        Err(CatalogError::NotFound(_))
    ));
    let held = Search {
        held: Some(true),
        ..Search::default()
    };
    assert_eq!(catalog.search(&held).await.unwrap().total, Some(1));

    // Retention: the policy is the config file's; a change is previewed
    // (shorter: the new call goes sooner), never applied here.
    let view = catalog.retention().await.unwrap();
    assert!(!view.editable && view.rules.default == Keep::parse("30d").unwrap());
    let change = RetentionChange {
        campaign: Some("SALES".into()),
        keep: Some(Keep::parse("1d").unwrap()),
    };
    let impact = catalog.retention_preview(&change).await.unwrap();
    let now_due: Vec<_> = impact.sooner.iter().filter(|r| r.due.is_none()).collect();
    assert_eq!(now_due.len(), 1, "{impact:?}");
    assert_eq!(
        now_due[0].recordings, 1,
        "only the new call: the old one is due already"
    );
    let err = catalog
        .retention_apply(&actor(), &change)
        .await
        .unwrap_err();
    assert!(
        !err.is_retryable() && err.to_string().contains("[retention]"),
        "{err}"
    );

    // Erasure: the held call is kept, the other reserved; progress follows.
    let all = vec![Selector::Campaign("SALES".into())];
    let plan = catalog.erasure_preview("T-1", &all).await.unwrap();
    assert_eq!(plan.left().0, 1);
    assert_eq!(plan.held().count(), 1);
    let wrong = catalog
        .erasure_confirm(&actor(), "T-1", &all, Some("nope"))
        .await
        .unwrap();
    assert!(matches!(wrong, ErasureConfirmation::Changed(_)));
    let right = catalog
        .erasure_confirm(&actor(), "T-1", &all, Some(&plan.token))
        .await
        .unwrap();
    assert!(matches!(right, ErasureConfirmation::Reserved(_)));
    let progress = catalog.erasure_progress("T-1").await.unwrap();
    assert_eq!(progress.counts(), [0, 0, 1, 0]);
    assert!(!progress.complete && progress.open[0].host == "box-a");

    let overview = catalog.overview().await.unwrap();
    assert_eq!(overview[0].host, "box-a");
    assert_eq!(overview[0].waiting, 2);
    assert!(!overview[0].disks.is_empty());
}

#[tokio::test]
async fn streams_walk_every_result_in_order() {
    let (_dir, ledger, catalog) = site();
    let ids: Vec<i64> = (0..7)
        .map(|i| insert_call(&ledger, &format!("{i}.wav"), "S", "555", 100 + i))
        .collect();
    let catalog: Arc<dyn Catalog> = Arc::new(catalog);
    use futures_util::StreamExt;
    let seen: Vec<i64> = stream(catalog, Search::default(), 3)
        .map(|e| e.unwrap().id)
        .collect()
        .await;
    assert_eq!(seen, ids);
}
