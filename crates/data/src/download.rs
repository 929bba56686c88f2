//! Downloading a dataset and verifying every byte: what `cargo xtask download-data` runs, and
//! what the programs call (through [`ensure_dataset`]) when their data is missing.
//!
//! For each file of the dataset: a copy already present that matches the manifest's size and
//! checksums is kept; otherwise the sources are tried in order — the `--mirror` if one is given,
//! else the manifest's URLs. An HTTP error status (404…) moves on to the next source; a
//! connection dropped mid-body is retried on the same source with exponential back-off first.
//! Bytes go to a hidden temporary file beside the target, which is renamed to the file's name
//! only once its size and checksums match: an interrupted or corrupt download never sits under
//! the final name.
//!
//! ```no_run
//! use dl_data::{download_dataset, resolve_data_dir, DownloadOptions};
//! let report = download_dataset("mnist", &resolve_data_dir(None), &DownloadOptions::default())?;
//! println!("{} files downloaded", report.downloaded());
//! # Ok::<(), dl_data::DataError>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{DataError, Result};
use crate::manifest::{is_http_url, verify_file, DatasetEntry, FileEntry, Manifest};

/// Where a file can be fetched from, besides the manifest's URLs (`--mirror`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local folder, tried as `<folder>/<key>/<file>` and then `<folder>/<file>`: works
    /// offline, e.g. with a copy of the datasets made on another machine.
    Folder(PathBuf),
    /// An `http://` or `https://` base URL, tried as `<base>/<key>/<file>` and then
    /// `<base>/<file>`.
    Url(String),
}

impl Source {
    /// `http://…` or `https://…` is a URL, `file://PATH` and anything else a folder.
    pub fn parse(text: &str) -> Source {
        if is_http_url(text) {
            Source::Url(text.to_string())
        } else {
            Source::Folder(PathBuf::from(text.strip_prefix("file://").unwrap_or(text)))
        }
    }
}

impl std::str::FromStr for Source {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Source::parse(text))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Folder(folder) => write!(f, "{}", folder.display()),
            Source::Url(url) => f.write_str(url),
        }
    }
}

/// How [`download_dataset`] goes about it.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Used instead of the manifest's URLs when given.
    pub mirror: Option<Source>,
    /// Download again even the files already present and verified.
    pub force: bool,
    /// How many times a source whose connection dropped is tried again before the next one.
    pub retries: u32,
    /// The wait before the first retry; each further retry waits twice as long (at most 60 s).
    pub retry_delay: Duration,
    /// Show progress on stderr: a bar when stderr is a terminal, else one line per file.
    pub progress: bool,
}

impl Default for DownloadOptions {
    /// No mirror, no force, 3 retries from 1 s, progress shown.
    fn default() -> Self {
        Self {
            mirror: None,
            force: false,
            retries: 3,
            retry_delay: Duration::from_secs(1),
            progress: true,
        }
    }
}

/// What [`download_dataset`] did, file by file.
#[derive(Debug, Clone)]
pub struct DownloadReport {
    /// The dataset's key.
    pub key: String,
    /// The folder holding its files.
    pub directory: PathBuf,
    /// One entry per file, in the manifest's order.
    pub files: Vec<FileReport>,
}

impl DownloadReport {
    /// How many files were fetched.
    pub fn downloaded(&self) -> usize {
        self.files
            .iter()
            .filter(|file| matches!(file.outcome, FileOutcome::Downloaded { .. }))
            .count()
    }

    /// How many files were already present and verified.
    pub fn already_present(&self) -> usize {
        self.files.len() - self.downloaded()
    }
}

/// What happened to one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file's name.
    pub name: String,
    /// Where it now is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The checksums it was verified with, e.g. "SHA-256 and MD5".
    pub checksums: &'static str,
    /// Kept or fetched.
    pub outcome: FileOutcome,
}

/// Whether a file was kept or fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// A copy matching the manifest was already there; nothing was written.
    AlreadyPresent,
    /// Fetched and verified.
    Downloaded {
        /// The URL or local path it came from.
        source: String,
        /// The attempts that failed before, with what happened (retries, other sources).
        failed_attempts: Vec<String>,
    },
}

/// Downloads dataset `key` of the project's manifest into `data_dir/<key>/`, verifying every
/// file; see the module's documentation for the order of sources and retries.
pub fn download_dataset(
    key: &str,
    data_dir: &Path,
    options: &DownloadOptions,
) -> Result<DownloadReport> {
    download_dataset_from(Manifest::builtin(), key, data_dir, options)
}

