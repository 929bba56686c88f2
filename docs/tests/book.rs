//! The book as it is: every excerpt equal to its source, every link resolved, every chapter in
//! the contents. And the checks themselves, on a small made-up repository: they find a stale
//! excerpt, a missing anchor and a broken link, and `sync` repairs the excerpt.

use std::{fs, path::Path};

use dl_book::{excerpt, links, pages, repository_root, unlisted_pages, Problem};

fn report(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_excerpt_equals_its_source() {
    let root = repository_root();
    let mut problems = Vec::new();
    for page in pages(&root).unwrap() {
        problems.extend(excerpt::check(&root, &page).unwrap());
    }
    assert!(problems.is_empty(), "{}", report(&problems));
}

#[test]
fn every_link_resolves() {
    let root = repository_root();
    let problems = links::check(&root, &pages(&root).unwrap()).unwrap();
    assert!(problems.is_empty(), "{}", report(&problems));
}

#[test]
fn every_chapter_is_in_the_contents() {
    let unlisted = unlisted_pages(&repository_root()).unwrap();
    assert!(
        unlisted.is_empty(),
        "not linked from docs/README.md: {unlisted:?}"
    );
}

#[test]
fn the_book_has_every_chapter_of_the_column() {
    let contents = fs::read_to_string(repository_root().join("docs/README.md")).unwrap();
    for chapter in [
        "背景介绍",
        "核心概念与联系",
        "梯度下降算法",
        "反向传播算法",
        "神经元模型",
        "激活函数",
        "图像分类",
        "文本生成",
        "实际应用场景",
        "工具和资源推荐",
        "未来发展趋势与挑战",
        "常见问题与解答",
    ] {
        assert!(contents.contains(chapter), "the contents lack {chapter}");
    }
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn the_checks_find_stale_excerpts_and_broken_links_and_sync_repairs_excerpts() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    write(
        root,
        "src/lib.rs",
        "pub fn add(a: i32, b: i32) -> i32 {\n    // ANCHOR: sum\n    a + b\n    // ANCHOR_END: sum\n}\n",
    );
    write(
        root,
        "README.md",
        "# Top\n\nSee [the chapter](docs/one.md#adding).\n",
    );
    let stale = "# One\n\n## Adding\n\n<!-- excerpt: src/lib.rs#sum -->\n```rust\na - b\n```\n\n<!-- excerpt: src/lib.rs#product -->\n```rust\n```\n\n[up](../README.md#top), [gone](two.md), [no anchor](#subtracting)\n";
    write(root, "docs/one.md", stale);
    let page = Path::new("docs/one.md");

    let problems = excerpt::check(root, page).unwrap();
    assert_eq!(problems.len(), 2, "{}", report(&problems));
    assert_eq!(problems[0].line, 6);
    assert!(problems[0].message.contains("differs from the source"));
    assert!(problems[1].message.contains("ANCHOR: product"));

    let broken = links::check(root, &pages(root).unwrap()).unwrap();
    let messages = report(&broken);
    assert_eq!(broken.len(), 2, "{messages}");
    assert!(
        messages.contains("docs/two.md does not exist"),
        "{messages}"
    );
    assert!(messages.contains("#subtracting"), "{messages}");

    // a missing anchor stops sync before anything is written
    assert!(excerpt::sync(root, page).is_err());
    assert_eq!(fs::read_to_string(root.join(page)).unwrap(), stale);

    let fixable = stale.replace("#product", "#sum");
    write(root, "docs/one.md", &fixable);
    assert_eq!(excerpt::sync(root, page).unwrap(), 2);
    let synced = fs::read_to_string(root.join(page)).unwrap();
    assert_eq!(synced.matches("```rust\na + b\n```").count(), 2, "{synced}");
    assert!(excerpt::check(root, page).unwrap().is_empty());
    assert_eq!(excerpt::sync(root, page).unwrap(), 0);
}
