//! The coding agents kamachiq knows how to drive.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A coding agent kamachiq can run. The names are stable: they appear in plans, personas,
/// configuration and stored runs.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Anthropic's Claude Code (`claude -p`).
    Claude,
    /// OpenAI's Codex CLI (`codex exec`).
    Codex,
    /// Aider (`aider --message`).
    Aider,
    /// Google's Gemini CLI (`gemini --prompt`).
    Gemini,
    /// Any other program, run from an operator's argv template.
    Command,
}

impl AgentKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Claude,
        Self::Codex,
        Self::Aider,
        Self::Gemini,
        Self::Command,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Codex => "codex",
            Self::Aider => "aider",
            Self::Gemini => "gemini",
            Self::Command => "command",
        }
    }

    /// The executable the agent usually installs as; `None` for [`AgentKind::Command`], whose
    /// program is the first word of its template.
    pub fn executable(self) -> Option<&'static str> {
        match self {
            Self::Claude => Some("claude"),
            Self::Codex => Some("codex"),
            Self::Aider => Some("aider"),
            Self::Gemini => Some("gemini"),
            Self::Command => None,
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| Error::UnknownAgent { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_display_and_serde() {
        for kind in AgentKind::ALL {
            assert_eq!(kind.as_str().parse::<AgentKind>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.as_str());
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<AgentKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_listing_the_valid_ones() {
        let err = "cursor".parse::<AgentKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown agent `cursor`: expected one of claude, codex, aider, gemini, command"
        );
    }

    #[test]
    fn names_are_case_sensitive() {
        assert!("Claude".parse::<AgentKind>().is_err());
    }

    #[test]
    fn every_agent_but_command_has_an_executable() {
        let executables: Vec<_> = AgentKind::ALL.map(AgentKind::executable).into();
        assert_eq!(
            executables,
            [
                Some("claude"),
                Some("codex"),
                Some("aider"),
                Some("gemini"),
                None
            ]
        );
    }
}