/// [`download_dataset`] with another manifest than the project's (tests, forks).
pub fn download_dataset_from(
    manifest: &Manifest,
    key: &str,
    data_dir: &Path,
    options: &DownloadOptions,
) -> Result<DownloadReport> {
    let dataset = manifest.dataset(key)?;
    let directory = dataset.directory(data_dir);
    let mut files = Vec::with_capacity(dataset.files.len());
    for entry in &dataset.files {
        let path = directory.join(&entry.name);
        let mut failed_attempts = Vec::new();
        if !options.force && path.exists() {
            match verify_file(&path, entry) {
                Ok(()) => {
                    files.push(report(entry, path, FileOutcome::AlreadyPresent));
                    continue;
                }
                Err(error) => failed_attempts.push(format!("existing copy rejected: {error}")),
            }
        }
        let source = fetch_file(dataset, entry, &directory, options, &mut failed_attempts)?;
        let outcome = FileOutcome::Downloaded {
            source,
            failed_attempts,
        };
        files.push(report(entry, path, outcome));
    }
    Ok(DownloadReport {
        key: key.to_string(),
        directory,
        files,
    })
}

/// The folder of dataset `key`, downloading what is missing first. Cheap when the data is
/// there: present files are only checked for their size (the full checksums are verified when
/// downloading, and by `cargo xtask download-data`).
pub fn ensure_dataset(key: &str, data_dir: &Path, options: &DownloadOptions) -> Result<PathBuf> {
    ensure_dataset_from(Manifest::builtin(), key, data_dir, options)
}

/// [`ensure_dataset`] with another manifest than the project's.
pub fn ensure_dataset_from(
    manifest: &Manifest,
    key: &str,
    data_dir: &Path,
    options: &DownloadOptions,
) -> Result<PathBuf> {
    let dataset = manifest.dataset(key)?;
    let directory = dataset.directory(data_dir);
    let complete = dataset.files.iter().all(|entry| {
        std::fs::metadata(directory.join(&entry.name))
            .is_ok_and(|metadata| metadata.is_file() && metadata.len() == entry.size)
    });
    if !complete || options.force {
        download_dataset_from(manifest, key, data_dir, options)?;
    }
    Ok(directory)
}

fn report(entry: &FileEntry, path: PathBuf, outcome: FileOutcome) -> FileReport {
    FileReport {
        name: entry.name.clone(),
        path,
        size: entry.size,
        checksums: entry.checksum_names(),
        outcome,
    }
}

/// Why one attempt failed, and so what to do next.
enum Failure {
    /// Worth trying the same source again (connection dropped, body cut short).
    Retry(String),
    /// This source will not do (HTTP error, wrong content, unreachable host).
    NextSource(String),
    /// Nothing else will work either (cannot write the data directory).
    Fatal(DataError),
}

