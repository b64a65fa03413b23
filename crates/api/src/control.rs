//! Wire types of the emergency stop and of pausing a run.

use kamachiq_domain::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::schema;

/// Why the emergency stop is turned on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// For the audit trail (default: "emergency stop").
    pub reason: Option<String>,
}

/// The emergency stop's state (`GET /v1/stop`, `kamachiq stop --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StopView {
    /// Whether the emergency stop is on.
    pub stopped: bool,
    /// Who turned it on (or lifted it, for `resume-all`).
    pub by: Option<String>,
    #[schema(value_type = Option<schema::Timestamp>)]
    pub at: Option<Timestamp>,
    pub reason: Option<String>,
    /// Whether this request changed it (false: it already was so).
    pub changed: bool,
}

/// A run paused or resumed (`POST /v1/workflows/{id}/pause`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PauseView {
    pub run_id: String,
    pub paused: bool,
    /// Whether this request changed it (false: it was paused already).
    pub changed: bool,
}
