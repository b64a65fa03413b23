//! Operator policies in Rego: loading them, compiling them once into regorus's bytecode VM, running
//! their tests, and evaluating them for one input.
//!
//! Evaluation is on the hot path of every action, so a [`PolicySet`] is compiled once into an
//! RVM program (shared, immutable) whose one entry point gathers every decision rule, so that
//! helpers they share run once. Each thread keeps a few VMs with a program loaded and reuses
//! them (a VM starts every run afresh); no lock is shared between threads while a policy runs.
//! A thread's cached VMs keep their programs alive until they are displaced, at most
//! [`VMS_PER_THREAD`] per thread.
//!
//! What fails, and how (the gate always fails closed, with a `policy_error` deny reason):
//!
//! - A limit hit while evaluating ([`MAX_INSTRUCTIONS`], numeric overflow) is an error.
//! - A decision rule with a result of the wrong shape (a score of 1.5, a risk of "severe", a
//!   deny entry that is a number) is an error.
//! - `score` with conflicting values is an error. The VM makes a complete rule with conflicting
//!   values undefined instead of raising OPA's conflict error, so an undefined `score` is
//!   evaluated again by regorus's interpreter, which raises it. (A policy that declares
//!   `default score := 1.0` only pays for that when a conflict happens.)
//! - Otherwise the VM's semantics are OPA's defaults: a builtin called with bad arguments is
//!   undefined (not strict), and a rule body that fails for another reason (a conflict in a
//!   helper rule) does not contribute. A `deny` rule whose body fails therefore does not deny:
//!   write tests (`test_*` rules) for the rules that protect something; [`PolicySet::run_tests`]
//!   runs them with the interpreter, which reports such errors.

mod load;
mod read;
mod render;
mod testing;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::{CompiledPolicy, Engine, Rc, Value};
use serde::{Deserialize, Serialize};

pub use load::load_dir;
pub use testing::{TestReport, TestResult};

use crate::Error;
use crate::decision::{Reason, Risk};
use crate::input::Input;
use read::{policy_error, read, show};
use render::{compile_error, one_line};
use testing::test_candidates;

/// The package operator policies define their decision rules in.
pub const PACKAGE: &str = "data.kamachiq";

/// The package of the module kamachiq adds to every set that has decision rules: one rule that
/// gathers them all, so that one VM run evaluates them and helpers shared between them run once.
const GATE_PACKAGE: &str = "__kamachiq_gate__";

/// The name of that module; no file can be loaded under it.
const GATE_MODULE: &str = "<kamachiq gate>";

/// Most VM instructions one evaluation of a set's decision rules may run before it fails
/// (closed). Realistic policies need a few hundred to a few thousand; the limit stops a policy
/// that loops over a huge input from holding up every action.
pub const MAX_INSTRUCTIONS: usize = 250_000;

/// One Rego source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Where it came from, relative to the directory it was loaded from (`residency.rego`,
    /// `team/merge.rego`); errors and reasons name modules by it.
    pub name: String,
    pub source: String,
}

/// The decision rules kamachiq reads from package `kamachiq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Deny,
    RequireApproval,
    Score,
    Risk,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Deny, Kind::RequireApproval, Kind::Score, Kind::Risk];

    const fn name(self) -> &'static str {
        match self {
            Kind::Deny => "deny",
            Kind::RequireApproval => "require_approval",
            Kind::Score => "score",
            Kind::Risk => "risk",
        }
    }
}

/// One decision rule the program evaluates, at the same index of the gate's result.
#[derive(Debug)]
struct Entry {
    kind: Kind,
    /// `data.kamachiq.deny`, with the module that declares it when only one does.
    label: String,
}

/// The compiled decision rules.
#[derive(Debug)]
struct Gate {
    program: Arc<Program>,
    entries: Vec<Entry>,
    /// `data.kamachiq`, with its module when there is only one: for errors of the whole run.
    label: String,
    /// `data.kamachiq.score` for the interpreter, to tell an undefined score from a conflict.
    score_check: Option<CompiledPolicy>,
}

struct Inner {
    version: u32,
    modules: Vec<Module>,
    /// Every module, parsed and prepared; cloned (cheaply) to run each test.
    engine: Engine,
    /// `(package, rule)` of every `test_*` rule, in module order.
    tests: Vec<(String, String)>,
    /// `None` when package `kamachiq` declares no decision rule.
    gate: Option<Gate>,
}

