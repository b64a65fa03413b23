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

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::Program;
use regorus::rvm::vm::{RegoVM, VmError};
use regorus::{CompiledPolicy, Engine, Rc, Value};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::decision::{Reason, Risk, code};
use crate::input::Input;

/// The package operator policies define their decision rules in.
pub const PACKAGE: &str = "data.kamachiq";

/// The package of the module kamachiq adds to every set that has decision rules: one rule that
/// gathers them all, so that one VM run evaluates them and helpers shared between them run once.
const GATE_PACKAGE: &str = "__kamachiq_gate__";

/// The name of that module; no file can be loaded under it.
const GATE_MODULE: &str = "<kamachiq gate>";

/// Most VM instructions one evaluation of a set's decision rules may run before it fails (closed). Realistic
/// policies need a few hundred to a few thousand; the limit stops a policy that loops over a
/// huge input from holding up every action.
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

    /// Runs every rule named `test_*`, in any package, with regorus's interpreter (tests may use
    /// `with`, which the VM does not support). A test passes when it evaluates to `true`; an
    /// undefined or other result fails it, an error is reported as such.
    pub fn run_tests(&self) -> TestReport {
        let results = self
            .inner
            .tests
            .iter()
            .map(|(package, name)| {
                let mut engine = self.inner.engine.clone();
                let started = Instant::now();
                let result = engine.eval_rule(format!("{package}.{name}"));
                let duration = started.elapsed();
                let (passed, error) = match result {
                    Ok(Value::Bool(true)) => (true, None),
                    Ok(_) => (false, None),
                    Err(e) => (false, Some(one_line(&e.to_string()))),
                };
                TestResult {
                    package: package.clone(),
                    name: name.clone(),
                    passed,
                    error,
                    duration,
                }
            })
            .collect();
        TestReport { results }
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

/// Reads what one decision rule gave into `out`. A result of the wrong shape is a
/// `policy_error` deny reason.
fn read(entry: &Entry, value: &Value, out: &mut Outcome) {
    match entry.kind {
        Kind::Deny => {
            let (reasons, errors) = read_reasons(entry, value, code::POLICY_DENY);
            out.deny.extend(reasons);
            out.deny.extend(errors);
        }
        Kind::RequireApproval => {
            let (reasons, errors) = read_reasons(entry, value, code::POLICY_REQUIRES_APPROVAL);
            out.require_approval.extend(reasons);
            out.deny.extend(errors);
        }
        Kind::Score => match value {
            Value::Undefined => {}
            Value::Number(_) if value.as_f64().is_ok_and(|s| (0.0..=1.0).contains(&s)) => {
                out.score = value.as_f64().ok();
            }
            _ => out.deny.push(policy_error(
                &entry.label,
                format!("must be a number in [0, 1], got {}", show(value)),
            )),
        },
        Kind::Risk => match value {
            Value::Undefined => {}
            Value::String(s) if Risk::from_name(s).is_some() => out.risk = Risk::from_name(s),
            _ => out.deny.push(policy_error(
                &entry.label,
                format!(
                    "must be one of \"low\", \"medium\", \"high\", \"critical\", got {}",
                    show(value)
                ),
            )),
        },
    }
}

/// The reasons in a `deny` or `require_approval` result, and the errors in it. The result is a
/// set (or array) of strings and `{"code", "message"}` objects; an object whose values are all
/// `true` counts as the set of its keys, which is what Rego v1 makes of `deny[msg] if { ... }`.
fn read_reasons(entry: &Entry, value: &Value, default_code: &str) -> (Vec<Reason>, Vec<Reason>) {
    let mut reasons = Vec::new();
    let mut errors = Vec::new();
    let items: Vec<&Value> = match value {
        Value::Undefined => Vec::new(),
        Value::Set(set) => set.iter().collect(),
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) if map.values().all(|v| *v == Value::Bool(true)) => map.keys().collect(),
        _ => {
            errors.push(policy_error(
                &entry.label,
                format!(
                    "must be a set of strings or {{\"code\", \"message\"}} objects, got {}",
                    show(value)
                ),
            ));
            Vec::new()
        }
    };
    for item in items {
        match item {
            Value::String(message) => {
                reasons.push(Reason::new(default_code, &**message, &entry.label));
            }
            Value::Object(map) => {
                let message = map.get(&Value::from("message"));
                let code = map.get(&Value::from("code"));
                match (message, code) {
                    (Some(Value::String(message)), None) => {
                        reasons.push(Reason::new(default_code, &**message, &entry.label));
                    }
                    (Some(Value::String(message)), Some(Value::String(code)))
                        if !code.is_empty() =>
                    {
                        reasons.push(Reason::new(&**code, &**message, &entry.label));
                    }
                    _ => errors.push(policy_error(
                        &entry.label,
                        format!(
                            "an entry must have a string \"message\" and may have a non-empty \
                             string \"code\", got {}",
                            show(item)
                        ),
                    )),
                }
            }
            _ => errors.push(policy_error(
                &entry.label,
                format!(
                    "an entry must be a string or a {{\"code\", \"message\"}} object, got {}",
                    show(item)
                ),
            )),
        }
    }
    (reasons, errors)
}

