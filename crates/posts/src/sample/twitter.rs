//! Twitter look-alike: API v2 tweet lookups, one JSON object per line, 2023.
//!
//! Each line: `{"data": {id, author_id, conversation_id, created_at, text,
//! lang, public_metrics, entities: {urls: [{url, expanded_url,
//! display_url}]}, referenced_tweets?}, "includes": {"users": [{id, name,
//! username, public_metrics: {followers_count, …}}]}}`. Replies carry a
//! `replied_to` reference and the root's `conversation_id`. Ids are
//! snowflakes, so they grow with time as real ones do.

use super::text::{Era, Topic, Writer};
use super::vocab::{DOMAINS, HANDLE_WORDS};
use super::{exponential, lognormal, slug, SampleError, SampleReport};
use crate::raw::TWITTER_JSONL;
use chrono::DateTime;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

const START: i64 = 1_694_736_000; // 2023-09-15
const END: i64 = 1_701_302_400; // 2023-11-30
const TWEPOCH_MS: i64 = 1_288_834_974_657;

struct User {
    id: String,
    username: String,
    name: String,
    followers: u64,
}

fn user(rng: &mut ChaCha8Rng, pool: usize) -> User {
    let u = rng.random::<f64>();
    let who = (u * u * pool as f64) as u64;
    let a = HANDLE_WORDS[who as usize % HANDLE_WORDS.len()];
    let b = HANDLE_WORDS[(who as usize * 11 + 3) % HANDLE_WORDS.len()];
    let mut name = a.to_string();
    if let Some(f) = name.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    User {
        id: (1_400_000_000_000_000_000 + who * 104_729).to_string(),
        username: format!("{a}{b}{}", who % 100),
        name,
        followers: lognormal(rng, 5.0, 2.0),
    }
}

fn snowflake(rng: &mut ChaCha8Rng, t: i64) -> String {
    let ms = t * 1000 + rng.random_range(0..1000);
    (((ms - TWEPOCH_MS) << 22) | rng.random_range(0..(1 << 22))).to_string()
}

fn tweet(
    (id, conv): (&str, &str),
    author: &User,
    t: i64,
    text: String,
    urls: Value,
    reply_to: Option<&str>,
    metrics: [u64; 4],
) -> Value {
    let created = DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S.000Z").to_string())
        .unwrap_or_default();
    let mut data = json!({
        "id": id, "author_id": author.id, "conversation_id": conv, "created_at": created,
        "text": text, "lang": "en",
        "public_metrics": {"retweet_count": metrics[0], "reply_count": metrics[1],
                           "like_count": metrics[2], "quote_count": metrics[3]},
        "entities": {"urls": urls},
    });
    if let (Some(parent), Some(obj)) = (reply_to, data.as_object_mut()) {
        obj.insert(
            "referenced_tweets".into(),
            json!([{"type": "replied_to", "id": parent}]),
        );
    }
    json!({"data": data, "includes": {"users": [{
        "id": author.id, "name": author.name, "username": author.username,
        "public_metrics": {"followers_count": author.followers, "following_count": author.followers / 3 + 17,
                           "tweet_count": author.followers * 4 + 120, "listed_count": author.followers / 50},
    }]}})
}

pub(super) fn write(
    dir: &Path,
    mut rng: ChaCha8Rng,
    budget: usize,
    report: &mut SampleReport,
) -> Result<(), SampleError> {
    let pool = (budget / 2).max(1);
    let mut lines: Vec<(i64, u64, Value)> = Vec::new();
    let mut left = budget;
    let mut order = 0u64;
    while left > 0 {
        left -= 1;
        let topic = [
            Topic::News,
            Topic::Politics,
            Topic::Politics,
            Topic::Sports,
            Topic::Tech,
            Topic::Tech,
            Topic::Local,
        ][rng.random_range(0..7)];
        let t = rng.random_range(START..END);
        let author = user(&mut rng, pool);
        let id = snowflake(&mut rng, t);
        let mut w = Writer {
            rng: &mut rng,
            era: Era::Y2023,
        };
        let draft = w.post(topic);
        let mut text = draft.headline.clone();
        if !draft.details.is_empty()
            && text.len() + draft.details.len() < 200
            && w.rng.random_bool(0.5)
        {
            text = format!("{text}. {}", draft.details);
        }
        if let Some(e) = draft.entities.first().filter(|_| w.rng.random_bool(0.4)) {
            text.push(' ');
            text.push_str(&Writer::hashtag(e));
        }
        let mut urls = json!([]);
        if w.rng.random_bool(0.45) {
            let short = format!(
                "https://t.co/{}",
                &slug(&id).chars().rev().take(10).collect::<String>()
            );
            let expanded = format!(
                "https://www.{}/{}",
                DOMAINS[w.rng.random_range(0..DOMAINS.len())],
                slug(&draft.headline)
            );
            text = format!("{text} {short}");
            urls = json!([{"url": short, "expanded_url": expanded, "display_url": expanded.trim_start_matches("https://www.")}]);
        }
        let n_replies = if w.rng.random_bool(0.25) {
            (1.0 + exponential(w.rng, 1.0)).floor() as usize
        } else {
            0
        }
        .min(left);
        left -= n_replies;
        let mut parents: Vec<(String, String)> = vec![(id.clone(), author.username.clone())];
        let mut rt = t;
        for _ in 0..n_replies {
            rt += exponential(w.rng, 1200.0) as i64 + 2;
            let replier = user(w.rng, pool);
            let rid = snowflake(w.rng, rt);
            let (pid, puser) = if parents.len() > 1 && w.rng.random_bool(0.3) {
                parents[w.rng.random_range(1..parents.len())].clone()
            } else {
                parents[0].clone()
            };
            let body = format!("@{puser} {}", w.comment(topic, &draft.entities));
            let m = [lognormal(w.rng, 0.0, 1.0), 0, lognormal(w.rng, 1.0, 1.5), 0];
            order += 1;
            lines.push((
                rt,
                order,
                tweet((&rid, &id), &replier, rt, body, json!([]), Some(&pid), m),
            ));
            parents.push((rid, replier.username));
            report.replies += 1;
        }
        let m = [
            lognormal(w.rng, 2.0, 1.8),
            n_replies as u64 + lognormal(w.rng, 1.0, 1.5),
            lognormal(w.rng, 3.5, 2.0),
            lognormal(w.rng, 0.5, 1.2),
        ];
        order += 1;
        lines.push((t, order, tweet((&id, &id), &author, t, text, urls, None, m)));
        report.tweets += 1;
    }
    lines.sort_by_key(|l| (l.0, l.1));

    let path = dir.join(TWITTER_JSONL);
    let file = std::fs::File::create(&path).map_err(|e| SampleError::new(&path, e))?;
    let mut out = std::io::BufWriter::new(file);
    for (_, _, v) in &lines {
        serde_json::to_writer(&mut out, v).map_err(|e| SampleError::new(&path, e))?;
        out.write_all(b"\n")
            .map_err(|e| SampleError::new(&path, e))?;
    }
    out.flush().map_err(|e| SampleError::new(&path, e))?;
    report.files.push(path);
    Ok(())
}
