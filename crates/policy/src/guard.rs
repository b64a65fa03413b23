//! The built-in guards: what the tenant's settings and the emergency stop enforce whatever the
//! operator's policies say. Each guard gives reasons with a stable code; no policy can lift them.
//!
//! | code | rule | effect |
//! | --- | --- | --- |
//! | `emergency_stop` | `builtin.emergency_stop` | deny |
//! | `tenant_mismatch` | `builtin.tenant` | deny |
//! | `residency` | `builtin.residency` | deny |
//! | `persona_not_allowed` | `builtin.persona` | deny |
//! | `tool_not_allowed` | `builtin.tools` | deny, one reason per tool |
//! | `budget_exhausted` | `builtin.budget.{deliverable,run,tenant_day_tokens,tenant_day_cost}` | deny |
//! | `action_paused` | `builtin.autonomy` | deny |
//! | the finding's code | `builtin.findings.<guard>` | require approval, one per finding |

use kamachiq_domain::Tenant;
use kamachiq_domain::tenant::Budgets;

use crate::decision::Reason;
use crate::input::{Action, Input};

/// Stable codes of the built-in guards' reasons.
pub mod code {
    pub const EMERGENCY_STOP: &str = "emergency_stop";
    pub const TENANT_MISMATCH: &str = "tenant_mismatch";
    pub const RESIDENCY: &str = "residency";
    pub const PERSONA_NOT_ALLOWED: &str = "persona_not_allowed";
    pub const TOOL_NOT_ALLOWED: &str = "tool_not_allowed";
    pub const BUDGET_EXHAUSTED: &str = "budget_exhausted";
    pub const ACTION_PAUSED: &str = "action_paused";
}

/// What the built-in guards found for one input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Findings {
    pub deny: Vec<Reason>,
    pub require_approval: Vec<Reason>,
}

/// Runs every built-in guard on `input` for `tenant`.
pub fn check(input: &Input, tenant: &Tenant) -> Findings {
    let mut out = Findings::default();
    let settings = &tenant.settings;
    let tenant_id = tenant.id.as_str();

    if input.emergency_stop {
        out.deny.push(Reason::new(
            code::EMERGENCY_STOP,
            "the emergency stop is on: every automated action is denied until \
             `kamachiq resume-all` lifts it",
            "builtin.emergency_stop",
        ));
    }
    if input.tenant != tenant_id {
        out.deny.push(Reason::new(
            code::TENANT_MISMATCH,
            format!(
                "the action is for tenant {} but was checked against tenant {tenant_id}'s settings",
                input.tenant
            ),
            "builtin.tenant",
        ));
    }
    if !settings.allows_region(&input.region) {
        out.deny.push(Reason::new(
            code::RESIDENCY,
            format!(
                "region {} is not in tenant {tenant_id}'s allowed regions: {}",
                input.region,
                settings.regions.join(", ")
            ),
            "builtin.residency",
        ));
    }
    if let Some(deliverable) = &input.deliverable {
        if let Some(persona) = &deliverable.persona
            && !settings.allows_persona(persona)
        {
            out.deny.push(Reason::new(
                code::PERSONA_NOT_ALLOWED,
                format!(
                    "persona {persona} of deliverable {} is not in tenant {tenant_id}'s allowed \
                     personas: {}",
                    deliverable.id,
                    settings.personas.join(", ")
                ),
                "builtin.persona",
            ));
        }
        for tool in deliverable
            .tools
            .iter()
            .filter(|t| !settings.allows_tool(t))
        {
            out.deny.push(Reason::new(
                code::TOOL_NOT_ALLOWED,
                format!(
                    "tool {tool} of deliverable {} is not in tenant {tenant_id}'s allowed tools: {}",
                    deliverable.id,
                    settings.tools.join(", ")
                ),
                "builtin.tools",
            ));
        }
    }
    budgets(input, tenant_id, &settings.budgets, &mut out.deny);
    if input.autonomy.paused_actions.contains(&input.action) {
        out.deny.push(Reason::new(
            code::ACTION_PAUSED,
            format!("{} actions are paused for tenant {tenant_id}", input.action),
            "builtin.autonomy",
        ));
    }
    if let Some(diff) = &input.diff {
        for f in &diff.findings {
            let at = match f.line {
                Some(line) => format!("{}:{line}", f.path),
                None => f.path.clone(),
            };
            out.require_approval.push(Reason::new(
                f.code.clone(),
                format!("{} guard: {at}: {}", f.guard, f.message),
                format!("builtin.findings.{}", f.guard),
            ));
        }
    }
    out
}

