//! The OpenAPI document, generated from the handlers' annotations and the api crate's types.
//! The committed `openapi.json` must equal it; a test fails when they differ.

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    analytics, approvals, breakers, control, cost, events, governance, plans, policies, readiness,
    requeue, system, tenants, tokens, workflows,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "kamachiq",
        description = "The control plane for autonomous software delivery: plans of deliverables run as durable workflows, with tenants, tokens, an event stream, metrics and autonomy governance. Every error is `application/problem+json` with a stable `code`.",
        license(name = "Apache-2.0"),
    ),
    paths(
        system::health,
        system::ready,
        system::metrics,
        system::openapi_json,
        plans::execute,
        workflows::list,
        workflows::show,
        workflows::cancel,
        workflows::resume,
        control::pause,
        control::status,
        control::stop,
        control::resume_all,
        analytics::runs,
        analytics::summary,
        cost::cost,
        events::stream,
        tokens::list,
        tokens::create,
        tokens::revoke,
        policies::evaluate,
        policies::current,
        policies::version,
        policies::put,
        requeue::list,
        requeue::resolve,
        tenants::create,
        tenants::show,
        tenants::update,
        governance::show,
        governance::enable,
        governance::configure,
        governance::rollback,
        governance::incident,
        governance::run_cycle,
        governance::reports,
        governance::latest_report,
        governance::report,
        governance::proposals,
        governance::proposal,
        governance::approve_proposal,
        governance::reject_proposal,
        breakers::rules,
        breakers::enabled_rules,
        breakers::create_rule,
        breakers::update_rule,
        breakers::delete_rule,
        breakers::events,
        breakers::unresolved_events,
        breakers::resolve_event,
        readiness::score,
        readiness::current,
        readiness::latest,
        readiness::attest,
        readiness::checklist,
        readiness::set_checklist,
        readiness::latest_metrics,
        readiness::range_metrics,
        readiness::weekly_metrics,
        approvals::list,
        approvals::show,
        approvals::approve,
        approvals::deny,
    ),
    modifiers(&Bearer),
    tags(
        (name = "runs", description = "Submit plans and follow, cancel and resume their runs"),
        (name = "analytics", description = "Run history and the KPI summary"),
        (name = "events", description = "The event stream"),
        (name = "tokens", description = "API tokens of the caller's tenant"),
        (name = "control", description = "The emergency stop, for every run on the store"),
        (name = "policy", description = "The policy gate: decisions, the tenant's settings and Rego policies, and the requeue of blocked deliverables"),
        (name = "governance", description = "Autonomy governance: the phase and approval mode, action metrics, circuit breakers, readiness, the weekly cycle and its proposals (seed 002's paths, camelCase JSON)"),
        (name = "approvals", description = "The approvals inbox: actions that wait for a person"),
        (name = "system", description = "Probes, metrics and this document"),
    )
)]
struct Api;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // Every operation can meet a server fault, and all but the probes a busy store or a
        // server that is stopping: documented once here rather than on every handler.
        for (path, item) in &mut openapi.paths.paths {
            let probe = path == "/health" || path == "/ready";
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                responses.entry("500".to_owned()).or_insert_with(|| {
                    problem("A fault of the server; the detail is in its log, never in the answer")
                });
                if !probe {
                    responses.entry("503".to_owned()).or_insert_with(|| {
                        problem("The store is busy or the server is stopping; retry after `Retry-After` seconds")
                    });
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `kamachiq token create` or `POST /v1/tokens`",
                    ))
                    .build(),
            ),
        );
    }
}

fn problem(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// The API's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Api::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as committed in `openapi.json`: pretty JSON with a final newline.
pub fn openapi_json() -> String {
    let mut text = serde_json::to_string_pretty(&openapi()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_committed_document_is_current() {
        let committed = include_str!("../../../openapi.json");
        assert!(
            committed == super::openapi_json(),
            "openapi.json is stale: run `cargo run -- openapi > openapi.json`"
        );
    }
}
