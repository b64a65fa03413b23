# Tests of the starter policy: `kamachiq policy test` (and kamachiq-policy's own tests) run every
# rule named test_* and expect true.
package kamachiq_test

import rego.v1

import data.kamachiq

merge(deliverable) := {
	"action": "merge",
	"tenant": "tenant-a",
	"region": "eu-west-1",
	"deliverable": deliverable,
	"diff": {"files": 2, "lines_added": 40, "lines_removed": 3, "findings": []},
}

codes(reasons) := {r.code | some r in reasons}

test_a_trusted_persona_merges_without_review if {
	inp := merge({"id": "api-svc", "persona": "developer_backend.v2", "tools": ["github"]})
	count(kamachiq.require_approval) == 0 with input as inp
	count(kamachiq.deny) == 0 with input as inp
	kamachiq.score == 1 with input as inp
}

test_an_untrusted_persona_merge_needs_review if {
	inp := merge({"id": "api-svc", "persona": "sre.v1", "tools": []})
	codes(kamachiq.require_approval) == {"untrusted_persona_merge"} with input as inp
}

test_a_merge_without_persona_needs_review if {
	inp := merge({"id": "api-svc", "tools": []})
	codes(kamachiq.require_approval) == {"untrusted_persona_merge"} with input as inp
}

test_a_protected_deliverable_needs_review if {
	inp := merge({"id": "billing", "persona": "developer_backend.v2", "tools": []})
	codes(kamachiq.require_approval) == {"protected_deliverable"} with input as inp
	kamachiq.risk == "high" with input as inp
}

test_a_large_change_needs_review if {
	inp := object.union(
		merge({"id": "api-svc", "persona": "docs_writer.v1", "tools": []}),
		{"diff": {"files": 90, "lines_added": 1900, "lines_removed": 200, "findings": []}},
	)
	codes(kamachiq.require_approval) == {"large_change"} with input as inp
	kamachiq.score == 0.9 with input as inp
}

test_steps_need_no_review if {
	inp := {"action": "run_step", "deliverable": {"id": "billing", "persona": "sre.v1", "tools": []}}
	count(kamachiq.require_approval) == 0 with input as inp
}

test_the_score_drops_with_tools if {
	kamachiq.score == 0.9 with input as {"action": "run_step", "deliverable": {"id": "x", "tools": ["a", "b", "c", "d", "e"]}}
	kamachiq.score == 1 with input as {"action": "run_step", "deliverable": {"id": "x", "tools": ["a", "b", "c"]}}
}

test_the_score_never_drops_below_the_default_threshold if {
	tools := [sprintf("tool-%d", [i]) | some i in numbers.range(1, 30)]
	kamachiq.score == 0.5 with input as {"action": "run_step", "deliverable": {"id": "x", "tools": tools}}
}

test_any_model_is_allowed_by_default if {
	count(kamachiq.deny) == 0 with input as {"action": "run_step", "step": {"name": "implement", "model": "anything"}}
}

test_a_model_not_on_the_list_is_denied if {
	step_input := {"action": "run_step", "step": {"name": "implement", "model": "big-model"}}
	codes(kamachiq.deny) == {"model_not_allowed"} with input as step_input with kamachiq.allowed_models as {"small-model"}
	count(kamachiq.deny) == 0 with input as step_input with kamachiq.allowed_models as {"big-model"}
}
