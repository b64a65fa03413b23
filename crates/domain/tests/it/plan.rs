use std::time::Duration;

use kamachiq_domain::plan::{Command, Format, Plan, ProblemKind, Source, Work};

/// The example every other tool relies on (`examples/contract.yaml`); it must parse as written.
const CONTRACT: &str = include_str!("../../../../examples/contract.yaml");

fn yaml(text: &str) -> Result<Plan, Vec<String>> {
    Plan::parse(&Source::new("plan.yaml", text, Format::Yaml))
        .map_err(|p| p.iter().map(ToString::to_string).collect())
}

fn json(text: &str) -> Result<Plan, Vec<String>> {
    Plan::parse(&Source::new("plan.json", text, Format::Json))
        .map_err(|p| p.iter().map(ToString::to_string).collect())
}

fn errors(text: &str) -> Vec<String> {
    yaml(text).expect_err("plan should be rejected")
}

#[test]
fn contract_example_parses_as_written() {
    let plan = yaml(CONTRACT).unwrap();
    assert_eq!(plan.tenant.as_str(), "tenant-a");
    assert_eq!(plan.region, "eu-west-1");
    assert_eq!(plan.repo.as_deref(), Some("../service"));
    assert_eq!(plan.branch.as_deref(), Some("main"));
    assert_eq!(plan.deliverables.len(), 2);

    let api = &plan.deliverables[0];
    assert_eq!(api.id.as_str(), "api-svc");
    assert_eq!(api.title, "API service");
    assert_eq!(api.persona.as_deref(), Some("developer_backend.v2"));
    assert_eq!(api.tools, ["github", "plane"]);
    assert_eq!(api.budget_tokens, Some(25_000));
    assert!(api.dependencies.is_empty());
    assert_eq!(api.steps.len(), 2);
    let dev = &api.steps[0];
    assert_eq!(dev.name.as_str(), "dev");
    assert_eq!(
        dev.work.command().unwrap(),
        &Command::Argv(vec![
            "sh".into(),
            "-c".into(),
            "echo 'fn main() {}' > api.rs".into()
        ])
    );
    assert_eq!(dev.timeout, Duration::from_secs(600));
    assert_eq!(dev.retries, 1);
    assert_eq!(
        api.steps[1].work.command().unwrap(),
        &Command::Shell("test -f api.rs".into())
    );
    assert_eq!(api.steps[1].retries, 0);

    let docs = &plan.deliverables[1];
    assert_eq!(docs.title, "docs", "title defaults to the id");
    assert_eq!(docs.dependencies[0].as_str(), "api-svc");
}

#[test]
fn planner_output_in_json_with_steps_parses() {
    let plan = json(
        r#"{
  "tenant": "tenant-a",
  "deliverables": [
    {
      "id": "api-svc",
      "persona": "developer_backend.v2",
      "tools": ["github", "plane"],
      "budget_tokens": 25000,
      "dependencies": [],
      "steps": [{"name": "dev", "run": "true", "env": {"PORT": 8080}}]
    }
  ]
}"#,
    )
    .unwrap();
    assert_eq!(plan.region, "local", "region defaults");
    assert_eq!(plan.deliverables[0].steps[0].env["PORT"], "8080");
}

#[test]
fn defaults_apply_when_fields_are_absent() {
    let plan = yaml("deliverables:\n  - id: a\n    retries: 2\n    steps:\n      - name: s\n        run: 'true'\n").unwrap();
    assert_eq!(plan.tenant.as_str(), "default");
    let step = &plan.deliverables[0].steps[0];
    assert_eq!(
        step.retries, 2,
        "deliverable retries are the steps' default"
    );
    assert_eq!(step.timeout, Duration::from_secs(3600));
    assert_eq!(step.backoff, Duration::from_secs(1));
}

