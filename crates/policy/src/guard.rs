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

    let deliverable = input.deliverable.as_ref();
    let deliverable_cap = match (
        caps.deliverable_tokens,
        deliverable.and_then(|d| d.budget_tokens),
    ) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let token_caps = [
        (
            deliverable_cap,
            input.spent.deliverable_tokens,
            match deliverable {
                Some(d) => format!("deliverable {}", d.id),
                None => "the deliverable".to_owned(),
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
mod tests {
    use super::*;

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