/// A compiled, versioned set of operator policies. Cloning is cheap (the compiled form is
/// shared) and a set may be used from many threads at once.
#[derive(Clone)]
pub struct PolicySet {
    inner: Arc<Inner>,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.inner.modules.iter().map(|m| m.name.as_str()).collect();
        let rules: Vec<&str> = self
            .inner
            .gate
            .iter()
            .flat_map(|g| g.entries.iter().map(|e| e.kind.name()))
            .collect();
        f.debug_struct("PolicySet")
            .field("version", &self.inner.version)
            .field("modules", &names)
            .field("rules", &rules)
            .field("tests", &self.inner.tests.len())
            .finish()
    }
}

/// What the operator's policies said about one input.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Outcome {
    pub deny: Vec<Reason>,
    pub require_approval: Vec<Reason>,
    pub score: Option<f64>,
    pub risk: Option<Risk>,
}

impl PolicySet {
    /// Parses and compiles `modules` as version `version` of a tenant's policies. Errors name
    /// the module, line and column when regorus tells them.
    pub fn compile(version: u32, modules: Vec<Module>) -> Result<Self, Error> {
        let mut seen = BTreeSet::new();
        for m in &modules {
            if m.name == GATE_MODULE {
                return Err(Error::Compile {
                    module: Some(m.name.clone()),
                    line: None,
                    column: None,
                    message: "this module name is kamachiq's own".to_owned(),
                });
            }
            if !seen.insert(m.name.as_str()) {
                return Err(Error::DuplicateModule {
                    name: m.name.clone(),
                });
            }
        }

        let mut engine = Engine::new();
        // `print` in a policy must not write to the server's stderr.
        engine.set_gather_prints(true);
        // As OPA by default and as the VM: a builtin given bad arguments is undefined.
        engine.set_strict_builtin_errors(false);
        let mut packages = Vec::with_capacity(modules.len());
        for m in &modules {
            let package = add_module(&mut engine, m)?;
            if let Some((line, column)) = find_random(&m.source) {
                return Err(Error::Compile {
                    module: Some(m.name.clone()),
                    line: Some(line),
                    column: Some(column),
                    message: "rand.intn would make decisions unrepeatable (replay could not \
                              reproduce them); policies may not use it"
                        .to_owned(),
                });
            }
            if package == format!("data.{GATE_PACKAGE}") {
                return Err(Error::Compile {
                    module: Some(m.name.clone()),
                    line: None,
                    column: None,
                    message: format!("package {GATE_PACKAGE} is kamachiq's own"),
                });
            }
            packages.push(package);
        }

        // Which modules of package `kamachiq` declare each decision rule.
        let mut declared: Vec<(Kind, Vec<&str>)> = Vec::new();
        for kind in Kind::ALL {
            let mut by = Vec::new();
            for (m, package) in modules.iter().zip(&packages) {
                if package == PACKAGE
                    && engine
                        .has_declared_rule_rooted_at(&m.name, kind.name())
                        .map_err(|e| compile_error(&e.to_string(), Some(&m.name)))?
                {
                    by.push(m.name.as_str());
                }
            }
            if !by.is_empty() {
                declared.push((kind, by));
            }
        }

        let mut tests = Vec::new();
        for (m, package) in modules.iter().zip(&packages) {
            for name in test_candidates(&m.source) {
                let is_rule = engine
                    .has_declared_rule_rooted_at(&m.name, &name)
                    .map_err(|e| compile_error(&e.to_string(), Some(&m.name)))?;
                let key = (package.clone(), name);
                if is_rule && !tests.contains(&key) {
                    tests.push(key);
                }
            }
        }

        let gate = if declared.is_empty() {
            // Still analyse every module, so that errors in tests and helpers show now.
            if let Some((package, name)) = tests.first() {
                engine
                    .compile_with_entrypoint(&Rc::from(format!("{package}.{name}")))
                    .map_err(|e| compile_error(&e.to_string(), None))?;
            }
            None
        } else {
            let in_package: Vec<&str> = modules
                .iter()
                .zip(&packages)
                .filter(|(_, p)| *p == PACKAGE)
                .map(|(m, _)| m.name.as_str())
                .collect();
            Some(compile_gate(&mut engine, &declared, &in_package)?)
        };

        Ok(Self {
            inner: Arc::new(Inner {
                version,
                modules,
                engine,
                tests,
                gate,
            }),
        })
    }

    pub fn version(&self) -> u32 {
        self.inner.version
    }

