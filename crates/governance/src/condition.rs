//! CEL conditions over a fixed set of named numbers and flags: circuit-breaker rules read a
//! window's metrics, readiness items read readiness facts.
//!
//! The standard CEL environment is built once per process and shared: building it costs far
//! more than evaluating a small condition, so a context made afresh with `Context::default()`
//! for every evaluation would dominate. Each evaluation borrows the shared environment and
//! resolves variables straight from the value it judges, without copying them into a map.

use std::sync::{Arc, OnceLock};

use cel::common::types::{CelBool, CelDouble, CelInt};
use cel::common::value::CowVal;
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, Program, Value};

use crate::{Error, Owner};

/// A variable's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Var {
    Int(i64),
    Double(f64),
    Bool(bool),
}

impl Var {
    /// From a count, saturating at `i64::MAX`.
    pub(crate) fn count(n: u64) -> Var {
        Var::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// As written in evidence: `0.995`, `12`, `true`.
    pub(crate) fn show(self) -> String {
        match self {
            Var::Int(n) => n.to_string(),
            Var::Double(x) => format!("{x}"),
            Var::Bool(b) => b.to_string(),
        }
    }
}

/// A value conditions can read: a fixed set of variable names, each with a value.
pub(crate) trait Vars: Sync {
    /// Every variable, in the order documentation lists them.
    const NAMES: &'static [&'static str];

    /// The value of `name`; `None` for a name not in [`Vars::NAMES`].
    fn var(&self, name: &str) -> Option<Var>;

    /// Any value: what [`check`] reads of it is the type of each variable.
    fn sample() -> Self
    where
        Self: Sized;
}

fn cel_value<'b>(var: Var) -> CowVal<'b, 'b> {
    match var {
        Var::Int(n) => CowVal::owned(CelInt::from(n)),
        Var::Double(x) => CowVal::owned(CelDouble::from(x)),
        Var::Bool(b) => CowVal::owned(CelBool::from(b)),
    }
}

struct Resolver<'a, V>(&'a V);

impl<V: Vars> VariableResolver for Resolver<'_, V> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.0.var(variable).map(cel_value)
    }
}

/// Every variable of a [`Vars`] set to one number `n`, in its own type (a flag: `n != 0`): the
/// values [`check`] tries a condition on.
struct Filled(Vec<(&'static str, Var)>);

impl Filled {
    fn new<V: Vars>(n: u8) -> Self {
        let typed = V::sample();
        Self(
            V::NAMES
                .iter()
                .filter_map(|name| {
                    let var = match typed.var(name)? {
                        Var::Int(_) => Var::Int(i64::from(n)),
                        Var::Double(_) => Var::Double(f64::from(n)),
                        Var::Bool(_) => Var::Bool(n != 0),
                    };
                    Some((*name, var))
                })
                .collect(),
        )
    }
}

impl VariableResolver for Filled {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.0
            .iter()
            .find(|(name, _)| *name == variable)
            .map(|(_, var)| cel_value(*var))
    }
}

/// Runs `program` with the variables `resolver` gives.
fn run(program: &Program, resolver: &dyn VariableResolver) -> Result<Value, ExecutionError> {
    let mut context = Context::with_env(Arc::clone(env()));
    context.set_variable_resolver(resolver);
    program.execute(&context)
}

/// The standard CEL environment, built on first use.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

/// Compiles `source` and checks that it reads only variables of `V`.
pub(crate) fn compile<V: Vars>(owner: &Owner, source: &str) -> Result<Program, Error> {
    let program = env().compile(source).map_err(|e| Error::ConditionSyntax {
        owner: owner.clone(),
        condition: source.to_owned(),
        message: e.to_string(),
    })?;
    let mut unknown: Vec<String> = program
        .references()
        .variables()
        .into_iter()
        .filter(|name| !V::NAMES.contains(name))
        .map(str::to_owned)
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(Error::UnknownVariables {
            owner: owner.clone(),
            condition: source.to_owned(),
            names: unknown,
            known: V::NAMES.to_vec(),
        });
    }
    Ok(program)
}

