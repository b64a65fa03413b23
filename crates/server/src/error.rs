//! Every error the API answers, as `application/problem+json` with a stable code. The match in
//! [`ApiError::parts`] is the one table from error to code and status. Server faults are logged
//! with their detail and answered with a generic message: no SQL, path or stack reaches a
//! client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kamachiq_api::{Problem, ProblemView};
use kamachiq_domain::Role;
use kamachiq_domain::plan::Problems;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("this operation needs the `{role}` role")]
    Forbidden { role: Role },
    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },
    #[error("no route {0}")]
    NoRoute(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("{detail}")]
    BadRequest {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the plan is not valid: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    InvalidPlan(Problems),
    #[error("{detail}")]
    Unprocessable {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// The caller may call this, but not for this: a proposal's four eyes, say.
    #[error("{detail}")]
    Refused { code: &'static str, detail: String },
    #[error("the server is shutting down; try another instance or retry shortly")]
    ShuttingDown,
    #[error("the store is busy; retry the request")]
    Busy,
    /// A fault of the server; the detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(
        code: &'static str,
        field: impl Into<Option<String>>,
        detail: impl Into<String>,
    ) -> Self {
        Self::BadRequest {
            code,
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn run_not_found(id: &str) -> Self {
        Self::NotFound {
            what: "run",
            id: id.to_owned(),
        }
    }

    /// The stable code and the status.
    fn parts(&self) -> (&'static str, StatusCode) {
        match self {
            Self::Unauthenticated(_) => ("unauthenticated", StatusCode::UNAUTHORIZED),
            Self::Forbidden { .. } => ("forbidden", StatusCode::FORBIDDEN),
            Self::NotFound { .. } => ("not_found", StatusCode::NOT_FOUND),
            Self::NoRoute(_) => ("no_route", StatusCode::NOT_FOUND),
            Self::MethodNotAllowed(_) => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            Self::BadRequest { code, .. } => (code, StatusCode::BAD_REQUEST),
            Self::BodyTooLarge { .. } => ("body_too_large", StatusCode::PAYLOAD_TOO_LARGE),
            Self::UnsupportedMediaType(_) => {
                ("unsupported_media_type", StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            Self::InvalidPlan(_) => ("invalid_plan", StatusCode::UNPROCESSABLE_ENTITY),
            Self::Unprocessable { code, .. } => (code, StatusCode::UNPROCESSABLE_ENTITY),
            Self::Conflict { code, .. } => (code, StatusCode::CONFLICT),
            Self::Refused { code, .. } => (code, StatusCode::FORBIDDEN),
            Self::ShuttingDown => ("shutting_down", StatusCode::SERVICE_UNAVAILABLE),
            Self::Busy => ("busy", StatusCode::SERVICE_UNAVAILABLE),
            Self::Internal(_) => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let (code, status) = self.parts();
        let field = match self {
            Self::BadRequest { field, .. } | Self::Unprocessable { field, .. } => field.clone(),
            _ => None,
        };
        let errors = match self {
            Self::InvalidPlan(problems) => problems.iter().map(ProblemView::from).collect(),
            _ => Vec::new(),
        };
        let detail = match self {
            Self::InvalidPlan(problems) => format!(
                "the plan has {} problem{}; see `errors`",
                problems.0.len(),
                if problems.0.len() == 1 { "" } else { "s" }
            ),
            Self::Internal(_) => {
                "the server failed to handle the request; its log has the detail".to_owned()
            }
            other => other.to_string(),
        };
        Problem {
            kind: format!("urn:kamachiq:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail,
            field,
            errors,
            required_role: match self {
                Self::Forbidden { role } => Some(role.to_string()),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!("request failed: {detail}");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Self::Busy | Self::ShuttingDown = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Self::Unauthenticated(_) = self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kamachiq\""),
            );
        }
        response
    }
}

impl From<kamachiq_store::Error> for ApiError {
    fn from(e: kamachiq_store::Error) -> Self {
        Self::from(&e)
    }
}

impl From<&kamachiq_store::Error> for ApiError {
    fn from(e: &kamachiq_store::Error) -> Self {
        use kamachiq_store::Error as E;
        match e {
            E::RunNotFound(id) => Self::run_not_found(id),
            E::TokenNotFound(id) => Self::NotFound {
                what: "token",
                id: id.clone(),
            },
            E::TokenNameTaken { .. } => Self::Conflict {
                code: "token_name_taken",
                detail: e.to_string(),
            },
            E::TenantExists(_) => Self::Conflict {
                code: "tenant_exists",
                detail: e.to_string(),
            },
            E::TenantNotFound(id) => Self::NotFound {
                what: "configured tenant",
                id: id.clone(),
            },
            E::InvalidSetting(invalid) => Self::Unprocessable {
                code: "invalid_setting",
                field: Some(invalid.field.clone()),
                detail: invalid.to_string(),
            },
            E::AlreadyGoverned(_) => Self::Conflict {
                code: "already_governed",
                detail: e.to_string(),
            },
            E::NotGoverned(_) => Self::Conflict {
                code: "not_governed",
                detail: e.to_string(),
            },
            E::RuleExists { .. } => Self::Conflict {
                code: "rule_exists",
                detail: e.to_string(),
            },
            E::RuleNotFound(name) => Self::NotFound {
                what: "circuit breaker rule",
                id: name.clone(),
            },
            E::BreakerEventNotFound(id) => Self::NotFound {
                what: "circuit breaker event",
                id: id.clone(),
            },
            E::BreakerEventResolved { .. } => Self::Conflict {
                code: "event_resolved",
                detail: e.to_string(),
            },
            e if e.is_transient() => {
                tracing::warn!("store busy: {e}");
                Self::Busy
            }
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<kamachiq_engine::Error> for ApiError {
    fn from(e: kamachiq_engine::Error) -> Self {
        use kamachiq_engine::Error as E;
        match e {
            E::Store(store) => Self::from(&*store),
            e @ E::RunBusy { .. } => Self::Conflict {
                code: "run_busy",
                detail: e.to_string(),
            },
            e @ E::RunFinished { .. } => Self::Conflict {
                code: "run_finished",
                detail: e.to_string(),
            },
            E::EngineStopped => Self::ShuttingDown,
            E::RequeueNotFound(id) => Self::NotFound {
                what: "requeue entry",
                id,
            },
            e @ E::RequeueResolved { .. } => Self::Conflict {
                code: "requeue_resolved",
                detail: e.to_string(),
            },
            e @ E::NotGoverned(_) => Self::Conflict {
                code: "not_governed",
                detail: e.to_string(),
            },
            E::Governance(g) => Self::from(&g),
            e @ E::PhaseNotLower { .. } => Self::Conflict {
                code: "phase_not_lower",
                detail: e.to_string(),
            },
            E::GovernanceBusy(_) => Self::Busy,
            e @ E::UnknownItem { .. } => Self::Unprocessable {
                code: "unknown_item",
                field: Some("item".to_owned()),
                detail: e.to_string(),
            },
            e @ E::ItemMeasured { .. } => Self::Unprocessable {
                code: "item_measured",
                field: Some("item".to_owned()),
                detail: e.to_string(),
            },
            E::ProposalNotFound(id) => Self::NotFound {
                what: "proposal",
                id,
            },
            e @ E::ProposalClosed { .. } => Self::Conflict {
                code: "proposal_closed",
                detail: e.to_string(),
            },
            E::ProposalRefused(refused) => Self::Refused {
                code: "approval_refused",
                detail: refused.to_string(),
            },
            e @ E::ProposalBlocked { .. } => Self::Conflict {
                code: "proposal_blocked",
                detail: e.to_string(),
            },
            e @ E::ProposalStale(_) => Self::Conflict {
                code: "proposal_stale",
                detail: e.to_string(),
            },
            E::ApprovalNotFound(id) => Self::NotFound {
                what: "approval request",
                id,
            },
            e @ E::ApprovalClosed { .. } => Self::Conflict {
                code: "approval_closed",
                detail: e.to_string(),
            },
            e @ E::ApprovalExpired { .. } => Self::Conflict {
                code: "approval_expired",
                detail: e.to_string(),
            },
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<&kamachiq_governance::Error> for ApiError {
    fn from(e: &kamachiq_governance::Error) -> Self {
        use kamachiq_governance::Error as E;
        let (code, field) = match e {
            E::ConditionSyntax { .. }
            | E::UnknownVariables { .. }
            | E::ConditionNotBool { .. }
            | E::ConditionFailed { .. } => ("invalid_condition", Some("condition")),
            E::RuleName { .. } => ("invalid_rule", Some("name")),
            E::RuleWindow { .. } => ("invalid_rule", Some("window")),
            E::InvalidWindow { .. } => ("invalid_window", None),
            E::UnknownPhase { .. } => ("invalid_phase", None),
            E::InvalidItem { .. } => ("invalid_item", Some("items")),
            E::ChecklistSize { .. } => ("invalid_checklist", Some("items")),
            E::NotNextPhase { .. } => {
                return Self::Conflict {
                    code: "proposal_stale",
                    detail: e.to_string(),
                };
            }
        };
        Self::Unprocessable {
            code,
            field: field.map(str::to_owned),
            detail: e.to_string(),
        }
    }
}
