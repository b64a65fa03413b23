use crate::input::Module;

#[derive(Clone, Debug)]
pub struct PolicySet {
    version: u32,
    modules: Vec<Module>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl PolicySet {
    pub fn compile(version: u32, modules: Vec<Module>) -> Result<Self, Error> {
        Ok(Self { version, modules })
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }
}

pub fn decide(
    _input: &crate::Input,
    tenant: &kamachiq_domain::Tenant,
    policies: Option<&PolicySet>,
) -> crate::Decision {
    crate::Decision {
        verdict: crate::Verdict::Allow,
        score: 1.0,
        threshold: tenant.settings.threshold,
        risk: crate::Risk::Low,
        reasons: vec![],
        policy_version: policies.map(PolicySet::version),
        tenant_version: tenant.version,
    }
}
