//! Package manifests (SPEC §2.3): validation, canonical encoding and the package id.
//!
//! # Charsets
//! - `name`: 1–128 characters from `A–Z a–z 0–9 . _ -`, starting with a letter or digit.
//! - `version`: 1–128 characters from `A–Z a–z 0–9 . _ - +`, starting with a letter or digit.
//! - `retention_class`: 1–64 characters from `a–z 0–9 -`, starting with a letter.
//! - label keys: 1–128 characters from `A–Z a–z 0–9 . _ - /`; label values: text up to 4096 bytes.
//! - `path`: relative, `/`-separated, at most 4096 bytes; every segment non-empty and not `.`
//!   or `..`; no NUL, no backslash, no control characters; no path may also be a directory of
//!   another path (`a` and `a/b`).
//! - `media_type`: optional, `type/subtype` (up to 255 bytes, no control characters).

use std::collections::{BTreeMap, BTreeSet};

use crate::cbor::{self, MAX_SAFE_INT, Value};
use crate::digest::{Blake3, BlobInfo, PackageId, Sha256};
use crate::error::{Error, Result};

/// The `schema` value of v1 manifests.
pub const MANIFEST_SCHEMA_V1: &str = "artifactstore.manifest/v1";

/// The manifest of a package: an immutable, named, versioned set of files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Package name (see the module docs for the charset).
    pub name: String,
    /// Package version.
    pub version: String,
    /// Retention class deciding the default expiry.
    pub retention_class: String,
    /// Files sorted by path, unique.
    pub files: Vec<FileEntry>,
    /// Free-form labels (e.g. `git.commit`).
    pub labels: BTreeMap<String, String>,
}

/// One file of a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative `/`-separated path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the content.
    pub blake3: Blake3,
    /// SHA-256 of the content.
    pub sha256: Sha256,
    /// Media type, e.g. `text/html`.
    pub media_type: Option<String>,
}

impl FileEntry {
    /// The entry of a file at `path` whose content is `content` (both digests and the size
    /// computed here), with an optional media type.
    pub fn of(path: impl Into<String>, content: &[u8], media_type: Option<&str>) -> Self {
        Self::of_blob(path, &BlobInfo::of(content), media_type)
    }

    /// The entry of a file at `path` whose content is the blob `info`, with an optional media
    /// type.
    pub fn of_blob(path: impl Into<String>, info: &BlobInfo, media_type: Option<&str>) -> Self {
        FileEntry {
            path: path.into(),
            size: info.size,
            blake3: info.blake3,
            sha256: info.sha256,
            media_type: media_type.map(str::to_owned),
        }
    }

    /// The blob this file's content is.
    pub fn blob(&self) -> BlobInfo {
        BlobInfo {
            blake3: self.blake3,
            sha256: self.sha256,
            size: self.size,
        }
    }
}

/// The text of [`NAME_PATTERN`] without anchors (shared with package references).
#[doc(hidden)]
#[macro_export]
macro_rules! __name_re {
    () => {
        "[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,40}){0,3}"
    };
}

/// The text of [`VERSION_PATTERN`] without anchors (shared with package references).
#[doc(hidden)]
#[macro_export]
macro_rules! __version_re {
    () => {
        "[A-Za-z0-9][A-Za-z0-9._+-]{0,127}"
    };
}

/// What [`validate_name`] accepts, as an ECMA-262 regular expression (the OpenAPI document's
/// `pattern`): 1-128 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit, then up to three
/// more `/`-separated components of 1-41 (OCI repository names such as `guide/board/site`;
/// at most 254 characters in all).
pub const NAME_PATTERN: &str = concat!("^", crate::__name_re!(), "$");
/// What [`validate_version`] accepts: 1-128 of `A-Z a-z 0-9 . _ - +`, starting with a letter
/// or digit.
pub const VERSION_PATTERN: &str = concat!("^", crate::__version_re!(), "$");
/// What [`validate_class_name`] accepts: 1-64 of `a-z 0-9 -`, starting with a letter.
pub const CLASS_PATTERN: &str = "^[a-z][a-z0-9-]{0,63}$";
/// What [`Manifest::validate`] accepts as a label key: 1-128 of `A-Z a-z 0-9 . _ - /`,
/// starting with a letter or digit.
pub const LABEL_KEY_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$";
/// The longest label value [`Manifest::validate`] accepts, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 4096;

/// The longest file path [`validate_path`] accepts, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

fn charset_ok(text: &str, max: usize, extra: &[u8], first_alpha_only: bool) -> bool {
    let bytes = text.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    let first_ok = if first_alpha_only {
        first.is_ascii_lowercase()
    } else {
        first.is_ascii_alphanumeric()
    };
    bytes.len() <= max
        && first_ok
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(b))
}