/// The budget guards: a cap is exhausted when what was spent reaches it, or when what was spent
/// plus what this action reserves would pass it.
fn budgets(input: &Input, tenant_id: &str, caps: &Budgets, deny: &mut Vec<Reason>) {
    let this = match input.action {
        Action::RunStep => "this step",
        Action::Provision => "provisioning",
        Action::Merge => "this merge",
        Action::Rollback => "this rollback",
    };
    let reserves = |amount: String| format!("; {this} reserves {amount}");

    // An action that touches no deliverable (provisioning a run) has no deliverable cap.
    let deliverable_cap =
        input
            .deliverable
            .as_ref()
            .and_then(|d| match (caps.deliverable_tokens, d.budget_tokens) {
                (Some(a), Some(b)) => Some((a.min(b), &d.id)),
                (a, b) => a.or(b).map(|cap| (cap, &d.id)),
            });
    let token_caps = [
        (
            deliverable_cap.map(|(cap, _)| cap),
            input.spent.deliverable_tokens,
            match deliverable_cap {
                Some((_, id)) => format!("deliverable {id}"),
                None => String::new(),
            },
            "",
            "builtin.budget.deliverable",
        ),
        (
            caps.run_tokens,
            input.spent.run_tokens,
            match &input.run {
                Some(r) => format!("run {}", r.id),
                None => "the run".to_owned(),
            },
            "",
            "builtin.budget.run",
        ),
        (
            caps.day_tokens,
            input.spent.tenant_day_tokens,
            format!("tenant {tenant_id}"),
            " today",
            "builtin.budget.tenant_day_tokens",
        ),
    ];
    for (cap, spent, who, when, rule) in token_caps {
        let Some(cap) = cap else { continue };
        let reserve = input.reserve.tokens;
        if exhausted(spent, reserve, cap) {
            let mut message = format!(
                "{who} has used {} of {} tokens{when}",
                thousands(spent),
                thousands(cap)
            );
            if reserve > 0 {
                message.push_str(&reserves(thousands(reserve)));
            }
            deny.push(Reason::new(code::BUDGET_EXHAUSTED, message, rule));
        }
    }
    if let Some(cap) = caps.day_cost_micro_usd {
        let spent = micro_usd(input.spent.tenant_day_cost_usd);
        let reserve = micro_usd(input.reserve.cost_usd);
        if exhausted(spent, reserve, cap) {
            let mut message = format!(
                "tenant {tenant_id} has spent {} of {} today",
                usd(spent),
                usd(cap)
            );
            if reserve > 0 {
                message.push_str(&reserves(usd(reserve)));
            }
            deny.push(Reason::new(
                code::BUDGET_EXHAUSTED,
                message,
                "builtin.budget.tenant_day_cost",
            ));
        }
    }
}

fn exhausted(spent: u64, reserve: u64, cap: u64) -> bool {
    // A sum past u64::MAX is past every cap.
    spent >= cap || spent.checked_add(reserve).is_none_or(|total| total > cap)
}

/// US dollars as whole micro-dollars, the unit of `Budgets::day_cost_micro_usd`, rounded to the
/// nearest: floating-point sums such as 0.1 + 0.2 land on the micro-dollar they mean. A negative
/// amount counts as nothing; NaN counts as the most there is, so a corrupt figure fails closed.
pub fn micro_usd(usd: f64) -> u64 {
    if usd.is_nan() {
        return u64::MAX;
    }
    let micro = (usd * 1_000_000.0).round();
    if micro <= 0.0 {
        0
    } else if micro >= u64::MAX as f64 {
        u64::MAX
    } else {
        micro as u64
    }
}

