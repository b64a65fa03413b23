//! regorus renders its errors for a terminal (`--> file:line:col`, the source line, a caret,
//! `error: message`); kamachiq's errors want the place and the message apart.

use crate::Error;

/// Builds [`Error::Compile`] from regorus's rendered error (`--> file:line:col`, the source
/// line, `error: message`), with `module` as the module when the text names none.
pub(super) fn compile_error(text: &str, module: Option<&str>) -> Error {
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
pub(super) fn one_line(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
