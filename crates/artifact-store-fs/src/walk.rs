//! Turning local paths into a package's files (what `artifactstore push` does), for every
//! library user: directories are walked in name order, each regular file gets its path inside
//! the package (`dir/sub/file`), and anything the store would not keep faithfully is refused
//! up front — symbolic links, special files, names that are not UTF-8, two inputs landing on
//! one package path, invalid package paths, nothing at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why [`package_files`] refused its inputs.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// An input could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadInput {
        /// The input.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be read.
    #[error("cannot read directory {}: {source}", path.display())]
    ReadDirectory {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A name is not UTF-8 (package paths are).
    #[error("{} has a name that is not UTF-8", .0.display())]
    NotUtf8(PathBuf),
    /// A symbolic link inside a walked directory.
    #[error("{} is a symbolic link; push the target itself (links are not stored)", .0.display())]
    Symlink(PathBuf),
    /// A device, socket or FIFO inside a walked directory.
    #[error("{} is not a regular file", .0.display())]
    NotRegular(PathBuf),
    /// An input that is neither a regular file nor a directory.
    #[error("{} is not a regular file or directory", .0.display())]
    NotFileOrDirectory(PathBuf),
    /// A package path the manifest rules refuse.
    #[error(transparent)]
    InvalidPath(#[from] artifact_core::Error),
    /// Two inputs map to one package path.
    #[error("two inputs map to the package path `{package_path}`: {} and {}", first.display(), second.display())]
    Duplicate {
        /// The package path.
        package_path: String,
        /// The input that got it first.
        first: PathBuf,
        /// The one that collided.
        second: PathBuf,
    },
    /// The inputs hold no file.
    #[error("nothing to push: the given paths hold no files")]
    Empty,
}

/// Every regular file under `paths` (files as themselves, directories walked), keyed by its
/// path inside the package. A file given directly is named by its file name; a directory's
/// files by their path below it.
pub fn package_files(paths: &[PathBuf]) -> Result<BTreeMap<String, PathBuf>, WalkError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::symlink_metadata(path).map_err(|source| WalkError::ReadInput {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(path, "", &mut found)?;
        } else if meta.is_file() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| WalkError::NotUtf8(path.clone()))?;
            found.push((name.to_owned(), path.clone()));
        } else {
            return Err(WalkError::NotFileOrDirectory(path.clone()));
        }
    }
    let mut files = BTreeMap::new();
    for (package_path, source) in found {
        artifact_core::manifest::validate_path(&package_path)?;
        if let Some(first) = files.insert(package_path.clone(), source.clone()) {
            return Err(WalkError::Duplicate {
                package_path,
                first,
                second: source,
            });
        }
    }
    if files.is_empty() {
        return Err(WalkError::Empty);
    }
    Ok(files)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) -> Result<(), WalkError> {
    let read = |source| WalkError::ReadDirectory {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read)?
        .collect::<Result<_, _>>()
        .map_err(read)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| WalkError::NotUtf8(entry.path()))?;
        let package_path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type().map_err(read)?;
        if kind.is_symlink() {
            return Err(WalkError::Symlink(entry.path()));
        } else if kind.is_dir() {
            walk(&entry.path(), &package_path, out)?;
        } else if kind.is_file() {
            out.push((package_path, entry.path()));
        } else {
            return Err(WalkError::NotRegular(entry.path()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_walked_in_name_order_and_files_named_by_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::write(root.join("b/c/deep.txt"), "d").unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        let single = dir.path().join("notes.md");
        std::fs::write(&single, "n").unwrap();
        let files = package_files(&[root.clone(), single.clone()]).unwrap();
        let paths: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(paths, ["a.txt", "b/c/deep.txt", "notes.md"]);
        assert_eq!(files["b/c/deep.txt"], root.join("b/c/deep.txt"));
    }

    #[test]
    fn links_collisions_and_empty_inputs_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(dir.path().join("target.txt"), "t").unwrap();
        std::os::unix::fs::symlink(dir.path().join("target.txt"), root.join("link")).unwrap();
        let error = package_files(std::slice::from_ref(&root)).unwrap_err();
        assert!(matches!(error, WalkError::Symlink(_)), "{error}");
        assert!(error.to_string().contains("is a symbolic link"), "{error}");

        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(package_files(&[empty]), Err(WalkError::Empty)));

        let one = dir.path().join("x/same.txt");
        let two = dir.path().join("y/same.txt");
        for path in [&one, &two] {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "s").unwrap();
        }
        let error = package_files(&[one, two]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("two inputs map to the package path `same.txt`"),
            "{error}"
        );
        let missing = package_files(&[dir.path().join("missing")]).unwrap_err();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}