/// Checks a package name against the documented charset.
pub fn validate_name(name: &str) -> Result<()> {
    let mut components = name.split('/');
    let first_ok = components
        .next()
        .is_some_and(|first| charset_ok(first, 128, b"._-", false));
    let rest: Vec<&str> = components.collect();
    if first_ok && rest.len() <= 3 && rest.iter().all(|c| charset_ok(c, 41, b"._-", false)) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "package name `{}` must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit, \
             optionally followed by up to three `/`-separated components of 1-41 such characters",
            name.escape_debug()
        )))
    }
}

/// Checks a package version against the documented charset.
pub fn validate_version(version: &str) -> Result<()> {
    if charset_ok(version, 128, b"._-+", false) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "package version `{}` must be 1-128 characters of A-Z a-z 0-9 . _ - + starting with a letter or digit",
            version.escape_debug()
        )))
    }
}

/// Checks a retention class name against the documented charset.
pub fn validate_class_name(class: &str) -> Result<()> {
    if charset_ok(class, 64, b"-", true) && !class.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "retention class `{}` must be 1-64 characters of a-z 0-9 - starting with a letter",
            class.escape_debug()
        )))
    }
}

/// Checks a file path: relative, `/`-separated, no empty, `.` or `..` segments, no NUL,
/// backslash or control characters, at most 4096 bytes.
pub fn validate_path(path: &str) -> Result<()> {
    let fail = |why: &str| {
        Err(Error::invalid(format!(
            "file path `{}` {why}",
            path.escape_debug()
        )))
    };
    if path.is_empty() {
        return fail("is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return fail("is longer than 4096 bytes");
    }
    if path.starts_with('/') {
        return fail("is absolute (paths are relative to the package root)");
    }
    if path.contains('\\') {
        return fail("contains a backslash (use `/` as the separator)");
    }
    if path.chars().any(|c| c.is_control()) {
        return fail("contains NUL or another control character");
    }
    for segment in path.split('/') {
        match segment {
            "" => return fail("has an empty segment"),
            "." | ".." => return fail("has a `.` or `..` segment (path traversal)"),
            _ => {}
        }
    }
    Ok(())
}

fn validate_media_type(media_type: &str) -> Result<()> {
    let ok = media_type.len() <= 255
        && !media_type.chars().any(|c| c.is_control())
        && media_type
            .split_once('/')
            .is_some_and(|(kind, sub)| !kind.is_empty() && !sub.is_empty());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "media type `{}` must look like `type/subtype`",
            media_type.escape_debug()
        )))
    }
}