/// Compiles `source` as [`compile`] does, then tries it with every number 0 (flags false) and
/// with every number 1 (flags true): a condition that gives a bool in neither trial (something
/// else than a bool, a function that does not exist, a type that does not fit) is refused now,
/// with the first trial's error, rather than failing at every evaluation. One that fails only
/// for some values (a division by zero, a NaN compared) passes, and so does a part that both
/// trials short-circuit past: evaluation judges those.
pub(crate) fn check<V: Vars>(owner: &Owner, source: &str) -> Result<Program, Error> {
    let program = compile::<V>(owner, source)?;
    let tried = |n| outcome(owner, source, run(&program, &Filled::new::<V>(n)));
    match tried(0) {
        Err(e) if tried(1).is_err() => Err(e),
        _ => Ok(program),
    }
}

/// A run's result as a bool, or the error that names what went wrong.
fn outcome(
    owner: &Owner,
    source: &str,
    result: Result<Value, ExecutionError>,
) -> Result<bool, Error> {
    match result {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(Error::ConditionNotBool {
            owner: owner.clone(),
            condition: source.to_owned(),
            got: format!("{other:?}"),
        }),
        Err(e) => Err(Error::ConditionFailed {
            owner: owner.clone(),
            condition: source.to_owned(),
            message: e.to_string(),
        }),
    }
}

/// Evaluates `program` over `vars`; anything but a bool is an error.
pub(crate) fn holds<V: Vars>(
    owner: &Owner,
    source: &str,
    program: &Program,
    vars: &V,
) -> Result<bool, Error> {
    outcome(owner, source, run(program, &Resolver(vars)))
}

