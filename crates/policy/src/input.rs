//! What the gate is asked about: one automated action, with what it touches, what has been spent
//! and what it would reserve. Policies read it as `input`, in exactly its JSON form.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kamachiq_domain::Timestamp;
use regorus::Value;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The kinds of automated action that pass the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Preparing a run: workspaces, branches, agents.
    Provision,
    /// Running one step of a deliverable.
    RunStep,
    /// Merging a deliverable's branch into its target.
    Merge,
    /// Undoing a merge.
    Rollback,
}

impl Action {
    /// Every action, in the order of the lifecycle.
    pub const ALL: [Action; 4] = [
        Action::Provision,
        Action::RunStep,
        Action::Merge,
        Action::Rollback,
    ];

    /// The name used in JSON, in policies and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Provision => "provision",
            Action::RunStep => "run_step",
            Action::Merge => "merge",
            Action::Rollback => "rollback",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Error::UnknownAction {
                value: s.to_owned(),
            })
    }
}

/// One question to the gate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub action: Action,
    /// The tenant the action is for; must be the tenant passed to [`crate::decide`].
    pub tenant: String,
    /// Where the action would run (data residency).
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliverable: Option<DeliverableInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepInput>,
    /// Tokens and cost already used.
    #[serde(default)]
    pub spent: Spent,
    /// What this action asks to reserve on top.
    #[serde(default)]
    pub reserve: Reserve,
    #[serde(default)]
    pub autonomy: Autonomy,
    /// Set by `kamachiq stop`: every automated action is denied until `resume-all`.
    #[serde(default)]
    pub emergency_stop: bool,
    /// The change a merge would bring in, with what the diff guards found in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<DiffInput>,
    /// When the question is asked, from the caller's clock (the gate never reads one).
    pub at: Timestamp,
}

/// The run an action belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInput {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// The deliverable an action works on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverableInput {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    /// The plan's own token cap for the deliverable; it may only lower the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_tokens: Option<u64>,
}

/// The step an action runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepInput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Tokens and cost already used, at each level a budget can cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    #[serde(default)]
    pub deliverable_tokens: u64,
    #[serde(default)]
    pub run_tokens: u64,
    /// Tokens the tenant used today (UTC).
    #[serde(default)]
    pub tenant_day_tokens: u64,
    /// What the tenant spent today (UTC), in US dollars.
    #[serde(default)]
    pub tenant_day_cost_usd: f64,
}

/// What the action asks to reserve before it starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reserve {
    #[serde(default)]
    pub tokens: u64,
    /// In US dollars.
    #[serde(default)]
    pub cost_usd: f64,
}

/// How autonomous kamachiq may be for this tenant. Placeholders until the autonomy levels land:
/// only `paused_actions` is enforced (by the `action_paused` guard); policies may read the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Autonomy {
    #[serde(default = "default_phase")]
    pub phase: String,
    #[serde(default = "default_approval_mode")]
    pub approval_mode: String,
    #[serde(default)]
    pub paused_actions: Vec<Action>,
}

fn default_phase() -> String {
    "L3".to_owned()
}

fn default_approval_mode() -> String {
    "supervised".to_owned()
}

impl Default for Autonomy {
    fn default() -> Self {
        Self {
            phase: default_phase(),
            approval_mode: default_approval_mode(),
            paused_actions: Vec::new(),
        }
    }
}

/// The change a merge would bring in.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffInput {
    #[serde(default)]
    pub files: u32,
    #[serde(default)]
    pub lines_added: u32,
    #[serde(default)]
    pub lines_removed: u32,
    /// What the diff guards (secrets, licences, protected paths...) found.
    #[serde(default)]
    pub findings: Vec<Finding>,
}

/// One finding of a diff guard. Each asks for a review (a `require_approval` reason with the
/// finding's code); governance decides later whether that means approval or requeue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The guard that reported it, e.g. `secrets`.
    pub guard: String,
    /// A stable code, e.g. `secret_in_diff`.
    pub code: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub message: String,
}

impl Input {
    /// The input as policies see it: the same document as its JSON form, built straight into
    /// regorus's value type (no JSON text or `serde_json::Value` in between).
    pub fn to_rego(&self) -> Value {
        KEYS.with(|k| self.to_rego_with(k))
    }