    pub fn modules(&self) -> &[Module] {
        &self.inner.modules
    }

    /// Evaluates the decision rules for `input`. Never fails: errors are `policy_error` deny
    /// reasons.
    pub(crate) fn evaluate(&self, input: &Input) -> Outcome {
        let mut out = Outcome::default();
        let Some(gate) = &self.inner.gate else {
            return out;
        };
        let value = input.to_rego();
        let results = match run_gate(&gate.program, value.clone()) {
            Ok(Value::Array(results)) if results.len() == gate.entries.len() => results,
            Ok(other) => {
                out.deny.push(policy_error(
                    &gate.label,
                    format!("evaluating gave {}", show(&other)),
                ));
                return out;
            }
            Err(e) => {
                out.deny
                    .push(policy_error(&gate.label, format!("evaluating failed: {e}")));
                return out;
            }
        };
        for (entry, result) in gate.entries.iter().zip(results.iter()) {
            // `[x | x := rule]`: empty, or `[undefined]` from the VM, when the rule is undefined.
            let v = match result {
                Value::Array(a) => a.first().cloned().unwrap_or(Value::Undefined),
                other => other.clone(),
            };
            match (&v, &gate.score_check) {
                (Value::Undefined, Some(check)) if entry.kind == Kind::Score => {
                    match check.eval_with_input(value.clone()) {
                        Ok(v) => read(entry, &v, &mut out),
                        Err(e) => out.deny.push(policy_error(
                            &entry.label,
                            format!("evaluating failed: {}", one_line(&e.to_string())),
                        )),
                    }
                }
                _ => read(entry, &v, &mut out),
            }
        }
        out
    }
}

/// VMs kept ready on each thread, each with its program loaded, most recently used last.
pub const VMS_PER_THREAD: usize = 4;

std::thread_local! {
    static VMS: RefCell<Vec<RegoVM>> = const { RefCell::new(Vec::new()) };
}

/// Runs `program` for `input` on a VM of this thread's that has it loaded, or on a new one.
/// Reusing a VM skips creating it and loading the program (about a microsecond); keeping them
/// per thread means no lock is shared between threads.
fn run_gate(program: &Arc<Program>, input: Value) -> Result<Value, VmError> {
    let cached = VMS.with(|vms| {
        let mut vms = vms.borrow_mut();
        let at = vms
            .iter()
            .position(|vm| Arc::ptr_eq(vm.get_program(), program))?;
        Some(vms.remove(at))
    });
    let mut vm = cached.unwrap_or_else(|| {
        let mut vm = RegoVM::new();
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        vm.load_program(program.clone());
        vm
    });
    vm.set_input(input);
    let result = vm.execute_entry_point_by_index(0);
    // The input may be large: do not keep it alive until the next evaluation.
    vm.set_input(Value::Undefined);
    if result.is_ok() {
        VMS.with(|vms| {
            let mut vms = vms.borrow_mut();
            if vms.len() == VMS_PER_THREAD {
                vms.remove(0);
            }
            vms.push(vm);
        });
    }
    result
}

/// Where `source` calls `rand.intn` (line and column, from 1), outside comments. regorus
/// provides it whenever it is built with `std`, which its VM needs.
fn find_random(source: &str) -> Option<(u32, u32)> {
    source.lines().enumerate().find_map(|(i, line)| {
        let code = line.split('#').next().unwrap_or_default();
        let column = code.find("rand.intn")?;
        Some((
            u32::try_from(i + 1).unwrap_or(u32::MAX),
            u32::try_from(column + 1).unwrap_or(u32::MAX),
        ))
    })
}

/// Parses one module into `engine`, as Rego v1, or as v0 when it only parses as that (v1's
/// error then says a keyword is required). Returns its package (`data.kamachiq`).
fn add_module(engine: &mut Engine, m: &Module) -> Result<String, Error> {
    match engine.add_policy(m.name.clone(), m.source.clone()) {
        Ok(package) => Ok(package),
        Err(v1) => {
            let text = v1.to_string();
            if text.contains("keyword is required") {
                engine.set_rego_v0(true);
                let v0 = engine.add_policy(m.name.clone(), m.source.clone());
                engine.set_rego_v0(false);
                if let Ok(package) = v0 {
                    return Ok(package);
                }
            }
            Err(compile_error(&text, Some(&m.name)))
        }
    }
}

