//! `pull`'s file-system side: every target checked before anything is written, files staged
//! in a private directory and renamed into place, never following a link inside DEST.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use artifact_core::manifest::Manifest;

use crate::files;

/// Refuses, before anything is written, a pull that would follow a link inside DEST, put a file
/// where a directory is (or the reverse), or (without `--force`) replace an existing file or
/// link (a dangling link too).
pub(crate) fn check_pull_targets(
    dest: &Path,
    manifest: &Manifest,
    force: bool,
) -> anyhow::Result<()> {
    let lookup = |path: &Path| match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta.file_type())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
    };
    if lookup(dest)?.is_none() {
        return Ok(());
    }
    if !dest.is_dir() {
        bail!("{} is not a directory", dest.display());
    }
    // Directory prefix → whether it exists (as a real directory).
    let mut dirs: BTreeMap<&str, bool> = BTreeMap::new();
    let mut existing = Vec::new();
    'files: for file in &manifest.files {
        let mut end = 0;
        while let Some(slash) = file.path[end..].find('/') {
            end += slash;
            let prefix = &file.path[..end];
            end += 1;
            let exists = match dirs.get(prefix) {
                Some(exists) => *exists,
                None => {
                    let path = dest.join(prefix);
                    let exists = match lookup(&path)? {
                        None => false,
                        Some(kind) if kind.is_dir() => true,
                        Some(kind) if kind.is_symlink() => bail!(
                            "{} is a symbolic link; pull never follows links inside the destination \
                             (remove it or pull elsewhere)",
                            path.display()
                        ),
                        Some(_) => bail!(
                            "{} is in the way: the package has files under {prefix}/",
                            path.display()
                        ),
                    };
                    dirs.insert(prefix, exists);
                    exists
                }
            };
            if !exists {
                continue 'files;
            }
        }
        let path = dest.join(&file.path);
        match lookup(&path)? {
            None => {}
            Some(kind) if kind.is_dir() => bail!(
                "{} is a directory; the package has a file there",
                path.display()
            ),
            Some(_) if force => {}
            Some(_) => existing.push(file.path.as_str()),
        }
    }
    if let Some(first) = existing.first() {
        bail!(
            "{} file(s) already exist under {} (first: {first}); use --force to overwrite",
            existing.len(),
            dest.display(),
        );
    }
    Ok(())
}

/// The private directory a pull stages its files in: `DEST/.artifactstore-pull-<12 hex>`,
/// created exclusively (mode 0700) at DEST's top level, so renames from it stay on one
/// filesystem and no temp name can collide with a package file or be planted in advance.
/// Files in it are named by their index in the manifest.
pub(crate) struct PullStaging<'a> {
    root: &'a files::Dir,
    name: String,
    pub(crate) dir: files::Dir,
}

impl<'a> PullStaging<'a> {
    pub(crate) fn create(root: &'a files::Dir, manifest: &Manifest) -> anyhow::Result<Self> {
        let top_level: std::collections::BTreeSet<&str> = manifest
            .files
            .iter()
            .map(|f| f.path.split('/').next().unwrap_or_default())
            .collect();
        loop {
            let name = format!(".artifactstore-pull-{}", files::random_hex(12)?);
            if top_level.contains(name.as_str()) {
                continue;
            }
            match root.mkdir(&name, 0o700) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => bail!(
                    "cannot create a staging directory in {}: {e}",
                    root.path().display()
                ),
            }
            let dir = root
                .subdir(&name)
                .with_context(|| format!("cannot open {}", root.path().join(&name).display()))?;
            return Ok(Self { root, name, dir });
        }
    }

    /// Removes whatever is left of the staging files and the directory itself.
    pub(crate) fn remove(self, count: usize) {
        for index in 0..count {
            let _ = self.dir.unlink(&index.to_string());
        }
        let _ = self.root.rmdir(&self.name);
    }
}

/// Renames every staged file into place, creating directories one component at a time without
/// following links. Without `--force` nothing is replaced (an entry that appeared since the
/// check is an error), and on failure the files and directories this pull created are removed
/// again, so DEST is as before; with `--force` files already moved into place are kept.
pub(crate) fn install_pulled(
    root: &files::Dir,
    staging: &PullStaging<'_>,
    manifest: &Manifest,
    force: bool,
) -> anyhow::Result<()> {
    // Opened directories by prefix ("" = DEST), and what this pull created, in order.
    let mut dirs: BTreeMap<String, files::Dir> = BTreeMap::new();
    let mut created_dirs: Vec<String> = Vec::new();
    let mut installed: Vec<(String, String)> = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for (index, file) in manifest.files.iter().enumerate() {
            let (parent, name) = file.path.rsplit_once('/').unwrap_or(("", &file.path));
            let mut prefix = String::new();
            for segment in parent.split('/').filter(|s| !s.is_empty()) {
                let child = if prefix.is_empty() {
                    segment.to_owned()
                } else {
                    format!("{prefix}/{segment}")
                };
                if !dirs.contains_key(&child) {
                    let holder = dirs.get(&prefix).unwrap_or(root);
                    let shown = holder.path().join(segment);
                    match holder.mkdir(segment, 0o777) {
                        Ok(()) => created_dirs.push(child.clone()),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => bail!("cannot create {}: {e}", shown.display()),
                    }
                    let opened =
                        holder
                            .subdir(segment)
                            .map_err(|e| match holder.kind(segment) {
                                Ok(Some(files::EntryKind::Symlink)) => anyhow!(
                                    "{} is a symbolic link; pull never follows links inside the \
                                 destination",
                                    shown.display()
                                ),
                                _ => anyhow!("cannot open {}: {e}", shown.display()),
                            })?;
                    dirs.insert(child.clone(), opened);
                }
                prefix = child;
            }
            let holder = dirs.get(parent).unwrap_or(root);
            let shown = holder.path().join(name);
            staging
                .dir
                .rename(&index.to_string(), holder, name, force)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => anyhow!(
                        "{} appeared while pulling; use --force to overwrite",
                        shown.display()
                    ),
                    _ => anyhow!("cannot write {}: {e}", shown.display()),
                })?;
            installed.push((parent.to_owned(), name.to_owned()));
        }
        Ok(())
    })();
    let Err(error) = result else {
        return Ok(());
    };
    if force {
        return Err(error.context(format!(
            "{} file(s) of the package were already written and are kept",
            installed.len()
        )));
    }
    // Nothing was replaced: removing what this pull created restores DEST.
    for (parent, name) in &installed {
        if let Some(holder) = dirs
            .get(parent.as_str())
            .or((parent.is_empty()).then_some(root))
        {
            let _ = holder.unlink(name);
        }
    }
    for child in created_dirs.iter().rev() {
        let (parent, name) = child.rsplit_once('/').unwrap_or(("", child));
        if let Some(holder) = dirs.get(parent).or((parent.is_empty()).then_some(root)) {
            let _ = holder.rmdir(name);
        }
    }
    Err(error)
}
