# A realistic operator policy for the `decide` benchmark: twenty rules of the kinds an operator
# writes (residency by data class, working hours, risk by tools and persona, budget ratio,
# protected deliverables, change size, autonomy phase), evaluated for every action.
package kamachiq

import rego.v1

# --- Data the rules use -------------------------------------------------------------------------

data_class_of := {
	"billing": "pci",
	"crm-sync": "pii",
	"api-svc": "internal",
	"docs": "public",
}

regions_for_class := {
	"pci": {"eu-west-1"},
	"pii": {"eu-west-1", "eu-central-1"},
	"internal": {"eu-west-1", "eu-central-1", "us-east-1"},
	"public": {"eu-west-1", "eu-central-1", "us-east-1", "ap-southeast-2"},
}

tool_weight := {"shell": 0.15, "browser": 0.1, "github": 0.03, "plane": 0.02, "postgres": 0.08}

persona_weight := {"developer_backend.v2": 0.02, "docs_writer.v1": 0.0, "sre.v1": 0.08}

protected_deliverables := {"billing", "auth", "payments-gateway"}

models_for_persona := {
	"developer_backend.v2": {"opus", "sonnet"},
	"docs_writer.v1": {"sonnet", "haiku"},
	"sre.v1": {"opus"},
}

# --- Helpers ------------------------------------------------------------------------------------

default data_class := "internal"

data_class := data_class_of[input.deliverable.id]

hour := to_number(substring(input.at, 11, 2))

working_hours if {
	hour >= 7
	hour < 19
}

default tool_penalty := 0

tool_penalty := sum([object.get(tool_weight, t, 0.12) | some t in input.deliverable.tools])

default persona_penalty := 0.05

persona_penalty := persona_weight[input.deliverable.persona]

default budget_ratio := 0

budget_ratio := input.spent.deliverable_tokens / input.deliverable.budget_tokens if {
	input.deliverable.budget_tokens > 0
}

default changed_lines := 0

changed_lines := input.diff.lines_added + input.diff.lines_removed

secret_findings := [f | some f in input.diff.findings; f.guard == "secrets"]

# --- Decision rules -----------------------------------------------------------------------------

deny contains {"code": "data_class_residency", "message": msg} if {
	not input.region in regions_for_class[data_class]
	msg := sprintf("%s data may not be processed in %s", [data_class, input.region])
}

deny contains {"code": "model_not_allowed", "message": msg} if {
	allowed := models_for_persona[input.deliverable.persona]
	model := input.step.model
	not model in allowed
	msg := sprintf("persona %s may not use model %s", [input.deliverable.persona, model])
}

deny contains "merges are not automated in phase L1" if {
	input.action == "merge"
	input.autonomy.phase == "L1"
}

deny contains {"code": "secret_in_protected", "message": msg} if {
	input.action == "merge"
	input.deliverable.id in protected_deliverables
	count(secret_findings) > 0
	msg := sprintf("%d secret findings in protected deliverable %s", [count(secret_findings), input.deliverable.id])
}

require_approval contains {"code": "outside_working_hours", "message": msg} if {
	input.action == "merge"
	not working_hours
	msg := sprintf("merge at %02d:00 UTC, outside 07:00-19:00", [hour])
}

require_approval contains {"code": "protected_deliverable", "message": msg} if {
	input.action in {"merge", "rollback"}
	input.deliverable.id in protected_deliverables
	msg := sprintf("deliverable %s is protected", [input.deliverable.id])
}

require_approval contains {"code": "budget_nearly_spent", "message": msg} if {
	budget_ratio > 0.9
	msg := sprintf("deliverable %s has used %.0f%% of its budget", [input.deliverable.id, budget_ratio * 100])
}

require_approval contains {"code": "large_change", "message": msg} if {
	input.action == "merge"
	changed_lines > 1500
	msg := sprintf("the merge changes %d lines", [changed_lines])
}

require_approval contains "manual approval mode" if {
	input.action == "merge"
	input.autonomy.approval_mode == "manual"
}

default score := 1.0

score := max([0, ((1 - tool_penalty) - persona_penalty) - (0.2 * budget_ratio)])

risk := "critical" if data_class == "pci"

risk := "high" if {
	data_class == "pii"
	input.action == "merge"
}
