//! # artifact-store-fs
//!
//! The local-filesystem blob backend of artifactstore, and the one-call embedded store
//! ([`open_embedded`]: SQLite catalog + this backend in a data directory).
//!
//! # Layout
//! The configured root plays the role of the `blobs/` key prefix shared by every backend:
//! key `blobs/blake3/ab/abcd…` lives at `<root>/blake3/ab/abcd…`. Writes go to
//! `<root>/tmp/` (same filesystem, so the final rename is atomic).
//!
//! # Durability (see docs/DURABILITY.md)
//! A put writes a temp file while holding an exclusive lock on it, starts writeback every
//! 8 MiB (`sync_file_range`), `fdatasync`s it, renames it into place and fsyncs the shard
//! directory (and the parent when the shard was new). Readers therefore see a whole blob or
//! nothing. Temp files whose writer died (no lock held) are reclaimed when a store opens.
#![warn(missing_docs, unreachable_pub)]

mod embedded;
mod error;
mod log_key;
pub mod sessions;
pub mod walk;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use artifact_core::blob::{BlobMeta, BlobRead, BlobStore, ByteRange, StagedBlob};
use artifact_core::digest::Blake3;
use artifact_core::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::{mpsc, oneshot};

pub use embedded::{EmbeddedOptions, open_embedded};
use error::FsError;
pub use log_key::{create_log_signer, load_log_signer, log_signer};

/// Start writeback after this many dirty bytes, so the final fsync has little left to do.
const WRITEBACK_WINDOW: u64 = 8 << 20;
/// A staged blob is kept in memory up to this size and written, synced and renamed in one
/// blocking call at commit; a larger one gets a writer thread as soon as it passes this size
/// (its writes then overlap the caller's hashing). Small blobs so cost no thread and no temp
/// file until they are committed.
pub const SMALL_BLOB_BYTES: usize = 256 << 10;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Blobs in a local directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
    tmp: PathBuf,
}

impl FsBlobStore {
    /// Opens (creating if needed) a blob directory and reclaims abandoned temp files.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let tmp = root.join("tmp");
        for dir in [&root, &root.join("blake3"), &tmp] {
            fs::create_dir_all(dir).map_err(|source| FsError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        let store = Self { root, tmp };
        store.reclaim_temp_files()?;
        Ok(store)
    }

    /// Opens a blob directory for reading only: creates nothing and reclaims nothing (a
    /// missing directory reads as holding no blobs).
    pub fn open_read_only(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let tmp = root.join("tmp");
        Self { root, tmp }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of a blob.
    pub fn blob_path(&self, key: &Blake3) -> PathBuf {
        let hex = key.to_hex();
        self.root.join("blake3").join(&hex[..2]).join(hex)
    }

    /// Deletes temp files no live writer holds a lock on; returns how many were removed.
    pub fn reclaim_temp_files(&self) -> Result<usize> {
        let mut removed = 0;
        let entries = fs::read_dir(&self.tmp).map_err(|source| FsError::Read {
            path: self.tmp.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            // A writer holds an exclusive lock for the whole life of its temp file.
            if file.try_lock().is_ok() {
                if fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
                let _ = file.unlock();
            }
        }
        Ok(removed)
    }

    /// Temp files currently present (for fsck and tests).
    pub fn temp_files(&self) -> Result<Vec<PathBuf>> {
        let entries = fs::read_dir(&self.tmp).map_err(|source| FsError::Read {
            path: self.tmp.clone(),
            source,
        })?;
        Ok(entries.flatten().map(|e| e.path()).collect())
    }

    fn create_temp(&self) -> Result<(File, PathBuf)> {
        loop {
            let name = format!(
                "{}-{}.part",
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = self.tmp.join(name);
            let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(FsError::CreateTemp {
                        dir: self.tmp.clone(),
                        source,
                    }
                    .into());
                }
            };
            file.lock().map_err(|source| FsError::CreateTemp {
                dir: self.tmp.clone(),
                source,
            })?;
            // A reclaimer may have removed the file between create and lock: start over.
            match file.metadata() {
                Ok(meta) if meta.nlink() > 0 => return Ok((file, path)),
                _ => continue,
            }
        }
    }
}

fn sync_dir(path: &Path) -> std::result::Result<(), FsError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| FsError::Sync {
            path: path.to_owned(),
            source,
        })
}

