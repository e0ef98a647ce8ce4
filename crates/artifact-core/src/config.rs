//! Operator configuration (SPEC §4.6): one TOML file, every key with a default.
//!
//! The file is found by `--config`, else `ARTIFACTSTORE_CONFIG`, else `<data-dir>/config.toml`
//! (written by `artifactstore init`); without a file every default applies. Unknown keys are
//! rejected so that a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::manifest::validate_class_name;
use crate::time::Period;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[metadata]`: where the catalog lives.
    pub metadata: MetadataConfig,
    /// `[blobs]`: where blob bytes live.
    pub blobs: BlobsConfig,
    /// `[server]`: the HTTP server.
    pub server: ServerConfig,
    /// `[retention]`: classes and the sweeper.
    pub retention: RetentionConfig,
    /// `[gc]`: scheduled garbage collection (off by default).
    pub gc: GcConfig,
    /// `[verify]`: scheduled integrity scrubbing.
    pub verify: VerifyConfig,
    /// `[log]`: the verifiable log's signing key and checkpoints.
    pub log: LogConfig,
    /// `[oci]`: the OCI Distribution API's mapping onto packages (ADR 0016).
    pub oci: OciConfig,
}

/// `[oci]` (ADR 0016): which retention class a manifest pushed through `/v2/` gets, and
/// whether a repository's tags may move.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OciConfig {
    /// The class of a manifest without the `org.artifactstore.retention-class` annotation in
    /// a repository no `[oci.repositories]` entry gives a class.
    pub default_class: String,
    /// `[oci.repositories."PATTERN"]`: per-repository rules; `*` in a pattern matches any run
    /// of characters (`/` included). Each setting comes from the longest matching pattern
    /// that sets it.
    pub repositories: BTreeMap<String, OciRepositoryConfig>,
}

impl Default for OciConfig {
    fn default() -> Self {
        Self {
            default_class: "build-cache".to_owned(),
            repositories: BTreeMap::new(),
        }
    }
}

/// `[oci.repositories."PATTERN"]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OciRepositoryConfig {
    /// The class of a manifest without the retention-class annotation.
    pub class: Option<String>,
    /// Tags may be moved to another manifest (each move is a `v1.oci.tag_set` event; the
    /// manifest a tag named before keeps its own package and retention). Default: tags are
    /// immutable, like package versions.
    pub mutable_tags: Option<bool>,
}

/// What `[oci]` decides for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRepositoryPolicy {
    /// The class of a manifest without the retention-class annotation.
    pub class: String,
    /// Whether tags may move.
    pub mutable_tags: bool,
}

impl OciConfig {
    /// The rules for `repository`: each setting from the longest matching
    /// `[oci.repositories]` pattern that sets it, else the defaults (class
    /// [`OciConfig::default_class`], immutable tags).
    pub fn policy(&self, repository: &str) -> OciRepositoryPolicy {
        let mut matching: Vec<(&String, &OciRepositoryConfig)> = self
            .repositories
            .iter()
            .filter(|(pattern, _)| glob_matches(pattern, repository))
            .collect();
        // Longest first; equal lengths in name order, so the answer never depends on the
        // file's order.
        matching.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(b.0)));
        OciRepositoryPolicy {
            class: matching
                .iter()
                .find_map(|(_, rule)| rule.class.clone())
                .unwrap_or_else(|| self.default_class.clone()),
            mutable_tags: matching
                .iter()
                .find_map(|(_, rule)| rule.mutable_tags)
                .unwrap_or(false),
        }
    }

    /// Checks every class named exists and every pattern is non-empty.
    fn validate(&self, classes: &RetentionClasses) -> Result<()> {
        classes
            .period(&self.default_class)
            .map_err(|e| Error::Config(format!("[oci] default_class: {e}")))?;
        for (pattern, rule) in &self.repositories {
            if pattern.is_empty() || pattern.chars().any(|c| c.is_whitespace()) {
                return Err(Error::Config(format!(
                    "[oci.repositories.\"{}\"]: a pattern is a repository name in which `*` \
                     matches any run of characters; it cannot be empty or hold whitespace",
                    pattern.escape_debug()
                )));
            }
            if let Some(class) = &rule.class {
                classes.period(class).map_err(|e| {
                    Error::Config(format!("[oci.repositories.\"{pattern}\"] class: {e}"))
                })?;
            }
        }
        Ok(())
    }
}