/// `$1,234.50`, or more decimals when cents are not enough (`$0.000125`).
fn usd(micro: u64) -> String {
    let dollars = micro / 1_000_000;
    let fraction = micro % 1_000_000;
    if fraction.is_multiple_of(10_000) {
        format!("${}.{:02}", thousands(dollars), fraction / 10_000)
    } else {
        let digits = format!("{fraction:06}");
        format!("${}.{}", thousands(dollars), digits.trim_end_matches('0'))
    }
}

/// `24000` as `24,000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use kamachiq_domain::tenant::TenantSettings;
    use kamachiq_domain::{TenantId, Timestamp};

    use super::*;
    use crate::input::{Autonomy, DeliverableInput, DiffInput, Finding, Reserve, RunInput, Spent};

    /// A tenant with no restriction at all.
    pub(crate) fn open_tenant() -> Tenant {
        Tenant::unconfigured(TenantId::parse("tenant-a").unwrap())
    }

    /// A tenant restricted every way the guards know.
    pub(crate) fn strict_tenant() -> Tenant {
        let mut tenant = open_tenant();
        tenant.version = 7;
        tenant.settings = TenantSettings {
            regions: vec!["eu-west-1".into()],
            threshold: 0.5,
            budgets: Budgets {
                deliverable_tokens: Some(25_000),
                run_tokens: Some(100_000),
                day_tokens: Some(1_000_000),
                day_cost_micro_usd: Some(50_000_000),
            },
            personas: vec!["developer_backend.v2".into(), "docs_writer.v1".into()],
            tools: vec!["github".into(), "plane".into()],
        };
        tenant
    }

    /// An input every guard of [`strict_tenant`] lets through.
    pub(crate) fn fine_input() -> Input {
        Input {
            action: Action::RunStep,
            tenant: "tenant-a".into(),
            region: "eu-west-1".into(),
            run: Some(RunInput {
                id: "run-1".into(),
                title: None,
            }),
            deliverable: Some(DeliverableInput {
                id: "api-svc".into(),
                persona: Some("developer_backend.v2".into()),
                tools: vec!["github".into()],
                budget_tokens: None,
            }),
            step: None,
            spent: Spent::default(),
            reserve: Reserve::default(),
            autonomy: Autonomy::default(),
            emergency_stop: false,
            diff: None,
            at: Timestamp::from_millis(1_795_000_000_000),
        }
    }

    fn codes(reasons: &[Reason]) -> Vec<&str> {
        reasons.iter().map(|r| r.code.as_str()).collect()
    }

    fn deny_of(input: &Input, tenant: &Tenant) -> Vec<Reason> {
        let found = check(input, tenant);
        assert!(found.require_approval.is_empty(), "{found:?}");
        found.deny
    }

    #[test]
    fn a_fine_input_passes_every_guard() {
        assert_eq!(check(&fine_input(), &strict_tenant()), Findings::default());
    }

    #[test]
    fn an_open_tenant_lets_anything_through() {
        let mut input = fine_input();
        input.region = "us-east-1".into();
        input.spent.tenant_day_tokens = u64::MAX;
        input.spent.tenant_day_cost_usd = 1e12;
        if let Some(d) = input.deliverable.as_mut() {
            d.persona = Some("anything".into());
            d.tools = vec!["shell".into()];
        }
        assert_eq!(check(&input, &open_tenant()), Findings::default());
    }

    #[test]
    fn the_emergency_stop_denies() {
        let mut input = fine_input();
        input.emergency_stop = true;
        assert_eq!(
            deny_of(&input, &strict_tenant()),
            [Reason::new(
                "emergency_stop",
                "the emergency stop is on: every automated action is denied until \
                 `kamachiq resume-all` lifts it",
                "builtin.emergency_stop"
            )]
        );
    }

    #[test]
    fn an_input_for_another_tenant_denies() {
        let mut input = fine_input();
        input.tenant = "tenant-b".into();
        assert_eq!(
            deny_of(&input, &strict_tenant()),
            [Reason::new(
                "tenant_mismatch",
                "the action is for tenant tenant-b but was checked against tenant tenant-a's \
                 settings",
                "builtin.tenant"
            )]
        );
    }

    #[test]
    fn residency_denies_a_region_not_allowed() {
        let mut input = fine_input();
        input.region = "us-east-1".into();
        assert_eq!(
            deny_of(&input, &strict_tenant()),
            [Reason::new(
                "residency",
                "region us-east-1 is not in tenant tenant-a's allowed regions: eu-west-1",
                "builtin.residency"
            )]
        );
    }

    #[test]
    fn a_persona_not_allowed_denies() {
        let mut input = fine_input();
        if let Some(d) = input.deliverable.as_mut() {
            d.persona = Some("sre.v1".into());
        }
        assert_eq!(
            deny_of(&input, &strict_tenant()),
            [Reason::new(
                "persona_not_allowed",
                "persona sre.v1 of deliverable api-svc is not in tenant tenant-a's allowed \
                 personas: developer_backend.v2, docs_writer.v1",
                "builtin.persona"
            )]
        );
    }

    #[test]
    fn no_persona_is_not_checked() {
        let mut input = fine_input();
        if let Some(d) = input.deliverable.as_mut() {
            d.persona = None;
        }
        assert_eq!(check(&input, &strict_tenant()), Findings::default());
    }

    #[test]
    fn each_tool_not_allowed_is_one_reason() {
        let mut input = fine_input();
        if let Some(d) = input.deliverable.as_mut() {
            d.tools = vec!["shell".into(), "github".into(), "browser".into()];
        }
        let deny = deny_of(&input, &strict_tenant());
        assert_eq!(codes(&deny), ["tool_not_allowed", "tool_not_allowed"]);
        assert_eq!(
            deny[0].message,
            "tool shell of deliverable api-svc is not in tenant tenant-a's allowed tools: \
             github, plane"
        );
        assert_eq!(
            deny[1].message,
            "tool browser of deliverable api-svc is not in tenant tenant-a's allowed tools: \
             github, plane"
        );
        assert!(deny.iter().all(|r| r.rule == "builtin.tools"));
    }

    #[test]
    fn a_paused_action_denies() {
        let mut input = fine_input();
        input.autonomy.paused_actions = vec![Action::Merge, Action::RunStep];
        assert_eq!(
            deny_of(&input, &strict_tenant()),
            [Reason::new(
                "action_paused",
                "run_step actions are paused for tenant tenant-a",
                "builtin.autonomy"
            )]
        );
        input.autonomy.paused_actions = vec![Action::Merge];
        assert_eq!(deny_of(&input, &strict_tenant()), []);
    }

    #[test]
    fn each_finding_asks_for_approval_with_its_code() {
        let mut input = fine_input();
        input.diff = Some(DiffInput {
            files: 2,
            lines_added: 10,
            lines_removed: 0,
            findings: vec![
                Finding {
                    guard: "secrets".into(),
                    code: "secret_in_diff".into(),
                    path: "src/config.rs".into(),
                    line: Some(12),
                    message: "an AWS access key".into(),
                },
                Finding {
                    guard: "paths".into(),
                    code: "protected_path".into(),
                    path: ".github/workflows/ci.yml".into(),
                    line: None,
                    message: "CI configuration is protected".into(),
                },
            ],
        });
        let found = check(&input, &strict_tenant());
        assert_eq!(found.deny, []);
        assert_eq!(
            found.require_approval,
            [
                Reason::new(
                    "secret_in_diff",
                    "secrets guard: src/config.rs:12: an AWS access key",
                    "builtin.findings.secrets"
                ),
                Reason::new(
                    "protected_path",
                    "paths guard: .github/workflows/ci.yml: CI configuration is protected",
                    "builtin.findings.paths"
                ),
            ]
        );
    }

    #[test]
    fn guards_combine_in_a_fixed_order() {
        let mut input = fine_input();
        input.emergency_stop = true;
        input.region = "us-east-1".into();
        input.autonomy.paused_actions = vec![Action::RunStep];
        input.spent.run_tokens = 100_000;
        if let Some(d) = input.deliverable.as_mut() {
            d.persona = Some("sre.v1".into());
            d.tools = vec!["shell".into()];
        }
        assert_eq!(
            codes(&deny_of(&input, &strict_tenant())),
            [
                "emergency_stop",
                "residency",
                "persona_not_allowed",
                "tool_not_allowed",
                "budget_exhausted",
                "action_paused"
            ]
        );
    }

    /// The budget reasons for `input` against [`strict_tenant`], as (rule, message).
    fn budget(input: &Input) -> Vec<(String, String)> {
        deny_of(input, &strict_tenant())
            .into_iter()
            .inspect(|r| assert_eq!(r.code, "budget_exhausted"))
            .map(|r| (r.rule, r.message))
            .collect()
    }

    fn one(rule: &str, message: &str) -> Vec<(String, String)> {
        vec![(rule.to_owned(), message.to_owned())]
    }

    #[test]
    fn the_deliverable_budget_denies_at_the_cap() {
        let mut input = fine_input();
        input.spent.deliverable_tokens = 24_999;
        assert_eq!(budget(&input), []);
        input.spent.deliverable_tokens = 25_000;
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.deliverable",
                "deliverable api-svc has used 25,000 of 25,000 tokens"
            )
        );
    }

    #[test]
    fn the_deliverable_budget_denies_a_reserve_that_passes_the_cap() {
        let mut input = fine_input();
        input.spent.deliverable_tokens = 24_000;
        input.reserve.tokens = 1_000;
        assert_eq!(budget(&input), [], "exactly reaching the cap is allowed");
        input.reserve.tokens = 2_000;
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.deliverable",
                "deliverable api-svc has used 24,000 of 25,000 tokens; this step reserves 2,000"
            )
        );
    }

    #[test]
    fn the_plan_can_only_lower_the_deliverable_cap() {
        let mut input = fine_input();
        input.spent.deliverable_tokens = 10_000;
        if let Some(d) = input.deliverable.as_mut() {
            d.budget_tokens = Some(10_000);
        }
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.deliverable",
                "deliverable api-svc has used 10,000 of 10,000 tokens"
            )
        );
        input.spent.deliverable_tokens = 24_000;
        if let Some(d) = input.deliverable.as_mut() {
            d.budget_tokens = Some(1_000_000);
        }
        assert_eq!(budget(&input), []);
        input.spent.deliverable_tokens = 25_000;
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.deliverable",
                "deliverable api-svc has used 25,000 of 25,000 tokens"
            )
        );
    }

    #[test]
    fn a_plan_cap_applies_without_a_tenant_cap() {
        let mut tenant = strict_tenant();
        tenant.settings.budgets.deliverable_tokens = None;
        let mut input = fine_input();
        input.spent.deliverable_tokens = 500;
        input.reserve.tokens = 501;
        if let Some(d) = input.deliverable.as_mut() {
            d.budget_tokens = Some(1_000);
        }
        let deny = deny_of(&input, &tenant);
        assert_eq!(
            deny[0].message,
            "deliverable api-svc has used 500 of 1,000 tokens; this step reserves 501"
        );
    }

    #[test]
    fn the_run_budget_denies_at_the_cap_and_past_it() {
        let mut input = fine_input();
        input.action = Action::Merge;
        input.spent.run_tokens = 99_999;
        input.reserve.tokens = 1;
        assert_eq!(budget(&input), []);
        input.reserve.tokens = 2;
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.run",
                "run run-1 has used 99,999 of 100,000 tokens; this merge reserves 2"
            )
        );
        input.run = None;
        input.reserve.tokens = 0;
        input.spent.run_tokens = 100_000;
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.run",
                "the run has used 100,000 of 100,000 tokens"
            )
        );
    }

    #[test]
    fn the_daily_token_budget_denies_at_the_cap() {
        let mut input = fine_input();
        input.action = Action::Provision;
        input.deliverable = None;
        input.spent.tenant_day_tokens = 950_000;
        input.reserve.tokens = 50_000;
        assert_eq!(budget(&input), []);
        input.reserve.tokens = 50_001;
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.tenant_day_tokens",
                "tenant tenant-a has used 950,000 of 1,000,000 tokens today; provisioning \
                 reserves 50,001"
            )
        );
    }

    #[test]
    fn the_daily_cost_budget_denies_at_the_cap() {
        let mut input = fine_input();
        input.spent.tenant_day_cost_usd = 49.7;
        input.reserve.cost_usd = 0.3;
        assert_eq!(budget(&input), []);
        input.reserve.cost_usd = 0.300_001;
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.tenant_day_cost",
                "tenant tenant-a has spent $49.70 of $50.00 today; this step reserves $0.300001"
            )
        );
        input.spent.tenant_day_cost_usd = 50.0;
        input.reserve.cost_usd = 0.0;
        assert_eq!(
            budget(&input),
            one(
                "builtin.budget.tenant_day_cost",
                "tenant tenant-a has spent $50.00 of $50.00 today"
            )
        );
    }

    #[test]
    fn the_daily_cost_budget_compares_in_micro_dollars() {
        let mut tenant = strict_tenant();
        tenant.settings.budgets.day_cost_micro_usd = Some(300_000);
        let mut input = fine_input();
        // In f64, 0.1 + 0.2 is more than 0.3; in micro-dollars it is exactly the cap.
        input.spent.tenant_day_cost_usd = 0.1;
        input.reserve.cost_usd = 0.2;
        assert!(input.spent.tenant_day_cost_usd + input.reserve.cost_usd > 0.3);
        assert_eq!(deny_of(&input, &tenant), []);
        input.reserve.cost_usd = 0.200_001;
        assert_eq!(
            deny_of(&input, &tenant)[0].message,
            "tenant tenant-a has spent $0.10 of $0.30 today; this step reserves $0.200001"
        );
    }

    #[test]
    fn without_a_deliverable_there_is_no_deliverable_cap() {
        let mut input = fine_input();
        input.deliverable = None;
        input.spent.deliverable_tokens = 25_000;
        assert_eq!(budget(&input), []);
    }

    #[test]
    fn a_corrupt_cost_fails_closed() {
        let mut input = fine_input();
        input.spent.tenant_day_cost_usd = f64::NAN;
        assert_eq!(budget(&input).len(), 1);
    }

    #[test]
    fn every_budget_can_deny_at_once() {
        let mut input = fine_input();
        input.spent = Spent {
            deliverable_tokens: 25_000,
            run_tokens: 100_000,
            tenant_day_tokens: 1_000_000,
            tenant_day_cost_usd: 50.0,
        };
        let rules: Vec<String> = budget(&input).into_iter().map(|(rule, _)| rule).collect();
        assert_eq!(
            rules,
            [
                "builtin.budget.deliverable",
                "builtin.budget.run",
                "builtin.budget.tenant_day_tokens",
                "builtin.budget.tenant_day_cost"
            ]
        );
    }

    #[test]
    fn thousands_groups_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(24_000), "24,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn dollars_show_cents_or_the_digits_needed() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(50_000_000), "$50.00");
        assert_eq!(usd(1_234_500_000), "$1,234.50");
        assert_eq!(usd(125), "$0.000125");
        assert_eq!(usd(1_100_000), "$1.10");
        assert_eq!(usd(1_105_000), "$1.105");
    }

    #[test]
    fn micro_usd_rounds_to_the_micro_dollar_meant() {
        assert_eq!(micro_usd(0.1 + 0.2), 300_000);
        assert_eq!(micro_usd(49.99), 49_990_000);
        assert_eq!(micro_usd(0.000_000_4), 0);
        assert_eq!(micro_usd(0.000_000_6), 1);
        assert_eq!(micro_usd(-3.0), 0);
        assert_eq!(micro_usd(f64::NAN), u64::MAX);
        assert_eq!(micro_usd(f64::INFINITY), u64::MAX);
        assert_eq!(micro_usd(f64::NEG_INFINITY), 0);
    }

    #[test]
    fn exhausted_at_the_cap_or_when_the_reserve_passes_it() {
        assert!(!exhausted(99, 0, 100));
        assert!(exhausted(100, 0, 100));
        assert!(!exhausted(99, 1, 100));
        assert!(exhausted(99, 2, 100));
        assert!(exhausted(u64::MAX - 1, u64::MAX, u64::MAX));
    }
}
