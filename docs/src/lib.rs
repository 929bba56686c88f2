//! The course as a book, checked (every chapter of the column, 1 to 8 and the appendix; the
//! contents are `docs/README.md`).
//!
//! The chapters are plain Markdown, so that they read the same on GitHub, in an editor and in
//! `cargo doc`; this crate keeps them honest, as d2l.ai does for its notebooks:
//!
//! - every ```` ```rust ```` block of `README.md` and `docs/*.md` is compiled and run as a doctest
//!   of this crate (`cargo test -p dl-book --doc`); a block without `fn main` runs inside one that
//!   returns `Result<(), Box<dyn Error>>`, so it may use `?`;
//! - a block under `<!-- excerpt: PATH#ANCHOR -->` is not compiled on its own but must equal the
//!   source it copies ([`excerpt`]), which the workspace compiles and tests;
//! - every relative link resolves, anchors included ([`links`]), and every chapter is listed
//!   in the contents ([`unlisted_pages`]).
//!
//! `cargo xtask docs --sync` rewrites the excerpts after the source changed; `cargo test -p
//! dl-book` fails, naming the page and line, until it has.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
};

pub mod excerpt;
pub mod links;
pub mod markdown;

/// What can go wrong reading the book.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    /// A page or a source file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An excerpt names an anchor its source file does not have.
    #[error("{}: no `ANCHOR: {anchor}` … `ANCHOR_END: {anchor}` comments; add them around the lines to show", path.display())]
    MissingAnchor {
        /// The source file.
        path: PathBuf,
        /// The anchor.
        anchor: String,
    },
    /// An excerpt inside a list item (indented), which `sync` cannot rewrite.
    #[error("{}:{line}: an excerpt must be a block of its own, not indented in a list", path.display())]
    IndentedExcerpt {
        /// The page.
        path: PathBuf,
        /// The line of its fence.
        line: usize,
    },
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, BookError>;

/// Something wrong on a page, at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The page, relative to the repository root.
    pub page: PathBuf,
    /// The line, from 1.
    pub line: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl Problem {
    /// A problem of `page` at `line`.
    pub fn new(page: &Path, line: usize, message: String) -> Self {
        Self {
            page: page.to_path_buf(),
            line,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}:{}: {}",
            self.page.display(),
            self.line,
            self.message
        )
    }
}

/// The repository root (this crate lives in its `docs/`).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The book's pages, relative to `root`: `README.md`, then `docs/*.md` by name.
pub fn pages(root: &Path) -> Result<Vec<PathBuf>> {
    let folder = root.join("docs");
    let entries = fs::read_dir(&folder).map_err(|source| BookError::Read {
        path: folder.clone(),
        source,
    })?;
    let mut chapters: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .filter_map(|path| path.file_name().map(|name| Path::new("docs").join(name)))
        .collect();
    chapters.sort();
    let mut all = vec![PathBuf::from("README.md")];
    all.extend(chapters);
    Ok(all)
}

/// The pages of `docs/` that the contents, `docs/README.md`, do not link to.
pub fn unlisted_pages(root: &Path) -> Result<Vec<PathBuf>> {
    let contents = read(&root.join("docs/README.md"))?;
    let listed: Vec<String> = markdown::links(&contents)
        .into_iter()
        .map(|link| {
            link.destination
                .split('#')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    Ok(pages(root)?
        .into_iter()
        .filter(|page| page.starts_with("docs") && !page.ends_with("README.md"))
        .filter(|page| {
            let name = page.file_name().and_then(|name| name.to_str());
            !listed.iter().any(|link| Some(link.as_str()) == name)
        })
        .collect())
}

/// Reads a file as text.
pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| BookError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `text` to `path` through a temporary file beside it and a rename, so that a crash
/// leaves the old page or the new one, never half of one.
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let temporary = path.with_extension("md.tmp");
    let failed = |source| BookError::Read {
        path: path.to_path_buf(),
        source,
    };
    fs::write(&temporary, text).map_err(failed)?;
    fs::rename(&temporary, path).map_err(failed)
}

// The chapters' Rust blocks, as doctests (generated by build.rs).
#[cfg(doctest)]
include!(concat!(env!("OUT_DIR"), "/chapters.rs"));
