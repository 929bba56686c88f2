//! Files written so that a crash, a `kill -9` or a full disk never leaves a half-written file
//! under a real name: the bytes go to a fresh temporary file in the same directory, which is
//! flushed to disk and renamed over the target, and the directory itself is flushed so that the
//! rename survives a power cut. A reader sees the old file or the complete new one.
//!
//! A process killed mid-write leaves its temporary file (`.NAME.PID-N.tmp`) behind;
//! [`remove_stale_temporaries`] clears those of processes that are gone.
//!
//! For fault tests, `DL_FAULT_PAUSE_AT=N` makes the N-th file operation of the process (1-based,
//! counting each create, write, flush and rename here) print `dl-fault: paused at operation N`
//! to standard error and wait forever, so that a test can kill it with SIGKILL at exactly that
//! point.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
};

/// The environment variable of the fault point.
pub const FAULT_PAUSE_VARIABLE: &str = "DL_FAULT_PAUSE_AT";

/// Counts file operations and pauses at the one `DL_FAULT_PAUSE_AT` names (see the module
/// documentation); does nothing when the variable is not set.
fn fault_point(operation: &str, path: &Path) {
    static PAUSE_AT: OnceLock<Option<u64>> = OnceLock::new();
    static OPERATIONS: AtomicU64 = AtomicU64::new(0);
    let Some(pause_at) = *PAUSE_AT.get_or_init(|| {
        std::env::var(FAULT_PAUSE_VARIABLE)
            .ok()
            .and_then(|value| value.parse().ok())
    }) else {
        return;
    };
    let number = OPERATIONS.fetch_add(1, Ordering::SeqCst) + 1;
    if number == pause_at {
        eprintln!(
            "dl-fault: paused at operation {number} ({operation} {})",
            path.display()
        );
        loop {
            std::thread::park();
        }
    }
}

/// The directory a file goes to (`.` for a bare file name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes a directory's entries (a rename in it) to disk; a no-op where directories cannot be
/// opened as files.
fn sync_directory(directory: &Path) -> std::io::Result<()> {
    match fs::File::open(directory) {
        Ok(handle) => handle.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so the
/// target is either the old file or the complete new one, never a partial write. The temporary
/// file is created fresh (never reusing an existing one) and removed if anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static TEMPORARY_FILES: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path names no file")
    })?;
    let directory = directory_of(path);
    fs::create_dir_all(&directory)?;
    let temporary = directory.join(format!(
        ".{}.{}-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMPORARY_FILES.fetch_add(1, Ordering::Relaxed)
    ));
    fault_point("create", &temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)?;
    let written = file.write_all(bytes).and_then(|()| {
        fault_point("flush", &temporary);
        file.sync_all()
    });
    drop(file);
    let result = written.and_then(|()| rename_durably(&temporary, path));
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Renames `from` over `to` (in the same directory) and flushes the directory, so the rename
/// survives a crash.
pub fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    fault_point("rename", to);
    fs::rename(from, to)?;
    sync_directory(&directory_of(to))
}

/// Removes the temporary files that writers of `path` killed mid-write left beside it
/// (`.NAME.PID-N.tmp` whose process is gone); returns how many.
pub fn remove_stale_temporaries(path: &Path) -> usize {
    let Some(file_name) = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
    else {
        return 0;
    };
    let prefix = format!(".{file_name}.");
    let Ok(entries) = fs::read_dir(directory_of(path)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(process) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|rest| rest.split_once('-'))
            .map(|(process, _)| process.to_string())
        else {
            continue;
        };
        let alive =
            process == std::process::id().to_string() || Path::new("/proc").join(&process).exists();
        if !alive && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let directory = tempfile_directory();
        let target = directory.join("model.safetensors");
        // A process number no Linux system hands out (above pid_max's ceiling of 2^22).
        let stale = directory.join(".model.safetensors.99999999-0.tmp");
        let other = directory.join(".notes.txt.99999999-0.tmp");
        fs::write(&stale, b"half").unwrap();
        fs::write(&other, b"not ours").unwrap();
        write_atomically(&target, b"whole").unwrap();
        assert_eq!(remove_stale_temporaries(&target), 1);
        assert!(!stale.exists() && other.exists());
        assert_eq!(fs::read(&target).unwrap(), b"whole");
        fs::remove_dir_all(&directory).unwrap();
    }

    /// A fresh directory under the system's temporary directory.
    fn tempfile_directory() -> PathBuf {
        let directory = std::env::temp_dir().join(format!(
            "dl-tensor-atomic-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |time| time.as_nanos())
        ));
        fs::create_dir_all(&directory).unwrap();
        directory
    }
}
