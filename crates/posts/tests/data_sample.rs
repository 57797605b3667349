//! Sample-data generation and preprocessing: determinism, realism, the
//! thread order of the normalized files, and errors naming file and line.

use posts::models::{ContentItem, Engagements, ItemType, Platform};
use posts::raw::{self, PreprocessOptions};
use posts::sample::{self, SampleOptions};
use std::collections::{HashMap, HashSet};
use std::path::Path;

type R = Result<(), Box<dyn std::error::Error>>;

fn gen(dir: &Path, seed: u64, n: usize) -> Result<sample::SampleReport, sample::SampleError> {
    sample::generate(
        dir,
        &SampleOptions {
            seed,
            total_items: n,
        },
    )
}

fn read_all(dir: &Path) -> Result<HashMap<String, Vec<u8>>, std::io::Error> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path())?,
        );
    }
    Ok(out)
}

#[test]
fn same_seed_same_bytes_and_sizes() -> R {
    let (a, b, c) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let ra = gen(a.path(), 7, 3000)?;
    gen(b.path(), 7, 3000)?;
    gen(c.path(), 8, 3000)?;
    assert_eq!(ra.total(), 3000);
    assert_eq!(ra.files.len(), 4);
    let (fa, fb, fc) = (
        read_all(a.path())?,
        read_all(b.path())?,
        read_all(c.path())?,
    );
    assert_eq!(fa, fb, "same seed must give identical files");
    assert_ne!(fa, fc, "another seed must give other files");
    // Split close to facebook 11 : reddit 7.4 : twitter 1.25.
    let fb_share = (ra.facebook_posts + ra.facebook_comments) as f64 / 3000.0;
    assert!((fb_share - 0.56).abs() < 0.01, "{fb_share}");
    assert!(ra.facebook_comments > ra.facebook_posts && ra.reddit_comments > ra.reddit_posts);
    assert!(ra.replies > 0 && ra.tweets > ra.replies);
    Ok(())
}

#[test]
fn default_size_is_twenty_thousand() {
    assert_eq!(SampleOptions::default().total_items, 20_000);
}

fn preprocess(
    raw_dir: &Path,
    out: &Path,
    salt: &str,
) -> Result<Vec<raw::PlatformReport>, raw::RawError> {
    raw::preprocess(raw_dir, out, &PreprocessOptions { salt: salt.into() })
}

#[test]
fn preprocess_keeps_every_item_in_thread_order() -> R {
    let dir = tempfile::tempdir()?;
    let raw_dir = dir.path().join("raw");
    let out = dir.path().join("norm");
    let report = gen(&raw_dir, 3, 4000)?;
    let pre = preprocess(&raw_dir, &out, "pepper")?;
    assert_eq!(pre.len(), 3);
    let written: usize = pre.iter().map(|p| p.posts + p.comments).sum();
    assert_eq!(written, report.total(), "no item lost: {pre:?}");
    assert!(pre.iter().all(|p| p.skipped == 0));
    let mut ids = HashSet::new();
    for p in Platform::ALL {
        let items = raw::read_jsonl(&out.join(raw::normalized_file(p)))?;
        let mut current_post: Option<String> = None;
        let mut posts_seen = HashSet::new();
        for item in &items {
            assert!(ids.insert(item.id.clone()), "duplicate id {}", item.id);
            assert_eq!(item.id.len(), 64);
            let shape_ok = matches!(
                (p, &item.engagements),
                (Platform::Facebook, Engagements::Facebook(_))
                    | (Platform::Reddit, Engagements::Reddit(_))
                    | (Platform::Twitter, Engagements::Twitter(_))
            );
            assert!(shape_ok, "{p}: {:?}", item.engagements);
            match item.kind {
                ItemType::Post => {
                    current_post = Some(item.id.clone());
                    posts_seen.insert(item.id.clone());
                    assert!(item.post_id.is_none());
                    assert_eq!(item.title.is_some(), p == Platform::Reddit);
                }
                ItemType::Comment => {
                    // Comments follow their own post directly.
                    assert_eq!(item.post_id, current_post, "{p}: comment out of its thread");
                }
            }
        }
        // Engagement `comment` of posts counts the comments that follow (Facebook, Reddit).
        if p != Platform::Twitter {
            let mut counts: HashMap<&str, u64> = HashMap::new();
            for c in items.iter().filter(|i| i.kind == ItemType::Comment) {
                *counts
                    .entry(c.post_id.as_deref().unwrap_or(""))
                    .or_default() += 1;
            }
            for post in items.iter().filter(|i| i.kind == ItemType::Post) {
                assert_eq!(
                    post.engagements.comment(),
                    counts.get(post.id.as_str()).copied().unwrap_or(0)
                );
            }
        }
        // Reddit threads: a parent, when present, is a comment of the same thread.
        if p == Platform::Reddit {
            let by_id: HashMap<&str, &ContentItem> =
                items.iter().map(|i| (i.id.as_str(), i)).collect();
            let threaded = items.iter().filter(|i| i.parent_id.is_some()).count();
            assert!(threaded > 0);
            for i in items.iter().filter(|i| i.parent_id.is_some()) {
                let parent = by_id.get(i.parent_id.as_deref().unwrap_or("")).copied();
                assert_eq!(
                    parent.map(|p| (p.kind, p.post_id.clone())),
                    Some((ItemType::Comment, i.post_id.clone()))
                );
            }
        }
    }
    Ok(())
}