/// Whether `text` matches `pattern`, in which `*` matches any run of characters.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// `[log]` (ADR 0011).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// The Ed25519 signing key file; default `<data-dir>/log.key` (created by `init`, mode
    /// 0600). Never in the catalog.
    pub key_path: Option<PathBuf>,
    /// The origin (key name) `init` gives a new key; default `artifactstore/<16 hex digits
    /// derived from the public key>`. An existing key keeps its name.
    pub origin: Option<String>,
    /// How often the server makes a checkpoint when the log has grown: a fixed period
    /// (default `1m`) or `off`.
    pub checkpoint_interval: String,
    /// A directory sink: every checkpoint made (by the server, or `audit checkpoint`) is also
    /// written there as `<tree_size>.checkpoint`; a different file already there is a fork
    /// and an error, never overwritten.
    pub publish_dir: Option<PathBuf>,
    /// An S3 sink (`[log.publish_s3]`): every checkpoint is also written, create-only, to a
    /// bucket, under Object Lock when the bucket has it.
    pub publish_s3: Option<PublishS3Config>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            key_path: None,
            origin: None,
            checkpoint_interval: "1m".to_owned(),
            publish_dir: None,
            publish_s3: None,
        }
    }
}

/// `[log.publish_s3]`: the S3 checkpoint sink. Credentials come from the usual AWS environment,
/// as for the S3 blob backend; use a bucket (or at least credentials) the catalog's
/// administrators do not control.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishS3Config {
    /// The bucket (never created by the store).
    pub bucket: String,
    /// Key prefix; checkpoints are `<prefix>/checkpoints/<tree_size>.checkpoint`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Endpoint URL (AWS when absent).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint.
    #[serde(default)]
    pub allow_http: Option<bool>,
    /// `auto` (default: COMPLIANCE retention when the bucket has Object Lock enabled, none
    /// otherwise), `compliance` or `governance` (the bucket must have Object Lock; publishing
    /// fails otherwise), or `off`.
    #[serde(default = "default_object_lock")]
    pub object_lock: String,
    /// How long each published checkpoint is locked (a period such as `100y`, the default).
    #[serde(default = "default_lock_retain")]
    pub retain: String,
}

fn default_object_lock() -> String {
    "auto".to_owned()
}

fn default_lock_retain() -> String {
    "100y".to_owned()
}

impl LogConfig {
    /// The key file for a store in `data_dir`.
    pub fn key_path(&self, data_dir: &Path) -> PathBuf {
        self.key_path
            .clone()
            .unwrap_or_else(|| data_dir.join("log.key"))
    }

    /// The checkpoint interval; `None` when `off`.
    pub fn checkpoint_interval(&self) -> Result<Option<std::time::Duration>> {
        optional_interval("[log] checkpoint_interval", &self.checkpoint_interval)
    }
}

/// `[gc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// How often the server collects garbage: `off` (default) or a fixed period.
    pub interval: String,
    /// Only blobs older than this are deleted.
    pub grace: String,
}

/// The default `[gc] grace` (also what a server applies to `POST /admin/gc` without one).
pub const DEFAULT_GC_GRACE: &str = "24h";

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            interval: "off".to_owned(),
            grace: DEFAULT_GC_GRACE.to_owned(),
        }
    }
}

/// `[verify]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// How often the server scrubs a sample: a fixed period (default `24h`) or `off`.
    pub interval: String,
    /// Fraction of blobs each scheduled scrub re-reads, in (0, 1].
    pub sample: f64,
    /// Read rate limit of scheduled scrubs, bytes per second (0 = unlimited).
    pub max_bytes_per_sec: u64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            interval: "24h".to_owned(),
            sample: 0.01,
            max_bytes_per_sec: 100 << 20,
        }
    }
}

