//! Tenants: who a run is for, and the limits the built-in policy guards enforce for them.
//!
//! A tenant that was never configured has the defaults: any region, persona and tool, no budget
//! beyond what each plan states, and the default threshold. Settings arrive from the CLI or the
//! API as a partial [`TenantUpdate`], are applied to the current settings and then checked as a
//! whole, so an error names the field and nothing half-applied is ever stored.

use serde::{Deserialize, Serialize};

use crate::id::TenantId;
use crate::time::Timestamp;

/// Threshold of a tenant that sets none: a decision's score must reach it for an action to
/// run without review (seed 001: "score >= threshold").
pub const DEFAULT_THRESHOLD: f64 = 0.5;

/// Longest region name, persona or tool name accepted in tenant settings.
const MAX_NAME: usize = 128;

/// A tenant's settings as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    #[serde(flatten)]
    pub settings: TenantSettings,
    /// Goes up by one with every change; decisions name the settings they were made with.
    pub version: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Tenant {
    /// The settings of a tenant that has never been configured.
    pub fn unconfigured(id: TenantId) -> Self {
        Self {
            id,
            settings: TenantSettings::default(),
            version: 0,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }
}

/// What the built-in guards enforce for one tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// Regions the tenant's runs may use (data residency). Empty: any region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// The lowest score an action may have and still run without review, in [0, 1].
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    #[serde(default)]
    pub budgets: Budgets,
    /// Personas the tenant's deliverables may use. Empty: any persona.
    #[serde(default)]
    pub personas: Vec<String>,
    /// Tools the tenant's deliverables may use. Empty: any tool.
    #[serde(default)]
    pub tools: Vec<String>,
}

fn default_threshold() -> f64 {
    DEFAULT_THRESHOLD
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            regions: Vec::new(),
            threshold: DEFAULT_THRESHOLD,
            budgets: Budgets::default(),
            personas: Vec::new(),
            tools: Vec::new(),
        }
    }
}

/// Spending caps. `None`: no cap at that level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Most tokens one deliverable may use (a plan's `budget_tokens` may only lower it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliverable_tokens: Option<u64>,
    /// Most tokens one run may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_tokens: Option<u64>,
    /// Most tokens the tenant may use per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_tokens: Option<u64>,
    /// Most the tenant may spend per UTC day, in micro-dollars (1 USD = 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_cost_micro_usd: Option<u64>,
}

/// A change to a tenant's settings: every field optional, `Some` replaces the current value.
/// Budget fields take `Some(None)` to remove a cap.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    pub regions: Option<Vec<String>>,
    pub threshold: Option<f64>,
    #[serde(default, with = "double_option")]
    pub deliverable_tokens: Option<Option<u64>>,
    #[serde(default, with = "double_option")]
    pub run_tokens: Option<Option<u64>>,
    #[serde(default, with = "double_option")]
    pub day_tokens: Option<Option<u64>>,
    #[serde(default, with = "double_option")]
    pub day_cost_micro_usd: Option<Option<u64>>,
    pub personas: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
}

impl TenantUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A setting that is not acceptable, with the field it is in.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("tenant setting `{field}`: {why}")]
pub struct InvalidSetting {
    pub field: String,
    pub why: String,
}

impl TenantSettings {
    /// These settings with `update` applied, checked as a whole.
    pub fn updated(&self, update: &TenantUpdate) -> Result<Self, InvalidSetting> {
        let mut next = self.clone();
        if let Some(regions) = &update.regions {
            next.regions.clone_from(regions);
        }
        if let Some(threshold) = update.threshold {
            next.threshold = threshold;
        }
        if let Some(v) = update.deliverable_tokens {
            next.budgets.deliverable_tokens = v;
        }
        if let Some(v) = update.run_tokens {
            next.budgets.run_tokens = v;
        }
        if let Some(v) = update.day_tokens {
            next.budgets.day_tokens = v;
        }
        if let Some(v) = update.day_cost_micro_usd {
            next.budgets.day_cost_micro_usd = v;
        }
        if let Some(personas) = &update.personas {
            next.personas.clone_from(personas);
        }
        if let Some(tools) = &update.tools {
            next.tools.clone_from(tools);
        }
        next.check()?;
        Ok(next)
    }

