//! Reading what the decision rules gave: reasons, a score, a risk, or a `policy_error` for a
//! result of the wrong shape.

use std::fmt;

use regorus::Value;

use super::{Entry, Kind, Outcome};
use crate::decision::{Reason, Risk, code};

/// Reads what one decision rule gave into `out`. A result of the wrong shape is a
/// `policy_error` deny reason.
pub(super) fn read(entry: &Entry, value: &Value, out: &mut Outcome) {
    match entry.kind {
        Kind::Deny => {
            let (reasons, errors) = read_reasons(entry, value, code::POLICY_DENY);
            out.deny.extend(reasons);
            out.deny.extend(errors);
        }
        Kind::RequireApproval => {
            let (reasons, errors) = read_reasons(entry, value, code::POLICY_REQUIRES_APPROVAL);
            out.require_approval.extend(reasons);
            out.deny.extend(errors);
        }
        Kind::Score => match value {
            Value::Undefined => {}
            Value::Number(_) if value.as_f64().is_ok_and(|s| (0.0..=1.0).contains(&s)) => {
                out.score = value.as_f64().ok();
            }
            _ => out.deny.push(policy_error(
                &entry.label,
                format!("must be a number in [0, 1], got {}", show(value)),
            )),
        },
        Kind::Risk => match value {
            Value::Undefined => {}
            Value::String(s) if Risk::from_name(s).is_some() => out.risk = Risk::from_name(s),
            _ => out.deny.push(policy_error(
                &entry.label,
                format!(
                    "must be one of \"low\", \"medium\", \"high\", \"critical\", got {}",
                    show(value)
                ),
            )),
        },
    }
}

/// The reasons in a `deny` or `require_approval` result, and the errors in it. The result is a
/// set (or array) of strings and `{"code", "message"}` objects; an object whose values are all
/// `true` counts as the set of its keys, which is what Rego v1 makes of `deny[msg] if { ... }`.
fn read_reasons(entry: &Entry, value: &Value, default_code: &str) -> (Vec<Reason>, Vec<Reason>) {
    let mut reasons = Vec::new();
    let mut errors = Vec::new();
    let items: Vec<&Value> = match value {
        Value::Undefined => Vec::new(),
        Value::Set(set) => set.iter().collect(),
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) if map.values().all(|v| *v == Value::Bool(true)) => map.keys().collect(),
        _ => {
            errors.push(policy_error(
                &entry.label,
                format!(
                    "must be a set of strings or {{\"code\", \"message\"}} objects, got {}",
                    show(value)
                ),
            ));
            Vec::new()
        }
    };
    for item in items {
        match item {
            Value::String(message) => {
                reasons.push(Reason::new(default_code, &**message, &entry.label));
            }
            Value::Object(map) => {
                let message = map.get(&Value::from("message"));
                let code = map.get(&Value::from("code"));
                match (message, code) {
                    (Some(Value::String(message)), None) => {
                        reasons.push(Reason::new(default_code, &**message, &entry.label));
                    }
                    (Some(Value::String(message)), Some(Value::String(code)))
                        if !code.is_empty() =>
                    {
                        reasons.push(Reason::new(&**code, &**message, &entry.label));
                    }
                    _ => errors.push(policy_error(
                        &entry.label,
                        format!(
                            "an entry must have a string \"message\" and may have a non-empty \
                             string \"code\", got {}",
                            show(item)
                        ),
                    )),
                }
            }
            _ => errors.push(policy_error(
                &entry.label,
                format!(
                    "an entry must be a string or a {{\"code\", \"message\"}} object, got {}",
                    show(item)
                ),
            )),
        }
    }
    (reasons, errors)
}

pub(super) fn policy_error(rule: &str, message: impl fmt::Display) -> Reason {
    Reason::new(code::POLICY_ERROR, format!("{rule}: {message}"), rule)
}