/// Parses `off` (→ `None`) or a fixed period.
fn optional_interval(key: &str, text: &str) -> Result<Option<std::time::Duration>> {
    if text.trim() == "off" {
        return Ok(None);
    }
    text.parse::<Period>()
        .ok()
        .and_then(Period::as_duration)
        .map(Some)
        .ok_or_else(|| {
            Error::Config(format!(
                "{key} `{text}` must be `off` or a fixed period such as `24h`"
            ))
        })
}

/// `[metadata]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataConfig {
    /// `sqlite://…` or `postgres://…`; default `sqlite://<data-dir>/catalog.db`.
    pub url: Option<String>,
    /// Connection pool size.
    pub max_connections: u32,
    /// How long to wait for another process's lock on the catalog before failing with
    /// "catalog is locked by another process" (a duration; `0` fails at once).
    pub busy_timeout: String,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 8,
            busy_timeout: "60s".to_owned(),
        }
    }
}

/// `[blobs]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobsConfig {
    /// `fs` (default) or `s3`.
    pub backend: String,
    /// fs: root directory; default `<data-dir>/blobs`.
    pub path: Option<PathBuf>,
    /// s3: bucket name.
    pub bucket: Option<String>,
    /// s3: key prefix inside the bucket.
    pub prefix: Option<String>,
    /// s3: endpoint URL (AWS when absent).
    pub endpoint: Option<String>,
    /// s3: region.
    pub region: Option<String>,
    /// s3: allow plain-HTTP endpoints.
    pub allow_http: Option<bool>,
    /// s3: storage-enforced retention (S3 Object Lock, ADR 0015): `off` (default),
    /// `governance` or `compliance`. The bucket must have been created with Object Lock.
    pub object_lock: String,
    /// s3: how far ahead a permanent package's blobs are locked (default `100y`; the sweep
    /// pushes it forward once half of it has passed).
    pub object_lock_horizon: String,
}

impl Default for BlobsConfig {
    fn default() -> Self {
        Self {
            backend: "fs".to_owned(),
            path: None,
            bucket: None,
            prefix: None,
            endpoint: None,
            region: None,
            allow_http: None,
            object_lock: "off".to_owned(),
            object_lock_horizon: "100y".to_owned(),
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: String,
    /// Largest blob body (monolithic PUT or one upload chunk), in bytes.
    pub max_blob_bytes: u64,
    /// Largest JSON/CBOR request body (manifests, retention requests), in bytes.
    pub max_json_bytes: u64,
    /// Timeout for non-streaming requests (a fixed period such as `60s`).
    pub request_timeout: String,
    /// Where upload sessions keep their bytes; default `<data-dir>/uploads`. Put it on the
    /// blob filesystem so finished uploads are moved, not copied.
    pub upload_dir: Option<PathBuf>,
    /// Upload sessions idle longer than this expire and their bytes are deleted.
    pub upload_ttl: String,
    /// Bearer tokens from configuration (in addition to minted ones).
    pub tokens: Vec<TokenConfig>,
    /// A connection must deliver a whole request head within this time of starting to wait
    /// for one (also the idle limit of keep-alive connections).
    pub header_read_timeout: String,
    /// A request body that delivers no bytes for this long fails.
    pub body_idle_timeout: String,
    /// Connections served at once (more wait in the listen backlog).
    pub max_connections: usize,
    /// After SIGTERM, in-flight requests get this long before their connections are cut.
    pub shutdown_grace: String,
}

/// `[server]`'s connection limits and timeouts, parsed (see [`Config::server_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `header_read_timeout`.
    pub header_read_timeout: std::time::Duration,
    /// `body_idle_timeout`.
    pub body_idle_timeout: std::time::Duration,
    /// `max_connections` (at least 1).
    pub max_connections: usize,
    /// `shutdown_grace`.
    pub shutdown_grace: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            max_blob_bytes: 64 << 30,
            max_json_bytes: 16 << 20,
            request_timeout: "60s".to_owned(),
            upload_dir: None,
            upload_ttl: "24h".to_owned(),
            tokens: Vec::new(),
            header_read_timeout: "30s".to_owned(),
            body_idle_timeout: "30s".to_owned(),
            max_connections: 512,
            shutdown_grace: "30s".to_owned(),
        }
    }
}