#[test]
fn duplicate_id_names_both_lines() {
    let errs = errors(
        "deliverables:
  - id: a
    steps: [{name: s, run: 'true'}]
  - id: a
    steps: [{name: s, run: 'true'}]
",
    );
    assert_eq!(
        errs,
        ["plan.yaml:4: deliverable `a`: duplicate deliverable id `a` (first defined on line 2)"]
    );
}

#[test]
fn unknown_dependency_suggests_the_near_miss() {
    let errs = errors(
        "deliverables:
  - id: api-svc
    steps: [{name: s, run: 'true'}]
  - id: docs
    dependencies: [api-sv]
    steps: [{name: s, run: 'true'}]
",
    );
    assert_eq!(
        errs,
        [
            "plan.yaml:5: deliverable `docs`: dependency `api-sv` does not exist (did you mean `api-svc`?)"
        ]
    );
}

#[test]
fn cycle_prints_its_path() {
    let errs = errors(
        "deliverables:
  - id: a
    dependencies: [c]
    steps: [{name: s, run: 'true'}]
  - id: b
    dependencies: [a]
    steps: [{name: s, run: 'true'}]
  - id: c
    dependencies: [b]
    steps: [{name: s, run: 'true'}]
",
    );
    assert_eq!(
        errs,
        ["plan.yaml:2: deliverable `a`: dependency cycle: a -> c -> b -> a"]
    );
}

#[test]
fn self_dependency_is_a_cycle() {
    let errs = errors(
        "deliverables:\n  - id: a\n    dependencies: [a]\n    steps: [{name: s, run: 'true'}]\n",
    );
    assert_eq!(
        errs,
        ["plan.yaml:2: deliverable `a`: dependency cycle: a -> a"]
    );
}

#[test]
fn empty_step_is_rejected_in_both_forms() {
    let errs = errors(
        "deliverables:
  - id: a
    steps:
      - name: dev
        run: '   '
      - name: qa
        run: []
",
    );
    assert_eq!(
        errs,
        [
            "plan.yaml:5: deliverable `a`: step `dev` has an empty command",
            "plan.yaml:7: deliverable `a`: step `qa` has an empty command",
        ]
    );
}

#[test]
fn negative_budget_is_rejected() {
    let errs = errors(
        "deliverables:\n  - id: a\n    budget_tokens: -5\n    steps: [{name: s, run: 'true'}]\n",
    );
    assert_eq!(
        errs,
        ["plan.yaml:3: deliverable `a`: budget_tokens must not be negative (got -5)"]
    );
}

#[test]
fn unknown_field_names_the_field_the_line_and_the_deliverable() {
    let errs = errors(
        "deliverables:
  - id: a
    steps: [{name: s, run: 'true'}]
  - id: b
    dependecies: [a]
    steps: [{name: s, run: 'true'}]
",
    );
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("plan.yaml:5:"), "{errs:?}");
    assert!(
        errs[0].contains("deliverable `b`: unknown field `dependecies`"),
        "{errs:?}"
    );
}

#[test]
fn unknown_top_level_field_is_rejected() {
    let errs = errors("tennant: x\ndeliverables: []\n");
    assert!(errs[0].starts_with("plan.yaml:1:"), "{errs:?}");
    assert!(errs[0].contains("unknown field `tennant`"), "{errs:?}");
}

#[test]
fn deliverable_without_steps_is_rejected() {
    let errs = errors("deliverables:\n  - id: a\n    persona: dev\n");
    assert_eq!(
        errs,
        ["plan.yaml:2: deliverable `a`: no steps: a deliverable needs at least one step to run"]
    );
}

