//! Replaying recorded decisions against a candidate policy set.

use kamachiq_policy::{Input, PolicySet, Recorded, Verdict, load_dir, replay};

use crate::support::{examples_dir, merge, tenant};

fn record(id: &str, input: Input, verdict: Verdict) -> Recorded {
    Recorded {
        id: id.into(),
        input,
        verdict,
    }
}

/// Decisions made without Rego policies: two merges the example policy would send for review,
/// one it lets through, and one the built-in guards deny either way.
fn records() -> Vec<Recorded> {
    let trusted = merge();
    let mut untrusted = merge();
    if let Some(d) = untrusted.deliverable.as_mut() {
        d.persona = Some("sre.v1".into());
    }
    let mut abroad = merge();
    abroad.region = "us-east-1".into();
    let mut protected = merge();
    if let Some(d) = protected.deliverable.as_mut() {
        d.id = "billing".into();
    }
    vec![
        record("trusted", trusted, Verdict::Allow),
        record("untrusted", untrusted, Verdict::Allow),
        record("abroad", abroad, Verdict::Deny),
        record("protected", protected, Verdict::Allow),
    ]
}

#[test]
fn replay_reports_exactly_the_records_whose_verdict_changes() {
    let candidate = PolicySet::compile(2, load_dir(&examples_dir()).unwrap()).unwrap();
    let records = records();
    let changes = replay(&records, &tenant(), Some(&candidate));
    let summary: Vec<(&str, Verdict, Verdict, Option<u32>)> = changes
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.before,
                c.after.verdict,
                c.after.policy_version,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "untrusted",
                Verdict::Allow,
                Verdict::RequireApproval,
                Some(2)
            ),
            (
                "protected",
                Verdict::Allow,
                Verdict::RequireApproval,
                Some(2)
            ),
        ]
    );
    assert_eq!(changes[0].after.reasons[0].code, "untrusted_persona_merge");
    assert_eq!(changes[1].after.reasons[0].code, "protected_deliverable");
}

#[test]
fn replaying_with_what_decided_them_changes_nothing() {
    let records = records();
    assert_eq!(replay(&records, &tenant(), None), []);
}

#[test]
fn replay_takes_any_iterator_of_records() {
    let records = records();
    let candidate = PolicySet::compile(
        5,
        vec![kamachiq_policy::Module {
            name: "stop.rego".into(),
            source: "package kamachiq\ndeny contains \"frozen\" if input.action == \"merge\"\n"
                .into(),
        }],
    )
    .unwrap();
    let changes = replay(records.iter().skip(1), &tenant(), Some(&candidate));
    let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["untrusted", "protected"]);
    assert!(changes.iter().all(|c| c.after.verdict == Verdict::Deny));
}
