//! `decide` on the hot path: every built-in guard active (a tenant with regions, personas,
//! tools and every budget) and a realistic twenty-rule Rego policy (`benches/policies`).
//!
//! Before criterion's own measurements, 100,000 single `decide` calls are timed one by one and
//! their p50, p99 and maximum printed, since criterion reports means and medians of batches,
//! not the tail of single calls.
//!
//! Run it with `cargo bench -p kamachiq-policy --bench decide`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use kamachiq_domain::tenant::{Budgets, TenantSettings};
use kamachiq_domain::{Tenant, TenantId, Timestamp};
use kamachiq_policy::{
    Action, Autonomy, DeliverableInput, DiffInput, Finding, Input, PolicySet, Reserve, RunInput,
    Spent, StepInput, Verdict, decide, load_dir,
};

const SINGLE_CALLS: usize = 100_000;

fn tenant() -> Tenant {
    let mut tenant = Tenant::unconfigured(TenantId::parse("tenant-a").unwrap());
    tenant.version = 12;
    tenant.settings = TenantSettings {
        regions: vec!["eu-central-1".into(), "eu-west-1".into()],
        threshold: 0.5,
        budgets: Budgets {
            deliverable_tokens: Some(250_000),
            run_tokens: Some(2_000_000),
            day_tokens: Some(20_000_000),
            day_cost_micro_usd: Some(500_000_000),
        },
        personas: vec![
            "developer_backend.v2".into(),
            "docs_writer.v1".into(),
            "sre.v1".into(),
        ],
        tools: vec![
            "browser".into(),
            "github".into(),
            "plane".into(),
            "postgres".into(),
        ],
    };
    tenant
}

/// A merge every guard lets through and every policy rule has to look at.
fn merge() -> Input {
    Input {
        action: Action::Merge,
        tenant: "tenant-a".into(),
        region: "eu-west-1".into(),
        run: Some(RunInput {
            id: "01JD3RUN".into(),
            title: Some("billing export".into()),
        }),
        deliverable: Some(DeliverableInput {
            id: "api-svc".into(),
            persona: Some("developer_backend.v2".into()),
            tools: vec!["github".into(), "plane".into(), "postgres".into()],
            budget_tokens: Some(200_000),
        }),
        step: Some(StepInput {
            name: "implement".into(),
            agent: Some("claude".into()),
            model: Some("opus".into()),
        }),
        spent: Spent {
            deliverable_tokens: 120_000,
            run_tokens: 400_000,
            tenant_day_tokens: 3_000_000,
            tenant_day_cost_usd: 41.5,
        },
        reserve: Reserve {
            tokens: 20_000,
            cost_usd: 0.8,
        },
        autonomy: Autonomy::default(),
        emergency_stop: false,
        diff: Some(DiffInput {
            files: 14,
            lines_added: 420,
            lines_removed: 96,
            findings: vec![Finding {
                guard: "licences".into(),
                code: "licence_header_missing".into(),
                path: "src/export.rs".into(),
                line: Some(1),
                message: "no licence header".into(),
            }],
        }),
        // 10:04 UTC: inside working hours.
        at: Timestamp::from_millis(1_795_000_000_000 - 3_600_000),
    }
}

fn policies() -> PolicySet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/policies");
    PolicySet::compile(1, load_dir(&dir).unwrap()).unwrap()
}

/// Times `SINGLE_CALLS` single calls and prints their percentiles.
fn percentiles(name: &str, input: &Input, tenant: &Tenant, set: Option<&PolicySet>) {
    let mut times = Vec::with_capacity(SINGLE_CALLS);
    for _ in 0..SINGLE_CALLS / 10 {
        black_box(decide(black_box(input), tenant, set));
    }
    for _ in 0..SINGLE_CALLS {
        let started = Instant::now();
        black_box(decide(black_box(input), tenant, set));
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let max = times.last().copied().unwrap_or(Duration::ZERO);
    println!(
        "{name}: {SINGLE_CALLS} single calls: p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        at(0.50),
        at(0.99),
        max
    );
}

fn main() {
    let tenant = tenant();
    let set = policies();
    let input = merge();

    // The benchmark is only worth something if the policy runs cleanly and decides.
    let d = decide(&input, &tenant, Some(&set));
    assert_eq!(d.verdict, Verdict::RequireApproval, "{d:#?}");
    assert!(d.reasons.iter().all(|r| r.code != "policy_error"), "{d:#?}");

    percentiles("decide/guards_only", &input, &tenant, None);
    percentiles("decide/guards_and_20_rules", &input, &tenant, Some(&set));

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("decide/guards_only", |b| {
        b.iter(|| decide(black_box(&input), &tenant, None));
    });
    c.bench_function("decide/guards_and_20_rules", |b| {
        b.iter(|| decide(black_box(&input), &tenant, Some(&set)));
    });
    c.final_summary();
}
