//! # artifact-core
//!
//! The domain kernels and the library facade of artifactstore: an event-sourced,
//! content-addressed artifact store.
//!
//! - Pure kernels, no IO: [`digest`] (BLAKE3 + SHA-256 in one pass), [`cbor`] and [`jcs`]
//!   (canonical CBOR and its JSON projection), [`manifest`], [`event`] (envelope, hash chain
//!   and the typed payload of every event type, [`event::EventData`]), [`retention`] (rules,
//!   fold, explain), [`time`] (timestamps, periods, clocks).
//! - [`catalog`]: the event log and the materialised views in SQL (the only module that knows
//!   SQL; its connections and view writes are crate-private).
//! - [`blob`]: the [`BlobStore`](blob::BlobStore) seam that backends implement.
//! - [`store`]: [`ArtifactStore`], the facade every client (server, CLI, Rust crates) uses.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(blob_store: std::sync::Arc<dyn artifact_core::blob::BlobStore>) -> artifact_core::Result<()> {
//! use artifact_core::{ArtifactStore, StoreOptions};
//! use artifact_core::manifest::{FileEntry, Manifest};
//!
//! let store = ArtifactStore::open(StoreOptions::new("sqlite:///tmp/demo/catalog.db", blob_store)).await?;
//! let content = b"hello".as_slice();
//! let blob = store.ingest_blob("alice", content, &[]).await?;
//! let manifest = Manifest {
//!     name: "demo".into(),
//!     version: "1".into(),
//!     retention_class: "ephemeral".into(),
//!     files: vec![FileEntry {
//!         path: "hello.txt".into(),
//!         size: blob.info.size,
//!         blake3: blob.info.blake3,
//!         sha256: blob.info.sha256,
//!         media_type: Some("text/plain".into()),
//!     }],
//!     labels: Default::default(),
//! };
//! let created = store.create_package("alice", &manifest).await?;
//! println!("{} expires {:?}", created.package_id, created.retention.current_expires_at);
//! # Ok(()) }
//! ```
//!
//! Backends live in their own crates (`artifact-store-fs`, `artifact-store-s3`); the fs crate
//! opens a whole embedded store from a directory in one call.
#![warn(missing_docs, unreachable_pub)]

pub mod auth;
pub mod blob;
pub mod catalog;
pub mod cbor;
pub mod config;
pub mod digest;
pub mod error;
pub mod event;
pub mod jcs;
pub mod log_facts;
pub mod maintenance;
pub mod manifest;
pub mod paging;
pub mod publish;
pub mod results;
pub mod retention;
pub mod rules;
pub mod store;
pub mod store_log;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "testing")]
pub mod testing_postgres;
pub mod time;
pub mod tlog;

pub use error::{Error, Result};
pub use store::{
    ArtifactStore, AuditReport, CreatedPackage, LiveFile, MAX_KEEP_DEPTH, MintedToken,
    OCI_MANIFEST_FILE, PACKAGE_REF_PATTERN, PackageRef, ReconcileReport, SUBJECT_LABEL,
    StoreOptions, SweepReport, TokenCheck, oci_blob_path,
};
