//! Reading a directory of `.rego` files.

use std::path::{Path, PathBuf};

use super::Module;
use crate::Error;

/// Every `*.rego` file under `dir`, recursively, sorted by path, each named by its path relative
/// to `dir` with `/` separators. Symbolic links to files are followed, links to directories are
/// not. Errors when there is none, or when a file cannot be read or is not UTF-8.
pub fn load_dir(dir: &Path) -> Result<Vec<Module>, Error> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    if files.is_empty() {
        return Err(Error::NoModules {
            dir: dir.to_path_buf(),
        });
    }
    files.sort();
    files
        .into_iter()
        .map(|(name, path)| {
            let bytes = std::fs::read(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let source = String::from_utf8(bytes).map_err(|_| Error::NotUtf8 { path })?;
            Ok(Module { name, source })
        })
        .collect()
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> Result<(), Error> {
    let read_err = |source| Error::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(read_err)?;
        if kind.is_dir() {
            collect(root, &path, files)?;
            continue;
        }
        let is_file = kind.is_file()
            || (kind.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
        if is_file && path.extension().is_some_and(|e| e == "rego") {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push((name, path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn load_dir_reads_every_rego_file_sorted_by_path() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "z.rego", b"package z\n");
        write(dir.path(), "team/b.rego", b"package b\n");
        write(dir.path(), "a.rego", b"package a\n");
        write(dir.path(), "notes.md", b"not a policy");
        write(dir.path(), "team/data.json", b"{}");
        let modules = load_dir(dir.path()).unwrap();
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["a.rego", "team/b.rego", "z.rego"]);
        assert_eq!(modules[1].source, "package b\n");
    }

    #[test]
    fn load_dir_without_rego_files_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "README.md", b"policies go here");
        let err = load_dir(dir.path()).unwrap_err();
        assert!(matches!(&err, Error::NoModules { dir: d } if d == dir.path()));
        assert_eq!(
            err.to_string(),
            format!("no .rego files under {}", dir.path().display())
        );
    }

    #[test]
    fn load_dir_names_a_file_that_is_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "good.rego", b"package good\n");
        write(dir.path(), "bad.rego", b"package bad\n# \xff\xfe\n");
        let err = load_dir(dir.path()).unwrap_err();
        let bad = dir.path().join("bad.rego");
        assert!(matches!(&err, Error::NotUtf8 { path } if *path == bad));
        assert_eq!(
            err.to_string(),
            format!("{} is not UTF-8 text", bad.display())
        );
    }

    #[test]
    fn load_dir_of_a_missing_directory_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = load_dir(&missing).unwrap_err();
        assert!(matches!(&err, Error::Read { path, .. } if *path == missing));
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read {}: ", missing.display())),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn load_dir_follows_links_to_files_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        write(elsewhere.path(), "shared.rego", b"package shared\n");
        write(elsewhere.path(), "nested/inner.rego", b"package inner\n");
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
        };
        link(&elsewhere.path().join("shared.rego"), "linked.rego");
        link(&elsewhere.path().join("nested"), "linked-dir");
        link(&dir.path().join("missing"), "dangling.rego");
        write(dir.path(), "own.rego", b"package own\n");
        let modules = load_dir(dir.path()).unwrap();
        let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["linked.rego", "own.rego"]);
        assert_eq!(modules[0].source, "package shared\n");
    }
}
