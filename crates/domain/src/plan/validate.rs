//! From the raw plan to a [`Plan`]: every rule, every problem collected, none fatal to the
//! search for the next, so one `kamachiq plan validate` shows everything to fix.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Component, Path};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::graph::find_cycles;
use super::parse::start_line;
use super::problem::{Problem, ProblemKind, Problems};
use super::raw::{RawCommand, RawDeliverable, RawDuration, RawPlan, RawStep};
use super::{
    AGENTS, Command, DEFAULT_BACKOFF, DEFAULT_REGION, DEFAULT_TENANT, DEFAULT_TIMEOUT, Deliverable,
    Plan, Step, Work,
};
use crate::Error;
use crate::id::{DeliverableId, StepName, TenantId};

struct Checker<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

/// Where a problem is: line, deliverable and field path.
#[derive(Clone, Default)]
struct At {
    line: Option<u64>,
    deliverable: Option<String>,
    field: Option<String>,
}

impl At {
    fn line(line: Option<u64>) -> Self {
        Self {
            line,
            ..Self::default()
        }
    }

    fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    fn on<T>(mut self, spanned: &Spanned<T>) -> Self {
        self.line = start_line(spanned).or(self.line);
        self
    }
}

impl Checker<'_> {
    fn report(&mut self, at: At, kind: ProblemKind) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: at.line,
            column: None,
            deliverable: at.deliverable,
            field: at.field,
            kind,
        });
    }

    fn name_problem(&mut self, at: At, err: Error) {
        if let Error::InvalidId { kind, value, why } = err {
            self.report(
                at,
                ProblemKind::InvalidName {
                    what: kind,
                    value,
                    why,
                },
            );
        }
    }

    fn duration(
        &mut self,
        at: At,
        field: &'static str,
        raw: Option<&Spanned<RawDuration>>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        let at = at.on(raw);
        match &raw.value {
            RawDuration::Seconds(s) => Duration::from_secs(*s),
            RawDuration::Text(text) => match humantime::parse_duration(text.trim()) {
                Ok(d) => d,
                Err(e) => {
                    self.report(
                        at,
                        ProblemKind::InvalidDuration {
                            field,
                            value: text.clone(),
                            why: format!("{e} (write e.g. `90s`, `10m`, `1h 30m`)"),
                        },
                    );
                    default
                }
            },
        }
    }
}

