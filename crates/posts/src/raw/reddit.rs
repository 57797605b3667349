//! Reddit raw format: one CSV of posts and comments.
//!
//! Needs `type` (`Post`/`Comment`), `id`, `parent_id`, `author`,
//! `created_utc` (unix seconds or a datetime), `ups`, `downs`, `body`,
//! `selftext`, `title`; reads `total_awards_received` and `url` if present.
//!
//! Mapping: a post's text is its selftext (its title when it has none, as for
//! link posts) and it keeps its title; `comment` counts the post's whole
//! thread (a comment's: its direct replies); a comment's `post_id` is its
//! thread's post and `parent_id` the comment it answers (none when it answers
//! the post). `parent_id` may be prefixed (`t3_`, `t1_`) or bare.

use super::{
    count, csv_err, csv_reader, line_of, order_threads, Columns, Hasher, Loaded, RawError,
};
use crate::models::datetime::parse_datetime;
use crate::models::{
    check_http_url, ContentItem, Engagements, ItemType, Platform, RedditEngagements,
};
use std::collections::HashMap;
use std::path::Path;

const P: Platform = Platform::Reddit;

struct Row {
    raw_id: String,
    parent: String,
    item: ContentItem,
}

/// Loads a Reddit CSV; comments whose thread is not in the file are skipped.
///
/// # Errors
/// [`RawError`] naming the file and line of malformed input.
pub fn load(path: &Path, hasher: &Hasher) -> Result<Loaded, RawError> {
    let mut rdr = csv_reader(path)?;
    let headers = rdr.headers().map_err(|e| csv_err(path, e))?.clone();
    let required = [
        "type",
        "id",
        "parent_id",
        "author",
        "created_utc",
        "ups",
        "downs",
        "body",
        "selftext",
        "title",
    ];
    let cols = Columns::new(path, &headers, &required, &["total_awards_received", "url"])?;
    let mut rows: Vec<Row> = Vec::new();
    let mut skipped = 0;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_err(path, e))?;
        let line = line_of(&rec);
        let kind = match cols.get(&rec, "type").trim().to_ascii_lowercase().as_str() {
            "post" | "submission" => ItemType::Post,
            "comment" => ItemType::Comment,
            other => {
                return Err(RawError::new(
                    path,
                    Some(line),
                    format_args!("column `type`: expected Post or Comment, got `{other}`"),
                ))
            }
        };
        let raw_id = cols.get(&rec, "id").trim();
        if raw_id.is_empty() {
            return Err(RawError::new(path, Some(line), "empty `id`"));
        }
        let created_at = parse_datetime(cols.get(&rec, "created_utc")).map_err(|e| {
            RawError::new(path, Some(line), format_args!("column `created_utc`: {e}"))
        })?;
        let (title, text) = match kind {
            ItemType::Post => {
                let title = cols.get(&rec, "title").trim();
                let selftext = cols.get(&rec, "selftext").trim();
                let text = if selftext.is_empty() { title } else { selftext };
                (Some(title.to_string()), text)
            }
            ItemType::Comment => (None, cols.get(&rec, "body").trim()),
        };
        if text.is_empty() {
            skipped += 1;
            continue;
        }
        let url = cols.get(&rec, "url").trim();
        let embedded = (kind == ItemType::Post
            && !url.contains("reddit.com/r/")
            && check_http_url(url).is_ok())
        .then(|| vec![url.to_string()]);
        let engagements = RedditEngagements {
            upvote: count(path, line, "ups", cols.get(&rec, "ups"))?,
            downvote: count(path, line, "downs", cols.get(&rec, "downs"))?,
            comment: 0,
            award: count(
                path,
                line,
                "total_awards_received",
                cols.get(&rec, "total_awards_received"),
            )?,
        };
        rows.push(Row {
            raw_id: raw_id.to_string(),
            parent: cols.get(&rec, "parent_id").trim().to_string(),
            item: ContentItem {
                id: hasher.item_id(P, raw_id),
                post_id: None,
                parent_id: None,
                title,
                text: text.to_string(),
                author_name_hash: hasher.author(P, cols.get(&rec, "author").trim()),
                kind,
                embedded_urls: embedded,
                created_at,
                engagements: Engagements::Reddit(engagements),
            },
        });
    }

    // Resolve each comment's parent and thread root.
    let posts: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.item.kind == ItemType::Post)
        .map(|(i, r)| (r.raw_id.as_str(), i))
        .collect();
    let comments: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.item.kind == ItemType::Comment)
        .map(|(i, r)| (r.raw_id.as_str(), i))
        .collect();
    enum Parent {
        Post(usize),
        Comment(usize),
        Unknown,
    }
    let parent_of = |r: &Row| -> Parent {
        let p = r.parent.as_str();
        let (post_pref, bare) = match p.split_once('_') {
            Some(("t3", id)) => (Some(true), id),
            Some(("t1", id)) => (Some(false), id),
            _ => (None, p),
        };
        match post_pref {
            Some(true) => posts
                .get(bare)
                .map_or(Parent::Unknown, |&i| Parent::Post(i)),
            Some(false) => comments
                .get(bare)
                .map_or(Parent::Unknown, |&i| Parent::Comment(i)),
            None => match (posts.get(bare), comments.get(bare)) {
                (Some(&i), _) => Parent::Post(i),
                (None, Some(&i)) => Parent::Comment(i),
                _ => Parent::Unknown,
            },
        }
    };
    let mut root: Vec<Option<usize>> = vec![None; rows.len()];
    let mut direct_parent: Vec<Option<usize>> = vec![None; rows.len()];
    for (i, r) in rows.iter().enumerate() {
        if r.item.kind == ItemType::Post {
            continue;
        }
        if let Parent::Comment(p) = parent_of(r) {
            direct_parent[i] = Some(p);
        }
        // Walk up to the post (bounded, in case of a cycle in bad data).
        let mut cur = i;
        for _ in 0..10_000 {
            match parent_of(&rows[cur]) {
                Parent::Post(p) => {
                    root[i] = Some(p);
                    break;
                }
                Parent::Comment(c) if c != cur => cur = c,
                _ => break,
            }
        }
    }
    let mut thread_size = vec![0u64; rows.len()];
    let mut replies = vec![0u64; rows.len()];
    for i in 0..rows.len() {
        if let Some(p) = root[i] {
            thread_size[p] += 1;
        }
        if let (Some(p), Some(_)) = (direct_parent[i], root[i]) {
            replies[p] += 1;
        }
    }
    let post_ids: Vec<String> = rows.iter().map(|r| r.item.id.clone()).collect();
    let mut out = Vec::with_capacity(rows.len());
    for (i, mut r) in rows.into_iter().enumerate() {
        if let Engagements::Reddit(e) = &mut r.item.engagements {
            e.comment = if r.item.kind == ItemType::Post {
                thread_size[i]
            } else {
                replies[i]
            };
        }
        if r.item.kind == ItemType::Comment {
            let Some(p) = root[i] else {
                skipped += 1;
                continue;
            };
            r.item.post_id = Some(post_ids[p].clone());
            r.item.parent_id = direct_parent[i].map(|c| post_ids[c].clone());
            out.push((post_ids[p].clone(), r.item));
        } else {
            out.push((r.item.id.clone(), r.item));
        }
    }
    Ok(Loaded {
        items: order_threads(out),
        skipped,
    })
}
