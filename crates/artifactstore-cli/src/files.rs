//! Output files that never follow a planted link: directories opened by descriptor, temp files
//! created exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`) under random names, renamed into place
//! without replacing anything unless asked (`renameat2(RENAME_NOREPLACE)`).
//!
//! `pull` and `blob get --output` write through these. The destination directory itself is
//! opened as given (following a link there is the caller's choice); below it, every directory
//! is opened with `O_NOFOLLOW`, so a symbolic link planted inside DEST is an error instead of a
//! way to write outside it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// A directory held open by descriptor.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// What a name in a directory is, without following a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A directory.
    Dir,
    /// A symbolic link (dangling or not).
    Symlink,
    /// A regular file or anything else that is not a directory.
    Other,
}

fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` contains a NUL byte", name.escape_debug()),
        )
    })
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// `len` random lowercase hex digits, for temp names no one can predict.
pub(crate) fn random_hex(len: usize) -> io::Result<String> {
    let mut bytes = vec![0u8; len.div_ceil(2)];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    let mut text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    text.truncate(len);
    Ok(text)
}

impl Dir {
    /// Opens the directory at `path` (a link at `path` itself is followed).
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
        // SAFETY: a valid NUL-terminated path; the returned fd is owned below.
        let fd = check(unsafe {
            libc::open(
                c_path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(Dir {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_owned(),
        })
    }

    /// The path this directory was reached by (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What `name` is, without following a link; `None` if nothing is there.
    pub(crate) fn kind(&self, name: &str) -> io::Result<Option<EntryKind>> {
        let c = c_name(name)?;
        // SAFETY: `stat` is plain data fstatat fills in; the fd and name are valid.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        let result = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut stat,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if result < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(error)
            };
        }
        Ok(Some(match stat.st_mode & libc::S_IFMT {
            libc::S_IFDIR => EntryKind::Dir,
            libc::S_IFLNK => EntryKind::Symlink,
            _ => EntryKind::Other,
        }))
    }

    /// Opens the subdirectory `name` without following a link there.
    pub(crate) fn subdir(&self, name: &str) -> io::Result<Dir> {
        let c = c_name(name)?;
        // SAFETY: valid fd and name; the returned fd is owned below.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        Ok(Dir {
            // SAFETY: `fd` was just opened and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: self.path.join(name),
        })
    }

    /// Creates the directory `name` (`mode` before the umask); fails if anything is there.
    pub(crate) fn mkdir(&self, name: &str, mode: libc::mode_t) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: valid fd and name.
        check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode) }).map(|_| ())
    }

    /// Creates the file `name` for writing; fails if anything (a file, a link) is there.
    pub(crate) fn create_new(&self, name: &str) -> io::Result<File> {
        let c = c_name(name)?;
        // SAFETY: valid fd and name; the returned fd is owned below.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o666 as libc::c_uint,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Creates a file under a fresh random name `{prefix}{12 hex}`; returns it and the name.
    pub(crate) fn create_temp(&self, prefix: &str) -> io::Result<(File, String)> {
        loop {
            let name = format!("{prefix}{}", random_hex(12)?);
            match self.create_new(&name) {
                Ok(file) => return Ok((file, name)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves `from` (in this directory) to `to` in `target`. Without `replace`, an existing
    /// entry at `to` (even a dangling link) is an `AlreadyExists` error and is left alone; with
    /// it, a file or link there is replaced (the link itself, never what it points to).
    pub(crate) fn rename(
        &self,
        from: &str,
        target: &Dir,
        to: &str,
        replace: bool,
    ) -> io::Result<()> {
        let (c_from, c_to) = (c_name(from)?, c_name(to)?);
        let (from_fd, to_fd) = (self.fd.as_raw_fd(), target.fd.as_raw_fd());
        if replace {
            // SAFETY: valid fds and names.
            return check(unsafe {
                libc::renameat(from_fd, c_from.as_ptr(), to_fd, c_to.as_ptr())
            })
            .map(|_| ());
        }
        // SAFETY: valid fds and names.
        let renamed = check(unsafe {
            libc::renameat2(
                from_fd,
                c_from.as_ptr(),
                to_fd,
                c_to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        });
        match renamed {
            Ok(_) => Ok(()),
            // A filesystem without RENAME_NOREPLACE: a hard link is just as exclusive.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                // SAFETY: valid fds and names.
                check(unsafe { libc::linkat(from_fd, c_from.as_ptr(), to_fd, c_to.as_ptr(), 0) })?;
                self.unlink(from)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the file (or link) `name`.
    pub(crate) fn unlink(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: valid fd and name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(|_| ())
    }

    /// Removes the empty directory `name`.
    pub(crate) fn rmdir(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: valid fd and name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })
            .map(|_| ())
    }
}