fn policy_error(rule: &str, message: impl fmt::Display) -> Reason {
    Reason::new(code::POLICY_ERROR, format!("{rule}: {message}"), rule)
}

/// A Rego value as JSON text, for messages.
fn show(value: &Value) -> String {
    match value {
        Value::Undefined => "undefined".to_owned(),
        _ => serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}")),
    }
}

/// Identifiers in `source` that start with `test_`: candidate test rules, confirmed as rules by
/// regorus before they are run.
fn test_candidates(source: &str) -> Vec<String> {
    let bytes = source.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = source.get(i..).and_then(|rest| rest.find("test_")) {
        let start = i + at;
        let mut end = start + "test_".len();
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        let preceded = start > 0 && (is_ident(bytes[start - 1]) || bytes[start - 1] == b'.');
        if !preceded && let Some(name) = source.get(start..end) {
            let name = name.to_owned();
            if !found.contains(&name) {
                found.push(name);
            }
        }
        i = end;
    }
    found
}

/// Builds [`Error::Compile`] from regorus's rendered error (`--> file:line:col`, the source
/// line, `error: message`), with `module` as the module when the text names none.
fn compile_error(text: &str, module: Option<&str>) -> Error {
    let (at, message) = split_rendered(text);
    match at {
        Some((file, line, column)) => Error::Compile {
            module: Some(file),
            line: Some(line),
            column: Some(column),
            message,
        },
        None => Error::Compile {
            module: module.map(str::to_owned),
            line: None,
            column: None,
            message,
        },
    }
}

/// regorus's rendered error on one line: `file:line:col: message`.
fn one_line(text: &str) -> String {
    match split_rendered(text) {
        (Some((file, line, column)), message) => format!("{file}:{line}:{column}: {message}"),
        (None, message) => message,
    }
}

/// The location (`file`, `line`, `column`) and the message of a rendered regorus error.
fn split_rendered(text: &str) -> (Option<(String, u32, u32)>, String) {
    let at = text.lines().find_map(|l| {
        let place = l.trim().strip_prefix("--> ")?;
        let mut parts = place.rsplitn(3, ':');
        let column = parts.next()?.parse().ok()?;
        let line = parts.next()?.parse().ok()?;
        Some((parts.next()?.to_owned(), line, column))
    });
    let message = match text.find("\nerror: ") {
        Some(i) => text[i + "\nerror: ".len()..].trim().to_owned(),
        None => text.trim().to_owned(),
    };
    (at, message)
}

/// The outcome of [`PolicySet::run_tests`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    pub results: Vec<TestResult>,
}

/// One test rule's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// `data.kamachiq_test`.
    pub package: String,
    /// `test_merge_needs_approval`.
    pub name: String,
    pub passed: bool,
    /// Why it could not be evaluated; `None` when it ran (passed or not).
    pub error: Option<String>,
    pub duration: Duration,
}

impl TestReport {
    /// Whether every test passed (true when there are none).
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed)
    }

    pub fn passed_count(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    /// Tests that ran and did not give `true`.
    pub fn failed_count(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !r.passed && r.error.is_none())
            .count()
    }

    /// Tests that could not be evaluated.
    pub fn errored_count(&self) -> usize {
        self.results.iter().filter(|r| r.error.is_some()).count()
    }
}