/// `[[server.tokens]]`: a bearer token known by its hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Principal recorded as the actor of its requests.
    pub principal: String,
    /// Role names.
    pub roles: Vec<String>,
    /// `sha256:<hex>` of the token text (never the token itself).
    pub sha256: String,
}

/// `[retention]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the server sweeps (a fixed period such as `1h`).
    pub sweep_interval: String,
    /// `[retention.classes.NAME]` entries; they add to and override the shipped defaults.
    pub classes: BTreeMap<String, ClassConfig>,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sweep_interval: "1h".to_owned(),
            classes: BTreeMap::new(),
        }
    }
}

/// `[retention.classes.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    /// Default retention period: `permanent` or a period such as `730d` / `2y`.
    pub default: String,
}

/// The retention classes in force: the shipped defaults plus the operator's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionClasses(BTreeMap<String, Period>);

impl Default for RetentionClasses {
    /// The shipped classes (SPEC §3).
    fn default() -> Self {
        Self(BTreeMap::from([
            ("ephemeral".to_owned(), Period::Millis(7 * 86_400_000)),
            ("build-cache".to_owned(), Period::Millis(30 * 86_400_000)),
            ("release-evidence".to_owned(), Period::Years(2)),
            ("compliance-record".to_owned(), Period::Years(11)),
            ("permanent-record".to_owned(), Period::Permanent),
        ]))
    }
}

