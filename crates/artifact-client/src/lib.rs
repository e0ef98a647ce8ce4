//! One client surface for artifactstore: [`Client`] is implemented by the embedded store
//! ([`EmbeddedClient`], calls into [`artifact_core::ArtifactStore`]) and by the HTTP API
//! ([`HttpClient`], calls `artifactstore serve`). Both answer with the same typed results
//! ([`artifact_core::results`]), so a front end (the CLI, a test, a bench, a Rust user) is
//! written once: typed arguments → one call → one renderer.
//!
//! What is checked where: both implementations validate arguments before anything moves
//! (names, versions, digests, periods), and both verify every byte they return against the
//! digests the store recorded (the embedded store's readers verify on full reads; the HTTP
//! client hashes every download). Errors are [`ClientError`]: the store's own errors locally,
//! the server's problem (status + detail) remotely.
//!
//! ```no_run
//! # async fn demo() -> Result<(), artifact_client::ClientError> {
//! use artifact_client::{Client, HttpClient, PackageQuery};
//! let client = HttpClient::new("http://127.0.0.1:8080", Some("ast_…".to_owned()))?;
//! for package in client.list_packages(&PackageQuery::default()).await? {
//!     println!("{}@{} {}", package.name, package.version, package.package_id());
//! }
//! # Ok(()) }
//! ```

mod embedded;
mod error;
mod http;
mod sse;

use std::future::Future;
use std::path::Path;

use artifact_core::auth::Role;
use artifact_core::catalog::EventQuery;
use artifact_core::digest::{AnyDigest, BlobInfo};
use artifact_core::event::Event;
use artifact_core::manifest::{FileEntry, Manifest};
use artifact_core::results::{
    AuditResult, BlobResult, ExplainResult, FsckResult, GcResult, PackageViewResult,
    RetentionStatusResult, SweepResult, TokenMintedResult, TokenResult, VerifyResult,
};
use artifact_core::time::Timestamp;
use artifact_core::tlog::Receipt;
use futures_util::stream::BoxStream;
use tokio::io::AsyncWrite;

pub use embedded::EmbeddedClient;
pub use error::{ClientError, Result};
pub use http::{HttpClient, encode_path, encode_segment};
pub use sse::SseDecoder;

/// Progress of a transfer or a scan, reported by the client as it goes. Every method has a
/// no-op default; [`NoProgress`] reports nothing.
pub trait Progress: Send + Sync {
    /// The total is now known (bytes).
    fn set_length(&self, _total: u64) {}
    /// `bytes` more were moved.
    fn advance(&self, _bytes: u64) {}
    /// The position is now `bytes` (scans that count from the start).
    fn set_position(&self, _bytes: u64) {}
}

/// Reports nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Which packages [`Client::list_packages`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageQuery {
    /// Only this name.
    pub name: Option<String>,
    /// Only this retention class.
    pub class: Option<String>,
    /// Only packages marked eligible for deletion.
    pub eligible: bool,
    /// At most this many (the server clamps to [`artifact_core::paging::MAX_LIST_LIMIT`]);
    /// `None` = [`artifact_core::paging::DEFAULT_LIST_LIMIT`].
    pub limit: Option<u32>,
}

/// A package creation's answer: the package and whether this call created it (`false`: an
/// identical manifest was already stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// The package with its retention state.
    pub package: PackageViewResult,
    /// Whether this call created it.
    pub created: bool,
}

