use super::*;

fn one(text: &str) -> FileDiff {
    let diff = Diff::parse(text).unwrap();
    assert_eq!(diff.files.len(), 1, "{diff:?}");
    diff.files.into_iter().next().unwrap()
}

fn error(text: &str) -> String {
    Diff::parse(text).unwrap_err().to_string()
}

#[test]
fn empty_text_is_an_empty_diff() {
    assert_eq!(Diff::parse("").unwrap(), Diff::default());
    assert_eq!(Diff::parse("").unwrap().stats(), DiffStats::default());
}

#[test]
fn modified_file_with_unified_zero() {
    let file = one("diff --git a/src/lib.rs b/src/lib.rs\n\
         index 30b26ab..b1eef79 100644\n\
         --- a/src/lib.rs\n\
         +++ b/src/lib.rs\n\
         @@ -2 +2 @@ fn main() {\n\
         -    old();\n\
         +    new();\n\
         @@ -3,0 +4,2 @@ fn main() {\n\
         +    one();\n\
         +    two();\n");
    assert_eq!(
        file,
        FileDiff {
            old_path: Some("src/lib.rs".to_owned()),
            new_path: Some("src/lib.rs".to_owned()),
            status: FileStatus::Modified,
            binary: false,
            added: vec![
                AddedLine {
                    line: 2,
                    text: "    new();".to_owned()
                },
                AddedLine {
                    line: 4,
                    text: "    one();".to_owned()
                },
                AddedLine {
                    line: 5,
                    text: "    two();".to_owned()
                },
            ],
            lines_added: 3,
            lines_removed: 1,
        }
    );
}

#[test]
fn context_lines_advance_the_new_line_number() {
    let file = one("diff --git a/f b/f\n\
         index b1eef79..94712b2 100644\n\
         --- a/f\n\
         +++ b/f\n\
         @@ -2,3 +2,4 @@\n \
         changed\n\
         -keep\n\
         +kept\n \
         added\n\
         +more\n");
    assert_eq!(
        file.added,
        vec![
            AddedLine {
                line: 3,
                text: "kept".to_owned()
            },
            AddedLine {
                line: 5,
                text: "more".to_owned()
            },
        ]
    );
    assert_eq!((file.lines_added, file.lines_removed), (2, 1));
}

#[test]
fn an_empty_context_line_is_read_as_a_blank_one() {
    let file = one("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n");
    assert_eq!(
        file.added,
        vec![AddedLine {
            line: 3,
            text: "c".to_owned()
        }]
    );
}

#[test]
fn added_file() {
    let file = one("diff --git a/new.txt b/new.txt\n\
         new file mode 100644\n\
         index 0000000..d5a09df\n\
         --- /dev/null\n\
         +++ b/new.txt\n\
         @@ -0,0 +1,2 @@\n\
         +first\n\
         +\n");
    assert_eq!(file.status, FileStatus::Added);
    assert_eq!(
        (file.old_path, file.new_path.as_deref()),
        (None, Some("new.txt"))
    );
    assert_eq!(
        file.added,
        vec![
            AddedLine {
                line: 1,
                text: "first".to_owned()
            },
            AddedLine {
                line: 2,
                text: String::new()
            },
        ]
    );
}

#[test]
fn added_empty_file_takes_its_path_from_the_git_line() {
    let file = one("diff --git a/empty.txt b/empty.txt\n\
         new file mode 100644\n\
         index 0000000..e69de29\n");
    assert_eq!(file.status, FileStatus::Added);
    assert_eq!(file.new_path.as_deref(), Some("empty.txt"));
    assert_eq!((file.lines_added, file.added.len()), (0, 0));
}

#[test]
fn deleted_file() {
    let file = one("diff --git a/old.txt b/old.txt\n\
         deleted file mode 100644\n\
         index d55c06e..0000000\n\
         --- a/old.txt\n\
         +++ /dev/null\n\
         @@ -1,2 +0,0 @@\n\
         -gone\n\
         -also gone\n");
    assert_eq!(file.status, FileStatus::Deleted);
    assert_eq!(
        (file.old_path.as_deref(), file.new_path.as_deref()),
        (Some("old.txt"), None)
    );
    assert_eq!((file.lines_added, file.lines_removed), (0, 2));
    assert_eq!(file.path(), "old.txt");
}

