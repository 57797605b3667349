//! Facebook raw format: a posts CSV and a comments CSV.
//!
//! Posts need `post_id` (`<page>_<post>`), `message`, `created_time`; read if
//! present: `page_id`, `link`, `description`, `react_like`, `react_love`,
//! `react_care`, `react_haha`, `react_wow`, `react_sad`, `react_angry`,
//! `shares`. Comments need `post_name` (the post's `post_id`), `message`,
//! `created_time`; `from_id`/`from_name` give the author.
//!
//! Mapping: a post's author is its page; `comment` counts the comments found;
//! a post without a message falls back to its description; comments get a
//! content-derived id (the dump has none) and `post_id` = the post's id.

use super::{
    count, csv_err, csv_reader, line_of, order_threads, Columns, Hasher, Loaded, RawError,
};
use crate::models::datetime::parse_datetime;
use crate::models::{
    check_http_url, ContentItem, Engagements, FacebookEngagements, ItemType, Platform,
};
use std::collections::HashMap;
use std::path::Path;

const P: Platform = Platform::Facebook;

/// Loads posts and (optionally) comments; comments of unknown posts and rows
/// without text are skipped and counted.
///
/// # Errors
/// [`RawError`] naming the file and line of malformed input.
pub fn load(
    posts_path: &Path,
    comments_path: Option<&Path>,
    hasher: &Hasher,
) -> Result<Loaded, RawError> {
    let mut skipped = 0;
    let mut items: Vec<(String, ContentItem)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();

    let mut rdr = csv_reader(posts_path)?;
    let headers = rdr.headers().map_err(|e| csv_err(posts_path, e))?.clone();
    let reactions = [
        "react_like",
        "react_love",
        "react_care",
        "react_haha",
        "react_wow",
        "react_sad",
        "react_angry",
        "shares",
    ];
    let mut optional = vec!["page_id", "link", "description"];
    optional.extend(reactions);
    let cols = Columns::new(
        posts_path,
        &headers,
        &["post_id", "message", "created_time"],
        &optional,
    )?;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_err(posts_path, e))?;
        let line = line_of(&rec);
        let raw_id = cols.get(&rec, "post_id").trim();
        if raw_id.is_empty() {
            return Err(RawError::new(posts_path, Some(line), "empty `post_id`"));
        }
        let mut text = cols.get(&rec, "message").trim();
        if text.is_empty() {
            text = cols.get(&rec, "description").trim();
        }
        if text.is_empty() {
            skipped += 1;
            continue;
        }
        let created_at = parse_datetime(cols.get(&rec, "created_time")).map_err(|e| {
            RawError::new(
                posts_path,
                Some(line),
                format_args!("column `created_time`: {e}"),
            )
        })?;
        let page = match cols.get(&rec, "page_id").trim() {
            "" => raw_id.split('_').next().unwrap_or(raw_id),
            p => p,
        };
        let mut c = [0u64; 8];
        for (slot, name) in c.iter_mut().zip(reactions) {
            *slot = count(posts_path, line, name, cols.get(&rec, name))?;
        }
        let link = cols.get(&rec, "link").trim();
        let item = ContentItem {
            id: hasher.item_id(P, raw_id),
            post_id: None,
            parent_id: None,
            title: None,
            text: text.to_string(),
            author_name_hash: hasher.author(P, page),
            kind: ItemType::Post,
            embedded_urls: check_http_url(link).is_ok().then(|| vec![link.to_string()]),
            created_at,
            engagements: Engagements::Facebook(FacebookEngagements {
                like: c[0],
                love: c[1],
                care: c[2],
                haha: c[3],
                wow: c[4],
                sad: c[5],
                angry: c[6],
                comment: 0,
                share: c[7],
            }),
        };
        index.insert(raw_id.to_string(), items.len());
        items.push((raw_id.to_string(), item));
    }

    if let Some(cpath) = comments_path {
        let mut rdr = csv_reader(cpath)?;
        let headers = rdr.headers().map_err(|e| csv_err(cpath, e))?.clone();
        let cols = Columns::new(
            cpath,
            &headers,
            &["post_name", "message", "created_time"],
            &["from_id", "from_name"],
        )?;
        let mut seen: HashMap<String, u32> = HashMap::new();
        for rec in rdr.records() {
            let rec = rec.map_err(|e| csv_err(cpath, e))?;
            let line = line_of(&rec);
            let post = cols.get(&rec, "post_name").trim();
            let text = cols.get(&rec, "message").trim();
            let Some(&pi) = index.get(post) else {
                skipped += 1;
                continue;
            };
            if text.is_empty() {
                skipped += 1;
                continue;
            }
            let time = cols.get(&rec, "created_time");
            let created_at = parse_datetime(time).map_err(|e| {
                RawError::new(
                    cpath,
                    Some(line),
                    format_args!("column `created_time`: {e}"),
                )
            })?;
            let from = match cols.get(&rec, "from_id").trim() {
                "" => cols.get(&rec, "from_name").trim(),
                f => f,
            };
            let mut raw_id = format!("comment:{post}:{from}:{}:{text}", time.trim());
            let n = seen.entry(raw_id.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                raw_id = format!("{raw_id}#{n}");
            }
            let post_item = &mut items[pi].1;
            if let Engagements::Facebook(e) = &mut post_item.engagements {
                e.comment += 1;
            }
            let post_id = post_item.id.clone();
            items.push((
                post.to_string(),
                ContentItem {
                    id: hasher.item_id(P, &raw_id),
                    post_id: Some(post_id),
                    parent_id: None,
                    title: None,
                    text: text.to_string(),
                    author_name_hash: hasher
                        .author(P, if from.is_empty() { "anonymous" } else { from }),
                    kind: ItemType::Comment,
                    embedded_urls: None,
                    created_at,
                    engagements: Engagements::Facebook(FacebookEngagements::default()),
                },
            ));
        }
    }
    Ok(Loaded {
        items: order_threads(items),
        skipped,
    })
}
