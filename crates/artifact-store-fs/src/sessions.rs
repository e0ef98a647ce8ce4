//! Upload-session files on the receiving replica's disk (ADR 0008): the staging side of the
//! server's resumable uploads. A session `<id>` is `<dir>/<id>.part` (the bytes received so
//! far; its length is the offset after a restart) and `<dir>/<id>.owner` (the principal that
//! created it, written and synced before the `.part` file, so every session has one).
//!
//! The HTTP protocol (offsets, takeover, hashing while receiving) is the server's; this module
//! owns the file operations: create, reopen, append, cut back, rehash, list what has been idle
//! too long, remove. Ids are checked ([`SessionDir::valid_id`]) before any path is built, so a
//! caller's id can never name a file outside the directory.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use artifact_core::digest::DualHasher;

/// Bytes read at a time when a session's hash is rebuilt from its file.
const REHASH_CHUNK: usize = 1 << 20;

/// The directory of a server's upload sessions.
#[derive(Debug, Clone)]
pub struct SessionDir {
    dir: PathBuf,
}

/// What [`SessionDir::idle`] found idle for longer than the TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idle {
    /// A session whose `.part` file has not been written for the TTL.
    Session(String),
    /// An `.owner` file whose session is gone (a crash between the two files).
    OrphanOwner(String),
}

impl SessionDir {
    /// Opens (creating it if needed) the session directory `dir`.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Whether `id` is a session id: 32 lowercase hex digits (what the server mints).
    pub fn valid_id(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// The file holding the bytes of session `id`.
    pub fn part_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn owner_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.owner"))
    }

    /// Creates session `id` for `owner`: the owner file first (written and synced), then an
    /// empty `.part` file.
    ///
    /// # Errors
    ///
    /// Any IO error (`ENOSPC` included; the caller maps it).
    pub fn create(&self, id: &str, owner: &str) -> std::io::Result<()> {
        let mut file = File::create(self.owner_path(id))?;
        file.write_all(owner.as_bytes())?;
        file.sync_all()?;
        File::create(self.part_path(id))?;
        Ok(())
    }

    /// A session left by an earlier run: its offset (the `.part` length) and its owner (`None`
    /// when no owner file is readable: a session from before owners were recorded). `None`
    /// when there is no such session.
    pub fn find(&self, id: &str) -> Option<(u64, Option<String>)> {
        let length = std::fs::metadata(self.part_path(id)).ok()?.len();
        let owner = std::fs::read(self.owner_path(id))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        Some((length, owner))
    }

    /// Opens session `id`'s file for appending.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened (the session is gone).
    pub fn open_append(&self, id: &str) -> std::io::Result<File> {
        OpenOptions::new().append(true).open(self.part_path(id))
    }

    /// Cuts session `id`'s file back to `length` bytes (undoing an append).
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or truncated.
    pub fn truncate(&self, id: &str, length: u64) -> std::io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(self.part_path(id))?
            .set_len(length)
    }

    /// Both digests of the bytes of session `id` so far (a session resumed after a restart).
    ///
    /// # Errors
    ///
    /// When the file cannot be read.
    pub fn rehash(&self, id: &str) -> std::io::Result<DualHasher> {
        let mut file = File::open(self.part_path(id))?;
        let mut hasher = DualHasher::new();
        let mut buffer = vec![0u8; REHASH_CHUNK];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                return Ok(hasher);
            }
            hasher.update_parallel(&buffer[..n]);
        }
    }

    /// Removes session `id`'s bytes, if they are still there; whether they were.
    pub fn remove_part(&self, id: &str) -> bool {
        std::fs::remove_file(self.part_path(id)).is_ok()
    }

    /// Removes session `id`'s owner file (a finished, aborted or expired session).
    pub fn remove_owner(&self, id: &str) {
        let _ = std::fs::remove_file(self.owner_path(id));
    }

    /// How many sessions are on disk.
    pub fn count(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Sessions and orphan owner files not modified for longer than `ttl` (by the files'
    /// modification times, so sessions of an earlier run count too).
    pub fn idle(&self, ttl: Duration) -> Vec<Idle> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        let mut idle = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let expired = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|for_how_long| for_how_long > ttl);
            if !expired {
                continue;
            }
            if let Some(id) = name.strip_suffix(".owner") {
                if !self.part_path(id).exists() {
                    idle.push(Idle::OrphanOwner(id.to_owned()));
                }
            } else if let Some(id) = name.strip_suffix(".part") {
                idle.push(Idle::Session(id.to_owned()));
            }
        }
        idle
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// Starts writeback of `len` bytes at `offset` of `file` without waiting, so dirty pages drain
/// while writing goes on (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the fsync that makes a finished session
/// durable has little left to write. Elsewhere it does nothing.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd as _;
        // SAFETY: the fd is valid while `file` lives; sync_file_range only reads its arguments.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use artifact_core::digest::BlobInfo;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_session_is_created_appended_cut_back_rehashed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = SessionDir::open(dir.path().join("uploads")).unwrap();
        sessions.create(ID, "ci").unwrap();
        assert_eq!(sessions.find(ID), Some((0, Some("ci".to_owned()))));
        assert_eq!(sessions.count(), 1);
        let mut file = sessions.open_append(ID).unwrap();
        file.write_all(b"hello world").unwrap();
        start_writeback(&file, 0, 11);
        assert_eq!(sessions.find(ID).unwrap().0, 11);
        sessions.truncate(ID, 5).unwrap();
        assert_eq!(
            sessions.rehash(ID).unwrap().finalize(),
            BlobInfo::of(b"hello")
        );
        assert!(sessions.remove_part(ID));
        assert!(!sessions.remove_part(ID), "already gone");
        assert_eq!(
            sessions.idle(Duration::ZERO),
            vec![Idle::OrphanOwner(ID.to_owned())]
        );
        sessions.remove_owner(ID);
        assert_eq!(sessions.find(ID), None);
        assert_eq!(sessions.count(), 0);
    }

    #[test]
    fn idle_lists_only_what_is_older_than_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = SessionDir::open(dir.path()).unwrap();
        sessions.create(ID, "ci").unwrap();
        assert!(sessions.idle(Duration::from_secs(3600)).is_empty());
        let past = SystemTime::now() - Duration::from_secs(7200);
        File::options()
            .write(true)
            .open(sessions.part_path(ID))
            .unwrap()
            .set_modified(past)
            .unwrap();
        assert_eq!(
            sessions.idle(Duration::from_secs(3600)),
            vec![Idle::Session(ID.to_owned())]
        );
    }

    #[test]
    fn ids_that_could_name_other_files_are_not_ids() {
        assert!(SessionDir::valid_id(ID));
        for bad in [
            "",
            "../../etc/passwd",
            &ID.to_uppercase(),
            &ID[1..],
            "0123456789abcdef0123456789abcde/",
        ] {
            assert!(!SessionDir::valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_session_from_before_owners_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = SessionDir::open(dir.path()).unwrap();
        std::fs::write(sessions.part_path(ID), b"abc").unwrap();
        assert_eq!(sessions.find(ID), Some((3, None)));
    }
}
