//! This crate's own sources, scanned as if every line were added: they must pass, so that the
//! repository does not trip the scanner it ships (test secrets are built at run time).

use std::path::Path;

use kamachiq_review::{AddedLine, Diff, FileDiff, FileStatus, Guards, Options};

fn collect(dir: &Path, root: &Path, files: &mut Vec<FileDiff>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, root, files);
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let added: Vec<AddedLine> = text
            .lines()
            .zip(1..)
            .map(|(text, line)| AddedLine {
                line,
                text: text.to_owned(),
            })
            .collect();
        let relative = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        files.push(FileDiff {
            old_path: None,
            new_path: Some(relative),
            status: FileStatus::Added,
            binary: false,
            lines_added: u32::try_from(added.len()).unwrap(),
            lines_removed: 0,
            added,
        });
    }
}

#[test]
fn this_crate_does_not_trip_its_own_secret_scan() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests"] {
        collect(&root.join(dir), root, &mut files);
    }
    assert!(files.len() >= 10, "found only {} files", files.len());
    let options = Options {
        max_files: None,
        max_changed_lines: None,
        ..Options::default()
    };
    let report = Guards::new(&options).unwrap().check(&Diff { files });
    let messages: Vec<_> = report.findings.iter().map(|f| &f.message).collect();
    assert!(report.passed(), "{messages:#?}");
}
