use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Provision,
    RunStep,
    Merge,
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::RunStep => "run_step",
            Self::Merge => "merge",
            Self::Rollback => "rollback",
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "provision" => Ok(Self::Provision),
            "run_step" => Ok(Self::RunStep),
            "merge" => Ok(Self::Merge),
            "rollback" => Ok(Self::Rollback),
            _ => Err(s.to_owned()),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub action: Action,
    pub tenant: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliverable: Option<DeliverableInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepInput>,
    #[serde(default)]
    pub spent: Spent,
    #[serde(default)]
    pub reserve: Reserve,
    #[serde(default)]
    pub autonomy: Autonomy,
    #[serde(default)]
    pub emergency_stop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<DiffInput>,
    pub at: kamachiq_domain::Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInput {
    pub id: String,
    pub title: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverableInput {
    pub id: String,
    pub persona: Option<String>,
    pub tools: Vec<String>,
    pub budget_tokens: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepInput {
    pub name: String,
    pub agent: Option<String>,
    pub model: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    pub deliverable_tokens: u64,
    pub run_tokens: u64,
    pub tenant_day_tokens: u64,
    pub tenant_day_cost_usd: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffInput {
    pub files: u32,
    pub lines_added: u32,
    pub lines_removed: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    pub name: String,
    pub source: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reserve {
    pub tokens: u64,
    pub cost_usd: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Autonomy {
    pub phase: String,
    pub approval_mode: String,
    pub paused_actions: Vec<Action>,
}

impl Default for Autonomy {
    fn default() -> Self {
        Self {
            phase: "L3".into(),
            approval_mode: "supervised".into(),
            paused_actions: Vec::new(),
        }
    }
}