impl RetentionClasses {
    /// The default period of `class`; an unknown class is `InvalidInput` naming the known ones.
    pub fn period(&self, class: &str) -> Result<Period> {
        self.0.get(class).copied().ok_or_else(|| {
            Error::invalid(format!(
                "unknown retention class `{}` (known: {})",
                class.escape_debug(),
                self.0.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Every class and its period, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Period)> {
        self.0.iter().map(|(name, period)| (name.as_str(), *period))
    }

    /// Adds or overrides a class.
    pub fn insert(&mut self, name: &str, period: Period) -> Result<()> {
        validate_class_name(name)?;
        self.0.insert(name.to_owned(), period);
        Ok(())
    }
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let config: Config = toml::from_str(text)
            .map_err(|e| Error::Config(format!("{origin}: {}", e.to_string().trim_end())))?;
        let classes = config.retention_classes()?;
        config.oci.validate(&classes)?;
        config.sweep_interval()?;
        config.server_durations()?;
        config.server_limits()?;
        config.config_tokens()?;
        config.gc_schedule()?;
        config.verify_schedule()?;
        config.busy_timeout()?;
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The configuration file a data directory holds: `<data-dir>/config.toml`.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("config.toml")
    }

    /// Reads `<data-dir>/config.toml` when it exists, else the defaults.
    ///
    /// # Errors
    ///
    /// When the file exists but cannot be read or is not a valid configuration.
    pub fn load_or_default(data_dir: &Path) -> Result<Self> {
        let path = Self::default_path(data_dir);
        if path.exists() {
            Self::load(&path)
        } else {
            Ok(Self::default())
        }
    }

    /// The classes in force (shipped defaults overridden/extended by `[retention.classes]`).
    pub fn retention_classes(&self) -> Result<RetentionClasses> {
        let mut classes = RetentionClasses::default();
        for (name, class) in &self.retention.classes {
            let period: Period = class
                .default
                .parse()
                .map_err(|e| Error::Config(format!("[retention.classes.{name}] default: {e}")))?;
            classes
                .insert(name, period)
                .map_err(|e| Error::Config(format!("[retention.classes.{name}]: {e}")))?;
        }
        Ok(classes)
    }

    /// `[server] request_timeout` and `upload_ttl` as durations.
    pub fn server_durations(&self) -> Result<(std::time::Duration, std::time::Duration)> {
        let fixed = |key: &str, text: &str| {
            text.parse::<Period>()
                .ok()
                .and_then(Period::as_duration)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "[server] {key} `{text}` must be a fixed period such as `60s`"
                    ))
                })
        };
        Ok((
            fixed("request_timeout", &self.server.request_timeout)?,
            fixed("upload_ttl", &self.server.upload_ttl)?,
        ))
    }

    /// `[server]` `header_read_timeout`, `body_idle_timeout`, `max_connections` and
    /// `shutdown_grace`: the periods must be fixed (ms s m h d w), `max_connections` at least 1.
    pub fn server_limits(&self) -> Result<ServerLimits> {
        let period = |key: &str, text: &str| {
            text.parse::<Period>()
                .ok()
                .and_then(Period::as_duration)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "[server] {key} `{text}` must be a fixed period such as `30s`"
                    ))
                })
        };
        if self.server.max_connections == 0 {
            return Err(Error::Config(
                "[server] max_connections must be at least 1".to_owned(),
            ));
        }
        Ok(ServerLimits {
            header_read_timeout: period("header_read_timeout", &self.server.header_read_timeout)?,
            body_idle_timeout: period("body_idle_timeout", &self.server.body_idle_timeout)?,
            max_connections: self.server.max_connections,
            shutdown_grace: period("shutdown_grace", &self.server.shutdown_grace)?,
        })
    }

    /// `[[server.tokens]]` as (token hash, principal).
    pub fn config_tokens(&self) -> Result<Vec<(crate::digest::Sha256, crate::auth::Principal)>> {
        self.server
            .tokens
            .iter()
            .map(|token| {
                crate::auth::validate_principal(&token.principal)
                    .map_err(|e| Error::Config(format!("[[server.tokens]]: {e}")))?;
                let roles = token
                    .roles
                    .iter()
                    .map(|r| r.parse())
                    .collect::<Result<_>>()
                    .map_err(|e| {
                        Error::Config(format!("[[server.tokens]] {}: {e}", token.principal))
                    })?;
                let hash = token.sha256.parse().map_err(|e| {
                    Error::Config(format!("[[server.tokens]] {} sha256: {e}", token.principal))
                })?;
                Ok((
                    hash,
                    crate::auth::Principal {
                        name: token.principal.clone(),
                        roles,
                    },
                ))
            })
            .collect()
    }

    /// `[gc]`: the interval (`None` = off) and the grace period.
    pub fn gc_schedule(&self) -> Result<(Option<std::time::Duration>, Period)> {
        let interval = optional_interval("[gc] interval", &self.gc.interval)?;
        let grace = Period::parse_duration(&self.gc.grace).map_err(|_| {
            Error::Config(format!(
                "[gc] grace `{}` must be a duration such as `24h` (or `0`)",
                self.gc.grace
            ))
        })?;
        Ok((interval, grace))
    }

    /// `[verify]`: the interval (`None` = off), sample fraction and rate limit.
    pub fn verify_schedule(&self) -> Result<(Option<std::time::Duration>, f64, Option<u64>)> {
        let interval = optional_interval("[verify] interval", &self.verify.interval)?;
        if !(self.verify.sample > 0.0 && self.verify.sample <= 1.0) {
            return Err(Error::Config(format!(
                "[verify] sample {} must be in (0, 1]",
                self.verify.sample
            )));
        }
        let rate = (self.verify.max_bytes_per_sec > 0).then_some(self.verify.max_bytes_per_sec);
        Ok((interval, self.verify.sample, rate))
    }

    /// `[metadata] busy_timeout` as a duration.
    pub fn busy_timeout(&self) -> Result<std::time::Duration> {
        Period::parse_duration(&self.metadata.busy_timeout)
            .ok()
            .and_then(Period::as_duration)
            .ok_or_else(|| {
                Error::Config(format!(
                    "[metadata] busy_timeout `{}` must be a duration such as `60s` (or `0`)",
                    self.metadata.busy_timeout
                ))
            })
    }

    /// The sweeper interval.
    pub fn sweep_interval(&self) -> Result<std::time::Duration> {
        self.retention
            .sweep_interval
            .parse::<Period>()
            .ok()
            .and_then(Period::as_duration)
            .ok_or_else(|| {
                Error::Config(format!(
                    "[retention] sweep_interval `{}` must be a fixed period such as `1h` or `15m`",
                    self.retention.sweep_interval
                ))
            })
    }

    /// The metadata URL, defaulting to the SQLite file in `data_dir`.
    pub fn metadata_url(&self, data_dir: &Path) -> String {
        self.metadata
            .url
            .clone()
            .unwrap_or_else(|| sqlite_url(&data_dir.join("catalog.db")))
    }

    /// The fs blob root, defaulting to `<data_dir>/blobs`.
    pub fn blob_path(&self, data_dir: &Path) -> PathBuf {
        self.blobs
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("blobs"))
    }
}

