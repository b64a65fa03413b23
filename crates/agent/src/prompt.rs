//! The task as the agent reads it.

/// What goes into an agent's prompt for one step of one deliverable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptParts {
    pub deliverable_id: String,
    pub deliverable_title: String,
    /// What this step (dev, QA, docs, ...) must do.
    pub step_prompt: String,
    /// Each criterion becomes one checklist item.
    pub acceptance_criteria: Vec<String>,
    /// The persona's instructions file, as written.
    pub instructions: Option<String>,
    /// Facts about the run, in order: run id, tenant, target branch, dependencies done, ...
    pub context: Vec<(String, String)>,
}

/// The line every prompt ends with. kamachiq reviews the worktree's changes and commits them
/// itself, so an agent that commits, or writes outside its worktree, defeats the review.
const LAST_LINE: &str = "Work only in the current directory, and do not commit: kamachiq reviews and commits your changes.";

/// Builds the prompt: plain Markdown sections (task, acceptance criteria as a checklist,
/// instructions, context), empty ones left out, and a last line that keeps the agent in its
/// worktree and away from `git commit`. The same parts always give the same text.
pub fn prompt(parts: &PromptParts) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# {}: {}\n",
        one_line(&parts.deliverable_id),
        one_line(&parts.deliverable_title)
    ));

    section(&mut out, "Task", parts.step_prompt.trim());

    let criteria: Vec<String> = parts
        .acceptance_criteria
        .iter()
        .map(|criterion| criterion.trim())
        .filter(|criterion| !criterion.is_empty())
        .map(|criterion| format!("- [ ] {}", indent_continuation(criterion)))
        .collect();
    section(&mut out, "Acceptance criteria", &criteria.join("\n"));

    section(
        &mut out,
        "Instructions",
        parts.instructions.as_deref().unwrap_or_default().trim(),
    );

    let context: Vec<String> = parts
        .context
        .iter()
        .map(|(key, value)| format!("- {}: {}", one_line(key), indent_continuation(value.trim())))
        .collect();
    section(&mut out, "Context", &context.join("\n"));

    out.push('\n');
    out.push_str(LAST_LINE);
    out.push('\n');
    out
}

fn section(out: &mut String, title: &str, body: &str) {
    if body.is_empty() {
        return;
    }
    out.push_str(&format!("\n## {title}\n\n{body}\n"));
}

/// Heading and key text must stay on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Indents the lines after the first so a multi-line item stays inside its list item.
fn indent_continuation(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> PromptParts {
        PromptParts {
            deliverable_id: "api-auth".to_owned(),
            deliverable_title: "Token authentication for the API".to_owned(),
            step_prompt: "Add bearer-token authentication to every route.\n".to_owned(),
            acceptance_criteria: vec![
                "Requests without a token get 401".to_owned(),
                "Tokens are stored hashed".to_owned(),
            ],
            instructions: Some("You are the developer.\nWrite tests first.\n".to_owned()),
            context: vec![
                ("run id".to_owned(), "01J9Z".to_owned()),
                ("target branch".to_owned(), "main".to_owned()),
            ],
        }
    }

    #[test]
    fn every_section_in_order() {
        assert_eq!(
            prompt(&parts()),
            "# api-auth: Token authentication for the API\n\
             \n\
             ## Task\n\
             \n\
             Add bearer-token authentication to every route.\n\
             \n\
             ## Acceptance criteria\n\
             \n\
             - [ ] Requests without a token get 401\n\
             - [ ] Tokens are stored hashed\n\
             \n\
             ## Instructions\n\
             \n\
             You are the developer.\n\
             Write tests first.\n\
             \n\
             ## Context\n\
             \n\
             - run id: 01J9Z\n\
             - target branch: main\n\
             \n\
             Work only in the current directory, and do not commit: kamachiq reviews and commits your changes.\n"
        );
    }

    #[test]
    fn empty_sections_are_left_out() {
        let parts = PromptParts {
            deliverable_id: "docs".to_owned(),
            deliverable_title: "Update the README".to_owned(),
            step_prompt: "Describe the new flag.".to_owned(),
            acceptance_criteria: vec!["  ".to_owned()],
            instructions: Some("\n".to_owned()),
            context: Vec::new(),
        };
        assert_eq!(
            prompt(&parts),
            "# docs: Update the README\n\
             \n\
             ## Task\n\
             \n\
             Describe the new flag.\n\
             \n\
             Work only in the current directory, and do not commit: kamachiq reviews and commits your changes.\n"
        );
    }

    #[test]
    fn multi_line_items_stay_inside_their_bullet() {
        let parts = PromptParts {
            deliverable_id: "d1".to_owned(),
            deliverable_title: "A title\nwith a newline".to_owned(),
            step_prompt: "Do it.".to_owned(),
            acceptance_criteria: vec!["First line\nsecond line".to_owned()],
            instructions: None,
            context: vec![("dependencies done".to_owned(), "a\nb".to_owned())],
        };
        assert_eq!(
            prompt(&parts),
            "# d1: A title with a newline\n\
             \n\
             ## Task\n\
             \n\
             Do it.\n\
             \n\
             ## Acceptance criteria\n\
             \n\
             - [ ] First line\n  second line\n\
             \n\
             ## Context\n\
             \n\
             - dependencies done: a\n  b\n\
             \n\
             Work only in the current directory, and do not commit: kamachiq reviews and commits your changes.\n"
        );
    }

    #[test]
    fn the_same_parts_give_the_same_text() {
        assert_eq!(prompt(&parts()), prompt(&parts()));
    }
}
