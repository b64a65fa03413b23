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

    /// A value to try a condition on when it is compiled: every number 0, every flag false.
    fn sample() -> Self
    where
        Self: Sized;
}

struct Resolver<'a, V>(&'a V);

impl<V: Vars> VariableResolver for Resolver<'_, V> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        Some(match self.0.var(variable)? {
            Var::Int(n) => CowVal::owned(CelInt::from(n)),
            Var::Double(x) => CowVal::owned(CelDouble::from(x)),
            Var::Bool(b) => CowVal::owned(CelBool::from(b)),
        })
    }
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
    try_on_sample::<V>(owner, source, &program)?;
    Ok(program)
}

/// Runs `program` once on [`Vars::sample`], so that a condition that gives something else than a
/// bool, or calls what does not exist or does not fit its values' types, is refused when it is
/// written rather than failing at every evaluation. Errors that depend on the values (a
/// division by zero) are not refused, and a part the trial short-circuits past is not judged.
fn try_on_sample<V: Vars>(owner: &Owner, source: &str, program: &Program) -> Result<(), Error> {
    let sample = V::sample();
    match holds(owner, source, program, &sample) {
        Ok(_) => Ok(()),
        Err(e @ Error::ConditionNotBool { .. }) => Err(e),
        Err(e) => {
            let resolver = Resolver(&sample);
            let mut context = Context::with_env(Arc::clone(env()));
            context.set_variable_resolver(&resolver);
            match program.execute(&context) {
                Err(
                    ExecutionError::DivisionByZero(_)
                    | ExecutionError::RemainderByZero(_)
                    | ExecutionError::Overflow(..)
                    | ExecutionError::IndexOutOfBounds(_),
                ) => Ok(()),
                _ => Err(e),
            }
        }
    }
}

/// Evaluates `program` over `vars`; anything but a bool is an error.
pub(crate) fn holds<V: Vars>(
    owner: &Owner,
    source: &str,
    program: &Program,
    vars: &V,
) -> Result<bool, Error> {
    let resolver = Resolver(vars);
    let mut context = Context::with_env(Arc::clone(env()));
    context.set_variable_resolver(&resolver);
    match program.execute(&context) {
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
    fn a_value_that_is_not_a_bool_is_refused_when_compiled() {
        assert_eq!(
            eval("count + 1"),
            Err(Error::ConditionNotBool {
                owner: owner(),
                condition: "count + 1".into(),
                got: "Int(1)".into()
            }),
            "tried on the sample, where count is 0"
        );
        assert!(matches!(
            compile::<Sample>(&owner(), "rate"),
            Err(Error::ConditionNotBool { .. })
        ));
        assert!(matches!(
            compile::<Sample>(&owner(), "rate > \"high\""),
            Err(Error::ConditionFailed { .. })
        ));
    }

    #[test]
    fn what_only_some_values_break_is_left_to_evaluation() {
        // 1 / count fails only where count is 0, as in the sample: compiled, and judged when run.
        let program = compile::<Sample>(&owner(), "1 / count >= 0").unwrap();
        assert_eq!(
            holds(&owner(), "1 / count >= 0", &program, &SAMPLE),
            Ok(true)
        );
        // The trial does not look past what short-circuits.
        assert!(compile::<Sample>(&owner(), "on && rate").is_ok());
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
