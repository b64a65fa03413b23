//! The plan file as written: every field optional or loosely typed, with source locations, so
//! that validation can say exactly what is wrong and where instead of stopping at the first
//! type error. Unknown fields are rejected here (`deny_unknown_fields`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    pub title: Option<String>,
    pub tenant: Option<Spanned<String>>,
    pub region: Option<Spanned<String>>,
    pub repo: Option<Spanned<String>>,
    pub branch: Option<Spanned<String>>,
    pub deliverables: Option<Vec<Spanned<RawDeliverable>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeliverable {
    pub id: Option<Spanned<String>>,
    pub title: Option<String>,
    pub persona: Option<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    pub budget_tokens: Option<Spanned<i64>>,
    #[serde(default)]
    pub dependencies: Vec<Spanned<String>>,
    #[serde(default)]
    pub acceptance_criteria: Vec<String>,
    pub retries: Option<u32>,
    pub steps: Option<Vec<Spanned<RawStep>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub name: Option<Spanned<String>>,
    pub run: Option<Spanned<RawCommand>>,
    pub agent: Option<Spanned<String>>,
    pub prompt: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
    pub budget_tokens: Option<Spanned<i64>>,
    #[serde(default)]
    pub env: BTreeMap<String, Scalar>,
    pub workdir: Option<Spanned<String>>,
    pub timeout: Option<Spanned<RawDuration>>,
    pub retries: Option<u32>,
    pub backoff: Option<Spanned<RawDuration>>,
}

/// `run:` is either an argv list or a string for `sh -c`.
#[derive(Debug)]
pub(crate) enum RawCommand {
    Argv(Vec<String>),
    Shell(String),
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CommandVisitor;
        impl<'de> Visitor<'de> for CommandVisitor {
            type Value = RawCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command: a string run by `sh -c`, or a list of arguments")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCommand, E> {
                Ok(RawCommand::Shell(v.to_owned()))
            }
            // `run: true` (and `false`) read as YAML booleans; they mean the commands.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawCommand, E> {
                Ok(RawCommand::Shell(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCommand, A::Error> {
                let mut argv = Vec::new();
                while let Some(arg) = seq.next_element::<Scalar>()? {
                    argv.push(arg.0);
                }
                Ok(RawCommand::Argv(argv))
            }
        }
        d.deserialize_any(CommandVisitor)
    }
}

/// A duration as written: `10m`, `1h 30m`, `500ms`, or a bare number of seconds.
#[derive(Debug)]
pub(crate) enum RawDuration {
    Text(String),
    Seconds(u64),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `90s`, `10m` or `1h 30m`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                u64::try_from(v)
                    .map(RawDuration::Seconds)
                    .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
            }
        }
        d.deserialize_any(DurationVisitor)
    }
}

/// A scalar read as text: `PORT: 8080` and `DEBUG: true` are as welcome as strings.
#[derive(Debug)]
pub(crate) struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// Only what it takes to say which deliverable a line belongs to. Read leniently (unknown
/// fields ignored) so it succeeds on exactly the files where the strict read fails.
#[derive(Debug, Deserialize)]
pub(crate) struct OutlinePlan {
    #[serde(default)]
    pub deliverables: Vec<Spanned<OutlineDeliverable>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OutlineDeliverable {
    pub id: Option<Scalar>,
}