/// Tries every source for one file; returns the one that worked.
fn fetch_file(
    dataset: &DatasetEntry,
    entry: &FileEntry,
    directory: &Path,
    options: &DownloadOptions,
    failed_attempts: &mut Vec<String>,
) -> Result<String> {
    let sources: Vec<Source> = match &options.mirror {
        // A URL mirror laid out like the data directory (BASE/mnist/…, BASE/fashion-mnist/…,
        // whose files share names) or holding the files themselves: both are tried, as a
        // folder mirror's two places are.
        Some(Source::Url(base)) => vec![
            Source::Url(format!("{}/{}/", base.trim_end_matches('/'), dataset.key)),
            Source::Url(base.clone()),
        ],
        Some(mirror) => vec![mirror.clone()],
        None => dataset
            .urls
            .iter()
            .map(|url| Source::Url(url.clone()))
            .collect(),
    };
    std::fs::create_dir_all(directory).map_err(|error| not_writable(directory, error))?;
    let target = directory.join(&entry.name);
    for source in &sources {
        for attempt in 0..=options.retries {
            if attempt > 0 {
                std::thread::sleep(back_off(options.retry_delay, attempt));
            }
            // A fresh hidden temporary file per attempt, deleted when dropped unless persisted.
            let prefix = format!(".{}.", entry.name);
            let mut builder = tempfile::Builder::new();
            builder.prefix(&prefix).suffix(".part");
            #[cfg(unix)]
            {
                // Readable like any file the user creates (umask applies), not tempfile's 0600.
                use std::os::unix::fs::PermissionsExt;
                builder.permissions(std::fs::Permissions::from_mode(0o666));
            }
            let mut temporary = builder
                .tempfile_in(directory)
                .map_err(|error| not_writable(directory, error))?;
            let output = Output {
                path: temporary.path().to_path_buf(),
                file: temporary.as_file_mut(),
            };
            let (origin, outcome) = fetch_once(source, &dataset.key, entry, output, options);
            let failure = match outcome.and_then(|()| check(temporary.path(), entry)) {
                Ok(()) => {
                    temporary
                        .persist(&target)
                        .map_err(|error| DataError::io(&target, error.error))?;
                    if options.progress {
                        let name = &entry.name;
                        eprintln!(
                            "  {}/{name}: verified ({})",
                            dataset.key,
                            entry.checksum_names()
                        );
                    }
                    return Ok(origin);
                }
                Err(failure) => failure,
            };
            let (message, retry) = match failure {
                Failure::Fatal(error) => return Err(error),
                Failure::Retry(message) => (message, attempt < options.retries),
                Failure::NextSource(message) => (message, false),
            };
            let note = if retry {
                format!(
                    " (attempt {} of {}, retrying in {:?})",
                    attempt + 1,
                    options.retries + 1,
                    back_off(options.retry_delay, attempt + 1)
                )
            } else {
                String::new()
            };
            let line = format!("{origin}: {message}{note}");
            if options.progress {
                eprintln!("  {line}");
            }
            failed_attempts.push(line);
            if !retry {
                break;
            }
        }
    }
    Err(DataError::Download {
        file: format!("{}/{}", dataset.key, entry.name),
        summary: match sources.len() {
            1 => "its only source failed".to_string(),
            count => format!("all {count} sources failed"),
        },
        attempts: failed_attempts.clone(),
    })
}

/// Verifies a completed transfer. A short file may be a body cut short without a
/// Content-Length: worth another try; any other difference means this source serves a bad copy.
fn check(path: &Path, entry: &FileEntry) -> std::result::Result<(), Failure> {
    match verify_file(path, entry) {
        Ok(()) => Ok(()),
        Err(DataError::Checksum {
            kind: "size",
            expected,
            actual,
            ..
        }) => {
            let message = format!("size mismatch (expected {expected} bytes, got {actual})");
            if actual
                .parse::<u64>()
                .is_ok_and(|actual| actual < entry.size)
            {
                Err(Failure::Retry(message))
            } else {
                Err(Failure::NextSource(message))
            }
        }
        Err(DataError::Checksum {
            kind,
            expected,
            actual,
            ..
        }) => Err(Failure::NextSource(format!(
            "{kind} mismatch (expected {expected}, got {actual}); not kept"
        ))),
        Err(error) => Err(Failure::Fatal(error)),
    }
}

/// One attempt at one source: returns the URL or path tried, and how it went.
fn fetch_once(
    source: &Source,
    key: &str,
    entry: &FileEntry,
    output: Output<'_>,
    options: &DownloadOptions,
) -> (String, std::result::Result<(), Failure>) {
    match source {
        Source::Folder(folder) => {
            let candidates = [folder.join(key).join(&entry.name), folder.join(&entry.name)];
            let Some(found) = candidates.iter().find(|path| path.is_file()) else {
                let tried = candidates[0].display().to_string();
                let message = format!("not found (nor {})", candidates[1].display());
                return (tried, Err(Failure::NextSource(message)));
            };
            let origin = found.display().to_string();
            let outcome = match File::open(found) {
                Ok(input) => copy(input, output, key, entry, &origin, options).map_err(|failure| {
                    match failure {
                        // A local file that cannot be read will not get better by retrying.
                        Failure::Retry(message) => Failure::NextSource(message),
                        other => other,
                    }
                }),
                Err(error) => Err(Failure::NextSource(error.to_string())),
            };
            (origin, outcome)
        }
        Source::Url(base) => {
            let url = if base.ends_with('/') {
                format!("{base}{}", entry.name)
            } else {
                format!("{base}/{}", entry.name)
            };
            let outcome = get(&url).and_then(|body| copy(body, output, key, entry, &url, options));
            (url, outcome)
        }
    }
}