enum WriterMessage {
    Data(Bytes),
    Commit(PathBuf, oneshot::Sender<std::result::Result<(), FsError>>),
}

/// A blob being staged: in memory while small, then written to a temp file by a dedicated
/// thread (so the caller's hashing overlaps the disk writes).
struct FsStagedBlob {
    /// The bytes so far while the blob is small (`None` once a writer thread owns them).
    buffered: Option<Vec<u8>>,
    sender: Option<mpsc::Sender<WriterMessage>>,
    thread: Option<std::thread::JoinHandle<std::result::Result<(), FsError>>>,
    store: FsBlobStore,
    root: PathBuf,
}

fn writer_thread(
    mut file: File,
    temp_path: PathBuf,
    root: PathBuf,
    mut receiver: mpsc::Receiver<WriterMessage>,
) -> std::result::Result<(), FsError> {
    let mut written: u64 = 0;
    let mut flushed_to: u64 = 0;
    let write_error = |source| FsError::Write {
        path: temp_path.clone(),
        source,
    };
    while let Some(message) = receiver.blocking_recv() {
        match message {
            WriterMessage::Data(chunk) => {
                if let Err(source) = file.write_all(&chunk) {
                    // A failed write (a full disk above all) removes its bytes at once: left
                    // behind they would keep the disk full until a restart reclaimed them.
                    drop(file);
                    let _ = fs::remove_file(&temp_path);
                    return Err(write_error(source));
                }
                written += chunk.len() as u64;
                if written - flushed_to >= WRITEBACK_WINDOW {
                    sessions::start_writeback(&file, flushed_to, written - flushed_to);
                    flushed_to = written;
                }
            }
            WriterMessage::Commit(final_path, reply) => {
                let result = publish(&file, &temp_path, &final_path, &root);
                let failed = result.is_err();
                let _ = reply.send(result);
                if failed {
                    let _ = fs::remove_file(&temp_path);
                }
                return Ok(());
            }
        }
    }
    // The caller aborted or went away: the bytes must never become visible.
    let _ = fs::remove_file(&temp_path);
    Ok(())
}

fn publish(
    file: &File,
    temp_path: &Path,
    final_path: &Path,
    root: &Path,
) -> std::result::Result<(), FsError> {
    file.sync_data().map_err(|source| FsError::Sync {
        path: temp_path.to_owned(),
        source,
    })?;
    if final_path.exists() {
        // Same key, same content: keep the existing blob (never rewrite a recorded blob), but
        // mark it fresh so garbage collection's grace period protects it until this writer
        // has recorded it.
        let _ = fs::remove_file(temp_path);
        if let Ok(existing) = OpenOptions::new().write(true).open(final_path) {
            let _ = existing.set_modified(std::time::SystemTime::now());
        }
        return Ok(());
    }
    let shard = final_path.parent().unwrap_or(root);
    if !shard.exists() {
        fs::create_dir_all(shard).map_err(|source| FsError::CreateDir {
            path: shard.to_owned(),
            source,
        })?;
        sync_dir(shard.parent().unwrap_or(root))?;
    }
    fs::rename(temp_path, final_path).map_err(|source| FsError::Rename {
        from: temp_path.to_owned(),
        to: final_path.to_owned(),
        source,
    })?;
    sync_dir(shard)
}