#[test]
fn bad_durations_and_workdirs_are_explained() {
    let errs = errors(
        "deliverables:
  - id: a
    steps:
      - name: s
        run: 'true'
        timeout: 10 minutes please
        workdir: ../outside
",
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("plan.yaml:6: deliverable `a`: invalid timeout `10 minutes please`"),
        "{errs:?}"
    );
    assert_eq!(
        errs[1],
        "plan.yaml:7: deliverable `a`: step `s`: workdir `../outside` must stay inside the deliverable's worktree (no `..`)"
    );
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let errs = errors(
        "deliverables:
  - id: a
    dependencies: [zzz]
    steps: [{name: s, run: ''}]
  - id: a
    steps: [{name: s, run: 'true'}]
  - id: 'bad id'
    steps: [{name: s, run: 'true'}]
",
    );
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs[0].contains("dependency `zzz` does not exist"));
    assert!(errs[1].contains("step `s` has an empty command"));
    assert!(errs[2].contains("duplicate deliverable id `a`"));
    assert!(errs[3].contains("invalid deliverable id `bad id`"));
}

#[test]
fn empty_plan_is_rejected() {
    assert_eq!(
        errors("deliverables: []\n"),
        ["plan.yaml: the plan has no deliverables"]
    );
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let errs = errors("deliverables:\n  - id: a\n    steps: [{name: s, run: 'true'}\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("plan.yaml:"), "{errs:?}");
    let line: u64 = errs[0].split(':').nth(1).unwrap().parse().unwrap();
    assert!((3..=4).contains(&line), "{errs:?}");
}

#[test]
fn json_errors_have_lines_too() {
    let errs = json("{\n  \"deliverables\": [\n    {\"id\": \"a\", \"steps\": [{\"name\": \"s\", \"run\": \"true\"}], \"extra\": 1}\n  ]\n}").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("plan.json:3:"), "{errs:?}");
    assert!(errs[0].contains("unknown field `extra`"), "{errs:?}");

    let errs = json("{\n  \"deliverables\": [\n    {\"id\": \"a\", \"dependencies\": [\"b\"], \"steps\": [{\"name\": \"s\", \"run\": \"true\"}]}\n  ]\n}").unwrap_err();
    assert_eq!(
        errs,
        ["plan.json:3: deliverable `a`: dependency `b` does not exist"]
    );
}

#[test]
fn wrong_types_are_format_problems() {
    let problems = Plan::parse(&Source::new(
        "p.yaml",
        "deliverables:\n  - id: a\n    retries: many\n    steps: [{name: s, run: 'true'}]\n",
        Format::Yaml,
    ))
    .unwrap_err();
    let p = problems.iter().next().unwrap();
    assert_eq!(p.line, Some(3));
    assert_eq!(p.deliverable.as_deref(), Some("a"));
    assert!(matches!(p.kind, ProblemKind::Format { .. }));
}

#[test]
fn validated_plan_round_trips_through_json() {
    let plan = yaml(CONTRACT).unwrap();
    let stored = serde_json::to_string(&plan).unwrap();
    let back: Plan = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, plan);
}

#[test]
fn run_true_is_the_true_command() {
    let plan = yaml("deliverables:\n  - id: a\n    steps: [{name: s, run: true}]\n").unwrap();
    assert_eq!(
        plan.deliverables[0].steps[0].work.command().unwrap(),
        &Command::Shell("true".into())
    );
}