#[test]
fn pure_rename_has_no_hunks() {
    let file = one("diff --git a/renamed.txt b/plain rename.txt\n\
         similarity index 100%\n\
         rename from renamed.txt\n\
         rename to plain rename.txt\n");
    assert_eq!(file.status, FileStatus::Renamed);
    assert_eq!(file.old_path.as_deref(), Some("renamed.txt"));
    assert_eq!(file.new_path.as_deref(), Some("plain rename.txt"));
}

#[test]
fn rename_with_edits_keeps_its_lines() {
    let file = one("diff --git a/moved.txt b/renamed.txt\n\
         similarity index 87%\n\
         rename from moved.txt\n\
         rename to renamed.txt\n\
         index c9e9e05..6bfbf55 100644\n\
         --- a/moved.txt\n\
         +++ b/renamed.txt\n\
         @@ -10,0 +11 @@ ten\n\
         +eleven\n");
    assert_eq!(file.status, FileStatus::Renamed);
    assert_eq!(
        file.added,
        vec![AddedLine {
            line: 11,
            text: "eleven".to_owned()
        }]
    );
}

#[test]
fn copy() {
    let file = one("diff --git a/a.txt b/b.txt\n\
         similarity index 100%\n\
         copy from a.txt\n\
         copy to b.txt\n");
    assert_eq!(file.status, FileStatus::Copied);
    assert_eq!(
        (file.old_path.as_deref(), file.new_path.as_deref()),
        (Some("a.txt"), Some("b.txt"))
    );
}

#[test]
fn mode_change_alone() {
    let file = one("diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n");
    assert_eq!(file.status, FileStatus::ModeChanged);
    assert_eq!(file.new_path.as_deref(), Some("run.sh"));
}

#[test]
fn mode_change_with_edits_is_a_modification() {
    let file = one("diff --git a/my file.txt b/my file.txt\n\
         old mode 100644\n\
         new mode 100755\n\
         index b1eef79..94712b2\n\
         --- a/my file.txt\t\n\
         +++ b/my file.txt\t\n\
         @@ -4,0 +5 @@ added\n\
         +more\n");
    assert_eq!(file.status, FileStatus::Modified);
    assert_eq!(file.new_path.as_deref(), Some("my file.txt"));
}

#[test]
fn binary_files() {
    let diff = Diff::parse(
        "diff --git a/img.bin b/img.bin\n\
         index 8352675..38fc5cf 100644\n\
         Binary files a/img.bin and b/img.bin differ\n\
         diff --git a/new.bin b/new.bin\n\
         new file mode 100644\n\
         index 0000000..ba01f6b\n\
         Binary files /dev/null and b/new.bin differ\n",
    )
    .unwrap();
    let summary: Vec<_> = diff
        .files
        .iter()
        .map(|f| (f.path(), f.status, f.binary, f.lines_added))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("img.bin", FileStatus::Modified, true, 0),
            ("new.bin", FileStatus::Added, true, 0),
        ]
    );
}

#[test]
fn binary_patch_data_is_skipped() {
    let diff = Diff::parse(
        "diff --git a/new.bin b/new.bin\n\
         new file mode 100644\n\
         index 0000000000000000000000000000000000000000..ba01f6b05bdbb386b35f4d086e268c5d422cafb9\n\
         GIT binary patch\n\
         literal 2\n\
         JcmZSh4*&rH0RR91\n\
         \n\
         literal 0\n\
         HcmV?d00001\n\
         \n\
         diff --git a/x b/x\n\
         deleted file mode 100644\n",
    )
    .unwrap();
    assert_eq!(diff.files.len(), 2);
    assert!(diff.files[0].binary);
    assert_eq!(diff.files[1].status, FileStatus::Deleted);
}

#[test]
fn no_newline_markers_are_not_lines() {
    let file = one("diff --git a/nonl.txt b/nonl.txt\n\
         index 20cbb4d..0a05244 100644\n\
         --- a/nonl.txt\n\
         +++ b/nonl.txt\n\
         @@ -1 +1 @@\n\
         -no newline\n\
         \\ No newline at end of file\n\
         +no newline either\n\
         \\ No newline at end of file\n");
    assert_eq!(
        file.added,
        vec![AddedLine {
            line: 1,
            text: "no newline either".to_owned()
        }]
    );
    assert_eq!((file.lines_added, file.lines_removed), (1, 1));
}