impl FsStagedBlob {
    async fn writer_result(&mut self) -> Result<()> {
        self.sender = None;
        match self.thread.take() {
            Some(thread) => tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|_| Error::from(FsError::WriterGone))?
                .map_err(|_| Error::from(FsError::WriterGone))?
                .map_err(Error::from),
            None => Err(FsError::WriterGone.into()),
        }
    }

    /// Moves the buffered bytes to a temp file owned by a new writer thread.
    async fn start_writer(&mut self, buffered: Vec<u8>) -> Result<()> {
        let store = self.store.clone();
        let (file, temp_path) = tokio::task::spawn_blocking(move || store.create_temp())
            .await
            .map_err(|_| Error::from(FsError::WriterGone))??;
        let (sender, receiver) = mpsc::channel(4);
        let root = self.root.clone();
        let thread_temp = temp_path.clone();
        let thread = std::thread::Builder::new()
            .name("artifactstore-fs-writer".to_owned())
            .spawn(move || writer_thread(file, thread_temp, root, receiver))
            .map_err(|source| {
                let _ = fs::remove_file(&temp_path);
                FsError::CreateTemp {
                    dir: self.store.tmp.clone(),
                    source,
                }
            })?;
        self.sender = Some(sender);
        self.thread = Some(thread);
        if !buffered.is_empty() {
            self.send(Bytes::from(buffered)).await?;
        }
        Ok(())
    }

    async fn send(&mut self, chunk: Bytes) -> Result<()> {
        let sent = match &self.sender {
            Some(sender) => sender.send(WriterMessage::Data(chunk)).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The thread stopped: report its error.
        self.writer_result().await?;
        Err(FsError::WriterGone.into())
    }
}

/// Writes a small staged blob to a temp file, makes it durable and publishes it at
/// `final_path` (the same steps as the writer thread's, in one blocking call).
fn write_small(
    store: &FsBlobStore,
    bytes: &[u8],
    final_path: &Path,
) -> std::result::Result<(), Error> {
    let (mut file, temp_path) = store.create_temp()?;
    let written = file.write_all(bytes).map_err(|source| FsError::Write {
        path: temp_path.clone(),
        source,
    });
    let result = written.and_then(|()| publish(&file, &temp_path, final_path, &store.root));
    if result.is_err() {
        drop(file);
        let _ = fs::remove_file(&temp_path);
    }
    result.map_err(Error::from)
}

#[async_trait]
impl StagedBlob for FsStagedBlob {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        if let Some(buffered) = &mut self.buffered {
            if buffered.len() + chunk.len() <= SMALL_BLOB_BYTES {
                buffered.extend_from_slice(&chunk);
                return Ok(());
            }
            let buffered = self.buffered.take().unwrap_or_default();
            self.start_writer(buffered).await?;
        }
        self.send(chunk).await
    }

    async fn commit(mut self: Box<Self>, key: &Blake3) -> Result<()> {
        let final_path = blob_path_in(&self.root, key);
        if let Some(buffered) = self.buffered.take() {
            let store = self.store.clone();
            return tokio::task::spawn_blocking(move || {
                write_small(&store, &buffered, &final_path)
            })
            .await
            .map_err(|_| Error::from(FsError::WriterGone))?;
        }
        let (reply, answer) = oneshot::channel();
        let sent = match &self.sender {
            Some(sender) => sender
                .send(WriterMessage::Commit(final_path, reply))
                .await
                .is_ok(),
            None => false,
        };
        if !sent {
            self.writer_result().await?;
            return Err(FsError::WriterGone.into());
        }
        let published = answer.await.map_err(|_| Error::from(FsError::WriterGone));
        self.writer_result().await?;
        published?.map_err(Error::from)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        if self.buffered.take().is_some() {
            // Nothing reached the disk.
            return Ok(());
        }
        self.writer_result().await
    }
}

impl Drop for FsStagedBlob {
    fn drop(&mut self) {
        // Closing the channel makes the thread delete the temp file (a buffered blob has none).
        self.sender = None;
    }
}

fn blob_path_in(root: &Path, key: &Blake3) -> PathBuf {
    let hex = key.to_hex();
    root.join("blake3").join(&hex[..2]).join(hex)
}