#[test]
fn an_agent_step_has_a_prompt_and_maybe_an_agent_model_and_budget() {
    let plan = yaml(
        "deliverables:\n  - id: a\n    steps:\n      - {name: dev, agent: claude, prompt: 'Add a /health route', model: sonnet, budget_tokens: 5000}\n      - {name: qa, prompt: 'Review it'}\n",
    )
    .unwrap();
    let steps = &plan.deliverables[0].steps;
    assert_eq!(
        steps[0].work,
        Work::Agent {
            agent: Some("claude".into()),
            prompt: "Add a /health route".into(),
            model: Some("sonnet".into()),
            budget_tokens: Some(5000),
        }
    );
    assert_eq!(
        steps[1].work,
        Work::Agent {
            agent: None,
            prompt: "Review it".into(),
            model: None,
            budget_tokens: None,
        }
    );
    assert_eq!(steps[0].work.command(), None);
    // Stored and read back as it was.
    let stored = serde_json::to_string(&plan).unwrap();
    assert!(
        stored.contains(r#""agent":"claude","prompt":"Add a /health route""#),
        "{stored}"
    );
    assert_eq!(serde_json::from_str::<Plan>(&stored).unwrap(), plan);
}

#[test]
fn agent_steps_are_checked_field_by_field() {
    let errs = errors(
        "deliverables:\n  - id: a\n    steps:\n      - {name: dev, agent: copilot, prompt: 'x'}\n      - {name: qa, run: 'true', prompt: 'y'}\n      - {name: docs, prompt: '  '}\n      - {name: lint, run: 'true', model: m, budget_tokens: 5}\n      - {name: pay, prompt: 'z', budget_tokens: -1}\n",
    );
    assert_eq!(
        errs,
        [
            "plan.yaml:4: deliverable `a`: step `dev`: unknown agent `copilot`; agents are claude, codex, aider, gemini, command",
            "plan.yaml:5: deliverable `a`: step `qa` needs either `run` (a command) or `prompt` (for an agent), not both",
            "plan.yaml:6: deliverable `a`: step `docs` has an empty prompt",
            "plan.yaml:7: deliverable `a`: step `lint`: `model` applies to agent steps only (steps with a `prompt`)",
            "plan.yaml:7: deliverable `a`: step `lint`: `budget_tokens` applies to agent steps only (steps with a `prompt`)",
            "plan.yaml:8: deliverable `a`: budget_tokens must not be negative (got -1)",
        ]
    );
}

#[test]
fn a_zero_timeout_is_reported_where_it_is_written() {
    let errs = errors(
        "deliverables:\n  - id: a\n    steps:\n      - name: s\n        run: 'true'\n        timeout: 0s\n",
    );
    assert_eq!(
        errs,
        ["plan.yaml:6: deliverable `a`: invalid timeout `0s`: must be longer than zero"]
    );
}

#[test]
fn a_repeated_step_name_is_found_even_next_to_another_problem() {
    let errs = errors(
        "deliverables:\n  - id: a\n    steps:\n      - {name: dev, run: ''}\n      - {name: dev, run: 'true'}\n",
    );
    assert_eq!(
        errs,
        [
            "plan.yaml:4: deliverable `a`: step `dev` has an empty command",
            "plan.yaml:5: deliverable `a`: step name `dev` is used more than once",
        ]
    );
}

#[test]
fn a_submitted_plan_belongs_to_its_submitters_tenant() {
    let tenant = kamachiq_domain::TenantId::parse("tenant-a").unwrap();
    let text = "deliverables:\n  - id: a\n    steps: [{name: dev, run: 'true'}]\n";
    let plan =
        Plan::parse(&Source::new("body", text, Format::Yaml).for_tenant(tenant.clone())).unwrap();
    assert_eq!(plan.tenant, tenant);

    let foreign = format!("tenant: tenant-b\n{text}");
    let problems =
        Plan::parse(&Source::new("body", foreign, Format::Yaml).for_tenant(tenant)).unwrap_err();
    let problem = &problems.0[0];
    assert_eq!(problem.field.as_deref(), Some("tenant"));
    assert_eq!(problem.line, Some(1));
    assert!(matches!(problem.kind, ProblemKind::ForeignTenant { .. }));
    assert_eq!(
        problem.kind.to_string(),
        "the plan is for tenant `tenant-b`, but it was submitted for tenant `tenant-a`"
    );
}

#[test]
fn a_nul_character_anywhere_is_refused() {
    let text = r#"{"title": "a\u0000b", "deliverables": [{"id": "a", "steps": [{"name": "dev", "run": "true"}]}]}"#;
    assert_eq!(
        json(text).unwrap_err(),
        ["plan.json: a value contains the NUL character (\\u0000), which kamachiq cannot store"]
    );
}