/// What a caller can ask of a store, embedded or over HTTP. Every method validates its
/// arguments before anything changes, and every byte returned is verified against the
/// digests the store recorded.
///
/// Writes are made as the client's actor: the embedded client's configured actor, the HTTP
/// client's token's principal.
pub trait Client: Send + Sync {
    /// Stores a file's bytes as a blob, hashing both digests on the way, without recording it
    /// yet where the implementation can defer that ([`Client::create_package`] records a
    /// package's blobs with the package, in one transaction). Over HTTP the blob is recorded
    /// when its upload session finishes.
    fn send_file(
        &self,
        path: &Path,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<BlobInfo>> + Send;

    /// Stores and records a file as a blob (`blob put`).
    fn put_blob(
        &self,
        path: &Path,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<BlobResult>> + Send;

    /// Creates a package from `manifest` whose files were sent with [`Client::send_file`]
    /// (`blobs`, in any order; the embedded store records them with the package). Creating
    /// an identical manifest again answers the stored package with `created: false`.
    fn create_package(
        &self,
        manifest: &Manifest,
        blobs: &[BlobInfo],
    ) -> impl Future<Output = Result<Created>> + Send;

    /// Whether a class is known to the store, checked before any byte moves. Over HTTP the
    /// server checks it when the package is created; this answers `Ok` there.
    fn check_class(&self, class: &str) -> impl Future<Output = Result<()>> + Send;

    /// A package with its retention state (`show`, `retention status`).
    fn package(&self, package: &str) -> impl Future<Output = Result<PackageViewResult>> + Send;

    /// Packages matching `query`, in creation order.
    fn list_packages(
        &self,
        query: &PackageQuery,
    ) -> impl Future<Output = Result<Vec<PackageViewResult>>> + Send;

    /// A package's manifest and its canonical CBOR bytes (checked to hash to the package id
    /// when the package was named by id).
    fn manifest(&self, package: &str) -> impl Future<Output = Result<(Manifest, Vec<u8>)>> + Send;

    /// Fails unless the package is live (not purged). Over HTTP the server refuses the first
    /// file request of a purged package (410), before any byte; this answers `Ok` there.
    fn check_live(&self, package: &str) -> impl Future<Output = Result<()>> + Send;

    /// Copies one file of a live package into `out`, verified (size and both digests) before
    /// this returns `Ok`; on error `out` may hold part of the file.
    fn copy_file<W: AsyncWrite + Unpin + Send>(
        &self,
        package: &str,
        file: &FileEntry,
        out: &mut W,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Copies a blob into `out`, verified; reports its size with [`Progress::set_length`]
    /// first.
    fn copy_blob<W: AsyncWrite + Unpin + Send>(
        &self,
        digest: &AnyDigest,
        out: &mut W,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Extends a package's retention to `until` (never earlier than its current expiry).
    fn extend(
        &self,
        package: &str,
        until: Timestamp,
        reason: &str,
    ) -> impl Future<Output = Result<RetentionStatusResult>> + Send;

    /// Places a legal hold; answers its id.
    fn hold(&self, package: &str, reason: &str) -> impl Future<Output = Result<String>> + Send;

    /// Releases a hold.
    fn release(
        &self,
        package: &str,
        hold_id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<RetentionStatusResult>> + Send;

    /// The package's retention events, in order.
    fn retention_history(&self, package: &str) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// An inclusion receipt for the event `seq`, against a checkpoint that covers it (the
    /// embedded client makes one with its signer when none does yet).
    fn receipt(&self, seq: u64) -> impl Future<Output = Result<Receipt>> + Send;

    /// Marks expired packages eligible for deletion as of `as_of` (default: the store's clock;
    /// never later than it).
    fn sweep(&self, as_of: Option<Timestamp>) -> impl Future<Output = Result<SweepResult>> + Send;

    /// Why a package is retained, or eligible, as of `as_of`.
    fn explain(
        &self,
        package: &str,
        as_of: Option<Timestamp>,
    ) -> impl Future<Output = Result<ExplainResult>> + Send;

    /// One page of events.
    fn events(&self, query: &EventQuery) -> impl Future<Output = Result<Vec<Event>>> + Send;

    /// Every event after `after`, then each new one as it is committed; never ends on its own.
    fn follow(&self, after: u64) -> BoxStream<'static, Result<Event>>;

    /// Checks the hash chain and the log's rules.
    fn audit(&self) -> impl Future<Output = Result<AuditResult>> + Send;

    /// Rebuilds every view from the log; answers how many events were replayed.
    fn rebuild_views(&self) -> impl Future<Output = Result<u64>> + Send;

    /// Garbage collection: purges eligible packages after `grace` (`7d`, `12h`; `None` =
    /// [`artifact_core::config::DEFAULT_GC_GRACE`]) and deletes unreferenced blobs.
    fn gc(
        &self,
        grace: Option<&str>,
        dry_run: bool,
    ) -> impl Future<Output = Result<GcResult>> + Send;

    /// Scrub: re-hashes a sample (0, 1] of the blobs, at most `max_bytes_per_sec`.
    fn verify(
        &self,
        sample: f64,
        max_bytes_per_sec: Option<u64>,
        progress: &dyn Progress,
    ) -> impl Future<Output = Result<VerifyResult>> + Send;

    /// Cross-checks views, log and blobs.
    fn fsck(&self) -> impl Future<Output = Result<FsckResult>> + Send;

    /// Mints a bearer token (shown only in this answer).
    fn mint_token(
        &self,
        principal: &str,
        roles: &[Role],
        expires_at: Option<Timestamp>,
    ) -> impl Future<Output = Result<TokenMintedResult>> + Send;

    /// Every token's record (never the tokens).
    fn list_tokens(&self) -> impl Future<Output = Result<Vec<TokenResult>>> + Send;

    /// Revokes a token.
    fn revoke_token(
        &self,
        token_id: &str,
        reason: &str,
    ) -> impl Future<Output = Result<TokenResult>> + Send;
}