pub(super) fn validate(
    raw: RawPlan,
    file: &str,
    submitter: Option<&TenantId>,
) -> Result<Plan, Problems> {
    let mut c = Checker {
        file,
        problems: Vec::new(),
    };

    let tenant = match (&raw.tenant, submitter) {
        (None, Some(submitter)) => Some(submitter.clone()),
        (None, None) => TenantId::parse(DEFAULT_TENANT).ok(),
        (Some(t), _) => TenantId::parse(t.value.clone())
            .map_err(|e| c.name_problem(At::default().on(t).field("tenant"), e))
            .ok(),
    };
    if let (Some(t), Some(plan), Some(submitter)) = (&raw.tenant, &tenant, submitter)
        && plan != submitter
    {
        c.report(
            At::default().on(t).field("tenant"),
            ProblemKind::ForeignTenant {
                plan: plan.to_string(),
                submitter: submitter.to_string(),
            },
        );
    }
    let region = match &raw.region {
        None => DEFAULT_REGION.to_owned(),
        Some(r) => {
            if let Err(e) = TenantId::parse(r.value.clone()) {
                c.name_problem(At::default().on(r).field("region"), rename(e, "region"));
            }
            r.value.clone()
        }
    };
    let branch = raw.branch.as_ref().map(|b| {
        if let Some(why) = branch_problem(&b.value) {
            c.report(
                At::default().on(b).field("branch"),
                ProblemKind::InvalidName {
                    what: "branch",
                    value: b.value.clone(),
                    why,
                },
            );
        }
        b.value.clone()
    });
    let repo = raw.repo.as_ref().map(|r| {
        if r.value.trim().is_empty() {
            c.report(
                At::default().on(r).field("repo"),
                ProblemKind::InvalidName {
                    what: "repo",
                    value: r.value.clone(),
                    why: "must not be empty",
                },
            );
        }
        r.value.clone()
    });

    let raw_deliverables = raw.deliverables.unwrap_or_default();
    if raw_deliverables.is_empty() {
        c.report(
            At::default().field("deliverables"),
            ProblemKind::NoDeliverables,
        );
    }

    // First pass: ids, so dependencies can be checked against all of them.
    let mut first_seen: HashMap<String, (usize, Option<u64>)> = HashMap::new();
    let mut ids: Vec<Option<DeliverableId>> = Vec::with_capacity(raw_deliverables.len());
    for (i, d) in raw_deliverables.iter().enumerate() {
        let at = At::line(start_line(d)).field(format!("deliverables[{i}]"));
        let Some(id) = &d.value.id else {
            c.report(
                at.field(format!("deliverables[{i}].id")),
                ProblemKind::MissingField { field: "id" },
            );
            ids.push(None);
            continue;
        };
        let at = At {
            deliverable: Some(id.value.clone()),
            ..at.on(id).field(format!("deliverables[{i}].id"))
        };
        if let Some((_, first_line)) = first_seen.get(&id.value) {
            c.report(
                at,
                ProblemKind::DuplicateId {
                    id: id.value.clone(),
                    first_line: *first_line,
                },
            );
            ids.push(None);
            continue;
        }
        first_seen.insert(id.value.clone(), (i, start_line(id)));
        match DeliverableId::parse(id.value.clone()) {
            Ok(parsed) => ids.push(Some(parsed)),
            Err(e) => {
                c.name_problem(at, e);
                ids.push(None);
            }
        }
    }

    let mut deliverables = Vec::with_capacity(raw_deliverables.len());
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); raw_deliverables.len()];
    for (i, d) in raw_deliverables.iter().enumerate() {
        let at = At {
            line: start_line(d),
            deliverable: d.value.id.as_ref().map(|id| id.value.clone()),
            field: Some(format!("deliverables[{i}]")),
        };
        let deps = dependencies(&mut c, &at, i, &d.value, &first_seen);
        edges[i] = deps.iter().map(|&(pos, _)| pos).collect();
        let steps = steps(&mut c, &at, i, &d.value);
        let budget_tokens = d.value.budget_tokens.as_ref().and_then(|b| {
            u64::try_from(b.value)
                .map_err(|_| {
                    c.report(
                        at.clone()
                            .on(b)
                            .field(format!("deliverables[{i}].budget_tokens")),
                        ProblemKind::NegativeBudget { value: b.value },
                    );
                })
                .ok()
        });
        if let (Some(id), Some(steps)) = (ids[i].clone(), steps) {
            deliverables.push(Deliverable {
                title: d.value.title.clone().unwrap_or_else(|| id.to_string()),
                id,
                persona: d.value.persona.clone(),
                tools: d.value.tools.clone(),
                budget_tokens,
                dependencies: deps.into_iter().map(|(_, id)| id).collect(),
                acceptance_criteria: d.value.acceptance_criteria.clone(),
                steps,
            });
        }
    }

    for cycle in find_cycles(&edges) {
        let first = cycle[0];
        let path: Vec<DeliverableId> = cycle.iter().filter_map(|&n| ids[n].clone()).collect();
        c.report(
            At {
                line: start_line(&raw_deliverables[first]),
                deliverable: path.first().map(ToString::to_string),
                field: Some(format!("deliverables[{first}].dependencies")),
            },
            ProblemKind::Cycle { path },
        );
    }

    if !c.problems.is_empty() {
        c.problems.sort_by_key(|p| p.line.unwrap_or(u64::MAX));
        return Err(Problems(c.problems));
    }
    match tenant {
        Some(tenant) => Ok(Plan {
            title: raw.title,
            tenant,
            region,
            repo,
            branch,
            deliverables,
        }),
        // Unreachable in practice: a bad tenant was reported above. Kept total, not assumed.
        None => Err(Problems(Vec::new())),
    }
}

