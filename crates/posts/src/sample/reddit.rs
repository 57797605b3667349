//! Reddit look-alike: posts and threaded comments, 2023, in one CSV.
//!
//! Columns: `type` (`Post`/`Comment`), `id`, `parent_id` (`t3_<post>` or
//! `t1_<comment>`), `author`, `created_utc` (unix seconds), `ups`, `downs`,
//! `body` (comments), `selftext` and `title` (posts), then `subreddit`,
//! `url`, `total_awards_received`, `num_comments`. Rows are in time order,
//! posts and comments interleaved, as a dump sorted by time would be.

use super::text::{Era, Topic, Writer};
use super::vocab::{DOMAINS, HANDLE_WORDS, SUBREDDITS};
use super::{base36, comment_count, exponential, lognormal, slug, SampleError, SampleReport};
use crate::raw::REDDIT_CSV;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

const START: i64 = 1_693_526_400; // 2023-09-01
const END: i64 = 1_702_598_400; // 2023-12-15

const SELF_TEXT: &[&str] = &[
    "{d}\n\nWhat do you all think?",
    "Title says it all. {d}",
    "Saw this earlier and wanted to get this sub's take. {d}",
    "{d} Am I the only one who finds this {bad}?",
    "Genuine question, not trying to start a fight. {d}",
    "{d}\n\nEdit: thanks for the replies, some good points here.",
];

fn handle(rng: &mut ChaCha8Rng, pool: usize) -> String {
    if rng.random_bool(0.02) {
        return "[deleted]".to_string();
    }
    let u = rng.random::<f64>();
    let who = (u * u * pool as f64) as usize;
    let a = HANDLE_WORDS[who % HANDLE_WORDS.len()];
    let b = HANDLE_WORDS[(who / HANDLE_WORDS.len() + who * 7) % HANDLE_WORDS.len()];
    format!("{a}_{b}{}", who % 1000)
}

pub(super) fn write(
    dir: &Path,
    mut rng: ChaCha8Rng,
    budget: usize,
    report: &mut SampleReport,
) -> Result<(), SampleError> {
    let authors = (budget / 4).max(1);
    let mut rows: Vec<(i64, u64, [String; 14])> = Vec::new();
    let mut left = budget;
    let mut post_serial: u64 = 2_300_000_000;
    let mut comment_serial: u64 = 44_000_000_000;
    let mut order = 0u64;
    while left > 0 {
        left -= 1;
        let (sub, topic_name) = SUBREDDITS[rng.random_range(0..SUBREDDITS.len())];
        let topic = Topic::from_name(topic_name);
        let t = rng.random_range(START..END);
        post_serial += rng.random_range(1..40_000);
        let id = base36(post_serial);
        let mut w = Writer {
            rng: &mut rng,
            era: Era::Y2023,
        };
        let draft = w.post(topic);
        let n_comments = comment_count(w.rng, 5.0).min(left);
        left -= n_comments;
        let mut comment_ids: Vec<String> = Vec::new();
        let mut ct = t;
        for _ in 0..n_comments {
            ct += exponential(w.rng, 2400.0) as i64 + 3;
            comment_serial += w.rng.random_range(1..90_000);
            let cid = base36(comment_serial);
            let parent = if !comment_ids.is_empty() && w.rng.random_bool(0.35) {
                format!(
                    "t1_{}",
                    comment_ids[w.rng.random_range(0..comment_ids.len())]
                )
            } else {
                format!("t3_{id}")
            };
            let body = w.comment(topic, &draft.entities);
            let author = handle(w.rng, authors);
            let ups = lognormal(w.rng, 1.5, 1.5);
            order += 1;
            rows.push((
                ct,
                order,
                [
                    "Comment".into(),
                    cid.clone(),
                    parent,
                    author,
                    format!("{ct}.0"),
                    ups.to_string(),
                    "0".into(),
                    body,
                    String::new(),
                    String::new(),
                    sub.into(),
                    String::new(),
                    u64::from(w.rng.random_bool(0.01)).to_string(),
                    "0".into(),
                ],
            ));
            comment_ids.push(cid);
        }
        let (selftext, url) = if rng.random_bool(0.5) && !draft.details.is_empty() {
            let t = SELF_TEXT[rng.random_range(0..SELF_TEXT.len())];
            let bad = ["ridiculous", "wild", "concerning", "confusing"][rng.random_range(0..4)];
            let text = t.replace("{d}", &draft.details).replace("{bad}", bad);
            (
                text,
                format!(
                    "https://www.reddit.com/r/{sub}/comments/{id}/{}/",
                    slug(&draft.headline).replace('-', "_")
                ),
            )
        } else {
            (
                String::new(),
                format!(
                    "https://www.{}/{}",
                    DOMAINS[rng.random_range(0..DOMAINS.len())],
                    slug(&draft.headline)
                ),
            )
        };
        let author = handle(&mut rng, authors);
        let ups = lognormal(&mut rng, 4.0, 1.8);
        order += 1;
        rows.push((
            t,
            order,
            [
                "Post".into(),
                id,
                String::new(),
                author,
                format!("{t}.0"),
                ups.to_string(),
                "0".into(),
                String::new(),
                selftext,
                draft.headline,
                sub.into(),
                url,
                u64::from(rng.random_bool(0.05)).to_string(),
                n_comments.to_string(),
            ],
        ));
        report.reddit_posts += 1;
        report.reddit_comments += n_comments;
    }
    rows.sort_by_key(|r| (r.0, r.1));

    let path = dir.join(REDDIT_CSV);
    let mut out = csv::Writer::from_path(&path).map_err(|e| SampleError::new(&path, e))?;
    out.write_record([
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
        "subreddit",
        "url",
        "total_awards_received",
        "num_comments",
    ])
    .map_err(|e| SampleError::new(&path, e))?;
    for r in &rows {
        out.write_record(&r.2)
            .map_err(|e| SampleError::new(&path, e))?;
    }
    out.flush().map_err(|e| SampleError::new(&path, e))?;
    report.files.push(path);
    Ok(())
}
