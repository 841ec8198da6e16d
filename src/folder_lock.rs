//! One run per folder: a training run holds an exclusive lock on its
//! checkpoint and run folders, so a second run started on the same folder
//! stops at once with an error naming the folder and the process using it,
//! instead of both writing (and deleting) each other's checkpoints.
//!
//! The lock is the operating system's advisory lock on `FOLDER/.promot.lock`
//! (`flock` on Unix, `LockFileEx` on Windows, through std's `File::try_lock`).
//! The system releases it when the process ends, however it ends, so a
//! crashed or killed run never leaves a stale lock: the file may stay, the
//! lock does not. The file holds the holder's process id, for the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file's name inside a locked folder.
pub const FILE: &str = ".promot.lock";

/// An exclusive lock on a folder, held until dropped (or the process ends).
#[derive(Debug)]
pub struct FolderLock {
    dir: PathBuf,
    /// Holding the open file holds the lock.
    _file: File,
}

impl FolderLock {
    /// Lock `dir` (created if missing) for `what` (e.g. "training"), or fail
    /// with an error naming the folder and the process that holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<FolderLock> {
        crate::fsio::ensure_dir(dir)?;
        let path = dir.join(FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::file(&path, format!("cannot open the folder's lock file: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (process {pid})"),
                };
                return Err(Error::file(
                    dir,
                    format!(
                        "in use by another run{holder}; {what} here would overwrite its files. Wait for it to \
                         finish or use another folder (a run that crashed or was killed holds no lock)"
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::file(&path, format!("cannot lock the folder: {e}")));
            }
        }
        // Who holds it, for the message above (best effort: the lock is what counts).
        let _ = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.flush());
        Ok(FolderLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}
