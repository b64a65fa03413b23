//! Identifiers. Each is a newtype over a string whose form is checked once, at the boundary,
//! so code that holds one never re-validates it.
//!
//! Deliverable ids and step names end up in git branch names (`kamachiq/<run>/<deliverable>`)
//! and file paths, so their alphabet is the intersection of what git refs and file systems accept.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest id kamachiq accepts; keeps branch names and paths well inside system limits.
pub const MAX_ID_LEN: usize = 64;

/// Why a name is not a valid id, or `None` when it is.
fn name_problem(value: &str) -> Option<&'static str> {
    let first = value.chars().next()?;
    if value.len() > MAX_ID_LEN {
        return Some("longer than 64 characters");
    }
    if !first.is_ascii_alphanumeric() {
        return Some("must start with a letter or a digit");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Some("may contain only letters, digits, `-`, `_` and `.`");
    }
    if value.contains("..") || value.ends_with('.') || value.ends_with(".lock") {
        return Some("must not contain `..` or end with `.` or `.lock` (git branch rules)");
    }
    None
}

fn check(kind: &'static str, value: &str) -> Result<(), Error> {
    let why = if value.is_empty() {
        Some("must not be empty")
    } else {
        name_problem(value)
    };
    match why {
        Some(why) => Err(Error::InvalidId {
            kind,
            value: value.to_owned(),
            why,
        }),
        None => Ok(()),
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn parse(value: impl Into<String>) -> Result<Self, Error> {
                let value = value.into();
                check($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self, Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A deliverable's id, unique within its plan (`api-svc`).
    DeliverableId,
    "deliverable id"
);
string_id!(
    /// A step's name, unique within its deliverable (`dev`, `qa`, `docs`).
    StepName,
    "step name"
);
string_id!(
    /// A tenant: the unit of isolation for data, budgets and policy (`tenant-a`).
    TenantId,
    "tenant"
);
string_id!(
    /// A run's id. kamachiq generates them as lowercase ULIDs, so they sort by creation time.
    RunId,
    "run id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_names() {
        for ok in ["api-svc", "docs", "a", "v1.2_final", "0abc"] {
            assert!(DeliverableId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_names_git_or_paths_cannot_hold() {
        let cases = [
            ("", "must not be empty"),
            ("-x", "must start with a letter or a digit"),
            (".x", "must start with a letter or a digit"),
            ("a/b", "may contain only letters, digits, `-`, `_` and `.`"),
            ("a b", "may contain only letters, digits, `-`, `_` and `.`"),
            (
                "a..b",
                "must not contain `..` or end with `.` or `.lock` (git branch rules)",
            ),
            (
                "a.lock",
                "must not contain `..` or end with `.` or `.lock` (git branch rules)",
            ),
            (
                "a.",
                "must not contain `..` or end with `.` or `.lock` (git branch rules)",
            ),
        ];
        for (value, expected) in cases {
            match DeliverableId::parse(value) {
                Err(Error::InvalidId { why, .. }) => assert_eq!(why, expected, "{value:?}"),
                other => panic!("{value:?}: expected InvalidId, got {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_overlong_names() {
        assert!(DeliverableId::parse("a".repeat(64)).is_ok());
        assert!(DeliverableId::parse("a".repeat(65)).is_err());
    }

    #[test]
    fn serde_round_trip_checks_the_form() {
        let id: DeliverableId = serde_json::from_str("\"api-svc\"").unwrap();
        assert_eq!(id.as_str(), "api-svc");
        assert!(serde_json::from_str::<DeliverableId>("\"a b\"").is_err());
    }
}
