//! Paths as git prints them in diff headers.
//!
//! A path holding a control character, a double quote, a backslash or (with the default
//! `core.quotePath`) a byte above 0x7f is printed in C style: in double quotes, with `\t`, `\n`,
//! `\"`, `\\` and the like, and other bytes as three octal digits (`caf\303\251.txt`). Other
//! paths, spaces included, are printed as they are.

/// A header path: C-quoted (decoded) or plain (as it is). `None` when a quoted path is malformed
/// or the text is empty.
pub(super) fn path(text: &str) -> Option<String> {
    if text.starts_with('"') {
        match unquote(text)? {
            (path, "") => Some(path),
            _ => None,
        }
    } else if text.is_empty() {
        None
    } else {
        Some(text.to_owned())
    }
}

/// The two paths of a `diff --git a/OLD b/NEW` line (the text after `diff --git `), without their
/// prefixes. Unquoted paths may hold spaces, so the split is only certain when both paths are
/// the same, which is the case for every file that is not renamed or copied (those name their
/// paths again in `rename`/`copy` lines). `None` when the paths cannot be told apart.
pub(super) fn git_line_paths(rest: &str) -> Option<(String, String)> {
    let (old, new) = if rest.starts_with('"') {
        let (old, after) = unquote(rest)?;
        (old, path(after.strip_prefix(' ')?)?)
    } else if rest.ends_with('"') {
        let at = rest.rfind(" \"")?;
        (rest[..at].to_owned(), path(&rest[at + 1..])?)
    } else {
        split_plain(rest)?
    };
    Some((
        old.strip_prefix("a/")?.to_owned(),
        new.strip_prefix("b/")?.to_owned(),
    ))
}

/// `a/X b/X` with the same X on both sides, or else a line with a single ` b/` in it.
fn split_plain(rest: &str) -> Option<(String, String)> {
    if rest.len() % 2 == 1 {
        let half = rest.len() / 2;
        if rest.is_char_boundary(half) && rest.is_char_boundary(half + 1) {
            let (old, new) = (&rest[..half], &rest[half + 1..]);
            if rest.as_bytes()[half] == b' ' && old.get(2..) == new.get(2..) {
                return Some((old.to_owned(), new.to_owned()));
            }
        }
    }
    let mut splits = rest.match_indices(" b/");
    let (at, _) = splits.next()?;
    if splits.next().is_some() {
        return None;
    }
    Some((rest[..at].to_owned(), rest[at + 1..].to_owned()))
}

/// Decodes a C-quoted string at the start of `text`; returns it and the text after the closing
/// quote. Bytes that are not UTF-8 are replaced, as `String::from_utf8_lossy` does.
fn unquote(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut bytes = Vec::with_capacity(body.len());
    let mut iter = body.char_indices();
    while let Some((at, c)) = iter.next() {
        match c {
            '"' => {
                let decoded = String::from_utf8_lossy(&bytes).into_owned();
                return Some((decoded, &body[at + 1..]));
            }
            '\\' => {
                let (_, escape) = iter.next()?;
                let byte = match escape {
                    'a' => 0x07,
                    'b' => 0x08,
                    't' => b'\t',
                    'n' => b'\n',
                    'v' => 0x0b,
                    'f' => 0x0c,
                    'r' => b'\r',
                    '"' => b'"',
                    '\\' => b'\\',
                    '0'..='3' => {
                        let mut value = u32::from(escape) - u32::from('0');
                        for _ in 0..2 {
                            let (_, digit) = iter.next()?;
                            value = value * 8 + digit.to_digit(8)?;
                        }
                        u8::try_from(value).ok()?
                    }
                    _ => return None,
                };
                bytes.push(byte);
            }
            c => {
                let mut buf = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_kept_as_they_are() {
        assert_eq!(
            path("dir with space/a b.txt").as_deref(),
            Some("dir with space/a b.txt")
        );
        assert_eq!(path(""), None);
    }

    #[test]
    fn octal_escapes_are_utf8_bytes() {
        assert_eq!(
            path(r#""a/caf\303\251.txt""#).as_deref(),
            Some("a/café.txt")
        );
    }

    #[test]
    fn c_escapes() {
        assert_eq!(
            path(r#""a\tb\nc\"d\\e\001""#).as_deref(),
            Some("a\tb\nc\"d\\e\u{1}")
        );
    }

    #[test]
    fn malformed_quotes_are_rejected() {
        assert_eq!(path(r#""unterminated"#), None);
        assert_eq!(path(r#""bad \q escape""#), None);
        assert_eq!(path(r#""short \30""#), None);
        assert_eq!(path(r#""trailing" text"#), None);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(path(r#""x\377y""#).as_deref(), Some("x\u{fffd}y"));
    }

    #[test]
    fn git_line_with_the_same_path_twice() {
        assert_eq!(
            git_line_paths("a/my file b/x.txt b/my file b/x.txt"),
            Some(("my file b/x.txt".to_owned(), "my file b/x.txt".to_owned()))
        );
    }

    #[test]
    fn git_line_with_quoted_paths() {
        assert_eq!(
            git_line_paths(r#""a/caf\303\251.txt" "b/caf\303\251.txt""#),
            Some(("café.txt".to_owned(), "café.txt".to_owned()))
        );
    }

    #[test]
    fn git_line_with_one_quoted_path() {
        assert_eq!(
            git_line_paths(r#"a/plain.txt "b/caf\303\251.txt""#),
            Some(("plain.txt".to_owned(), "café.txt".to_owned()))
        );
    }

    #[test]
    fn git_line_with_different_plain_paths() {
        assert_eq!(
            git_line_paths("a/old name.txt b/new.txt"),
            Some(("old name.txt".to_owned(), "new.txt".to_owned()))
        );
        assert_eq!(git_line_paths("a/x b/y b/z"), None);
        assert_eq!(git_line_paths("x y"), None);
    }
}