#[test]
fn ids_are_salted_and_stable() -> R {
    let dir = tempfile::tempdir()?;
    let raw_dir = dir.path().join("raw");
    gen(&raw_dir, 5, 600)?;
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    preprocess(&raw_dir, &a, "s1")?;
    preprocess(&raw_dir, &b, "s1")?;
    preprocess(&raw_dir, &c, "s2")?;
    let f = raw::normalized_file(Platform::Reddit);
    assert_eq!(std::fs::read(a.join(&f))?, std::fs::read(b.join(&f))?);
    let ia = raw::read_jsonl(&a.join(&f))?;
    let ic = raw::read_jsonl(&c.join(&f))?;
    assert_eq!(ia.len(), ic.len());
    assert_ne!(ia[0].id, ic[0].id);
    assert_ne!(ia[0].author_name_hash, ic[0].author_name_hash);
    assert_eq!(ia[0].text, ic[0].text);
    Ok(())
}

#[test]
fn text_reads_like_news_with_skewed_multiword_entities() -> R {
    let dir = tempfile::tempdir()?;
    let raw_dir = dir.path().join("raw");
    let out = dir.path().join("norm");
    gen(&raw_dir, 11, 20_000)?;
    preprocess(&raw_dir, &out, "x")?;
    let mut texts = Vec::new();
    for p in Platform::ALL {
        texts.extend(
            raw::read_jsonl(&out.join(raw::normalized_file(p)))?
                .into_iter()
                .map(|i| i.text),
        );
    }
    let names = [
        "Donald Trump",
        "Joe Biden",
        "New York City",
        "Federal Reserve",
        "Angela Merkel",
        "Supreme Court",
        "European Union",
        "Golden State Warriors",
        "Elon Musk",
        "Silicon Valley",
    ];
    let count = |n: &str| texts.iter().filter(|t| t.contains(n)).count();
    let counts: Vec<usize> = names.iter().map(|n| count(n)).collect();
    assert!(
        counts.iter().all(|&c| c > 0),
        "every entity appears: {counts:?}"
    );
    assert!(counts[0] > 10 * counts[4], "Zipf-like skew: {counts:?}");
    // Varied: most texts are distinct.
    let distinct: HashSet<&String> = texts.iter().collect();
    assert!(
        distinct.len() * 10 > texts.len() * 6,
        "{} of {}",
        distinct.len(),
        texts.len()
    );
    Ok(())
}

#[test]
fn malformed_input_names_file_and_line() -> R {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    std::fs::write(
        d.join(raw::REDDIT_CSV),
        "type,id,parent_id,author,created_utc,ups,downs,body,selftext,title\n\
         Post,abc,,u1,1698250280,5,0,,hello,Title\n\
         Post,abd,,u2,not-a-time,5,0,,hello,Title\n",
    )?;
    let e = preprocess(d, &d.join("o"), "s")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("reddit.csv:3:") && e.contains("created_utc"),
        "{e}"
    );

    std::fs::write(d.join(raw::REDDIT_CSV), "type,id\nPost,abc\n")?;
    let e = preprocess(d, &d.join("o"), "s")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("reddit.csv:1:") && e.contains("missing column `parent_id`"),
        "{e}"
    );

    std::fs::write(
        d.join(raw::REDDIT_CSV),
        "type,id,parent_id,author,created_utc,ups,downs,body,selftext,title\nPost,abc,,u1,1698250280,-5,0,,hi,T\n",
    )?;
    let e = preprocess(d, &d.join("o"), "s")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("reddit.csv:2:") && e.contains("`ups`"), "{e}");

    std::fs::remove_file(d.join(raw::REDDIT_CSV))?;
    std::fs::write(
        d.join(raw::TWITTER_JSONL),
        "{\"data\":{\"id\":\"1\",\"author_id\":\"9\",\"created_at\":\"2023-10-25T17:11:20.000Z\",\"text\":\"hi\"}}\n\n{\"data\": oops}\n",
    )?;
    let e = preprocess(d, &d.join("o"), "s")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("twitter.jsonl:3:"), "{e}");

    let empty = tempfile::tempdir()?;
    let e = preprocess(empty.path(), &d.join("o"), "s")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("no raw input found"), "{e}");
    Ok(())
}
