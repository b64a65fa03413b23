//! Reading a plan file: YAML or JSON into the raw form, with every error located.

use std::path::Path;

use serde_saphyr::Spanned;

use super::problem::{Problem, ProblemKind, Problems};
use super::raw::{OutlinePlan, RawPlan};
use super::{Plan, validate};
use crate::id::TenantId;

/// The syntax a plan is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// `.json` files are JSON; everything else is read as YAML, which also accepts most JSON.
    pub fn from_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Yaml,
        }
    }

    /// For text without a file name: JSON when it starts with `{`.
    pub fn sniff(text: &str) -> Self {
        if text.trim_start().starts_with('{') {
            Self::Json
        } else {
            Self::Yaml
        }
    }
}

/// A plan's text and what to call it in error messages.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
    pub format: Format,
    /// The tenant submitting the plan: a plan that names no tenant is theirs, and a plan that
    /// names another is refused. `None` (a local file) takes the plan's tenant as written.
    pub tenant: Option<TenantId>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>, format: Format) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            format,
            tenant: None,
        }
    }

    /// The same source, submitted by `tenant`.
    pub fn for_tenant(self, tenant: TenantId) -> Self {
        Self {
            tenant: Some(tenant),
            ..self
        }
    }
}

pub(super) fn parse(source: &Source) -> Result<Plan, Problems> {
    let raw = match source.format {
        Format::Yaml => read_yaml(source)?,
        Format::Json => read_json(source)?,
    };
    let plan = validate::validate(raw, &source.name, source.tenant.as_ref())?;
    // Databases refuse NUL in text; refuse it here, with the rest of the plan's problems.
    if serde_json::to_string(&plan).is_ok_and(|text| text.contains("\\u0000")) {
        return Err(Problems(vec![Problem {
            file: source.name.clone(),
            line: None,
            column: None,
            deliverable: None,
            field: None,
            kind: ProblemKind::NulCharacter,
        }]));
    }
    Ok(plan)
}

fn read_yaml(source: &Source) -> Result<RawPlan, Problems> {
    serde_saphyr::from_str::<RawPlan>(&source.text).map_err(|err| {
        let location = err.location();
        let line = location.map(|l| l.line()).filter(|&l| l > 0);
        let column = location.map(|l| l.column()).filter(|&c| c > 0);
        let message = yaml_message(&err);
        Problems(vec![located(source, line, column, message)])
    })
}

fn read_json(source: &Source) -> Result<RawPlan, Problems> {
    match serde_json::from_str::<RawPlan>(&source.text) {
        // JSON is YAML too: reading it again through the YAML reader recovers line numbers for
        // the checks that come after parsing. If that read fails, the plan is still good, only
        // without lines.
        Ok(plain) => Ok(serde_saphyr::from_str::<RawPlan>(&source.text).unwrap_or(plain)),
        Err(err) => {
            let message = json_message(&err);
            let line = Some(err.line() as u64).filter(|&l| l > 0);
            let column = Some(err.column() as u64).filter(|&c| c > 0);
            Err(Problems(vec![located(source, line, column, message)]))
        }
    }
}

/// A parse error, attributed to the deliverable whose text holds its line.
fn located(source: &Source, line: Option<u64>, column: Option<u64>, message: String) -> Problem {
    Problem {
        file: source.name.clone(),
        line,
        column,
        deliverable: line.and_then(|line| deliverable_at(&source.text, line)),
        field: None,
        kind: ProblemKind::Format { message },
    }
}

/// The id of the deliverable whose entry contains `line`, from a lenient outline read.
fn deliverable_at(text: &str, line: u64) -> Option<String> {
    let outline: OutlinePlan = serde_saphyr::from_str(text).ok()?;
    outline
        .deliverables
        .iter()
        .rfind(|d| start_line(d).is_some_and(|start| start <= line))
        .and_then(|d| d.value.id.as_ref().map(|id| id.0.clone()))
}

pub(super) fn start_line<T>(spanned: &Spanned<T>) -> Option<u64> {
    Some(spanned.referenced.line()).filter(|&l| l > 0)
}

/// The YAML reader's message without its own location prefix or source snippet: the location
/// is reported separately, in the same form for every kind of problem.
fn yaml_message(err: &serde_saphyr::Error) -> String {
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    strip_location(first).to_owned()
}

fn json_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Drops a leading `line N column M:` or trailing ` at line N, column M` from a message.
fn strip_location(message: &str) -> &str {
    let message = message.trim();
    let message = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    if let Some(rest) = message.strip_prefix("line ")
        && let Some(i) = rest.find(": ")
    {
        return rest[i + 2..].trim();
    }
    message.strip_prefix("error: ").unwrap_or(message).trim()
}
