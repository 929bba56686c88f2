//! A Markdown page as the book's checks read it: its fenced code blocks (with the excerpt marker
//! before each), its links and its headings' anchors, parsed by pulldown-cmark (CommonMark).
//!
//! The build script includes this file too, to turn the Rust blocks into doctests.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

/// A fenced code block of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeBlock {
    /// The info string's first word (`rust` for "```rust,no_run"); empty without one.
    pub language: String,
    /// The info string's comma-separated words after the first (`no_run`).
    pub attributes: Vec<String>,
    /// The code, as CommonMark reads it (a list item's indentation removed).
    pub code: String,
    /// Where the code lies in the page's text, between the fences (valid for blocks that are
    /// not indented: the ones an excerpt may fill).
    pub code_range: Range<usize>,
    /// The line of the opening fence, from 1.
    pub line: usize,
    /// The source this block copies, from an `<!-- excerpt: PATH#ANCHOR -->` line right above.
    pub excerpt: Option<ExcerptMarker>,
}

/// `<!-- excerpt: PATH#ANCHOR -->`: the block below is the region of PATH (from the repository
/// root) between the comments `ANCHOR: name` and `ANCHOR_END: name` (mdBook's syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcerptMarker {
    /// The source file, relative to the repository root.
    pub path: String,
    /// The anchor's name.
    pub anchor: String,
}

/// A link or image of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its destination as written.
    pub destination: String,
    /// The line it starts on, from 1.
    pub line: usize,
}

/// The opening of an excerpt marker.
const MARKER_START: &str = "<!-- excerpt:";

/// The line (from 1) of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The fenced code blocks of `text`, in order.
pub fn code_blocks(text: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Range<usize>, String)> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                open = Some((info.to_string(), range, String::new()));
            }
            Event::Text(code) => {
                if let Some((_, _, collected)) = open.as_mut() {
                    collected.push_str(&code);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((info, range, code)) = open.take() {
                    blocks.push(block(text, &info, range, code));
                }
            }
            _ => {}
        }
    }
    blocks
}

fn block(text: &str, info: &str, range: Range<usize>, code: String) -> CodeBlock {
    let mut words = info.split(',').map(str::trim);
    let language = words.next().unwrap_or_default().to_string();
    let attributes = words
        .filter(|word| !word.is_empty())
        .map(String::from)
        .collect();
    let whole = &text[range.clone()];
    let start = range.start + whole.find('\n').map_or(whole.len(), |newline| newline + 1);
    let body = text[start..range.end].trim_end_matches(['\n', ' ']);
    let end = start + body.rfind('\n').map_or(0, |newline| newline + 1);
    CodeBlock {
        language,
        attributes,
        code,
        code_range: start..end.max(start),
        line: line_of(text, range.start),
        excerpt: marker_above(text, range.start),
    }
}

/// The excerpt marker on the last non-blank line before `offset`, if that line is one.
fn marker_above(text: &str, offset: usize) -> Option<ExcerptMarker> {
    let line = text[..offset]
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())?
        .trim();
    let inner = line.strip_prefix(MARKER_START)?.strip_suffix("-->")?.trim();
    let (path, anchor) = inner.split_once('#')?;
    Some(ExcerptMarker {
        path: path.trim().to_string(),
        anchor: anchor.trim().to_string(),
    })
}

/// The links and images of `text`, in order.
pub fn links(text: &str) -> Vec<Link> {
    Parser::new(text)
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => Some(Link {
                destination: dest_url.to_string(),
                line: line_of(text, range.start),
            }),
            _ => None,
        })
        .collect()
}

/// The anchors GitHub gives the headings of `text` (`## 2.1 Neural networks` →
/// `21-neural-networks`; a repeated heading gets `-1`, `-2`, ...).
pub fn heading_anchors(text: &str) -> Vec<String> {
    let mut anchors: Vec<String> = Vec::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(text) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(words) | Event::Code(words) => {
                if let Some(collected) = heading.as_mut() {
                    collected.push_str(&words);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(words) = heading.take() {
                    let base = slug(&words);
                    let repeats = anchors
                        .iter()
                        .filter(|anchor| {
                            **anchor == base
                                || anchor
                                    .strip_prefix(&base)
                                    .and_then(|rest| rest.strip_prefix('-'))
                                    .is_some_and(|count| count.parse::<usize>().is_ok())
                        })
                        .count();
                    anchors.push(if repeats == 0 {
                        base
                    } else {
                        format!("{base}-{repeats}")
                    });
                }
            }
            _ => {}
        }
    }
    anchors
}

/// GitHub's anchor for a heading: lower case, letters, digits, `-` and `_` kept, spaces turned
/// into `-`, everything else dropped.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|character| match character {
            ' ' => Some('-'),
            '-' | '_' => Some(character),
            _ if character.is_alphanumeric() => Some(character),
            _ => None,
        })
        .collect()
}