    fn to_rego_with(&self, k: &Keys) -> Value {
        let mut o = Obj::new(k);
        o.put(|k| &k.action, k.action(self.action));
        o.put(|k| &k.tenant, self.tenant.as_str());
        o.put(|k| &k.region, self.region.as_str());
        if let Some(run) = &self.run {
            let mut r = Obj::new(k);
            r.put(|k| &k.id, run.id.as_str());
            r.opt(|k| &k.title, run.title.as_deref());
            o.put(|k| &k.run, r.done());
        }
        if let Some(d) = &self.deliverable {
            let mut r = Obj::new(k);
            r.put(|k| &k.id, d.id.as_str());
            r.opt(|k| &k.persona, d.persona.as_deref());
            r.put(|k| &k.tools, strings(&d.tools));
            r.opt(|k| &k.budget_tokens, d.budget_tokens);
            o.put(|k| &k.deliverable, r.done());
        }
        if let Some(s) = &self.step {
            let mut r = Obj::new(k);
            r.put(|k| &k.name, s.name.as_str());
            r.opt(|k| &k.agent, s.agent.as_deref());
            r.opt(|k| &k.model, s.model.as_deref());
            o.put(|k| &k.step, r.done());
        }
        let mut spent = Obj::new(k);
        spent.put(|k| &k.deliverable_tokens, self.spent.deliverable_tokens);
        spent.put(|k| &k.run_tokens, self.spent.run_tokens);
        spent.put(|k| &k.tenant_day_tokens, self.spent.tenant_day_tokens);
        spent.put(|k| &k.tenant_day_cost_usd, self.spent.tenant_day_cost_usd);
        o.put(|k| &k.spent, spent.done());
        let mut reserve = Obj::new(k);
        reserve.put(|k| &k.tokens, self.reserve.tokens);
        reserve.put(|k| &k.cost_usd, self.reserve.cost_usd);
        o.put(|k| &k.reserve, reserve.done());
        let mut autonomy = Obj::new(k);
        autonomy.put(|k| &k.phase, self.autonomy.phase.as_str());
        autonomy.put(|k| &k.approval_mode, self.autonomy.approval_mode.as_str());
        autonomy.put(
            |k| &k.paused_actions,
            Value::from(
                self.autonomy
                    .paused_actions
                    .iter()
                    .map(|a| k.action(*a))
                    .collect::<Vec<_>>(),
            ),
        );
        o.put(|k| &k.autonomy, autonomy.done());
        o.put(|k| &k.emergency_stop, self.emergency_stop);
        if let Some(diff) = &self.diff {
            let mut r = Obj::new(k);
            r.put(|k| &k.files, diff.files);
            r.put(|k| &k.lines_added, diff.lines_added);
            r.put(|k| &k.lines_removed, diff.lines_removed);
            let findings = diff
                .findings
                .iter()
                .map(|f| {
                    let mut fo = Obj::new(k);
                    fo.put(|k| &k.guard, f.guard.as_str());
                    fo.put(|k| &k.code, f.code.as_str());
                    fo.put(|k| &k.path, f.path.as_str());
                    fo.opt(|k| &k.line, f.line);
                    fo.put(|k| &k.message, f.message.as_str());
                    fo.done()
                })
                .collect::<Vec<_>>();
            r.put(|k| &k.findings, Value::from(findings));
            o.put(|k| &k.diff, r.done());
        }
        o.put(|k| &k.at, self.at.to_string());
        o.done()
    }
}

/// The input's object keys and action names as regorus values, made once per thread: building
/// an input then clones them (a reference count) instead of allocating each one again.
macro_rules! keys {
    ($($key:ident),* $(,)?) => {
        struct Keys {
            $($key: Value,)*
            actions: [Value; 4],
        }

        impl Keys {
            fn new() -> Self {
                Self {
                    $($key: Value::from(stringify!($key)),)*
                    actions: Action::ALL.map(|a| Value::from(a.as_str())),
                }
            }
        }
    };
}

keys!(
    action,
    tenant,
    region,
    run,
    id,
    title,
    deliverable,
    persona,
    tools,
    budget_tokens,
    step,
    name,
    agent,
    model,
    spent,
    deliverable_tokens,
    run_tokens,
    tenant_day_tokens,
    tenant_day_cost_usd,
    reserve,
    tokens,
    cost_usd,
    autonomy,
    phase,
    approval_mode,
    paused_actions,
    emergency_stop,
    diff,
    files,
    lines_added,
    lines_removed,
    findings,
    guard,
    code,
    path,
    line,
    message,
    at,
);

