//! Diffs printed by git 2.47.3, kept as files. `unified-0.diff` is
//! `git diff --no-color --no-ext-diff -M --unified=0 BASE TIP` over a change that deletes a
//! file with a quoted name, adds one in a directory with a space, edits a file whose name has
//! a space (git ends such names with a tab), adds a file with quotes in its name, an empty
//! file and a binary one, changes a binary file, drops a final newline, deletes a file,
//! renames with edits and makes a script executable. `unified-3.diff` is the next commit with
//! `--unified=3`: pure renames with quoted and spaced names, and a mode change with an edit.

use kamachiq_review::{Diff, DiffStats, FileStatus, Guards, Options};

const UNIFIED_0: &str = include_str!("fixtures/unified-0.diff");
const UNIFIED_3: &str = include_str!("fixtures/unified-3.diff");

type Summary<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    FileStatus,
    bool,
    Vec<(u32, &'a str)>,
    u32,
    u32,
);

fn summary(diff: &Diff) -> Vec<Summary<'_>> {
    diff.files
        .iter()
        .map(|f| {
            (
                f.old_path.as_deref(),
                f.new_path.as_deref(),
                f.status,
                f.binary,
                f.added.iter().map(|a| (a.line, a.text.as_str())).collect(),
                f.lines_added,
                f.lines_removed,
            )
        })
        .collect()
}

#[test]
fn unified_zero_diff_from_git() {
    use FileStatus::*;
    let diff = Diff::parse(UNIFIED_0).unwrap();
    assert_eq!(
        summary(&diff),
        vec![
            (Some("café.txt"), None, Deleted, false, vec![], 0, 1),
            (
                None,
                Some("dir with space/café.txt"),
                Added,
                false,
                vec![(1, "y")],
                1,
                0
            ),
            (None, Some("empty.txt"), Added, false, vec![], 0, 0),
            (
                Some("img.bin"),
                Some("img.bin"),
                Modified,
                true,
                vec![],
                0,
                0
            ),
            (
                Some("my file.txt"),
                Some("my file.txt"),
                Modified,
                false,
                vec![(2, "changed"), (4, "added")],
                2,
                1
            ),
            (
                None,
                Some("new \"quoted\".txt"),
                Added,
                false,
                vec![(1, "brand new")],
                1,
                0
            ),
            (None, Some("new.bin"), Added, true, vec![], 0, 0),
            (
                Some("nonl.txt"),
                Some("nonl.txt"),
                Modified,
                false,
                vec![(1, "no newline either")],
                1,
                1
            ),
            (Some("old.txt"), None, Deleted, false, vec![], 0, 2),
            (
                Some("moved.txt"),
                Some("renamed.txt"),
                Renamed,
                false,
                vec![(11, "eleven")],
                1,
                0
            ),
            (
                Some("run.sh"),
                Some("run.sh"),
                ModeChanged,
                false,
                vec![],
                0,
                0
            ),
        ]
    );
    assert_eq!(
        diff.stats(),
        DiffStats {
            files: 11,
            lines_added: 6,
            lines_removed: 5
        }
    );
}

#[test]
fn unified_three_diff_from_git() {
    use FileStatus::*;
    let diff = Diff::parse(UNIFIED_3).unwrap();
    assert_eq!(
        summary(&diff),
        vec![
            (
                Some("dir with space/café.txt"),
                Some("dir with space/naïve name.txt"),
                Renamed,
                false,
                vec![],
                0,
                0
            ),
            (
                Some("my file.txt"),
                Some("my file.txt"),
                Modified,
                false,
                vec![(5, "more")],
                1,
                0
            ),
            (
                Some("renamed.txt"),
                Some("plain rename.txt"),
                Renamed,
                false,
                vec![],
                0,
                0
            ),
        ]
    );
}

#[test]
fn the_fixtures_pass_the_default_guards() {
    let guards = Guards::new(&Options::default()).unwrap();
    for text in [UNIFIED_0, UNIFIED_3] {
        let report = guards.check(&Diff::parse(text).unwrap());
        assert!(report.passed(), "{:?}", report.findings);
    }
}

#[test]
fn a_diff_cut_short_is_an_error_not_a_smaller_diff() {
    // Cut inside the hunk of `old.txt`, after its first removed line.
    let cut = UNIFIED_0.find("-also gone").unwrap();
    let error = Diff::parse(&UNIFIED_0[..cut]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "diff line 55: expected as many hunk lines as the hunk header announces, \
         found the end of the diff with 1 old and 0 new lines missing"
    );
}