/// A Rego value as JSON text, for messages.
pub(super) fn show(value: &Value) -> String {
    match value {
        Value::Undefined => "undefined".to_owned(),
        _ => serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Outcome;
    use super::super::fixtures::*;
    use crate::decision::Risk;

    #[test]
    fn deny_entries_may_be_strings_or_objects() {
        let out = eval(
            r#"package kamachiq
            deny contains "plain message" if input.action == "run_step"
            deny contains {"code": "protected_deliverable", "message": msg} if {
                input.deliverable.id == "api-svc"
                msg := sprintf("deliverable %s is protected", [input.deliverable.id])
            }
            deny contains {"message": "no code"} if true
            "#,
        );
        let rule = "data.kamachiq.deny (p.rego)";
        // In the set's order: strings, then objects by their keys and values.
        assert_eq!(
            out.deny,
            [
                reason("policy_deny", "plain message", rule),
                reason(
                    "protected_deliverable",
                    "deliverable api-svc is protected",
                    rule
                ),
                reason("policy_deny", "no code", rule),
            ]
        );
        assert_eq!(out.require_approval, []);
        assert_eq!(out.score, None);
        assert_eq!(out.risk, None);
    }

    #[test]
    fn require_approval_entries_may_be_strings_or_objects() {
        let out = eval(
            r#"package kamachiq
            require_approval contains "look at this" if true
            require_approval contains {"code": "big_change", "message": "many files"} if true
            "#,
        );
        let rule = "data.kamachiq.require_approval (p.rego)";
        assert_eq!(out.deny, []);
        assert_eq!(
            out.require_approval,
            [
                reason("policy_requires_approval", "look at this", rule),
                reason("big_change", "many files", rule),
            ]
        );
    }

    #[test]
    fn rules_that_do_not_fire_say_nothing() {
        let out = eval(
            r#"package kamachiq
            deny contains "never" if input.action == "merge"
            require_approval contains "never" if input.action == "merge"
            score := 0.1 if input.action == "merge"
            risk := "high" if input.action == "merge"
            "#,
        );
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn entries_of_the_wrong_shape_are_policy_errors() {
        let out = eval(
            r#"package kamachiq
            deny contains 42 if true
            deny contains {"code": "c"} if true
            deny contains {"code": "", "message": "empty code"} if true
            require_approval contains ["a", "list"] if true
            "#,
        );
        assert_eq!(
            out.deny,
            [
                reason(
                    "policy_error",
                    "data.kamachiq.deny (p.rego): an entry must be a string or a {\"code\", \
                     \"message\"} object, got 42",
                    "data.kamachiq.deny (p.rego)"
                ),
                reason(
                    "policy_error",
                    "data.kamachiq.deny (p.rego): an entry must have a string \"message\" and \
                     may have a non-empty string \"code\", got {\"code\":\"\",\"message\":\"empty \
                     code\"}",
                    "data.kamachiq.deny (p.rego)"
                ),
                reason(
                    "policy_error",
                    "data.kamachiq.deny (p.rego): an entry must have a string \"message\" and \
                     may have a non-empty string \"code\", got {\"code\":\"c\"}",
                    "data.kamachiq.deny (p.rego)"
                ),
                reason(
                    "policy_error",
                    "data.kamachiq.require_approval (p.rego): an entry must be a string or a \
                     {\"code\", \"message\"} object, got [\"a\",\"list\"]",
                    "data.kamachiq.require_approval (p.rego)"
                ),
            ]
        );
        assert_eq!(out.require_approval, []);
    }

    #[test]
    fn a_deny_that_is_not_a_set_is_a_policy_error() {
        let out = eval("package kamachiq\ndeny := 3\n");
        assert_eq!(
            out.deny,
            [reason(
                "policy_error",
                "data.kamachiq.deny (p.rego): must be a set of strings or {\"code\", \"message\"} \
                 objects, got 3",
                "data.kamachiq.deny (p.rego)"
            )]
        );
    }

    #[test]
    fn a_v1_partial_object_of_true_counts_as_a_set() {
        let out = eval("package kamachiq\ndeny[msg] if { msg := \"keyed\" }\n");
        assert_eq!(
            out.deny,
            [reason(
                "policy_deny",
                "keyed",
                "data.kamachiq.deny (p.rego)"
            )]
        );
    }

    #[test]
    fn a_score_in_range_is_read() {
        for (source, want) in [
            ("score := 0.25", 0.25),
            ("score := 0", 0.0),
            ("score := 1", 1.0),
            (
                "default score := 1.0\nscore := 0.5 if input.action == \"run_step\"",
                0.5,
            ),
        ] {
            let out = eval(&format!("package kamachiq\n{source}\n"));
            assert_eq!(out.score, Some(want), "{source}");
            assert_eq!(out.deny, [], "{source}");
        }
    }

    #[test]
    fn a_score_out_of_range_or_not_a_number_is_a_policy_error() {
        for (source, shown) in [
            ("score := 1.5", "1.5"),
            ("score := -0.1", "-0.1"),
            ("score := \"high\"", "\"high\""),
            ("score := true", "true"),
        ] {
            let out = eval(&format!("package kamachiq\n{source}\n"));
            assert_eq!(out.score, None, "{source}");
            assert_eq!(
                out.deny,
                [reason(
                    "policy_error",
                    &format!(
                        "data.kamachiq.score (p.rego): must be a number in [0, 1], got {shown}"
                    ),
                    "data.kamachiq.score (p.rego)"
                )],
                "{source}"
            );
        }
    }

    #[test]
    fn a_risk_is_read_by_name() {
        for risk in Risk::ALL {
            let out = eval(&format!("package kamachiq\nrisk := \"{risk}\"\n"));
            assert_eq!(out.risk, Some(risk));
            assert_eq!(out.deny, []);
        }
    }

    #[test]
    fn an_unknown_risk_is_a_policy_error() {
        let out = eval("package kamachiq\nrisk := \"severe\"\n");
        assert_eq!(out.risk, None);
        assert_eq!(
            out.deny,
            [reason(
                "policy_error",
                "data.kamachiq.risk (p.rego): must be one of \"low\", \"medium\", \"high\", \
                 \"critical\", got \"severe\"",
                "data.kamachiq.risk (p.rego)"
            )]
        );
    }
}