#[test]
fn quoted_paths_are_unescaped() {
    let file = one(
        "diff --git \"a/dir with space/caf\\303\\251.txt\" \"b/dir with space/na\\303\\257ve name.txt\"\n\
         similarity index 100%\n\
         rename from \"dir with space/caf\\303\\251.txt\"\n\
         rename to \"dir with space/na\\303\\257ve name.txt\"\n",
    );
    assert_eq!(file.old_path.as_deref(), Some("dir with space/café.txt"));
    assert_eq!(
        file.new_path.as_deref(),
        Some("dir with space/naïve name.txt")
    );
}

#[test]
fn quoted_side_paths_with_the_trailing_tab() {
    let file = one(
        "diff --git \"a/new \\\"quoted\\\".txt\" \"b/new \\\"quoted\\\".txt\"\n\
         new file mode 100644\n\
         index 0000000..d5a09df\n\
         --- /dev/null\n\
         +++ \"b/new \\\"quoted\\\".txt\"\t\n\
         @@ -0,0 +1 @@\n\
         +brand new\n",
    );
    assert_eq!(file.new_path.as_deref(), Some("new \"quoted\".txt"));
}

#[test]
fn stats_add_up_every_file() {
    let diff = Diff::parse(
        "diff --git a/a b/a\n--- a/a\n+++ b/a\n@@ -1,2 +1 @@\n-x\n-y\n+z\n\
         diff --git a/b b/b\nnew file mode 100644\n--- /dev/null\n+++ b/b\n@@ -0,0 +1,3 @@\n+1\n+2\n+3\n\
         diff --git a/c.bin b/c.bin\nBinary files a/c.bin and b/c.bin differ\n",
    )
    .unwrap();
    assert_eq!(
        diff.stats(),
        DiffStats {
            files: 3,
            lines_added: 4,
            lines_removed: 2
        }
    );
    assert_eq!(diff.stats().lines_changed(), 6);
}

#[test]
fn text_before_the_first_file_is_an_error() {
    assert_eq!(
        error("commit 4e8b7d2\n"),
        "diff line 1: expected `diff --git` starting a file, found `commit 4e8b7d2`"
    );
}

#[test]
fn unknown_header_line_is_an_error() {
    assert_eq!(
        error("diff --git a/f b/f\nsomething else\n"),
        "diff line 2: expected a file header line (`index`, `new file mode`, `rename from`, `---`, ...), \
         found `something else`"
    );
}

#[test]
fn bad_hunk_header_is_an_error() {
    assert_eq!(
        error("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -x +1 @@\n+a\n"),
        "diff line 4: expected a hunk header `@@ -OLD[,COUNT] +NEW[,COUNT] @@`, found `@@ -x +1 @@`"
    );
}

#[test]
fn hunk_before_file_lines_is_an_error() {
    assert_eq!(
        error("diff --git a/f b/f\n@@ -1 +1 @@\n-a\n+b\n"),
        "diff line 2: expected `---` and `+++` lines before the first hunk, found `@@ -1 +1 @@`"
    );
}

#[test]
fn truncated_hunk_is_an_error() {
    assert_eq!(
        error("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1,3 @@\n-a\n+b\n"),
        "diff line 4: expected as many hunk lines as the hunk header announces, \
         found the end of the diff with 0 old and 2 new lines missing"
    );
}

#[test]
fn hunk_longer_than_announced_is_an_error() {
    assert_eq!(
        error("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n+c\n"),
        "diff line 7: expected `@@` starting a hunk, `diff --git` starting a file, or the end of \
         the diff, found `+c`"
    );
}

#[test]
fn content_lines_are_never_quoted_in_errors() {
    assert_eq!(
        error("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1 @@\n-a\n+b\n*hidden\n"),
        "diff line 7: expected a removed line starting with `-` (the hunk header announces more), \
         found a line starting with `*`"
    );
}

#[test]
fn paths_without_prefixes_are_an_error() {
    assert_eq!(
        error("diff --git f f\n--- f\n+++ f\n"),
        "diff line 2: expected `/dev/null` or a path starting with `a/`, found `f`"
    );
}

#[test]
fn long_lines_are_cut_in_errors() {
    let line = "x".repeat(100);
    assert_eq!(
        error(&line),
        format!(
            "diff line 1: expected `diff --git` starting a file, found `{}…`",
            "x".repeat(60)
        )
    );
}

#[test]
fn hunk_numbers_that_overflow_are_an_error() {
    assert_eq!(
        error("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +99999999999 @@\n"),
        "diff line 4: expected a hunk header `@@ -OLD[,COUNT] +NEW[,COUNT] @@`, \
         found `@@ -1 +99999999999 @@`"
    );
}
