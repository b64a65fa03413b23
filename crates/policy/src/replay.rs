//! Replaying recorded decisions against a candidate policy set, to see what a change of policy
//! would change before it is made.

use kamachiq_domain::Tenant;
use serde::{Deserialize, Serialize};

use crate::decision::{Decision, Verdict, decide};
use crate::input::Input;
use crate::rego::PolicySet;

/// A decision that was made: the input and the verdict it got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub id: String,
    pub input: Input,
    pub verdict: Verdict,
}

/// A recorded decision whose verdict the candidate changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: String,
    pub before: Verdict,
    pub after: Decision,
}

/// Decides every record again with `tenant` and `candidate` (`None`: no Rego policies) and
/// returns those whose verdict changes, in the records' order.
pub fn replay<'a>(
    records: impl IntoIterator<Item = &'a Recorded>,
    tenant: &Tenant,
    candidate: Option<&PolicySet>,
) -> Vec<Change> {
    records
        .into_iter()
        .filter_map(|r| {
            let after = decide(&r.input, tenant, candidate);
            (after.verdict != r.verdict).then(|| Change {
                id: r.id.clone(),
                before: r.verdict,
                after,
            })
        })
        .collect()
}