    /// Checks every setting; the first problem found names its field. Lists are sorted and
    /// rid of duplicates by [`TenantSettings::normalised`], not rejected for them.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        let invalid = |field: &str, why: String| InvalidSetting {
            field: field.to_owned(),
            why,
        };
        if !self.threshold.is_finite() || !(0.0..=1.0).contains(&self.threshold) {
            return Err(invalid(
                "threshold",
                format!("must be between 0 and 1 (got {})", self.threshold),
            ));
        }
        for (field, names) in [
            ("regions", &self.regions),
            ("personas", &self.personas),
            ("tools", &self.tools),
        ] {
            for (i, name) in names.iter().enumerate() {
                if let Some(why) = name_problem(name) {
                    return Err(invalid(&format!("{field}[{i}]"), format!("`{name}` {why}")));
                }
            }
        }
        for (field, cap) in [
            (
                "budgets.deliverable_tokens",
                self.budgets.deliverable_tokens,
            ),
            ("budgets.run_tokens", self.budgets.run_tokens),
            ("budgets.day_tokens", self.budgets.day_tokens),
            (
                "budgets.day_cost_micro_usd",
                self.budgets.day_cost_micro_usd,
            ),
        ] {
            if cap == Some(0) {
                return Err(invalid(
                    field,
                    "a cap of 0 would stop everything; remove the cap or give a positive number"
                        .to_owned(),
                ));
            }
            if cap.is_some_and(|c| c > i64::MAX as u64) {
                return Err(invalid(field, "is too large".to_owned()));
            }
        }
        Ok(())
    }

    /// The same settings with every list sorted and free of duplicates.
    pub fn normalised(mut self) -> Self {
        for list in [&mut self.regions, &mut self.personas, &mut self.tools] {
            list.sort();
            list.dedup();
        }
        self
    }

    /// Whether `region` is allowed (an empty list allows every region).
    pub fn allows_region(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r == region)
    }

    /// Whether `persona` is allowed (an empty list allows every persona).
    pub fn allows_persona(&self, persona: &str) -> bool {
        self.personas.is_empty() || self.personas.iter().any(|p| p == persona)
    }

    /// Whether `tool` is allowed (an empty list allows every tool).
    pub fn allows_tool(&self, tool: &str) -> bool {
        self.tools.is_empty() || self.tools.iter().any(|t| t == tool)
    }
}

/// Why a region, persona or tool name is not acceptable, or `None`.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME {
        Some("is longer than 128 characters")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains a space or a control character")
    } else {
        None
    }
}

/// `Option<Option<T>>` from JSON: absent is `None`, `null` is `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfigured_tenants_allow_everything() {
        let settings = TenantSettings::default();
        assert!(settings.allows_region("us-east-1"));
        assert!(settings.allows_persona("developer_backend.v2"));
        assert!(settings.allows_tool("github"));
        assert_eq!(settings.threshold, DEFAULT_THRESHOLD);
        settings.check().unwrap();
    }

    #[test]
    fn lists_restrict_when_set() {
        let settings = TenantSettings {
            regions: vec!["eu-west-1".into()],
            personas: vec!["docs_writer.v1".into()],
            tools: vec!["plane".into()],
            ..TenantSettings::default()
        };
        assert!(settings.allows_region("eu-west-1"));
        assert!(!settings.allows_region("us-east-1"));
        assert!(!settings.allows_persona("developer_backend.v2"));
        assert!(!settings.allows_tool("github"));
    }

    #[test]
    fn an_update_replaces_only_what_it_names() {
        let base = TenantSettings {
            regions: vec!["eu-west-1".into()],
            budgets: Budgets {
                run_tokens: Some(100),
                ..Budgets::default()
            },
            ..TenantSettings::default()
        };
        let update: TenantUpdate =
            serde_json::from_str(r#"{"threshold": 0.7, "run_tokens": null, "day_tokens": 5}"#)
                .unwrap();
        let next = base.updated(&update).unwrap();
        assert_eq!(next.regions, ["eu-west-1"]);
        assert_eq!(next.threshold, 0.7);
        assert_eq!(next.budgets.run_tokens, None);
        assert_eq!(next.budgets.day_tokens, Some(5));
    }

    #[test]
    fn bad_settings_name_their_field() {
        let base = TenantSettings::default();
        let err = base
            .updated(&TenantUpdate {
                threshold: Some(1.5),
                ..TenantUpdate::default()
            })
            .unwrap_err();
        assert_eq!(err.field, "threshold");
        assert_eq!(
            err.to_string(),
            "tenant setting `threshold`: must be between 0 and 1 (got 1.5)"
        );
        let err = base
            .updated(&TenantUpdate {
                regions: Some(vec!["eu-west-1".into(), "us east".into()]),
                ..TenantUpdate::default()
            })
            .unwrap_err();
        assert_eq!(err.field, "regions[1]");
        let err = base
            .updated(&TenantUpdate {
                day_tokens: Some(Some(0)),
                ..TenantUpdate::default()
            })
            .unwrap_err();
        assert_eq!(err.field, "budgets.day_tokens");
        assert!(
            base.updated(&TenantUpdate {
                threshold: Some(f64::NAN),
                ..TenantUpdate::default()
            })
            .is_err()
        );
    }

    #[test]
    fn unknown_update_fields_are_refused() {
        let err = serde_json::from_str::<TenantUpdate>(r#"{"region": ["x"]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `region`"), "{err}");
    }

    #[test]
    fn normalised_lists_are_sorted_and_unique() {
        let settings = TenantSettings {
            regions: vec!["b".into(), "a".into(), "b".into()],
            ..TenantSettings::default()
        }
        .normalised();
        assert_eq!(settings.regions, ["a", "b"]);
    }
}