impl Keys {
    fn action(&self, action: Action) -> Value {
        let index = match action {
            Action::Provision => 0,
            Action::RunStep => 1,
            Action::Merge => 2,
            Action::Rollback => 3,
        };
        self.actions[index].clone()
    }
}

std::thread_local! {
    static KEYS: Keys = Keys::new();
}

/// A JSON object under construction.
struct Obj<'k> {
    keys: &'k Keys,
    map: Vec<(Value, Value)>,
}

impl<'k> Obj<'k> {
    fn new(keys: &'k Keys) -> Self {
        Self {
            keys,
            map: Vec::with_capacity(16),
        }
    }

    fn put(&mut self, key: impl Fn(&Keys) -> &Value, value: impl Into<Value>) {
        self.map.push((key(self.keys).clone(), value.into()));
    }

    /// Sets `key` only when there is a value, as `skip_serializing_if` does.
    fn opt<V: Into<Value>>(&mut self, key: impl Fn(&Keys) -> &Value, value: Option<V>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }

    fn done(self) -> Value {
        Value::from(self.map.into_iter().collect::<BTreeMap<_, _>>())
    }
}

fn strings(items: &[String]) -> Value {
    Value::from(
        items
            .iter()
            .map(|s| Value::from(s.as_str()))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input with every field set, so every branch of `to_rego` is exercised.
    pub(crate) fn full_input() -> Input {
        Input {
            action: Action::Merge,
            tenant: "tenant-a".into(),
            region: "eu-west-1".into(),
            run: Some(RunInput {
                id: "01JRUN".into(),
                title: Some("billing".into()),
            }),
            deliverable: Some(DeliverableInput {
                id: "api-svc".into(),
                persona: Some("developer_backend.v2".into()),
                tools: vec!["github".into(), "plane".into()],
                budget_tokens: Some(25_000),
            }),
            step: Some(StepInput {
                name: "implement".into(),
                agent: Some("claude".into()),
                model: Some("opus".into()),
            }),
            spent: Spent {
                deliverable_tokens: 24_000,
                run_tokens: 50_000,
                tenant_day_tokens: 900_000,
                tenant_day_cost_usd: 12.5,
            },
            reserve: Reserve {
                tokens: 2_000,
                cost_usd: 0.25,
            },
            autonomy: Autonomy {
                phase: "L2".into(),
                approval_mode: "manual".into(),
                paused_actions: vec![Action::Rollback],
            },
            emergency_stop: false,
            diff: Some(DiffInput {
                files: 3,
                lines_added: 120,
                lines_removed: 7,
                findings: vec![Finding {
                    guard: "secrets".into(),
                    code: "secret_in_diff".into(),
                    path: "src/config.rs".into(),
                    line: Some(12),
                    message: "an AWS access key".into(),
                }],
            }),
            at: Timestamp::from_millis(1_795_000_000_123),
        }
    }

    #[test]
    fn action_names_round_trip() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>().unwrap(), action);
            assert_eq!(action.to_string(), action.as_str());
            assert_eq!(
                serde_json::to_string(&action).unwrap(),
                format!("\"{}\"", action.as_str())
            );
        }
    }

    #[test]
    fn an_unknown_action_names_the_value_and_the_valid_ones() {
        let err = "deploy".parse::<Action>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown action `deploy`; expected one of: provision, run_step, merge, rollback"
        );
    }

    #[test]
    fn the_rego_input_is_the_json_form() {
        let input = full_input();
        let via_json = Value::from(serde_json::to_value(&input).unwrap());
        assert_eq!(input.to_rego(), via_json);
    }

    #[test]
    fn the_rego_input_of_a_minimal_input_is_the_json_form() {
        let input: Input = serde_json::from_str(
            r#"{"action":"provision","tenant":"t","region":"r","at":"2026-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        let via_json = Value::from(serde_json::to_value(&input).unwrap());
        assert_eq!(input.to_rego(), via_json);
    }

    #[test]
    fn defaults_fill_what_a_minimal_input_leaves_out() {
        let input: Input = serde_json::from_str(
            r#"{"action":"run_step","tenant":"t","region":"r","at":"2026-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        assert_eq!(input.autonomy.phase, "L3");
        assert_eq!(input.autonomy.approval_mode, "supervised");
        assert!(input.autonomy.paused_actions.is_empty());
        assert_eq!(input.spent, Spent::default());
        assert_eq!(input.reserve, Reserve::default());
        assert!(!input.emergency_stop);
        assert_eq!(input.run, None);
        assert_eq!(input.diff, None);
    }
}
