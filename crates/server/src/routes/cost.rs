//! `/v1/kamachiq/cost`: the tenant's spend from the usage ledger (seed 000's billing ledger),
//! by run, deliverable, model or day.

use axum::Json;
use axum::extract::State;
use kamachiq_api::{CostParams, CostRowView, CostView, Problem};
use kamachiq_domain::Timestamp;
use kamachiq_store::{SpendBy, SpendQuery, SpendRow};

use crate::auth::{Authorized, Read};
use crate::error::ApiError;
use crate::extract::Query;
use crate::routes::{own_tenant, run_param};
use crate::state::AppState;

/// What `by` means, or why it means nothing.
pub fn spend_by(by: Option<&str>) -> Result<SpendBy, String> {
    match by.unwrap_or("model") {
        "run" => Ok(SpendBy::Run),
        "deliverable" => Ok(SpendBy::Deliverable),
        "model" => Ok(SpendBy::Model),
        "day" => Ok(SpendBy::Day),
        "tenant" => Ok(SpendBy::Tenant),
        other => Err(format!(
            "`{other}` is not one of run, deliverable, model, day, tenant"
        )),
    }
}

/// The view of a grouping of the ledger.
pub fn view(by: SpendBy, rows: &[SpendRow]) -> CostView {
    let name = match by {
        SpendBy::Run => "run",
        SpendBy::Deliverable => "deliverable",
        SpendBy::Model => "model",
        SpendBy::Day => "day",
        SpendBy::Tenant => "tenant",
    };
    CostView {
        by: name.to_owned(),
        total_tokens: rows.iter().map(|r| r.tokens).sum(),
        total_cost_usd: rows.iter().map(|r| r.cost_micro_usd).sum::<i64>() as f64 / 1e6,
        rows: rows
            .iter()
            .map(|r| CostRowView {
                key: r.key.clone(),
                tokens: r.tokens,
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cost_usd: r.cost_micro_usd as f64 / 1e6,
                steps: r.steps,
            })
            .collect(),
    }
}

/// The tenant's spend, grouped.
#[utoipa::path(get, path = "/v1/kamachiq/cost", tag = "analytics",
    security(("bearer" = [])),
    params(CostParams),
    responses(
        (status = 200, description = "Spend by run, deliverable, model or day", body = CostView),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no reading role", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`tenant_id` is not the token's tenant", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cost(
    auth: Authorized<Read>,
    State(state): State<AppState>,
    Query(params): Query<CostParams>,
) -> Result<Json<CostView>, ApiError> {
    let tenant = own_tenant(&auth.caller, params.tenant_id.as_deref())?;
    let bad = |field: &str, detail: String| {
        ApiError::bad_request("invalid_query", Some(field.to_owned()), detail)
    };
    let by = spend_by(params.by.as_deref()).map_err(|e| bad("by", e))?;
    if by == SpendBy::Tenant {
        return Err(bad(
            "by",
            "a token sees its own tenant only; group by run, deliverable, model or day".into(),
        ));
    }
    let run = run_param("run", params.run.as_deref())?;
    let since = params
        .since
        .as_deref()
        .map(|s| serde_json::from_value::<Timestamp>(serde_json::Value::String(s.to_owned())))
        .transpose()
        .map_err(|e| bad("since", format!("not an RFC 3339 time: {e}")))?;
    let rows = state
        .engine()
        .store()
        .spend(&SpendQuery {
            tenant: Some(tenant),
            run,
            since,
            by,
        })
        .await?;
    Ok(Json(view(by, &rows)))
}