/// Every `*.rego` file under `dir`, recursively, sorted by path, each named by its path relative
/// to `dir` with `/` separators. Symbolic links to files are followed, links to directories are
/// not. Errors when there is none, or when a file cannot be read or is not UTF-8.
pub fn load_dir(dir: &Path) -> Result<Vec<Module>, Error> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err(Error::NoModules {
            dir: dir.to_path_buf(),
        });
    }
    files.sort();
    files
        .into_iter()
        .map(|(name, path)| {
            let bytes = std::fs::read(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let source = String::from_utf8(bytes).map_err(|_| Error::NotUtf8 { path })?;
            Ok(Module { name, source })
        })
        .collect()
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> Result<(), Error> {
    let read_err = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(read_err)?;
        if kind.is_dir() {
            collect(root, &path, files)?;
            continue;
        }
        let is_file = kind.is_file()
            || (kind.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
        if is_file && path.extension().is_some_and(|e| e == "rego") {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push((name, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::tests::fine_input;

    fn module(name: &str, source: &str) -> Module {
        Module {
            name: name.to_owned(),
            source: source.to_owned(),
        }
    }

    fn set(source: &str) -> PolicySet {
        PolicySet::compile(1, vec![module("p.rego", source)]).unwrap()
    }

    fn eval(source: &str) -> Outcome {
        set(source).evaluate(&fine_input())
    }

    fn reason(code: &str, message: &str, rule: &str) -> Reason {
        Reason::new(code, message, rule)
    }

    fn compile_err(modules: Vec<Module>) -> Error {
        PolicySet::compile(1, modules).unwrap_err()
    }

    #[test]
    fn policy_sets_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + Clone + fmt::Debug>() {}
        shareable::<PolicySet>();
    }

    #[test]
    fn deny_entries_may_be_strings_or_objects() {
        let out = eval(
            r#"package kamachiq
            deny contains "plain message" if input.action == "run_step"
            deny contains {"code": "protected_deliverable", "message": msg} if {
                input.deliverable.id == "api-svc"
                msg := sprintf("deliverable %s is protected", [input.deliverable.id])
            }
            deny contains {"message": "no code"} if true
            "#,
        );
        let rule = "data.kamachiq.deny (p.rego)";
        // In the set's order: strings, then objects by their keys and values.
        assert_eq!(
            out.deny,
            [
                reason("policy_deny", "plain message", rule),
                reason(
                    "protected_deliverable",
                    "deliverable api-svc is protected",
                    rule
                ),
                reason("policy_deny", "no code", rule),
            ]
        );
        assert_eq!(out.require_approval, []);
        assert_eq!(out.score, None);
        assert_eq!(out.risk, None);
    }

    #[test]
    fn require_approval_entries_may_be_strings_or_objects() {
        let out = eval(
            r#"package kamachiq
            require_approval contains "look at this" if true
            require_approval contains {"code": "big_change", "message": "many files"} if true
            "#,
        );
        let rule = "data.kamachiq.require_approval (p.rego)";
        assert_eq!(out.deny, []);
        assert_eq!(
            out.require_approval,
            [
                reason("policy_requires_approval", "look at this", rule),
                reason("big_change", "many files", rule),
            ]
        );
    }

    #[test]
    fn rules_that_do_not_fire_say_nothing() {
        let out = eval(
            r#"package kamachiq
            deny contains "never" if input.action == "merge"
            require_approval contains "never" if input.action == "merge"
            score := 0.1 if input.action == "merge"
            risk := "high" if input.action == "merge"
            "#,
        );
        assert_eq!(out, Outcome::default());
    }

    #[test]
    fn entries_of_the_wrong_shape_are_policy_errors() {
        let out = eval(
            r#"package kamachiq
            deny contains 42 if true
            deny contains {"code": "c"} if true
            deny contains {"code": "", "message": "empty code"} if true
            require_approval contains ["a", "list"] if true
            "#,
        );
        assert_eq!(
            out.deny,
            [
                reason(
                    "policy_error",
                    "data.kamachiq.deny (p.rego): an entry must be a string or a {\"code\", \
                     \"message\"} object, got 42",
                    "data.kamachiq.deny (p.rego)"
                ),
                reason(
                    "policy_error",
                    "data.kamachiq.deny (p.rego): an entry must have a string \"message\" and \
                     may have a non-empty string \"code\", got {\"code\":\"\",\"message\":\"empty \
                     code\"}",
                    "data.kamachiq.deny (p.rego)"
                ),
                reason(
                    "policy_error",
                    "data.kamachiq.deny (p.rego): an entry must have a string \"message\" and \
                     may have a non-empty string \"code\", got {\"code\":\"c\"}",
                    "data.kamachiq.deny (p.rego)"
                ),
                reason(
                    "policy_error",
                    "data.kamachiq.require_approval (p.rego): an entry must be a string or a \
                     {\"code\", \"message\"} object, got [\"a\",\"list\"]",
                    "data.kamachiq.require_approval (p.rego)"
                ),
            ]
        );
        assert_eq!(out.require_approval, []);
    }

    #[test]
    fn a_deny_that_is_not_a_set_is_a_policy_error() {
        let out = eval("package kamachiq\ndeny := 3\n");
        assert_eq!(
            out.deny,
            [reason(
                "policy_error",
                "data.kamachiq.deny (p.rego): must be a set of strings or {\"code\", \"message\"} \
                 objects, got 3",
                "data.kamachiq.deny (p.rego)"
            )]
        );
    }

    #[test]
    fn a_v1_partial_object_of_true_counts_as_a_set() {
        let out = eval("package kamachiq\ndeny[msg] if { msg := \"keyed\" }\n");
        assert_eq!(
            out.deny,
            [reason(
                "policy_deny",
                "keyed",
                "data.kamachiq.deny (p.rego)"
            )]
        );
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
    fn a_score_in_range_is_read() {
        for (source, want) in [
            ("score := 0.25", 0.25),
            ("score := 0", 0.0),
            ("score := 1", 1.0),
            (
                "default score := 1.0\nscore := 0.5 if input.action == \"run_step\"",
                0.5,
            ),
        ] {
            let out = eval(&format!("package kamachiq\n{source}\n"));
            assert_eq!(out.score, Some(want), "{source}");
            assert_eq!(out.deny, [], "{source}");
        }
    }

    #[test]
    fn a_score_out_of_range_or_not_a_number_is_a_policy_error() {
        for (source, shown) in [
            ("score := 1.5", "1.5"),
            ("score := -0.1", "-0.1"),
            ("score := \"high\"", "\"high\""),
            ("score := true", "true"),
        ] {
            let out = eval(&format!("package kamachiq\n{source}\n"));
            assert_eq!(out.score, None, "{source}");
            assert_eq!(
                out.deny,
                [reason(
                    "policy_error",
                    &format!(
                        "data.kamachiq.score (p.rego): must be a number in [0, 1], got {shown}"
                    ),
                    "data.kamachiq.score (p.rego)"
                )],
                "{source}"
            );
        }
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
    fn a_risk_is_read_by_name() {
        for risk in Risk::ALL {
            let out = eval(&format!("package kamachiq\nrisk := \"{risk}\"\n"));
            assert_eq!(out.risk, Some(risk));
            assert_eq!(out.deny, []);
        }
    }

    #[test]
    fn an_unknown_risk_is_a_policy_error() {
        let out = eval("package kamachiq\nrisk := \"severe\"\n");
        assert_eq!(out.risk, None);
        assert_eq!(
            out.deny,
            [reason(
                "policy_error",
                "data.kamachiq.risk (p.rego): must be one of \"low\", \"medium\", \"high\", \
                 \"critical\", got \"severe\"",
                "data.kamachiq.risk (p.rego)"
            )]
        );
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
    fn print_is_refused_in_decision_rules_and_quiet_in_tests() {
        let err = compile_err(vec![module(
            "p.rego",
            "package kamachiq\ndeny contains \"x\" if {\n  print(\"checking\")\n}\n",
        )]);
        assert_eq!(
            err.to_string(),
            "Compilation error: Missing builtin function: print"
        );
        let report = set("package t\ntest_prints if {\n  print(\"to nobody\")\n}\n").run_tests();
        assert!(report.passed(), "{report:?}");
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

    #[test]
    fn tests_pass_fail_and_error() {
        let set = PolicySet::compile(
            1,
            vec![
                module(
                    "kamachiq.rego",
                    "package kamachiq\ndeny contains \"merge\" if input.action == \"merge\"\n",
                ),
                module(
                    "kamachiq_test.rego",
                    r#"package kamachiq_test
                    import data.kamachiq
                    # test_in_a_comment is not a test
                    test_merge_denied if "merge" in kamachiq.deny with input as {"action": "merge"}
                    test_wrong if "merge" in kamachiq.deny with input as {"action": "provision"}
                    conflicting := 1 if true
                    conflicting := 2 if true
                    test_broken if conflicting == 1
                    not_a_test_x := 1
                    "#,
                ),
            ],
        )
        .unwrap();
        let report = set.run_tests();
        let summary: Vec<(&str, &str, bool, bool)> = report
            .results
            .iter()
            .map(|r| {
                (
                    r.package.as_str(),
                    r.name.as_str(),
                    r.passed,
                    r.error.is_some(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("data.kamachiq_test", "test_merge_denied", true, false),
                ("data.kamachiq_test", "test_wrong", false, false),
                ("data.kamachiq_test", "test_broken", false, true),
            ]
        );
        assert!(!report.passed());
        assert_eq!(report.passed_count(), 1);
        assert_eq!(report.failed_count(), 1);
        assert_eq!(report.errored_count(), 1);
        let error = report.results[2].error.as_deref().unwrap_or_default();
        assert!(
            error.starts_with("kamachiq_test.rego:"),
            "the error names the place: {error}"
        );
    }

    #[test]
    fn no_tests_is_a_pass() {
        let report = set("package kamachiq\n").run_tests();
        assert_eq!(report.results, []);
        assert!(report.passed());
    }

    #[test]
    fn test_candidates_are_identifiers_starting_with_test() {
        assert_eq!(
            test_candidates("test_a if x\nmy_test_b := 1\ny := data.p.test_c\n test_d\ntest_"),
            ["test_a", "test_d", "test_"]
        );
    }

    #[test]
    fn rendered_errors_split_into_place_and_message() {
        let text = "\n--> dir/b.rego:4:5\n  |\n4 |   x := \n  |     ^\nerror: expecting `}`";
        assert_eq!(
            split_rendered(text),
            (
                Some(("dir/b.rego".to_owned(), 4, 5)),
                "expecting `}`".to_owned()
            )
        );
        assert_eq!(one_line(text), "dir/b.rego:4:5: expecting `}`");
        assert_eq!(
            split_rendered("plain failure"),
            (None, "plain failure".to_owned())
        );
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn load_dir_reads_every_rego_file_sorted_by_path() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "z.rego", b"package z\n");
        write(dir.path(), "team/b.rego", b"package b\n");
        write(dir.path(), "a.rego", b"package a\n");
        write(dir.path(), "notes.md", b"not a policy");
        write(dir.path(), "team/data.json", b"{}");
        let modules = load_dir(dir.path()).unwrap();
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a.rego", "team/b.rego", "z.rego"]);
        assert_eq!(modules[1].source, "package b\n");
    }

    #[test]
    fn load_dir_without_rego_files_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "README.md", b"policies go here");
        let err = load_dir(dir.path()).unwrap_err();
        assert!(matches!(&err, Error::NoModules { dir: d } if d == dir.path()));
        assert_eq!(
            err.to_string(),
            format!("no .rego files under {}", dir.path().display())
        );
    }

    #[test]
    fn load_dir_names_a_file_that_is_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "good.rego", b"package good\n");
        write(dir.path(), "bad.rego", b"package bad\n# \xff\xfe\n");
        let err = load_dir(dir.path()).unwrap_err();
        let bad = dir.path().join("bad.rego");
        assert!(matches!(&err, Error::NotUtf8 { path } if *path == bad));
        assert_eq!(
            err.to_string(),
            format!("{} is not UTF-8 text", bad.display())
        );
    }

    #[test]
    fn load_dir_of_a_missing_directory_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = load_dir(&missing).unwrap_err();
        assert!(matches!(&err, Error::Read { path, .. } if *path == missing));
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}: ", missing.display())),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_dir_names_a_file_it_cannot_read() {
        let dir = tempfile::tempdir().unwrap();
        // A dangling link named *.rego: listed, then unreadable.
        let link = dir.path().join("gone.rego");
        std::os::unix::fs::symlink(dir.path().join("missing-target"), &link).unwrap();
        write(dir.path(), "ok.rego", b"package ok\n");
        // Dangling links are not files, so they are skipped; a directory named *.rego is
        // walked into, not read.
        let modules = load_dir(dir.path()).unwrap();
        assert_eq!(modules.len(), 1);
        let unreadable = dir.path().join("locked");
        std::fs::create_dir(&unreadable).unwrap();
        write(&unreadable, "p.rego", b"package p\n");
        std::fs::set_permissions(
            &unreadable,
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
        let result = load_dir(dir.path());
        std::fs::set_permissions(
            &unreadable,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        // Root reads anything; the check only means something for other users.
        if let Err(err) = result {
            assert!(
                matches!(&err, Error::Read { path, .. } if *path == unreadable),
                "{err}"
            );
        }
    }
}