fn compile_gate(
    engine: &mut Engine,
    declared: &[(Kind, Vec<&str>)],
    in_package: &[&str],
) -> Result<Gate, Error> {
    // Each rule is wrapped in a comprehension, so an undefined one is an empty array and the
    // result is always defined.
    let items: Vec<String> = declared
        .iter()
        .map(|(kind, _)| format!("[x | x := {PACKAGE}.{}]", kind.name()))
        .collect();
    let source = format!(
        "package {GATE_PACKAGE}\n\nresult := [\n\t{},\n]\n",
        items.join(",\n\t")
    );
    engine
        .add_policy(GATE_MODULE.to_owned(), source)
        .map_err(|e| compile_error(&e.to_string(), Some(GATE_MODULE)))?;
    let entry_point = format!("data.{GATE_PACKAGE}.result");
    let compiled = engine
        .compile_with_entrypoint(&Rc::from(entry_point.as_str()))
        .map_err(|e| compile_error(&e.to_string(), None))?;
    let program = Compiler::compile_from_policy(&compiled, &[entry_point.as_str()]).map_err(
        |e| match &e.span {
            Some(span) => Error::Compile {
                module: Some(span.source.get_path().clone()),
                line: Some(span.line),
                column: Some(span.col),
                message: e.error.to_string(),
            },
            None => Error::Compile {
                module: None,
                line: None,
                column: None,
                message: e.to_string(),
            },
        },
    )?;
    let score_check = if declared.iter().any(|(k, _)| *k == Kind::Score) {
        Some(
            engine
                .compile_with_entrypoint(&Rc::from(format!("{PACKAGE}.score")))
                .map_err(|e| compile_error(&e.to_string(), None))?,
        )
    } else {
        None
    };
    let labelled = |path: String, by: &[&str]| match by {
        [only] => format!("{path} ({only})"),
        _ => path,
    };
    let entries = declared
        .iter()
        .map(|(kind, by)| Entry {
            kind: *kind,
            label: labelled(format!("{PACKAGE}.{}", kind.name()), by),
        })
        .collect();
    Ok(Gate {
        program,
        entries,
        label: labelled(PACKAGE.to_owned(), in_package),
        score_check,
    })
}

/// Policy sets and outcomes for the tests of this module and its children.
#[cfg(test)]
mod fixtures {
    use super::*;
    use crate::guard::tests::fine_input;

    pub(super) fn module(name: &str, source: &str) -> Module {
        Module {
            name: name.to_owned(),
            source: source.to_owned(),
        }
    }

    /// One module, `p.rego`.
    pub(super) fn set(source: &str) -> PolicySet {
        PolicySet::compile(1, vec![module("p.rego", source)]).unwrap()
    }

    /// What `source` says about the guards' fine input.
    pub(super) fn eval(source: &str) -> Outcome {
        set(source).evaluate(&fine_input())
    }

    pub(super) fn reason(code: &str, message: &str, rule: &str) -> Reason {
        Reason::new(code, message, rule)
    }

    pub(super) fn compile_err(modules: Vec<Module>) -> Error {
        PolicySet::compile(1, modules).unwrap_err()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::guard::tests::fine_input;

    #[test]
    fn policy_sets_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + Clone + fmt::Debug>() {}
        shareable::<PolicySet>();
    }

    #[test]
    fn a_v0_module_is_accepted() {
        let out = eval(
            "package kamachiq\n\ndeny[msg] {\n  input.region == \"eu-west-1\"\n  msg := \"v0\"\n}\n",
        );
        assert_eq!(
            out.deny,
            [reason("policy_deny", "v0", "data.kamachiq.deny (p.rego)")]
        );
    }

