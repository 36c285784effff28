//! `recvault find`: one number however it is typed, every recording wherever
//! it is, the holds covering it, and refusals of requests about nothing.

use super::*;

#[test]
fn a_number_typed_three_ways_finds_the_same_recordings_wherever_they_are() {
    let site = site("find", Target::Local, DUE_NOW);
    let (a, age_a) = call("SALES", 3, "5551234567");
    // VICIdial named this one with the country code: the same caller.
    let (b, age_b) = call("COLLECT", 2, "15551234567");
    let (other, age_o) = call("SALES", 1, "5559876543");
    put_recording(&site.spool, &a, &wav(0.5, 1), age_a);
    put_recording(&site.spool, &b, &wav(0.5, 2), age_b);
    put_recording(&site.spool, &other, &wav(0.5, 3), age_o);
    ok(&site, &["run", "--once"]);
    // One more that is still only local (never archived).
    site.set_option("spool", "upload_after", "\"30d\"");
    let (c, age_c) = call("SALES", 0, "5551234567");
    put_recording(&site.spool, &c, &wav(0.5, 4), age_c);
    ok(&site, &["run", "--once"]);

    let forms = ["+1 555-123-4567", "15551234567", "5551234567"];
    let sets: Vec<Vec<i64>> = forms
        .iter()
        .map(|p| found_ids(&site, &["--phone", p]))
        .collect();
    assert_eq!(sets[0].len(), 3, "{sets:?}");
    assert!(sets.iter().all(|s| *s == sets[0]), "{sets:?}");

    // Kinds narrow; the text output names where each copy is.
    assert_eq!(
        found_ids(&site, &["--phone", "5551234567", "--campaign", "SALES"]).len(),
        2
    );
    assert_eq!(found_ids(&site, &["--agent", "agent7"]).len(), 4);
    let text = ok(&site, &["find", "--phone", "5551234567"]);
    assert!(text.contains("store "), "{text}");
    assert!(text.contains("local "), "{text}");
    assert!(
        text.contains("3 recordings match phone=5551234567"),
        "{text}"
    );

    // A hold shows with its case.
    ok(
        &site,
        &[
            "hold",
            "add",
            "CASE-3",
            "--reason",
            "dispute",
            "--phone",
            "+1 (555) 123-4567",
        ],
    );
    let text = ok(
        &site,
        &["find", "--phone", "5551234567", "--campaign", "COLLECT"],
    );
    assert!(text.contains("\tCASE-3\t"), "{text}");
    assert!(text.contains("(1 under a legal hold)"), "{text}");
    let json = ok(&site, &["find", "--json", "--phone", "5551234567"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let held = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["held_by"][0] == "CASE-3");
    assert_eq!(held.count(), 3, "the hold covers every call of the number");
}

#[test]
fn requests_about_nothing_or_no_one_say_so() {
    let site = site("find-bad", Target::Local, DUE_NOW);
    let (a, age) = call("SALES", 1, "5551234567");
    put_recording(&site.spool, &a, &wav(0.2, 1), age);
    ok(&site, &["run", "--once"]);

    let out = site.recvault(&["find"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("at least one selector"),
        "{}",
        stderr(&out)
    );
    for bad in [
        &["find", "--phone", "555-CALL"][..],
        &["find", "--agent", ""],
        &["find", "--from", "2026-03-02", "--to", "2026-03-01"],
        &["find", "--from", "yesterday"],
    ] {
        let out = site.recvault(bad);
        expect_code(&out, 2);
        assert!(stdout(&out).is_empty(), "{bad:?} printed {}", stdout(&out));
    }
    let text = ok(&site, &["find", "--phone", "5550000000"]);
    assert!(
        text.contains("no recording matches phone=5550000000"),
        "{text}"
    );
    assert_eq!(found_ids(&site, &["--lead", "42"]), Vec::<i64>::new());
}
