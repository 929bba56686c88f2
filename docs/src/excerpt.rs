//! Code excerpts that cannot drift: a block under `<!-- excerpt: PATH#ANCHOR -->` must equal the
//! lines of PATH between `// ANCHOR: name` and `// ANCHOR_END: name` (mdBook's markers, kept in
//! the source), dedented. `check` reports the blocks that differ; `sync` rewrites them.

use std::{fs, path::Path};

use crate::{
    markdown::{code_blocks, CodeBlock, ExcerptMarker},
    BookError, Problem, Result,
};

/// The lines of `source` between the markers `ANCHOR: anchor` and `ANCHOR_END: anchor`, without
/// the markers of other anchors inside, dedented by their common indentation, each ending in a
/// newline; `None` when the markers are missing or out of order.
pub fn anchored_region(source: &str, anchor: &str) -> Option<String> {
    let start_marker = format!("ANCHOR: {anchor}");
    let end_marker = format!("ANCHOR_END: {anchor}");
    let lines: Vec<&str> = source.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.trim_end().ends_with(&start_marker))?;
    let end = start
        + lines[start..]
            .iter()
            .position(|line| line.trim_end().ends_with(&end_marker))?;
    // rustfmt may pull an end marker onto the line of a closing brace: keep the code before it
    let last = lines[end]
        .split_once("//")
        .map(|(code, _)| code.trim_end())
        .filter(|code| !code.trim().is_empty());
    let region: Vec<&str> = lines[start + 1..end]
        .iter()
        .copied()
        .filter(|line| !line.contains("ANCHOR: ") && !line.contains("ANCHOR_END: "))
        .chain(last)
        .collect();
    let indent = region
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    Some(
        region
            .iter()
            .map(|line| format!("{}\n", line.get(indent..).unwrap_or("").trim_end()))
            .collect(),
    )
}

/// What the excerpt under `marker` should contain, read from the repository at `root`.
pub fn expected(root: &Path, marker: &ExcerptMarker) -> Result<String> {
    let path = root.join(&marker.path);
    let source = fs::read_to_string(&path).map_err(|source| BookError::Read {
        path: path.clone(),
        source,
    })?;
    anchored_region(&source, &marker.anchor).ok_or_else(|| BookError::MissingAnchor {
        path,
        anchor: marker.anchor.clone(),
    })
}

/// The excerpts of `page` (a path relative to `root`) that differ from their source, or whose
/// source or anchor is missing.
pub fn check(root: &Path, page: &Path) -> Result<Vec<Problem>> {
    let text = crate::read(&root.join(page))?;
    let mut problems = Vec::new();
    for block in code_blocks(&text) {
        let Some(marker) = &block.excerpt else {
            continue;
        };
        let problem = |message: String| Problem::new(page, block.line, message);
        match expected(root, marker) {
            Ok(code) if code == text[block.code_range.clone()] => {}
            Ok(_) => problems.push(problem(format!(
                "the excerpt of {}#{} differs from the source; run `cargo xtask docs --sync`",
                marker.path, marker.anchor
            ))),
            Err(error) => problems.push(problem(error.to_string())),
        }
    }
    Ok(problems)
}

/// Rewrites the excerpts of `page` (relative to `root`) from their sources, through a temporary
/// file and a rename; returns how many blocks changed. A missing source or anchor is an error
/// and nothing is written.
pub fn sync(root: &Path, page: &Path) -> Result<usize> {
    let path = root.join(page);
    let text = crate::read(&path)?;
    let mut rewritten = String::with_capacity(text.len());
    let mut copied_up_to = 0;
    let mut changed = 0;
    for block in code_blocks(&text) {
        let Some(marker) = &block.excerpt else {
            continue;
        };
        let code = expected(root, marker)?;
        if !is_top_level(&text, &block) {
            return Err(BookError::IndentedExcerpt {
                path: page.to_path_buf(),
                line: block.line,
            });
        }
        if code != text[block.code_range.clone()] {
            changed += 1;
        }
        rewritten.push_str(&text[copied_up_to..block.code_range.start]);
        rewritten.push_str(&code);
        copied_up_to = block.code_range.end;
    }
    rewritten.push_str(&text[copied_up_to..]);
    if changed > 0 {
        crate::write_atomically(&path, &rewritten)?;
    }
    Ok(changed)
}

/// Whether the block's fence starts its line (an excerpt inside a list item cannot be rewritten
/// without its indentation).
fn is_top_level(text: &str, block: &CodeBlock) -> bool {
    text.lines()
        .nth(block.line - 1)
        .is_some_and(|line| line.starts_with("```"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_dedented_and_nested_markers_are_dropped() {
        let source = "fn outer() {\n    // ANCHOR: body\n    let x = 1;\n    // ANCHOR: inner\n        let y = x;\n    // ANCHOR_END: inner\n    // ANCHOR_END: body\n}\n";
        assert_eq!(
            anchored_region(source, "body").unwrap(),
            "let x = 1;\n    let y = x;\n"
        );
        assert_eq!(anchored_region(source, "inner").unwrap(), "let y = x;\n");
        assert_eq!(anchored_region(source, "missing"), None);
        // an end marker that rustfmt moved behind a closing brace keeps the brace
        assert_eq!(
            anchored_region("match x {\n    // ANCHOR: arm\n    1 => {\n        one()\n    } // ANCHOR_END: arm\n}\n", "arm").unwrap(),
            "1 => {\n    one()\n}\n"
        );
        // an end before its start is no region
        assert_eq!(
            anchored_region("// ANCHOR_END: a\n// ANCHOR: a\n", "a"),
            None
        );
    }
}
