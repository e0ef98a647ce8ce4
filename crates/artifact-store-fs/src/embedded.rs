//! The embedded store: SQLite catalog + fs blobs in one data directory, opened in one call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use artifact_core::catalog::CatalogOptions;
use artifact_core::config::Config;
use artifact_core::time::{Clock, SystemClock};
use artifact_core::{ArtifactStore, Error, Result, StoreOptions};

use crate::FsBlobStore;

/// How to open an embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// The data directory (`catalog.db`, `blobs/`, `config.toml`).
    pub data_dir: PathBuf,
    /// Configuration; `None` reads `<data-dir>/config.toml` if present, else defaults.
    pub config: Option<Config>,
    /// Create the data directory and catalog if missing (what `init` does).
    pub create: bool,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Open without writing anything (see [`CatalogOptions::read_only`]): the catalog
    /// read-only, the fs blob directory neither created nor swept of abandoned temp files.
    pub read_only: bool,
    /// A blob backend chosen by the caller (e.g. S3 from `[blobs] backend = "s3"`); `None`
    /// uses the fs backend at `[blobs] path`.
    pub blob_store: Option<Arc<dyn artifact_core::blob::BlobStore>>,
    /// Checkpoint sinks besides the `[log] publish_dir` directory (e.g. the S3 sink of
    /// `[log.publish_s3]`, which the CLI and server build).
    pub checkpoint_sinks: Vec<Arc<dyn artifact_core::publish::CheckpointSink>>,
}

impl EmbeddedOptions {
    /// Options for an existing (or, with `create`, new) data directory and the system clock.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            config: None,
            create: true,
            read_only: false,
            clock: Arc::new(SystemClock),
            blob_store: None,
            checkpoint_sinks: Vec::new(),
        }
    }

    /// Also publishes every checkpoint to `sink` (`[log] publish_dir` is added by itself).
    pub fn with_checkpoint_sink(
        mut self,
        sink: Arc<dyn artifact_core::publish::CheckpointSink>,
    ) -> Self {
        self.checkpoint_sinks.push(sink);
        self
    }

    /// Uses this blob backend instead of the fs backend.
    pub fn with_blob_store(mut self, blob_store: Arc<dyn artifact_core::blob::BlobStore>) -> Self {
        self.blob_store = Some(blob_store);
        self
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses this configuration instead of `<data-dir>/config.toml`.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Whether to open read-only (for commands that only read: `show`, `audit verify`, …).
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether to create a missing store.
    pub fn with_create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Opens the store.
    pub async fn open(self) -> Result<ArtifactStore> {
        let config = match self.config {
            Some(config) => config,
            None => Config::load_or_default(&self.data_dir)?,
        };
        if config.blobs.backend != "fs" && self.blob_store.is_none() {
            return Err(Error::Config(format!(
                "[blobs] backend `{}` must be supplied with EmbeddedOptions::with_blob_store (the CLI and server do this for `s3`)",
                config.blobs.backend
            )));
        }
        if self.create && self.read_only {
            return Err(Error::Config(
                "a store cannot be created read-only".to_owned(),
            ));
        }
        if self.create {
            std::fs::create_dir_all(&self.data_dir).map_err(|e| {
                Error::Config(format!(
                    "cannot create data directory {}: {e}",
                    self.data_dir.display()
                ))
            })?;
        } else if !self.data_dir.join("catalog.db").exists() && config.metadata.url.is_none() {
            return Err(Error::Config(format!(
                "no store at {}: run `artifactstore init` first (or pass --data-dir)",
                self.data_dir.display()
            )));
        }
        if self.create {
            // The verifiable log's signing key (ADR 0011): a file, never in the catalog.
            crate::log_signer(&self.data_dir, &config, true)?;
        }
        let blob_store: Arc<dyn artifact_core::blob::BlobStore> = match self.blob_store {
            Some(blob_store) => blob_store,
            None if self.read_only => Arc::new(FsBlobStore::open_read_only(
                config.blob_path(&self.data_dir),
            )),
            None => Arc::new(FsBlobStore::open(config.blob_path(&self.data_dir))?),
        };
        let mut checkpoint_sinks: Vec<Arc<dyn artifact_core::publish::CheckpointSink>> = Vec::new();
        if let Some(dir) = &config.log.publish_dir {
            checkpoint_sinks.push(Arc::new(artifact_core::publish::DirectorySink::new(dir)));
        }
        checkpoint_sinks.extend(self.checkpoint_sinks);
        let options = StoreOptions {
            catalog: CatalogOptions {
                url: config.metadata_url(&self.data_dir),
                max_connections: config.metadata.max_connections,
                create_if_missing: self.create,
                read_only: self.read_only,
                busy_timeout: config.busy_timeout()?,
                ..CatalogOptions::new(config.metadata_url(&self.data_dir))
            },
            blob_store,
            clock: self.clock,
            classes: config.retention_classes()?,
            checkpoint_sinks,
        };
        ArtifactStore::open(options).await
    }
}

/// Opens (creating if needed) the embedded store in `data_dir`: one call.
pub async fn open_embedded(data_dir: impl AsRef<Path>) -> Result<ArtifactStore> {
    EmbeddedOptions::new(data_dir.as_ref()).open().await
}
