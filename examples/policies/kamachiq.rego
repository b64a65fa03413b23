# A starter policy for kamachiq's policy gate. Copy this directory, adapt the lists below, and
# point the tenant at it; `crates/policy/POLICIES.md` explains the input and what each rule means.
#
# It is deliberately mild: nothing here denies out of the box. Merges that deserve a person's eye
# ask for approval, and the score drops a little with the number of tools and the size of the
# change, never below 0.5 (the default threshold), so the score alone never stops an action.
package kamachiq

import rego.v1

# Personas whose merges may land without review. Other personas' merges ask for approval.
trusted_merge_personas := {"developer_backend.v2", "docs_writer.v1"}

# Deliverables whose merges always ask for approval, whoever wrote them.
protected_deliverables := {"auth", "billing"}

# Models steps may run with. Empty: any model.
allowed_models := set()

# A merge changing more lines than this asks for approval.
large_change_lines := 2000

default tool_count := 0

tool_count := count(input.deliverable.tools)

default changed_lines := 0

changed_lines := input.diff.lines_added + input.diff.lines_removed

protected if input.deliverable.id in protected_deliverables

deny contains {"code": "model_not_allowed", "message": msg} if {
	count(allowed_models) > 0
	model := input.step.model
	not model in allowed_models
	msg := sprintf("step %s would run with model %s, which is not allowed", [input.step.name, model])
}

require_approval contains {"code": "untrusted_persona_merge", "message": msg} if {
	input.action == "merge"
	not input.deliverable.persona in trusted_merge_personas
	msg := sprintf(
		"deliverable %s was written by persona %s, whose merges need a review",
		[input.deliverable.id, object.get(input.deliverable, "persona", "(none)")],
	)
}

require_approval contains {"code": "protected_deliverable", "message": msg} if {
	input.action == "merge"
	protected
	msg := sprintf("deliverable %s is protected: its merges need a review", [input.deliverable.id])
}

require_approval contains {"code": "large_change", "message": msg} if {
	input.action == "merge"
	changed_lines > large_change_lines
	msg := sprintf("the merge changes %d lines (more than %d)", [changed_lines, large_change_lines])
}

# 0.05 less for each tool past the third, 0.1 less for a change of more than 500 lines.
tool_penalty := 0.05 * max([0, tool_count - 3])

default size_penalty := 0

size_penalty := 0.1 if changed_lines > 500

default score := 1.0

score := max([0.5, (1 - tool_penalty) - size_penalty])

risk := "high" if {
	input.action == "merge"
	protected
}