/// A `sqlite://` URL for a database file.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The commented configuration `artifactstore init` writes.
pub const DEFAULT_CONFIG_TOML: &str = r#"# artifactstore configuration. Every key is optional; the values shown are the defaults.
# Found by --config, else ARTIFACTSTORE_CONFIG, else <data-dir>/config.toml.

[metadata]
# url = "sqlite://<data-dir>/catalog.db"     # or "postgres://user@host/db"
# max_connections = 8
# busy_timeout = "60s"                       # wait this long for another process's lock

[blobs]
# backend = "fs"
# path = "<data-dir>/blobs"

[server]
# listen = "127.0.0.1:8080"
# max_blob_bytes = 68719476736               # 64 GiB per blob body / upload chunk
# max_json_bytes = 16777216                  # 16 MiB per manifest or retention request
# request_timeout = "60s"                    # non-streaming requests
# upload_dir = "<data-dir>/uploads"          # upload sessions (same filesystem as blobs)
# upload_ttl = "24h"                         # idle upload sessions expire
# header_read_timeout = "30s"                # a request head must arrive within this (also keep-alive idle)
# body_idle_timeout = "30s"                  # a body (request or response) stalled this long fails
# max_connections = 512                      # served at once; keep well under `ulimit -n`
# shutdown_grace = "30s"                     # after SIGTERM, then open connections are cut
# Tokens known by hash (mint more with `artifactstore admin token create`):
# [[server.tokens]]
# principal = "ci"
# roles = ["writer"]                          # reader, writer, retention-admin, admin
# sha256 = "sha256:<hex of the token text>"

[retention]
# sweep_interval = "1h"
# Shipped classes: ephemeral 7d, build-cache 30d, release-evidence 2y,
# compliance-record 11y, permanent-record permanent. Add or override:
# [retention.classes.release-evidence]
# default = "730d"                           # or "permanent"; units ms s m h d w y

[gc]
# interval = "off"                           # the server collects garbage on this schedule
# grace = "24h"                              # only blobs older than this are deleted

