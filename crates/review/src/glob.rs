//! Path patterns, compiled once: which protected or allow-listed pattern a path matches.
//!
//! Patterns are globs over the whole repository-relative path, read the way `.gitignore` reads
//! them, so that a bare name does what people expect:
//!
//! - `*` and `?` never match `/`; `**` matches any number of directories; `[abc]` and `{a,b}`
//!   work; a backslash escapes the next character. Matching is case-sensitive, as git paths are.
//! - A pattern without a `/` (`*.pem`, `Jenkinsfile`) matches a file or directory of that name
//!   at any depth: `*.pem` matches `certs/prod/server.pem`.
//! - A pattern with a `/` in it (`.github/workflows/**`, `/build.rs`) is anchored at the
//!   repository root; a leading `/` only says so.
//! - A pattern that matches a directory also matches everything in it, and a trailing `/`
//!   (`.git/`) matches only what is in such a directory.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::Error;

/// The compiled patterns of one option, remembering which pattern each glob came from.
#[derive(Clone, Debug)]
pub(crate) struct PathSet {
    patterns: Vec<String>,
    set: GlobSet,
    /// For each compiled glob, the index of the pattern it came from.
    owners: Vec<usize>,
}

impl PathSet {
    /// Compiles `patterns`; an error names `field`, the pattern's index and the pattern.
    pub(crate) fn new(field: &'static str, patterns: &[String]) -> Result<Self, Error> {
        let mut builder = GlobSetBuilder::new();
        let mut owners = Vec::new();
        for (index, pattern) in patterns.iter().enumerate() {
            let invalid = |reason: String| Error::Glob {
                field: format!("{field}[{index}]"),
                glob: pattern.clone(),
                reason,
            };
            for expanded in expand(pattern).map_err(|why| invalid(why.to_owned()))? {
                let glob = GlobBuilder::new(&expanded)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| invalid(e.kind().to_string()))?;
                builder.add(glob);
                owners.push(index);
            }
        }
        let set = builder.build().map_err(|e| Error::Glob {
            field: field.to_owned(),
            glob: patterns.join(", "),
            reason: e.kind().to_string(),
        })?;
        Ok(Self {
            patterns: patterns.to_vec(),
            set,
            owners,
        })
    }

    /// The first pattern, in the option's order, that matches `path`.
    pub(crate) fn first_match(&self, path: &str) -> Option<&str> {
        let first = self
            .set
            .matches(path)
            .into_iter()
            .filter_map(|glob| self.owners.get(glob).copied())
            .min()?;
        self.patterns.get(first).map(String::as_str)
    }

    pub(crate) fn is_match(&self, path: &str) -> bool {
        self.set.is_match(path)
    }
}

/// The globs one pattern stands for (see the module documentation).
fn expand(pattern: &str) -> Result<Vec<String>, &'static str> {
    if pattern.trim().is_empty() {
        return Err("is empty");
    }
    let (body, directory_only) = match pattern.strip_suffix('/') {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    let anchored = body.contains('/');
    let body = body.strip_prefix('/').unwrap_or(body);
    if body.is_empty() {
        return Err("names no path");
    }
    let base = if anchored {
        body.to_owned()
    } else {
        format!("**/{body}")
    };
    let inside = format!("{base}/**");
    Ok(if directory_only {
        vec![inside]
    } else {
        vec![base, inside]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> PathSet {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        PathSet::new("protected", &patterns).unwrap()
    }

    #[test]
    fn bare_patterns_match_at_any_depth() {
        let pem = set(&["*.pem"]);
        assert_eq!(pem.first_match("server.pem"), Some("*.pem"));
        assert_eq!(pem.first_match("certs/prod/server.pem"), Some("*.pem"));
        assert_eq!(pem.first_match("server.pem.md"), None);
    }

    #[test]
    fn bare_names_match_directories_and_their_contents() {
        let jenkins = set(&["Jenkinsfile"]);
        assert!(jenkins.is_match("Jenkinsfile"));
        assert!(jenkins.is_match("ci/Jenkinsfile"));
        assert!(jenkins.is_match("Jenkinsfile/stage"));
        assert!(!jenkins.is_match("Jenkinsfile.md"));
        assert!(!jenkins.is_match("jenkinsfile"));
    }

    #[test]
    fn patterns_with_a_slash_are_anchored() {
        let workflows = set(&[".github/workflows/**"]);
        assert!(workflows.is_match(".github/workflows/ci.yml"));
        assert!(!workflows.is_match("vendor/.github/workflows/ci.yml"));
        let root = set(&["/build.rs"]);
        assert!(root.is_match("build.rs"));
        assert!(!root.is_match("crates/x/build.rs"));
    }

    #[test]
    fn star_does_not_cross_directories() {
        let docs = set(&["docs/*.md"]);
        assert!(docs.is_match("docs/a.md"));
        assert!(!docs.is_match("docs/deep/a.md"));
    }

    #[test]
    fn trailing_slash_matches_only_what_is_inside() {
        let git = set(&[".git/"]);
        assert!(git.is_match(".git/config"));
        assert!(git.is_match("sub/.git/hooks/pre-commit"));
        assert!(!git.is_match(".git"));
        assert!(!git.is_match(".gitignore"));
    }

    #[test]
    fn the_first_matching_pattern_is_reported() {
        let both = set(&["*.key", "secrets/**"]);
        assert_eq!(both.first_match("secrets/api.key"), Some("*.key"));
        assert_eq!(both.first_match("secrets/api.txt"), Some("secrets/**"));
        assert_eq!(both.first_match("src/keyboard.rs"), None);
    }

    #[test]
    fn bad_patterns_name_the_field_and_the_pattern() {
        let patterns = vec!["*.pem".to_owned(), "src/[".to_owned()];
        let error = PathSet::new("allow_secrets_in", &patterns).unwrap_err();
        assert_eq!(
            error.to_string(),
            "allow_secrets_in[1]: invalid glob `src/[`: unclosed character class; missing ']'"
        );
    }

    #[test]
    fn empty_patterns_are_rejected() {
        let error = PathSet::new("protected", &["  ".to_owned()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "protected[0]: invalid glob `  `: is empty"
        );
        let error = PathSet::new("protected", &["/".to_owned()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "protected[0]: invalid glob `/`: names no path"
        );
    }
}