    #[test]
    fn v0_and_v1_modules_mix() {
        let set = PolicySet::compile(
            1,
            vec![
                module(
                    "old.rego",
                    "package kamachiq\n\ndeny[msg] {\n  msg := \"old\"\n}\n",
                ),
                module(
                    "new.rego",
                    "package kamachiq\n\ndeny contains \"new\" if true\n",
                ),
            ],
        )
        .unwrap();
        let out = set.evaluate(&fine_input());
        let messages: Vec<&str> = out.deny.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["new", "old"]);
        // Two modules declare `deny`: the reason cannot name one.
        assert!(out.deny.iter().all(|r| r.rule == "data.kamachiq.deny"));
    }

    #[test]
    fn conflicting_scores_fail_closed() {
        let out = eval(
            "package kamachiq\ndefault score := 1.0\nscore := 0.2 if true\nscore := 0.3 if true\n",
        );
        assert_eq!(out.score, None);
        assert_eq!(out.deny.len(), 1, "{out:?}");
        assert_eq!(out.deny[0].code, "policy_error");
        assert_eq!(out.deny[0].rule, "data.kamachiq.score (p.rego)");
        assert!(
            out.deny[0]
                .message
                .starts_with("data.kamachiq.score (p.rego): evaluating failed: p.rego:"),
            "{}",
            out.deny[0].message
        );
    }

    #[test]
    fn an_undefined_score_without_default_is_no_score() {
        let out = eval("package kamachiq\nscore := 0.2 if input.action == \"merge\"\n");
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn a_builtin_error_is_undefined_as_in_opa() {
        // `to_number("eu-west-1")` fails: the VM, like OPA by default, makes it undefined, so
        // the first rule does not fire and the negated one does.
        let out = eval(
            "package kamachiq\n\
             deny contains \"positive\" if to_number(input.region) > 1\n\
             deny contains \"negated\" if not to_number(input.region) > 1\n",
        );
        assert_eq!(
            out.deny,
            [reason(
                "policy_deny",
                "negated",
                "data.kamachiq.deny (p.rego)"
            )]
        );
    }

    #[test]
    fn values_of_different_types_compare_as_in_opa() {
        // Rego orders values of different types (numbers before strings): no error.
        let out = eval("package kamachiq\nrequire_approval contains \"x\" if input.region > 3\n");
        assert_eq!(out.deny, []);
        assert_eq!(out.require_approval.len(), 1);
    }

    #[test]
    fn a_reused_vm_starts_every_evaluation_afresh() {
        // Each run takes a few hundred instructions: reused VMs would pass MAX_INSTRUCTIONS long
        // before the end if their count went on, and would mix up inputs if state leaked.
        let set = set("package kamachiq\n\
             deny contains sprintf(\"%d\", [input.spent.run_tokens]) if {\n\
             \tcount([x | some x in numbers.range(1, 20)]) == 20\n\
             \tinput.spent.run_tokens % 2 == 1\n}\n");
        let mut input = fine_input();
        for i in 0..3_000_u64 {
            input.spent.run_tokens = i;
            let out = set.evaluate(&input);
            if i % 2 == 1 {
                assert_eq!(
                    out.deny,
                    [reason(
                        "policy_deny",
                        &i.to_string(),
                        "data.kamachiq.deny (p.rego)"
                    )]
                );
            } else {
                assert_eq!(out.deny, [], "{i}");
            }
        }
    }

    #[test]
    fn a_thread_keeps_vms_for_several_sets() {
        let sets: Vec<PolicySet> = (0..VMS_PER_THREAD + 2)
            .map(|i| {
                set(&format!(
                    "package kamachiq\ndeny contains \"set {i}\" if true\n"
                ))
            })
            .collect();
        for round in 0..3 {
            for (i, s) in sets.iter().enumerate() {
                let out = s.evaluate(&fine_input());
                assert_eq!(out.deny[0].message, format!("set {i}"), "round {round}");
            }
        }
    }

    #[test]
    fn a_runaway_policy_hits_the_instruction_limit_and_fails_closed() {
        let out = eval(
            "package kamachiq\ndeny contains \"never\" if { \
             count([x | some x in numbers.range(1, 1000000); x < 0]) > 0 }\n",
        );
        assert_eq!(out.deny.len(), 1, "{out:?}");
        assert_eq!(out.deny[0].code, "policy_error");
        assert_eq!(out.deny[0].rule, "data.kamachiq (p.rego)");
        assert!(
            out.deny[0].message.contains("instruction limit"),
            "{}",
            out.deny[0].message
        );
        // The VM that failed is not reused; the next evaluation runs normally.
        let out = eval("package kamachiq\ndeny contains \"fine\" if true\n");
        assert_eq!(out.deny[0].message, "fine");
    }

    #[test]
    fn policies_read_the_input_as_its_json() {
        let out = eval(
            r#"package kamachiq
            deny contains sprintf("%s %s %s %s %d %s", [
                input.action, input.tenant, input.region, input.at,
                input.spent.run_tokens, input.autonomy.phase,
            ]) if true
            "#,
        );
        assert_eq!(
            out.deny[0].message,
            "run_step tenant-a eu-west-1 2026-11-18T11:06:40.000Z 0 L3"
        );
    }

    #[test]
    fn a_set_without_package_kamachiq_decides_nothing() {
        let set = PolicySet::compile(
            3,
            vec![module(
                "helpers.rego",
                "package helpers\nbig(n) if n > 10\ntest_big if big(11)\n",
            )],
        )
        .unwrap();
        assert_eq!(set.evaluate(&fine_input()), Outcome::default());
        assert_eq!(set.version(), 3);
        assert_eq!(set.modules()[0].name, "helpers.rego");
        assert!(set.run_tests().passed());
    }

    #[test]
    fn other_packages_rules_are_not_decision_rules() {
        let out = eval("package kamachiq.extra\ndeny contains \"elsewhere\" if true\n");
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn a_parse_error_names_module_line_and_column() {
        let err = compile_err(vec![
            module("ok.rego", "package kamachiq\n"),
            module(
                "team/broken.rego",
                "package kamachiq\n\ndeny contains \"x\" if {\n  true\n}\n  %\n",
            ),
        ]);
        let Error::Compile {
            module,
            line,
            column,
            message,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(module.as_deref(), Some("team/broken.rego"), "{err}");
        assert_eq!(*line, Some(6), "{err}");
        assert_eq!(*column, Some(3), "{err}");
        assert_eq!(message, "expecting identifier. Failed to parse rule-ref.");
        assert_eq!(
            err.to_string(),
            "team/broken.rego:6:3: expecting identifier. Failed to parse rule-ref."
        );
    }

    #[test]
    fn v0_syntax_errors_report_the_v1_error() {
        let err = compile_err(vec![module(
            "p.rego",
            "package kamachiq\n\ndeny[msg] {\n  msg := \n}\n",
        )]);
        assert_eq!(
            err.to_string(),
            "p.rego:3:11: `if` keyword is required before rule body"
        );
    }

    #[test]
    fn an_unknown_function_is_a_compile_error_with_its_place() {
        let err = compile_err(vec![module(
            "p.rego",
            "package kamachiq\n\ndeny contains \"x\" if no_such_function(1)\n",
        )]);
        let Error::Compile { module, line, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(module.as_deref(), Some("p.rego"), "{err}");
        assert_eq!(*line, Some(3), "{err}");
    }

    #[test]
    fn with_is_refused_in_decision_rules() {
        let err = compile_err(vec![module(
            "p.rego",
            "package kamachiq\n\nother := input.x\n\ndeny contains \"x\" if other with input.x as 1\n",
        )]);
        assert_eq!(
            err.to_string(),
            "p.rego:5:22: the `with` keyword is not supported by the compiler yet"
        );
    }

    #[test]
    fn builtins_left_out_of_the_build_are_compile_errors() {
        for call in [
            "regex.match(\"a\", input.region)",
            "glob.match(\"a\", [], input.region)",
            "time.now_ns() > 0",
            "net.cidr_contains(\"10.0.0.0/8\", input.region)",
        ] {
            let err = compile_err(vec![module(
                "p.rego",
                &format!("package kamachiq\ndeny contains \"x\" if {call}\n"),
            )]);
            assert!(
                matches!(err, Error::Compile { line: Some(2), .. }),
                "{call}: {err}"
            );
        }
    }

    #[test]
    fn random_numbers_are_refused() {
        let err = compile_err(vec![module(
            "p.rego",
            "package kamachiq\n# rand.intn in a comment is fine\nscore := 0.5 if rand.intn(\"x\", 2) == 0\n",
        )]);
        assert_eq!(
            err.to_string(),
            "p.rego:3:17: rand.intn would make decisions unrepeatable (replay could not \
             reproduce them); policies may not use it"
        );
        assert!(
            set("package kamachiq\n# rand.intn is not used here\n")
                .run_tests()
                .passed()
        );
    }

    #[test]
    fn the_gate_package_and_module_name_are_kamachiqs() {
        let err = compile_err(vec![module("g.rego", "package __kamachiq_gate__\n")]);
        assert_eq!(
            err.to_string(),
            "g.rego: package __kamachiq_gate__ is kamachiq's own"
        );
        let err = compile_err(vec![module("<kamachiq gate>", "package x\n")]);
        assert_eq!(
            err.to_string(),
            "<kamachiq gate>: this module name is kamachiq's own"
        );
    }

    #[test]
    fn duplicate_module_names_are_refused() {
        let err = compile_err(vec![
            module("a.rego", "package a\n"),
            module("a.rego", "package b\n"),
        ]);
        assert_eq!(err.to_string(), "policy module `a.rego` is given twice");
    }
}
