//! Who may do what: the roles an API token holds, and the permissions each operation needs.
//!
//! A token belongs to one tenant and holds one or more roles. Reading needs any role; driving
//! runs needs `operator`; managing tokens needs `admin`. The approver roles (`tech-lead`,
//! `ops-lead`, `product-lead`, `exec-sponsor`) read like a viewer and approve what their role
//! is asked for: actions in the approvals inbox, readiness attestations, and the autonomy
//! proposals that name their role. Rolling a phase back and changing circuit-breaker rules
//! takes `admin` or `ops-lead`. `metrics` reads the Prometheus endpoint and nothing else, for
//! scrapers.

use crate::names::named_enum;

named_enum! {
    /// A role held by an API token.
    pub enum Role ("role") {
        Viewer = "viewer",
        Operator = "operator",
        Admin = "admin",
        TechLead = "tech-lead",
        OpsLead = "ops-lead",
        ProductLead = "product-lead",
        ExecSponsor = "exec-sponsor",
        Metrics = "metrics",
    }
}

/// What an operation needs from its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read the tenant's runs, events and analytics.
    Read,
    /// Submit, cancel and resume runs.
    Operate,
    /// Create, list and revoke tokens.
    Administer,
    /// Read `/metrics`.
    ReadMetrics,
    /// Approve or deny what waits for a person, attest readiness items, approve proposals
    /// (each proposal also checks the roles it names).
    Approve,
    /// Roll a tenant's autonomy phase back, change its circuit-breaker rules.
    Govern,
}

impl Permission {
    /// The roles that grant this permission, the first being the one to ask for.
    pub fn granted_by(self) -> &'static [Role] {
        match self {
            Self::Read => &[
                Role::Viewer,
                Role::Operator,
                Role::Admin,
                Role::TechLead,
                Role::OpsLead,
                Role::ProductLead,
                Role::ExecSponsor,
            ],
            Self::Operate => &[Role::Operator, Role::Admin],
            Self::Administer => &[Role::Admin],
            Self::ReadMetrics => &[Role::Metrics, Role::Admin],
            Self::Approve => &[
                Role::TechLead,
                Role::OpsLead,
                Role::ProductLead,
                Role::ExecSponsor,
                Role::Admin,
            ],
            Self::Govern => &[Role::Admin, Role::OpsLead],
        }
    }

    /// Whether a holder of `roles` has this permission.
    pub fn allows(self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.granted_by().contains(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_needs_any_role_but_metrics() {
        for role in Role::ALL {
            assert_eq!(
                Permission::Read.allows(&[role]),
                role != Role::Metrics,
                "{role}"
            );
        }
    }

    #[test]
    fn operating_needs_operator_or_admin() {
        assert!(Permission::Operate.allows(&[Role::Viewer, Role::Operator]));
        assert!(Permission::Operate.allows(&[Role::Admin]));
        assert!(!Permission::Operate.allows(&[Role::Viewer, Role::TechLead]));
        assert!(!Permission::Operate.allows(&[]));
    }

    #[test]
    fn administering_needs_admin() {
        assert!(!Permission::Administer.allows(&[Role::Operator, Role::Metrics]));
        assert!(Permission::Administer.allows(&[Role::Admin]));
        assert_eq!(Permission::Administer.granted_by()[0], Role::Admin);
    }

    #[test]
    fn approving_needs_an_approver_role_or_admin_and_governing_admin_or_ops_lead() {
        for role in Role::ALL {
            let approver = matches!(
                role,
                Role::TechLead
                    | Role::OpsLead
                    | Role::ProductLead
                    | Role::ExecSponsor
                    | Role::Admin
            );
            assert_eq!(Permission::Approve.allows(&[role]), approver, "{role}");
            assert_eq!(
                Permission::Govern.allows(&[role]),
                matches!(role, Role::Admin | Role::OpsLead),
                "{role}"
            );
        }
        assert_eq!(Permission::Approve.granted_by()[0], Role::TechLead);
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