/// The values of the variables `program` reads, in [`Vars::NAMES`] order: `errorRate = 0.2`.
pub(crate) fn evidence<V: Vars>(program: &Program, vars: &V) -> String {
    let references = program.references();
    V::NAMES
        .iter()
        .filter(|name| references.has_variable(name))
        .filter_map(|name| vars.var(name).map(|v| format!("{name} = {}", v.show())))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sample {
        count: u64,
        rate: f64,
        on: bool,
    }

    impl Vars for Sample {
        const NAMES: &'static [&'static str] = &["count", "rate", "on"];

        fn sample() -> Self {
            Sample {
                count: 0,
                rate: 0.0,
                on: false,
            }
        }

        fn var(&self, name: &str) -> Option<Var> {
            Some(match name {
                "count" => Var::count(self.count),
                "rate" => Var::Double(self.rate),
                "on" => Var::Bool(self.on),
                _ => return None,
            })
        }
    }

    const SAMPLE: Sample = Sample {
        count: 3,
        rate: 0.25,
        on: true,
    };

    fn owner() -> Owner {
        Owner::Rule("r".into())
    }

    fn eval(source: &str) -> Result<bool, Error> {
        let program = compile::<Sample>(&owner(), source)?;
        holds(&owner(), source, &program, &SAMPLE)
    }

    #[test]
    fn reads_ints_doubles_and_bools() {
        assert_eq!(eval("count >= 3"), Ok(true));
        assert_eq!(eval("count > 3"), Ok(false));
        assert_eq!(eval("rate > 0.2 && rate < 0.3"), Ok(true));
        assert_eq!(eval("on"), Ok(true));
        assert_eq!(eval("!on || count == 0"), Ok(false));
    }

    #[test]
    fn ints_and_doubles_compare_with_each_other() {
        assert_eq!(eval("count > 2.5"), Ok(true));
        assert_eq!(eval("rate < 1"), Ok(true));
        assert_eq!(eval("count == 3.0"), Ok(true));
    }

    #[test]
    fn a_parse_error_carries_the_parsers_message() {
        let err = compile::<Sample>(&owner(), "count >").unwrap_err();
        let Error::ConditionSyntax { message, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(message.contains("ERROR: <input>:1:"), "{message}");
        assert!(
            err.to_string()
                .starts_with("circuit breaker rule `r`: condition `count >` does not parse: ERROR"),
            "{err}"
        );
    }

    #[test]
    fn unknown_variables_are_named_sorted_with_the_known_ones() {
        let err = compile::<Sample>(&owner(), "zeta > 1 && count > 1 && alpha").unwrap_err();
        assert_eq!(
            err,
            Error::UnknownVariables {
                owner: owner(),
                condition: "zeta > 1 && count > 1 && alpha".into(),
                names: vec!["alpha".into(), "zeta".into()],
                known: vec!["count", "rate", "on"],
            }
        );
        assert_eq!(
            err.to_string(),
            "circuit breaker rule `r`: condition `zeta > 1 && count > 1 && alpha` uses unknown \
             variable(s) alpha, zeta; known: count, rate, on"
        );
    }

    #[test]
    fn a_value_that_is_not_a_bool_is_an_error() {
        assert_eq!(
            eval("count + 1"),
            Err(Error::ConditionNotBool {
                owner: owner(),
                condition: "count + 1".into(),
                got: "Int(4)".into()
            })
        );
    }

    #[test]
    fn check_refuses_what_gives_no_bool_in_either_trial() {
        assert_eq!(
            check::<Sample>(&owner(), "count + 1").map(drop),
            Err(Error::ConditionNotBool {
                owner: owner(),
                condition: "count + 1".into(),
                got: "Int(1)".into()
            }),
            "the first trial's error: every number 0"
        );
        assert!(matches!(
            check::<Sample>(&owner(), "rate"),
            Err(Error::ConditionNotBool { .. })
        ));
        assert!(matches!(
            check::<Sample>(&owner(), "rate > \"high\""),
            Err(Error::ConditionFailed { .. })
        ));
        assert!(matches!(
            check::<Sample>(&owner(), "nope(count)"),
            Err(Error::ConditionFailed { .. })
        ));
        assert!(matches!(
            check::<Sample>(&owner(), "count >"),
            Err(Error::ConditionSyntax { .. })
        ));
    }

    #[test]
    fn check_leaves_what_only_some_values_break_to_evaluation() {
        for fine in [
            "count >= 3 && rate < 0.5",
            // Division by zero, and a NaN compared, where every number is 0; fine at 1.
            "1 / count >= 0",
            "rate / rate > 0.5",
            // Short-circuited past in both trials.
            "!on || on || rate",
        ] {
            assert!(check::<Sample>(&owner(), fine).is_ok(), "{fine}");
        }
        let program = check::<Sample>(&owner(), "1 / count >= 0").unwrap();
        assert_eq!(
            holds(&owner(), "1 / count >= 0", &program, &SAMPLE),
            Ok(true)
        );
    }

    #[test]
    fn a_failure_while_evaluating_is_an_error_with_the_interpreters_message() {
        let err = eval("nope(count)").unwrap_err();
        assert_eq!(
            err,
            Error::ConditionFailed {
                owner: owner(),
                condition: "nope(count)".into(),
                message: "Undeclared reference to 'nope'".into()
            }
        );
        let Err(Error::ConditionFailed { message, .. }) = eval("count / 0 > 1") else {
            panic!("division by zero must fail");
        };
        assert_eq!(message, "Division by zero of Int(3)");
    }

    #[test]
    fn evidence_lists_the_variables_read_in_declaration_order() {
        let program = compile::<Sample>(&owner(), "on && count > 1 && rate < 1.0").unwrap();
        assert_eq!(
            evidence(&program, &SAMPLE),
            "count = 3, rate = 0.25, on = true"
        );
        let program = compile::<Sample>(&owner(), "true").unwrap();
        assert_eq!(evidence(&program, &SAMPLE), "");
    }

    #[test]
    fn counts_saturate() {
        assert_eq!(Var::count(u64::MAX), Var::Int(i64::MAX));
        assert_eq!(Var::Double(0.5).show(), "0.5");
        assert_eq!(Var::Double(1.0).show(), "1");
    }
}