/// Sends the request; an error status or an unreachable host moves on to the next source.
fn get(url: &str) -> std::result::Result<impl Read, Failure> {
    let mut config = ureq::Agent::config_builder()
        .user_agent(concat!("dl-practice/", env!("CARGO_PKG_VERSION")))
        // Ask for the bytes as published: no transparent gzip of an already gzipped file.
        .accept_encoding("")
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)));
    if is_loopback(url) {
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config.build().into();
    match agent.get(url).call() {
        Ok(response) => Ok(response.into_body().into_reader()),
        Err(ureq::Error::StatusCode(code)) => {
            let reason = ureq::http::StatusCode::from_u16(code)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or("");
            Err(Failure::NextSource(
                format!("HTTP {code} {reason}").trim_end().to_string(),
            ))
        }
        Err(error @ (ureq::Error::Timeout(_) | ureq::Error::Protocol(_))) => {
            Err(Failure::Retry(error.to_string()))
        }
        Err(ureq::Error::Io(error)) if dropped(&error) => {
            Err(Failure::Retry(format!("connection dropped: {error}")))
        }
        Err(error) => Err(Failure::NextSource(error.to_string())),
    }
}

/// The temporary file a transfer writes to.
struct Output<'a> {
    path: PathBuf,
    file: &'a mut File,
}

/// Copies `input` into `output`, showing progress. Read errors are dropped connections.
fn copy(
    mut input: impl Read,
    output: Output<'_>,
    key: &str,
    entry: &FileEntry,
    origin: &str,
    options: &DownloadOptions,
) -> std::result::Result<(), Failure> {
    let bar = progress_bar(
        &format!("{key}/{}", entry.name),
        entry.size,
        origin,
        options,
    );
    let mut buffer = vec![0; 1 << 16];
    let mut copied = 0u64;
    let result = loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                break Err(Failure::Retry(format!(
                    "connection dropped after {copied} of {} bytes: {error}",
                    entry.size
                )))
            }
        };
        if let Err(error) = output.file.write_all(&buffer[..read]) {
            break Err(Failure::Fatal(DataError::io(&output.path, error)));
        }
        copied += read as u64;
        if let Some(bar) = &bar {
            bar.set_position(copied);
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result?;
    output
        .file
        .flush()
        .map_err(|error| Failure::Fatal(DataError::io(&output.path, error)))
}

/// A byte bar on a terminal; a plain line otherwise; nothing when progress is off.
fn progress_bar(
    label: &str,
    size: u64,
    origin: &str,
    options: &DownloadOptions,
) -> Option<ProgressBar> {
    if !options.progress {
        return None;
    }
    if !std::io::stderr().is_terminal() {
        eprintln!("  {label}: fetching {origin} ({size} bytes)");
        return None;
    }
    let bar = ProgressBar::new(size).with_message(label.to_string());
    if let Ok(style) = ProgressStyle::with_template(
        "  {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}

/// The wait before retry number `retry` (1, 2…): `first`, then doubling, at most 60 s.
fn back_off(first: Duration, retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    first.saturating_mul(factor).min(Duration::from_secs(60))
}

fn dropped(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut
    )
}

/// Loopback URLs (a test server, a local mirror) never go through a proxy.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|host| rest.starts_with(host) && rest[host.len()..].starts_with([':', '/']))
}

fn not_writable(directory: &Path, error: std::io::Error) -> DataError {
    DataError::config(
        "data directory",
        format!(
            "cannot write to {} ({error}); pass --data-dir DIR (or set DL_DATA_DIR) to a writable directory",
            directory.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_the_first_delay_and_is_capped() {
        let first = Duration::from_millis(100);
        assert_eq!(back_off(first, 1), Duration::from_millis(100));
        assert_eq!(back_off(first, 2), Duration::from_millis(200));
        assert_eq!(back_off(first, 3), Duration::from_millis(400));
        assert_eq!(back_off(first, 40), Duration::from_secs(60));
    }

    #[test]
    fn sources_parse_urls_and_folders() {
        assert_eq!(
            Source::parse("https://a.org/mnist/"),
            Source::Url("https://a.org/mnist/".into())
        );
        assert_eq!(
            Source::parse("../shared"),
            Source::Folder("../shared".into())
        );
        assert_eq!(
            Source::parse("file:///data"),
            Source::Folder("/data".into())
        );
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback("http://127.0.0.1:8080/a"));
        assert!(is_loopback("http://localhost/a"));
        assert!(!is_loopback("http://localhost.example.org/a"));
        assert!(!is_loopback("https://127.0.0.10/a"));
    }
}
