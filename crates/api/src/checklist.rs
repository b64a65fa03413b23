//! Wire types of a tenant's readiness checklist (`GET|PUT /api/readiness/checklist`): the form
//! `GET` gives and `PUT` takes back, edited. An item with a `condition` is measured by
//! kamachiq; one without is attested by a person.

use kamachiq_governance::Category;
use kamachiq_governance::readiness::{Check, Checklist, Item};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema;

/// A tenant's readiness checklist (`GET|PUT /api/readiness/checklist`): what `GET` gives, `PUT`
/// takes back, edited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistView {
    /// From 1 to 200 items, ids unique.
    #[schema(min_items = 1, max_items = 200)]
    pub items: Vec<ChecklistItemView>,
}

/// One checklist item: measured by kamachiq when it has a `condition`, attested by a person
/// with evidence otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChecklistItemView {
    /// Stable and unique (`tech.success_rate`); attestations name it.
    pub id: String,
    #[schema(value_type = schema::Category)]
    pub category: Category,
    /// What must hold, as a sentence.
    pub title: String,
    /// Points the item is worth, from 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub weight: u32,
    /// Whether the tenant cannot be ready without it, whatever the score.
    pub required: bool,
    /// CEL over the readiness facts (`successRate >= 0.995 && daysInPhase >= minDaysInPhase`);
    /// absent: attested by a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

impl From<&Checklist> for ChecklistView {
    fn from(c: &Checklist) -> Self {
        Self {
            items: c
                .items
                .iter()
                .map(|i| ChecklistItemView {
                    id: i.id.clone(),
                    category: i.category,
                    title: i.title.clone(),
                    weight: i.weight,
                    required: i.required,
                    condition: match &i.check {
                        Check::Metric { condition } => Some(condition.clone()),
                        Check::Attested => None,
                    },
                })
                .collect(),
        }
    }
}

impl From<ChecklistView> for Checklist {
    fn from(c: ChecklistView) -> Self {
        Self {
            items: c
                .items
                .into_iter()
                .map(|i| Item {
                    id: i.id.trim().to_owned(),
                    category: i.category,
                    title: i.title.trim().to_owned(),
                    weight: i.weight,
                    required: i.required,
                    check: match i.condition {
                        Some(condition) => Check::Metric { condition },
                        None => Check::Attested,
                    },
                })
                .collect(),
        }
    }
}
