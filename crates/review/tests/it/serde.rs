//! Options as a configuration file gives them, reports as the engine stores and sends them.

use kamachiq_review::{DEFAULT_PROTECTED, Diff, Finding, Guard, Guards, Options, Report};

#[test]
fn an_empty_configuration_is_the_defaults() {
    let options: Options = serde_json::from_str("{}").unwrap();
    assert_eq!(options, Options::default());
    assert_eq!(options.protected.len(), DEFAULT_PROTECTED.len());
    assert_eq!(options.max_files, Some(20));
    assert_eq!(options.max_changed_lines, Some(1000));
    assert!(options.secret_scan);
    assert_eq!(options.entropy_threshold, 4.5);
    assert!(options.allow_secrets_in.is_empty());
}

#[test]
fn a_configuration_names_only_what_it_changes() {
    let options: Options = serde_json::from_str(
        r#"{"max_files": 50, "max_changed_lines": null, "allow_secrets_in": ["tests/fixtures/**"]}"#,
    )
    .unwrap();
    assert_eq!(
        options,
        Options {
            max_files: Some(50),
            max_changed_lines: None,
            allow_secrets_in: vec!["tests/fixtures/**".to_owned()],
            ..Options::default()
        }
    );
}

#[test]
fn unknown_options_are_rejected_by_name() {
    let error = serde_json::from_str::<Options>(r#"{"max_file": 5}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown field `max_file`, expected one of `protected`, `max_files`, \
         `max_changed_lines`, `secret_scan`, `entropy_threshold`, `allow_secrets_in` \
         at line 1 column 11"
    );
}

#[test]
fn reports_serialize_with_snake_case_guards() {
    let diff =
        Diff::parse("diff --git a/.env b/.env\nnew file mode 100644\nindex 0000000..e69de29\n")
            .unwrap();
    let report = Guards::new(&Options::default()).unwrap().check(&diff);
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(
        json,
        r#"{"stats":{"files":1,"lines_added":0,"lines_removed":0},"findings":[{"guard":"protected_path","code":"protected_path","path":".env","line":null,"message":"adds protected path `.env` (matches `.env`)"}]}"#
    );
    assert_eq!(serde_json::from_str::<Report>(&json).unwrap(), report);
}

#[test]
fn findings_deserialize() {
    let finding: Finding = serde_json::from_str(
        r#"{"guard":"diff_size","code":"diff_too_large","path":null,"line":null,"message":"m"}"#,
    )
    .unwrap();
    assert_eq!(finding.guard, Guard::DiffSize);
    assert_eq!(finding.code, kamachiq_review::code::DIFF_TOO_LARGE);
}

#[test]
fn diffs_serialize_their_statuses_in_snake_case() {
    let diff =
        Diff::parse("diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n").unwrap();
    let json = serde_json::to_value(&diff).unwrap();
    assert_eq!(json["files"][0]["status"], "mode_changed");
}