#[async_trait]
impl BlobStore for FsBlobStore {
    fn name(&self) -> &'static str {
        "fs"
    }

    async fn stage(&self) -> Result<Box<dyn StagedBlob>> {
        Ok(Box::new(FsStagedBlob {
            buffered: Some(Vec::new()),
            sender: None,
            thread: None,
            store: self.clone(),
            root: self.root.clone(),
        }))
    }

    async fn get(&self, key: &Blake3, range: Option<ByteRange>) -> Result<BlobRead> {
        let path = self.blob_path(key);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::not_found("blob", key.to_string()));
            }
            Err(source) => return Err(FsError::Read { path, source }.into()),
        };
        let size = file
            .metadata()
            .await
            .map_err(|source| FsError::Read {
                path: path.clone(),
                source,
            })?
            .len();
        let (start, end) = match range {
            None => (0, size),
            Some(range) => range.resolve(size).ok_or_else(|| {
                Error::invalid(format!(
                    "range starting at {} is not satisfiable for a blob of {size} bytes",
                    range.start
                ))
            })?,
        };
        if start > 0 {
            file.seek(io::SeekFrom::Start(start))
                .await
                .map_err(|source| FsError::Read {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(BlobRead {
            size,
            range: (start, end),
            reader: Box::pin(file.take(end - start)),
        })
    }

    async fn head(&self, key: &Blake3) -> Result<Option<BlobMeta>> {
        let path = self.blob_path(key);
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(BlobMeta { size: meta.len() })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FsError::Read { path, source }.into()),
        }
    }

    async fn delete(&self, key: &Blake3) -> Result<()> {
        let path = self.blob_path(key);
        let shard = path.parent().map(Path::to_owned);
        tokio::task::spawn_blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(source) => return Err(FsError::Delete { path, source }),
            }
            match shard {
                Some(shard) => sync_dir(&shard),
                None => Ok(()),
            }
        })
        .await
        .map_err(|_| Error::from(FsError::WriterGone))?
        .map_err(Error::from)
    }

    async fn list(&self) -> Result<Vec<Blake3>> {
        let root = self.root.join("blake3");
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let shards = fs::read_dir(&root).map_err(|source| FsError::Read {
                path: root.clone(),
                source,
            })?;
            for shard in shards.flatten() {
                let Ok(entries) = fs::read_dir(shard.path()) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if let Some(key) = name
                        .to_str()
                        .and_then(|hex| format!("blake3:{hex}").parse::<Blake3>().ok())
                    {
                        keys.push(key);
                    }
                }
            }
            keys.sort();
            Ok::<_, FsError>(keys)
        })
        .await
        .map_err(|_| Error::from(FsError::WriterGone))?
        .map_err(Error::from)
    }

    async fn list_with_modified(
        &self,
    ) -> Result<Vec<(Blake3, Option<artifact_core::time::Timestamp>)>> {
        let keys = self.list().await?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            keys.into_iter()
                .map(|key| {
                    let modified = fs::metadata(store.blob_path(&key))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .and_then(|d| i64::try_from(d.as_millis()).ok())
                        .and_then(artifact_core::time::Timestamp::from_unix_millis);
                    (key, modified)
                })
                .collect()
        })
        .await
        .map_err(|_| Error::from(FsError::WriterGone))
    }

    async fn delete_many(&self, keys: &[Blake3]) -> Result<()> {
        let paths: Vec<PathBuf> = keys.iter().map(|key| self.blob_path(key)).collect();
        tokio::task::spawn_blocking(move || {
            let mut shards = std::collections::BTreeSet::new();
            for path in paths {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(source) => return Err(FsError::Delete { path, source }),
                }
                if let Some(shard) = path.parent() {
                    shards.insert(shard.to_owned());
                }
            }
            // One fsync per touched directory makes every removal in it durable.
            for shard in shards {
                sync_dir(&shard)?;
            }
            Ok(())
        })
        .await
        .map_err(|_| Error::from(FsError::WriterGone))?
        .map_err(Error::from)
    }

    async fn orphaned_staging(&self) -> Result<Vec<String>> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut orphans = Vec::new();
            for path in store.temp_files()? {
                let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
                    continue;
                };
                if file.try_lock().is_ok() {
                    orphans.push(path.display().to_string());
                    let _ = file.unlock();
                }
            }
            Ok(orphans)
        })
        .await
        .map_err(|_| Error::from(FsError::WriterGone))?
    }

    async fn adopt_file(&self, path: &Path, key: &Blake3) -> Result<()> {
        let source = path.to_owned();
        let final_path = self.blob_path(key);
        let root = self.root.clone();
        let moved = tokio::task::spawn_blocking(move || {
            let file = File::open(&source).map_err(|source_error| FsError::Read {
                path: source.clone(),
                source: source_error,
            })?;
            // Same steps as a staged commit: durable, then atomically in place, then the
            // directory entry durable.
            publish(&file, &source, &final_path, &root).map(|()| source)
        })
        .await
        .map_err(|_| Error::from(FsError::WriterGone))?;
        match moved {
            Ok(_) => Ok(()),
            // Another filesystem: rename cannot move it; copy through a staged write instead.
            Err(FsError::Rename { source, .. }) if source.raw_os_error() == Some(libc::EXDEV) => {
                let result = artifact_core::blob::copy_file_into(self, path, key).await;
                let _ = tokio::fs::remove_file(path).await;
                result
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(path).await;
                Err(e.into())
            }
        }
    }

    /// Writes, syncs and removes a probe file in `tmp/`. Every call has its own file name
    /// (process id and a counter), so concurrent checks never remove each other's probe, and
    /// the probe is removed whether or not the write succeeded (a full disk leaves nothing).
    async fn check(&self) -> Result<()> {
        let probe = self.tmp.join(format!(
            ".probe-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = tokio::fs::write(&probe, b"ok").await;
        let removed = tokio::fs::remove_file(&probe).await;
        written.map_err(|source| FsError::Write {
            path: probe.clone(),
            source,
        })?;
        removed.map_err(|source| FsError::Delete {
            path: probe,
            source,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_back(store: &FsBlobStore, key: &Blake3) -> Vec<u8> {
        let mut read = store.get(key, None).await.unwrap();
        let mut out = Vec::new();
        read.reader.read_to_end(&mut out).await.unwrap();
        out
    }

    /// Small blobs stay in memory until commit (no temp file meanwhile); a blob that grows
    /// past `SMALL_BLOB_BYTES` in small writes moves to the writer thread with its buffered
    /// bytes first; an aborted or dropped small blob leaves nothing behind.
    #[tokio::test]
    async fn small_blobs_are_buffered_and_larger_ones_move_to_the_writer_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::open(dir.path()).unwrap();
        for size in [
            SMALL_BLOB_BYTES,
            SMALL_BLOB_BYTES + 1,
            3 * SMALL_BLOB_BYTES + 5,
        ] {
            let data = artifact_core::testing::test_bytes(size as u64, size as u64);
            let key = Blake3::of(&data);
            let mut staged = store.stage().await.unwrap();
            for chunk in data.chunks(100_000) {
                staged.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            let temp_files = store.temp_files().unwrap().len();
            assert_eq!(
                temp_files,
                usize::from(size > SMALL_BLOB_BYTES),
                "{size} bytes: a temp file only once past the small-blob size"
            );
            staged.commit(&key).await.unwrap();
            assert_eq!(read_back(&store, &key).await, data, "{size} bytes");
            assert!(store.temp_files().unwrap().is_empty());
        }
        for abort in [true, false] {
            let mut staged = store.stage().await.unwrap();
            staged.write(Bytes::from_static(b"never")).await.unwrap();
            if abort {
                staged.abort().await.unwrap();
            } else {
                drop(staged);
            }
            assert!(store.temp_files().unwrap().is_empty());
            assert_eq!(
                store.head(&Blake3::of(b"never")).await.unwrap(),
                None,
                "aborted bytes are never visible"
            );
        }
    }
}
