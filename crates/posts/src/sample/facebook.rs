//! Facebook look-alike: news-page posts and their comments, 2017.
//!
//! Posts CSV columns (as the public "Facebook news posts" dump): `created_time,
//! description, link, message, page_id, post_id, react_angry, react_haha,
//! react_like, react_love, react_sad, react_wow, scrape_time, shares`, with
//! `post_id` = `<page_id>_<post>`. Comments CSV: `created_time, from_id,
//! from_name, message, post_name`, `post_name` being the post's `post_id`.

use super::text::{Era, Writer};
use super::vocab::{DOMAINS, FIRST_NAMES, LAST_NAMES};
use super::{comment_count, exponential, lognormal, slug, topic, SampleError, SampleReport};
use crate::raw::{FACEBOOK_COMMENTS_CSV, FACEBOOK_POSTS_CSV};
use chrono::DateTime;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// The pages: id, and topic weights (news, politics, sports, tech, local).
const PAGES: &[(u64, [u32; 5])] = &[
    (5_550_296_508, [4, 4, 1, 1, 1]),
    (15_704_546_335, [3, 6, 1, 0, 1]),
    (5_281_959_998, [4, 4, 1, 2, 1]),
    (228_735_667_216, [6, 3, 1, 1, 0]),
    (6_250_307_292, [3, 5, 1, 1, 1]),
    (10_513_336_322, [6, 2, 1, 2, 0]),
    (155_869_377_766_434, [3, 3, 2, 1, 3]),
    (86_680_728_811, [3, 3, 3, 1, 2]),
];

const START: i64 = 1_491_004_800; // 2017-04-01
const END: i64 = 1_504_137_600; // 2017-08-31

fn fb_time(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S+0000").to_string())
        .unwrap_or_default()
}

struct Post {
    t: i64,
    page: usize,
    row: [String; 14],
    comments: Vec<[String; 5]>,
}

pub(super) fn write(
    dir: &Path,
    mut rng: ChaCha8Rng,
    budget: usize,
    report: &mut SampleReport,
) -> Result<(), SampleError> {
    let commenters = (budget / 3).max(1);
    let mut posts: Vec<Post> = Vec::new();
    let mut left = budget;
    let mut serial: u64 = 10_154_000_000_000_000;
    while left > 0 {
        left -= 1;
        let page = rng.random_range(0..PAGES.len());
        let (page_id, weights) = PAGES[page];
        let t = rng.random_range(START..END);
        let topic = topic(&mut rng, weights);
        let mut w = Writer {
            rng: &mut rng,
            era: Era::Y2017,
        };
        let draft = w.post(topic);
        let n_comments = comment_count(w.rng, 4.0).min(left);
        let mut comments = Vec::with_capacity(n_comments);
        let mut ct = t;
        for _ in 0..n_comments {
            ct += exponential(w.rng, 1800.0) as i64 + 5;
            let text = w.comment(topic, &draft.entities);
            let u = w.rng.random::<f64>();
            let who = (u * u * commenters as f64) as u64;
            let first = FIRST_NAMES[(who as usize * 7) % FIRST_NAMES.len()];
            let last = LAST_NAMES[(who as usize * 13 / 3) % LAST_NAMES.len()];
            comments.push([
                fb_time(ct),
                (100_000_000_000 + who * 7_919).to_string(),
                format!("{first} {last}"),
                text,
                String::new(),
            ]);
        }
        left -= n_comments;
        serial += rng.random_range(1..500_000);
        let post_id = format!("{page_id}_{serial}");
        for c in &mut comments {
            c[4] = post_id.clone();
        }
        let like = lognormal(&mut rng, 6.0, 1.4);
        let frac =
            |rng: &mut ChaCha8Rng, max: f64| (like as f64 * rng.random::<f64>() * max) as u64;
        let date = DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y/%m/%d").to_string())
            .unwrap_or_default();
        let link = format!(
            "https://www.{}/{date}/{}.html",
            DOMAINS[rng.random_range(0..DOMAINS.len())],
            slug(&draft.headline)
        );
        let row = [
            fb_time(t),
            draft.details.clone(),
            link,
            draft.headline,
            page_id.to_string(),
            post_id,
            frac(&mut rng, 0.3).to_string(),
            frac(&mut rng, 0.15).to_string(),
            like.to_string(),
            frac(&mut rng, 0.2).to_string(),
            frac(&mut rng, 0.1).to_string(),
            frac(&mut rng, 0.08).to_string(),
            "2017-09-02 03:14:07".to_string(),
            lognormal(&mut rng, 3.5, 1.5).to_string(),
        ];
        posts.push(Post {
            t,
            page,
            row,
            comments,
        });
    }
    posts.sort_by_key(|p| (p.t, p.page));

    let path = dir.join(FACEBOOK_POSTS_CSV);
    let mut out = csv::Writer::from_path(&path).map_err(|e| SampleError::new(&path, e))?;
    let header = [
        "created_time",
        "description",
        "link",
        "message",
        "page_id",
        "post_id",
        "react_angry",
        "react_haha",
        "react_like",
        "react_love",
        "react_sad",
        "react_wow",
        "scrape_time",
        "shares",
    ];
    out.write_record(header)
        .map_err(|e| SampleError::new(&path, e))?;
    for p in &posts {
        out.write_record(&p.row)
            .map_err(|e| SampleError::new(&path, e))?;
    }
    out.flush().map_err(|e| SampleError::new(&path, e))?;
    report.facebook_posts = posts.len();
    report.files.push(path);

    let path = dir.join(FACEBOOK_COMMENTS_CSV);
    let mut out = csv::Writer::from_path(&path).map_err(|e| SampleError::new(&path, e))?;
    out.write_record([
        "created_time",
        "from_id",
        "from_name",
        "message",
        "post_name",
    ])
    .map_err(|e| SampleError::new(&path, e))?;
    for c in posts.iter().flat_map(|p| &p.comments) {
        out.write_record(c)
            .map_err(|e| SampleError::new(&path, e))?;
        report.facebook_comments += 1;
    }
    out.flush().map_err(|e| SampleError::new(&path, e))?;
    report.files.push(path);
    Ok(())
}
