//! Operator policies in Rego: loading them, compiling them once into regorus's bytecode VM, running
//! their tests, and evaluating them for one input.
//!
//! Evaluation is on the hot path of every action, so a [`PolicySet`] is compiled once into an
//! RVM program (shared, immutable) and every evaluation runs it on a fresh VM of its own: creating
//! one costs about as much as a few hash-map inserts, and no lock is held while a policy runs.
//! The VM runs with strict builtin errors (a builtin given the wrong kind of value is an error,
//! not an undefined result) and an instruction limit, and every error fails closed.
//!
//! Where the VM's semantics differ from OPA's it is made to fail closed too: the VM treats a
//! complete rule with conflicting values as undefined instead of raising an error, so an
//! undefined `score` is checked again with regorus's interpreter, which does raise it. (Nothing
//! else needs that check: an undefined `risk` only lets the score decide the risk.)

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::Program;
use regorus::rvm::vm::RegoVM;
use regorus::{CompiledPolicy, Engine, Rc, Value};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::decision::{Reason, Risk, code};
use crate::input::Input;

/// The package operator policies define their decision rules in.
pub const PACKAGE: &str = "data.kamachiq";

/// Most VM instructions one evaluation of one rule may run before it fails (closed). Realistic
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

/// One decision rule the program evaluates, at the entry point of the same index.
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
            if !seen.insert(m.name.as_str()) {
                return Err(Error::DuplicateModule {
                    name: m.name.clone(),
                });
            }
        }

        let mut engine = Engine::new();
        // `print` in a policy must not write to the server's stderr.
        engine.set_gather_prints(true);
        let mut packages = Vec::with_capacity(modules.len());
        for m in &modules {
            packages.push(add_module(&mut engine, m)?);
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
            Some(compile_gate(&mut engine, &declared)?)
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
        let mut vm = RegoVM::new();
        vm.set_max_instructions(MAX_INSTRUCTIONS);
        vm.set_strict_builtin_errors(true);
        vm.load_program(gate.program.clone());
        vm.set_input(value.clone());
        for (index, entry) in gate.entries.iter().enumerate() {
            match vm.execute_entry_point_by_index(index) {
                Ok(Value::Undefined) if entry.kind == Kind::Score => {
                    if let Some(check) = &gate.score_check {
                        match check.eval_with_input(value.clone()) {
                            Ok(v) => read(entry, &v, &mut out),
                            Err(e) => out.deny.push(policy_error(
                                &entry.label,
                                format!("evaluating failed: {}", one_line(&e.to_string())),
                            )),
                        }
                    }
                }
                Ok(v) => read(entry, &v, &mut out),
                Err(e) => out.deny.push(policy_error(
                    &entry.label,
                    format!("evaluating failed: {e}"),
                )),
            }
        }
        out
    }
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

fn compile_gate(engine: &mut Engine, declared: &[(Kind, Vec<&str>)]) -> Result<Gate, Error> {
    let paths: Vec<String> = declared
        .iter()
        .map(|(kind, _)| format!("{PACKAGE}.{}", kind.name()))
        .collect();
    let first = paths.first().cloned().unwrap_or_default();
    let compiled = engine
        .compile_with_entrypoint(&Rc::from(first))
        .map_err(|e| compile_error(&e.to_string(), None))?;
    let entry_points: Vec<&str> = paths.iter().map(String::as_str).collect();
    let program =
        Compiler::compile_from_policy(&compiled, &entry_points).map_err(|e| match &e.span {
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
        })?;
    let score_check = if declared.iter().any(|(k, _)| *k == Kind::Score) {
        Some(
            engine
                .compile_with_entrypoint(&Rc::from(format!("{PACKAGE}.score")))
                .map_err(|e| compile_error(&e.to_string(), None))?,
        )
    } else {
        None
    };
    let entries = declared
        .iter()
        .zip(paths)
        .map(|((kind, by), path)| Entry {
            kind: *kind,
            label: match by.as_slice() {
                [only] => format!("{path} ({only})"),
                _ => path,
            },
        })
        .collect();
    Ok(Gate {
        program,
        entries,
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
        _ => value
            .to_json_str()
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| format!("{value:?}")),
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

    #[test]
    fn policy_sets_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + Clone + fmt::Debug>() {}
        shareable::<PolicySet>();
    }
}