/// The deliverable's dependencies that exist, as (position, id); problems for the rest.
fn dependencies(
    c: &mut Checker<'_>,
    at: &At,
    i: usize,
    d: &RawDeliverable,
    known: &HashMap<String, (usize, Option<u64>)>,
) -> Vec<(usize, DeliverableId)> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (j, dep) in d.dependencies.iter().enumerate() {
        let at = at
            .clone()
            .on(dep)
            .field(format!("deliverables[{i}].dependencies[{j}]"));
        if !seen.insert(dep.value.as_str()) {
            c.report(
                at,
                ProblemKind::DuplicateDependency {
                    dependency: dep.value.clone(),
                },
            );
            continue;
        }
        match known.get(&dep.value) {
            Some(&(pos, _)) => {
                if let Ok(id) = DeliverableId::parse(dep.value.clone()) {
                    out.push((pos, id));
                }
            }
            None => c.report(
                at,
                ProblemKind::UnknownDependency {
                    dependency: dep.value.clone(),
                    suggestion: closest(&dep.value, known.keys().map(String::as_str)),
                },
            ),
        }
    }
    out
}

/// The deliverable's steps, or `None` when any of them is unusable (problems reported).
fn steps(c: &mut Checker<'_>, at: &At, i: usize, d: &RawDeliverable) -> Option<Vec<Step>> {
    let raw_steps = d.steps.as_deref().unwrap_or_default();
    if raw_steps.is_empty() {
        c.report(
            at.clone().field(format!("deliverables[{i}].steps")),
            ProblemKind::NoSteps,
        );
        return None;
    }
    let before = c.problems.len();
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw_steps.len());
    for (j, s) in raw_steps.iter().enumerate() {
        let at = at
            .clone()
            .on(s)
            .field(format!("deliverables[{i}].steps[{j}]"));
        // Names are compared as written, so a repeat is found even when the step that first
        // used the name has another problem.
        if let Some(name) = &s.value.name
            && !names.insert(name.value.clone())
        {
            c.report(
                at.clone().on(name),
                ProblemKind::DuplicateStep {
                    step: name.value.clone(),
                },
            );
        }
        if let Some(step) = step(c, &at, d.retries, &s.value) {
            out.push(step);
        }
    }
    (c.problems.len() == before).then_some(out)
}

