//! A policy set's own tests: every rule named `test_*`, run with regorus's interpreter.

use std::time::{Duration, Instant};

use regorus::Value;
use serde::{Deserialize, Serialize};

use super::PolicySet;
use super::render::one_line;

impl PolicySet {
    /// Runs every rule named `test_*`, in any package, with regorus's interpreter (tests may use
    /// `with`, which the VM does not support). A test passes when it evaluates to `true`; an
    /// undefined or other result fails it, an error is reported as such.
    pub fn run_tests(&self) -> TestReport {
        let results = self
            .inner
            .tests
            .iter()
            .map(|(package, name)| {
                let mut engine = self.inner.engine.clone();
                let started = Instant::now();
                let result = engine.eval_rule(format!("{package}.{name}"));
                let duration = started.elapsed();
                let (passed, error) = match result {
                    Ok(Value::Bool(true)) => (true, None),
                    Ok(_) => (false, None),
                    Err(e) => (false, Some(one_line(&e.to_string()))),
                };
                TestResult {
                    package: package.clone(),
                    name: name.clone(),
                    passed,
                    error,
                    duration,
                }
            })
            .collect();
        TestReport { results }
    }
}

/// The outcome of [`PolicySet::run_tests`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    pub results: Vec<TestResult>,
}

/// One test rule's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// `data.kamachiq_test`.
    pub package: String,
    /// `test_merge_needs_approval`.
    pub name: String,
    pub passed: bool,
    /// Why it could not be evaluated; `None` when it ran (passed or not).
    pub error: Option<String>,
    pub duration: Duration,
}

impl TestReport {
    /// Whether every test passed (true when there are none).
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    pub fn passed_count(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// Tests that ran and did not give `true`.
    pub fn failed_count(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !r.passed && r.error.is_none())
            .count()
    }

    /// Tests that could not be evaluated.
    pub fn errored_count(&self) -> usize {
        self.results.iter().filter(|r| r.error.is_some()).count()
    }
}

/// Identifiers in `source` that start with `test_`: candidate test rules, confirmed as rules by
/// regorus before they are run.
pub(super) fn test_candidates(source: &str) -> Vec<String> {
    let bytes = source.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = source.get(i..).and_then(|rest| rest.find("test_")) {
        let start = i + at;
        let mut end = start + "test_".len();
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        let preceded = start > 0 && (is_ident(bytes[start - 1]) || bytes[start - 1] == b'.');
        if !preceded && let Some(name) = source.get(start..end) {
            let name = name.to_owned();
            if !found.contains(&name) {
                found.push(name);
            }
        }
        i = end;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn print_is_refused_in_decision_rules_and_quiet_in_tests() {
        let err = compile_err(vec![module(
            "p.rego",
            "package kamachiq\ndeny contains \"x\" if {\n  print(\"checking\")\n}\n",
        )]);
        assert_eq!(
            err.to_string(),
            "Compilation error: Missing builtin function: print"
        );
        let report = set("package t\ntest_prints if {\n  print(\"to nobody\")\n}\n").run_tests();
        assert!(report.passed(), "{report:?}");
    }

    #[test]
    fn tests_pass_fail_and_error() {
        let set = PolicySet::compile(
            1,
            vec![
                module(
                    "kamachiq.rego",
                    "package kamachiq\ndeny contains \"merge\" if input.action == \"merge\"\n",
                ),
                module(
                    "kamachiq_test.rego",
                    r#"package kamachiq_test
                    import data.kamachiq
                    # test_in_a_comment is not a test
                    test_merge_denied if "merge" in kamachiq.deny with input as {"action": "merge"}
                    test_wrong if "merge" in kamachiq.deny with input as {"action": "provision"}
                    conflicting := 1 if true
                    conflicting := 2 if true
                    test_broken if conflicting == 1
                    not_a_test_x := 1
                    "#,
                ),
            ],
        )
        .unwrap();
        let report = set.run_tests();
        let summary: Vec<(&str, &str, bool, bool)> = report
            .results
            .iter()
            .map(|r| {
                (
                    r.package.as_str(),
                    r.name.as_str(),
                    r.passed,
                    r.error.is_some(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("data.kamachiq_test", "test_merge_denied", true, false),
                ("data.kamachiq_test", "test_wrong", false, false),
                ("data.kamachiq_test", "test_broken", false, true),
            ]
        );
        assert!(!report.passed());
        assert_eq!(report.passed_count(), 1);
        assert_eq!(report.failed_count(), 1);
        assert_eq!(report.errored_count(), 1);
        let error = report.results[2].error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("kamachiq_test.rego:"),
            "the error names the place: {error}"
        );
    }

    #[test]
    fn no_tests_is_a_pass() {
        let report = set("package kamachiq\n").run_tests();
        assert_eq!(report.results, []);
        assert!(report.passed());
    }

    #[test]
    fn test_candidates_are_identifiers_starting_with_test() {
        assert_eq!(
            test_candidates("test_a if x\nmy_test_b := 1\ny := data.p.test_c\n test_d\ntest_"),
            ["test_a", "test_d", "test_"]
        );
    }
}
