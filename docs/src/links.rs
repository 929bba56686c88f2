//! Internal links that resolve: every relative link of a page names a file or folder of the
//! repository, and its `#anchor`, on a Markdown page, one of that page's headings. Links to the
//! web (`http:`, `https:`, `mailto:`) are not followed: the machines are offline.

use std::{
    collections::BTreeMap,
    path::{Component, Path, PathBuf},
};

use crate::{
    markdown::{heading_anchors, links},
    Problem, Result,
};

/// The links of `pages` (paths relative to `root`) that do not resolve.
pub fn check(root: &Path, pages: &[PathBuf]) -> Result<Vec<Problem>> {
    let mut anchors: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for page in pages {
        let text = crate::read(&root.join(page))?;
        for link in links(&text) {
            if is_external(&link.destination) {
                continue;
            }
            let (written, fragment) = match link.destination.split_once('#') {
                Some((written, fragment)) => (written, Some(fragment)),
                None => (link.destination.as_str(), None),
            };
            let problem = |message: String| Problem::new(page, link.line, message);
            let target = if written.is_empty() {
                Some(page.clone())
            } else {
                resolve(page, written)
            };
            let Some(target) = target else {
                if !is_shared(page, written) {
                    problems.push(problem(format!(
                        "{} points outside the repository",
                        link.destination
                    )));
                }
                continue;
            };
            if !root.join(&target).exists() {
                problems.push(problem(format!(
                    "{}: {} does not exist",
                    link.destination,
                    target.display()
                )));
                continue;
            }
            let Some(fragment) = fragment else {
                continue;
            };
            if target.extension().is_none_or(|extension| extension != "md") {
                continue;
            }
            if !anchors.contains_key(&target) {
                let text = crate::read(&root.join(&target))?;
                anchors.insert(target.clone(), heading_anchors(&text));
            }
            if !anchors[&target].iter().any(|anchor| anchor == fragment) {
                problems.push(problem(format!(
                    "{}: {} has no heading with the anchor #{fragment}",
                    link.destination,
                    target.display()
                )));
            }
        }
    }
    Ok(problems)
}

/// Whether `target` (from `page`) is in `../shared`, the folder of data, course and baselines
/// beside the clone: allowed, and not checked, since a clone may be read without it.
fn is_shared(page: &Path, target: &str) -> bool {
    let depth = page.components().count().saturating_sub(1);
    let climb = "../".repeat(depth + 1);
    target
        .strip_prefix(&climb)
        .is_some_and(|rest| rest.starts_with("shared/"))
}

/// Whether a link leaves the repository for the web.
fn is_external(destination: &str) -> bool {
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| destination.starts_with(scheme))
}

/// `target` read from the folder of `page`, as a path relative to the repository root; `None`
/// when it climbs above the root.
fn resolve(page: &Path, target: &str) -> Option<PathBuf> {
    let mut resolved = PathBuf::new();
    let folder = page.parent().unwrap_or(Path::new(""));
    for component in folder.join(target).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::ParentDir => {
                if !resolved.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_from_their_page_and_may_not_leave_the_repository() {
        assert_eq!(
            resolve(Path::new("docs/gan.md"), "../README.md"),
            Some(PathBuf::from("README.md"))
        );
        assert_eq!(
            resolve(Path::new("docs/gan.md"), "./layers.md"),
            Some(PathBuf::from("docs/layers.md"))
        );
        assert_eq!(resolve(Path::new("docs/gan.md"), "../../shared/x"), None);
        assert!(is_shared(
            Path::new("docs/gan.md"),
            "../../shared/bench/x.py"
        ));
        assert!(is_shared(Path::new("README.md"), "../shared/datasets"));
        assert!(!is_shared(Path::new("docs/gan.md"), "../../other/x"));
        assert_eq!(resolve(Path::new("README.md"), "/etc/passwd"), None);
        assert!(is_external("https://github.com/huggingface/candle"));
        assert!(!is_external("layers.md#dense"));
    }
}