fn step(c: &mut Checker<'_>, at: &At, default_retries: Option<u32>, s: &RawStep) -> Option<Step> {
    let field = |name: &str| {
        let base = at.field.clone().unwrap_or_default();
        at.clone().field(format!("{base}.{name}"))
    };
    let name = match &s.name {
        None => {
            c.report(field("name"), ProblemKind::MissingField { field: "name" });
            None
        }
        Some(n) => StepName::parse(n.value.clone())
            .map_err(|e| c.name_problem(field("name").on(n), e))
            .ok(),
    };
    let label = s
        .name
        .as_ref()
        .map_or_else(|| "?".to_owned(), |n| n.value.clone());

    let work = work(c, at, &label, s);

    let mut env = BTreeMap::new();
    for (key, value) in &s.env {
        if let Some(why) = env_key_problem(key) {
            c.report(
                field("env"),
                ProblemKind::InvalidEnv {
                    step: label.clone(),
                    key: key.clone(),
                    why,
                },
            );
        }
        env.insert(key.clone(), value.0.clone());
    }

    let workdir = s
        .workdir
        .as_ref()
        .and_then(|w| match normalize_workdir(&w.value) {
            Ok(dir) => dir,
            Err(why) => {
                c.report(
                    field("workdir").on(w),
                    ProblemKind::InvalidWorkdir {
                        step: label.clone(),
                        value: w.value.clone(),
                        why,
                    },
                );
                None
            }
        });

    let timeout = c.duration(
        field("timeout"),
        "timeout",
        s.timeout.as_ref(),
        DEFAULT_TIMEOUT,
    );
    if timeout.is_zero() {
        let at = match &s.timeout {
            Some(t) => field("timeout").on(t),
            None => field("timeout"),
        };
        c.report(
            at,
            ProblemKind::InvalidDuration {
                field: "timeout",
                value: match s.timeout.as_ref().map(|t| &t.value) {
                    Some(RawDuration::Text(text)) => text.clone(),
                    Some(RawDuration::Seconds(n)) => n.to_string(),
                    None => "0".to_owned(),
                },
                why: "must be longer than zero".to_owned(),
            },
        );
    }
    let backoff = c.duration(
        field("backoff"),
        "backoff",
        s.backoff.as_ref(),
        DEFAULT_BACKOFF,
    );

    Some(Step {
        name: name?,
        work: work?,
        env,
        workdir,
        timeout,
        retries: s.retries.or(default_retries).unwrap_or(0),
        backoff,
    })
}

/// What a step does: `run` a command, or `prompt` an agent (with `agent`, `model` and
/// `budget_tokens`), never both.
fn work(c: &mut Checker<'_>, at: &At, label: &str, s: &RawStep) -> Option<Work> {
    let field = |name: &str| {
        let base = at.field.clone().unwrap_or_default();
        at.clone().field(format!("{base}.{name}"))
    };
    match (&s.run, &s.prompt) {
        (Some(_), Some(prompt)) => {
            c.report(
                field("prompt").on(prompt),
                ProblemKind::RunOrPrompt {
                    step: label.to_owned(),
                },
            );
            None
        }
        (None, None) => {
            c.report(field("run"), ProblemKind::MissingField { field: "run" });
            None
        }
        (Some(run), None) => {
            for (name, given) in [
                ("agent", s.agent.as_ref().map(start_line)),
                ("model", s.model.as_ref().map(start_line)),
                ("budget_tokens", s.budget_tokens.as_ref().map(start_line)),
            ] {
                if let Some(line) = given {
                    let mut at = field(name);
                    at.line = line.or(at.line);
                    c.report(
                        at,
                        ProblemKind::AgentFieldOnCommand {
                            step: label.to_owned(),
                            field: name,
                        },
                    );
                }
            }
            let command = match &run.value {
                RawCommand::Shell(line) => Command::Shell(line.clone()),
                RawCommand::Argv(argv) => Command::Argv(argv.clone()),
            };
            let empty = match &command {
                Command::Shell(line) => line.trim().is_empty(),
                Command::Argv(argv) => argv.first().is_none_or(|p| p.trim().is_empty()),
            };
            if empty {
                c.report(
                    field("run").on(run),
                    ProblemKind::EmptyStep {
                        step: label.to_owned(),
                    },
                );
                return None;
            }
            Some(Work::Run { run: command })
        }
        (None, Some(prompt)) => {
            let mut ok = true;
            if prompt.value.trim().is_empty() {
                c.report(
                    field("prompt").on(prompt),
                    ProblemKind::EmptyPrompt {
                        step: label.to_owned(),
                    },
                );
                ok = false;
            }
            if let Some(agent) = &s.agent
                && !AGENTS.contains(&agent.value.as_str())
            {
                c.report(
                    field("agent").on(agent),
                    ProblemKind::UnknownAgent {
                        step: label.to_owned(),
                        agent: agent.value.clone(),
                    },
                );
                ok = false;
            }
            let budget = match &s.budget_tokens {
                Some(b) if b.value < 0 => {
                    c.report(
                        field("budget_tokens").on(b),
                        ProblemKind::NegativeBudget { value: b.value },
                    );
                    ok = false;
                    None
                }
                Some(b) => u64::try_from(b.value).ok(),
                None => None,
            };
            ok.then(|| Work::Agent {
                agent: s.agent.as_ref().map(|a| a.value.clone()),
                prompt: prompt.value.clone(),
                model: s
                    .model
                    .as_ref()
                    .map(|m| m.value.trim().to_owned())
                    .filter(|m| !m.is_empty()),
                budget_tokens: budget,
            })
        }
    }
}