[verify]
# interval = "24h"                           # the server scrubs a sample on this schedule ("off")
# sample = 0.01                              # fraction of blobs per scheduled scrub
# max_bytes_per_sec = 104857600              # read rate limit (0 = unlimited)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_or_default_reads_the_data_dir_file_or_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        // No file: the defaults.
        let config = Config::load_or_default(dir.path()).unwrap();
        assert_eq!(config.gc.grace, DEFAULT_GC_GRACE);
        assert_eq!(
            Config::default_path(dir.path()),
            dir.path().join("config.toml")
        );
        // A file: its values.
        std::fs::write(dir.path().join("config.toml"), "[gc]\ngrace = \"2h\"\n").unwrap();
        assert_eq!(Config::load_or_default(dir.path()).unwrap().gc.grace, "2h");
        // A bad file is an error naming it, not the defaults.
        std::fs::write(dir.path().join("config.toml"), "[gc]\ngrace = 5\n").unwrap();
        let err = Config::load_or_default(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.toml"), "{err}");
    }

    #[test]
    fn defaults_and_overrides() {
        let config = Config::from_toml(DEFAULT_CONFIG_TOML, "default").unwrap();
        let classes = config.retention_classes().unwrap();
        assert_eq!(classes, RetentionClasses::default());
        assert_eq!(
            config.sweep_interval().unwrap(),
            std::time::Duration::from_secs(3600)
        );

        let config = Config::from_toml(
            "[retention.classes.release-evidence]\ndefault = \"730d\"\n[retention.classes.audit-trail]\ndefault = \"permanent\"\n",
            "t",
        )
        .unwrap();
        let classes = config.retention_classes().unwrap();
        assert_eq!(
            classes.period("release-evidence").unwrap(),
            Period::Millis(730 * 86_400_000)
        );
        assert_eq!(classes.period("audit-trail").unwrap(), Period::Permanent);
        assert!(
            classes
                .period("nope")
                .unwrap_err()
                .to_string()
                .contains("unknown retention class `nope`")
        );
    }

    #[test]
    fn oci_repository_rules_pick_the_longest_matching_pattern() {
        let config = Config::from_toml(
            r#"
            [oci]
            default_class = "ephemeral"
            [oci.repositories."guide/*"]
            class = "release-evidence"
            [oci.repositories."guide/tools/*"]
            mutable_tags = true
            [oci.repositories."guide/special"]
            class = "compliance-record"
            [oci.repositories."*-cache"]
            class = "build-cache"
            mutable_tags = true
            "#,
            "test",
        )
        .unwrap();
        let policy = |name| {
            let p = config.oci.policy(name);
            (p.class, p.mutable_tags)
        };
        assert_eq!(policy("guide/app"), ("release-evidence".into(), false));
        // Each setting from the longest pattern that sets it.
        assert_eq!(
            policy("guide/tools/lint"),
            ("release-evidence".into(), true)
        );
        assert_eq!(policy("guide/special"), ("compliance-record".into(), false));
        assert_eq!(policy("ci/build-cache"), ("build-cache".into(), true));
        assert_eq!(policy("other"), ("ephemeral".into(), false));
        assert!(!glob_matches("guide/*", "guide"));
        assert!(glob_matches("a*b*c", "a/x/b/y/c"));
        assert!(!glob_matches("a*b*c", "a/x/b/y/d"));
        assert!(glob_matches("*", ""));
        for (text, needle) in [
            ("[oci]\ndefault_class = \"nope\"\n", "[oci] default_class"),
            (
                "[oci.repositories.\"a/*\"]\nclass = \"nope\"\n",
                "[oci.repositories.\"a/*\"] class",
            ),
            ("[oci.repositories.\"\"]\n", "cannot be empty"),
            (
                "[oci.repositories.\"a\"]\nmutable = true\n",
                "unknown field",
            ),
        ] {
            let err = Config::from_toml(text, "test").unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_typos_and_bad_values() {
        assert!(Config::from_toml("[metdata]\nurl=\"x\"", "t").is_err());
        assert!(Config::from_toml("[retention.classes.x]\ndefault = \"soon\"", "t").is_err());
        assert!(Config::from_toml("[retention.classes.Bad]\ndefault = \"1d\"", "t").is_err());
        assert!(Config::from_toml("[retention]\nsweep_interval = \"2y\"", "t").is_err());
        assert!(Config::from_toml("[server]\nheader_read_timeout = \"0s\"", "t").is_err());
        assert!(Config::from_toml("[server]\nbody_idle_timeout = \"soon\"", "t").is_err());
        assert!(Config::from_toml("[server]\nmax_connections = 0", "t").is_err());
        assert!(Config::from_toml("[server]\nshutdown_grace = \"1y\"", "t").is_err());
    }

    #[test]
    fn server_limits_have_public_facing_defaults() {
        let limits = Config::default().server_limits().unwrap();
        assert_eq!(
            limits,
            ServerLimits {
                header_read_timeout: std::time::Duration::from_secs(30),
                body_idle_timeout: std::time::Duration::from_secs(30),
                max_connections: 512,
                shutdown_grace: std::time::Duration::from_secs(30),
            }
        );
        let config = Config::from_toml(
            "[server]\nheader_read_timeout = \"5s\"\nbody_idle_timeout = \"2m\"\nmax_connections = 64\nshutdown_grace = \"500ms\"\n",
            "t",
        )
        .unwrap();
        let limits = config.server_limits().unwrap();
        assert_eq!(
            limits.header_read_timeout,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            limits.body_idle_timeout,
            std::time::Duration::from_secs(120)
        );
        assert_eq!(limits.max_connections, 64);
        assert_eq!(limits.shutdown_grace, std::time::Duration::from_millis(500));
    }
}
