//! `kamachiq plan validate`, and reading plan files for every command that takes one.

use std::path::Path;

use kamachiq_api::ValidationView;
use kamachiq_domain::Plan;
use kamachiq_domain::plan::{Format, Problems, Source};

use crate::{InvalidInput, exit, output};

/// Reads a plan file. `Err(Ok(problems))` when it parses but is invalid; `Err(Err(_))` when
/// it cannot be read at all.
pub fn read(path: &Path) -> Result<Plan, Result<Problems, InvalidInput>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Err(InvalidInput::new(format!(
            "cannot read the plan {}: {e}",
            path.display()
        )))
    })?;
    let source = Source::new(path.display().to_string(), text, Format::from_path(path));
    Plan::parse(&source).map_err(Ok)
}

/// Reads a plan for running: problems are printed and turned into an input error.
pub fn load(path: &Path) -> anyhow::Result<Plan> {
    match read(path) {
        Ok(plan) => Ok(plan),
        Err(Ok(problems)) => {
            for problem in problems.iter() {
                output::note(format!("error: {problem}"));
            }
            Err(InvalidInput::new(format!(
                "{} is not a valid plan ({} problem{})",
                path.display(),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            ))
            .into())
        }
        Err(Err(e)) => Err(e.into()),
    }
}

pub fn validate(path: &Path, json: bool) -> anyhow::Result<u8> {
    let file = path.display().to_string();
    match read(path) {
        Ok(plan) => {
            let view = ValidationView::valid(&file, &plan);
            if json {
                output::json_pretty(&view);
            } else {
                output::line(format!(
                    "{file}: valid: {} deliverables, {} dependencies, {} steps",
                    view.deliverables.unwrap_or(0),
                    view.dependencies.unwrap_or(0),
                    view.steps.unwrap_or(0)
                ));
            }
            Ok(exit::OK)
        }
        Err(Ok(problems)) => {
            if json {
                output::json_pretty(&ValidationView::invalid(&file, problems.iter()));
            } else {
                for problem in problems.iter() {
                    output::line(format!("error: {problem}"));
                }
                output::line(format!(
                    "{file}: invalid: {} problem{}",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                ));
            }
            Ok(exit::INVALID)
        }
        Err(Err(e)) => Err(e.into()),
    }
}