/// A workdir relative to the worktree, normalised (`./a/b/` -> `a/b`; `.` -> none), or why not.
fn normalize_workdir(value: &str) -> Result<Option<String>, &'static str> {
    let path = Path::new(value);
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => match part.to_str() {
                Some(part) => parts.push(part),
                None => return Err("is not valid UTF-8"),
            },
            Component::CurDir => {}
            Component::ParentDir => {
                return Err("must stay inside the deliverable's worktree (no `..`)");
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("must be relative to the deliverable's worktree");
            }
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

fn env_key_problem(key: &str) -> Option<&'static str> {
    let mut chars = key.chars();
    match chars.next() {
        None => Some("must not be empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
            Some("must start with a letter or `_`")
        }
        _ if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Some("may contain only letters, digits and `_`")
        }
        _ => None,
    }
}

/// Why `name` cannot be a git branch, or `None` (the rules of `git check-ref-format --branch`
/// that matter for names people write).
fn branch_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.starts_with('-') || name.starts_with('/') || name.ends_with('/') {
        return Some("must not start with `-` or start or end with `/`");
    }
    if name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name.ends_with(".lock")
        || name.ends_with('.')
    {
        return Some("must not contain `..`, `//` or `@{`, or end with `.` or `.lock`");
    }
    if name
        .chars()
        .any(|c| c.is_ascii_control() || c.is_whitespace() || "~^:?*[\\".contains(c))
    {
        return Some("must not contain spaces, control characters or any of ~ ^ : ? * [ \\");
    }
    None
}

fn rename(err: Error, what: &'static str) -> Error {
    match err {
        Error::InvalidId { value, why, .. } => Error::InvalidId {
            kind: what,
            value,
            why,
        },
        other => other,
    }
}

/// The known id closest to `wanted`, if it is close enough to be a likely typo.
fn closest<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    known
        .map(|k| (edit_distance(wanted, k), k))
        .filter(|&(d, k)| d <= 2.max(wanted.len() / 3) && d < k.len().max(wanted.len()))
        .min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, k)| k.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs_are_normalised_and_confined() {
        assert_eq!(normalize_workdir("./a/b/"), Ok(Some("a/b".to_owned())));
        assert_eq!(normalize_workdir("."), Ok(None));
        assert!(normalize_workdir("../x").is_err());
        assert!(normalize_workdir("a/../../x").is_err());
        assert!(normalize_workdir("/etc").is_err());
    }

    #[test]
    fn suggests_near_misses_only() {
        let known = ["api-svc", "docs", "web-ui"];
        assert_eq!(
            closest("api-sv", known.into_iter()),
            Some("api-svc".to_owned())
        );
        assert_eq!(closest("doc", known.into_iter()), Some("docs".to_owned()));
        assert_eq!(closest("database", known.into_iter()), None);
    }

    #[test]
    fn branch_names_follow_git_rules() {
        assert_eq!(branch_problem("main"), None);
        assert_eq!(branch_problem("release/2.0"), None);
        for bad in ["", "-x", "a..b", "a b", "x.lock", "a:b", "a/"] {
            assert!(branch_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn env_keys_are_portable_names() {
        assert_eq!(env_key_problem("RUST_LOG"), None);
        assert!(env_key_problem("1X").is_some());
        assert!(env_key_problem("A-B").is_some());
        assert!(env_key_problem("").is_some());
    }
}