impl Manifest {
    /// Checks every rule of SPEC §2.3 and the module docs.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        validate_version(&self.version)?;
        validate_class_name(&self.retention_class)?;
        for (key, value) in &self.labels {
            if !charset_ok(key, 128, b"._-/", false) {
                return Err(Error::invalid(format!(
                    "label key `{}` must be 1-128 characters of A-Z a-z 0-9 . _ - /",
                    key.escape_debug()
                )));
            }
            if value.len() > MAX_LABEL_VALUE_BYTES {
                return Err(Error::invalid(format!(
                    "label `{key}` has a value longer than 4096 bytes"
                )));
            }
        }
        let mut previous: Option<&str> = None;
        for file in &self.files {
            validate_path(&file.path)?;
            if let Some(media_type) = &file.media_type {
                validate_media_type(media_type)?;
            }
            if file.size > MAX_SAFE_INT as u64 {
                return Err(Error::invalid(format!(
                    "file `{}` has a size beyond 2^53-1",
                    file.path
                )));
            }
            if let Some(previous) = previous {
                if previous == file.path {
                    return Err(Error::invalid(format!(
                        "file path `{}` appears twice",
                        file.path
                    )));
                }
                if previous > file.path.as_str() {
                    return Err(Error::invalid(format!(
                        "files must be sorted by path: `{}` comes after `{previous}`",
                        file.path
                    )));
                }
            }
            previous = Some(&file.path);
        }
        let file_paths: BTreeSet<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
        for file in &self.files {
            let mut ancestor = file.path.as_str();
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                if file_paths.contains(parent) {
                    return Err(Error::invalid(format!(
                        "`{parent}` is both a file and the directory of `{}`",
                        file.path
                    )));
                }
                ancestor = parent;
            }
        }
        Ok(())
    }

    /// The manifest as a data-model value (SPEC §2.3 shape).
    pub fn to_value(&self) -> Value {
        let files = self
            .files
            .iter()
            .map(|file| {
                let mut entry = BTreeMap::new();
                entry.insert("path".to_owned(), Value::Text(file.path.clone()));
                entry.insert("size".to_owned(), Value::Int(file.size as i64));
                entry.insert("blake3".to_owned(), Value::Text(file.blake3.to_string()));
                entry.insert("sha256".to_owned(), Value::Text(file.sha256.to_string()));
                if let Some(media_type) = &file.media_type {
                    entry.insert("media_type".to_owned(), Value::Text(media_type.clone()));
                }
                Value::Map(entry)
            })
            .collect();
        let mut map = BTreeMap::new();
        map.insert(
            "schema".to_owned(),
            Value::Text(MANIFEST_SCHEMA_V1.to_owned()),
        );
        map.insert("name".to_owned(), Value::Text(self.name.clone()));
        map.insert("version".to_owned(), Value::Text(self.version.clone()));
        map.insert(
            "retention_class".to_owned(),
            Value::Text(self.retention_class.clone()),
        );
        map.insert("files".to_owned(), Value::Array(files));
        if !self.labels.is_empty() {
            let labels = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::Text(v.clone())))
                .collect();
            map.insert("labels".to_owned(), Value::Map(labels));
        }
        Value::Map(map)
    }

    /// Reads a manifest from a data-model value, rejecting unknown keys and wrong types,
    /// then validates it.
    pub fn from_value(value: &Value) -> Result<Self> {
        let map = expect_map(value, "manifest")?;
        reject_unknown(
            map,
            &[
                "schema",
                "name",
                "version",
                "retention_class",
                "files",
                "labels",
            ],
            "manifest",
        )?;
        let schema = text_field(map, "schema", "manifest")?;
        if schema != MANIFEST_SCHEMA_V1 {
            return Err(Error::invalid(format!(
                "manifest schema `{schema}` is not supported (expected `{MANIFEST_SCHEMA_V1}`)"
            )));
        }
        let files_value = map
            .get("files")
            .ok_or_else(|| Error::invalid("manifest has no `files`"))?;
        let Value::Array(file_values) = files_value else {
            return Err(Error::invalid("manifest `files` must be an array"));
        };
        let mut files = Vec::with_capacity(file_values.len());
        for (index, file_value) in file_values.iter().enumerate() {
            let context = format!("manifest file #{index}");
            let entry = expect_map(file_value, &context)?;
            reject_unknown(
                entry,
                &["path", "size", "blake3", "sha256", "media_type"],
                &context,
            )?;
            let size = match entry.get("size") {
                Some(Value::Int(size)) if *size >= 0 => *size as u64,
                _ => {
                    return Err(Error::invalid(format!(
                        "{context}: `size` must be a non-negative integer"
                    )));
                }
            };
            let media_type = match entry.get("media_type") {
                None => None,
                Some(Value::Text(text)) => Some(text.clone()),
                Some(_) => {
                    return Err(Error::invalid(format!(
                        "{context}: `media_type` must be text"
                    )));
                }
            };
            let blake3_text = text_field(entry, "blake3", &context)?;
            let sha256_text = text_field(entry, "sha256", &context)?;
            files.push(FileEntry {
                path: text_field(entry, "path", &context)?.to_owned(),
                size,
                blake3: blake3_text
                    .parse()
                    .map_err(|e| Error::invalid(format!("{context}: `blake3`: {e}")))?,
                sha256: sha256_text
                    .parse()
                    .map_err(|e| Error::invalid(format!("{context}: `sha256`: {e}")))?,
                media_type,
            });
        }
        let mut labels = BTreeMap::new();
        match map.get("labels") {
            None => {}
            Some(Value::Map(label_map)) => {
                for (key, value) in label_map {
                    let Value::Text(text) = value else {
                        return Err(Error::invalid(format!("label `{key}` must be text")));
                    };
                    labels.insert(key.clone(), text.clone());
                }
            }
            Some(_) => return Err(Error::invalid("manifest `labels` must be a map")),
        }
        let manifest = Manifest {
            name: text_field(map, "name", "manifest")?.to_owned(),
            version: text_field(map, "version", "manifest")?.to_owned(),
            retention_class: text_field(map, "retention_class", "manifest")?.to_owned(),
            files,
            labels,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// The canonical CBOR bytes of the manifest (whose BLAKE3 is the package id).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>> {
        Ok(cbor::encode(&self.to_value())?)
    }

    /// Parses canonical CBOR bytes strictly (non-canonical bytes are rejected, never re-encoded).
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self> {
        let value = cbor::decode(bytes)?;
        Self::from_value(&value)
    }

    /// Parses a JSON manifest (any valid JSON text of the data model).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let value = crate::jcs::from_json(bytes)?;
        Self::from_value(&value)
    }

    /// The package id: BLAKE3 of the canonical CBOR bytes.
    pub fn package_id(&self) -> Result<PackageId> {
        Ok(Blake3::of(&self.canonical_bytes()?))
    }

    /// Sorts files by path (convenience for builders; validation still requires sorted input).
    pub fn sort_files(&mut self) {
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// The file at `path`, if any.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .and_then(|index| self.files.get(index))
    }
}

pub(crate) fn expect_map<'a>(
    value: &'a Value,
    context: &str,
) -> Result<&'a BTreeMap<String, Value>> {
    match value {
        Value::Map(map) => Ok(map),
        _ => Err(Error::invalid(format!("{context} must be a map"))),
    }
}

pub(crate) fn reject_unknown(
    map: &BTreeMap<String, Value>,
    known: &[&str],
    context: &str,
) -> Result<()> {
    match map.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(Error::invalid(format!(
            "{context} has an unknown key `{}`",
            key.escape_debug()
        ))),
        None => Ok(()),
    }
}

pub(crate) fn text_field<'a>(
    map: &'a BTreeMap<String, Value>,
    key: &str,
    context: &str,
) -> Result<&'a str> {
    match map.get(key) {
        Some(Value::Text(text)) => Ok(text),
        Some(_) => Err(Error::invalid(format!("{context}: `{key}` must be text"))),
        None => Err(Error::invalid(format!("{context} has no `{key}`"))),
    }
}

/// A media type guessed from a package path's extension (case-insensitive), for files whose
/// producer gave none: the common web, text, archive and image types, `application/cbor`, and
/// `application/octet-stream` for anything else.
pub fn guess_media_type(path: &str) -> &'static str {
    let extension = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("html" | "htm") => "text/html",
        Some("txt" | "log") => "text/plain",
        Some("md") => "text/markdown",
        Some("css") => "text/css",
        Some("csv") => "text/csv",
        Some("js") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        Some("cbor") => "application/cbor",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> FileEntry {
        FileEntry::of(path, content, Some("text/plain"))
    }

    fn sample() -> Manifest {
        Manifest {
            name: "guide-board".into(),
            version: "2026.11.23-1".into(),
            retention_class: "release-evidence".into(),
            files: vec![
                file("report/index.html", b"<html>"),
                file("summary.txt", b"ok"),
            ],
            labels: BTreeMap::from([("git.commit".to_owned(), "abc123".to_owned())]),
        }
    }

    #[test]
    fn round_trips_through_cbor_and_json() {
        let manifest = sample();
        manifest.validate().unwrap();
        let bytes = manifest.canonical_bytes().unwrap();
        assert_eq!(Manifest::from_canonical_bytes(&bytes).unwrap(), manifest);
        let json = crate::jcs::to_jcs(&manifest.to_value());
        assert_eq!(Manifest::from_json(json.as_bytes()).unwrap(), manifest);
        assert_eq!(manifest.package_id().unwrap(), Blake3::of(&bytes));
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "a\0b",
            "a\nb",
        ] {
            let mut manifest = sample();
            manifest.files = vec![file(bad, b"x")];
            let err = manifest.validate().unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn rejects_unsorted_duplicate_and_file_dir_clash() {
        let mut manifest = sample();
        manifest.files.reverse();
        assert!(
            manifest
                .validate()
                .unwrap_err()
                .to_string()
                .contains("sorted")
        );
        let mut manifest = sample();
        manifest.files = vec![file("a", b"1"), file("a", b"2")];
        assert!(
            manifest
                .validate()
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let mut manifest = sample();
        manifest.files = vec![file("a", b"1"), file("a-b", b"2"), file("a/b", b"3")];
        assert!(
            manifest
                .validate()
                .unwrap_err()
                .to_string()
                .contains("both a file")
        );
    }

    #[test]
    fn rejects_bad_names_and_unknown_keys() {
        let mut manifest = sample();
        manifest.name = "-bad".into();
        assert!(manifest.validate().is_err());
        let mut manifest = sample();
        manifest.version = "1 0".into();
        assert!(manifest.validate().is_err());
        let mut value = sample().to_value();
        if let Value::Map(map) = &mut value {
            map.insert("extra".into(), Value::Null);
        }
        let err = Manifest::from_value(&value).unwrap_err();
        assert!(err.to_string().contains("unknown key `extra`"), "{err}");
    }

    #[test]
    fn media_types_are_guessed_from_the_extension_of_the_file_name() {
        assert_eq!(guess_media_type("report/index.HTML"), "text/html");
        assert_eq!(guess_media_type("logs/build.log"), "text/plain");
        assert_eq!(guess_media_type("dist/app.tar"), "application/x-tar");
        assert_eq!(guess_media_type("v1.2/README"), "application/octet-stream");
        assert_eq!(guess_media_type("noext"), "application/octet-stream");
    }
}
