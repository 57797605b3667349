//! Deterministic generation of realistic raw sample data.
//!
//! The original dumps (Facebook news pages 2017, Reddit 2023, Twitter 2023)
//! may not be redistributed, so [`generate`] writes look-alikes in the same
//! raw formats, from a seed:
//! 1. Facebook: [`FACEBOOK_POSTS_CSV`](crate::raw::FACEBOOK_POSTS_CSV) and
//!    [`FACEBOOK_COMMENTS_CSV`](crate::raw::FACEBOOK_COMMENTS_CSV) (see `facebook.rs`);
//! 2. Reddit: [`REDDIT_CSV`](crate::raw::REDDIT_CSV) (see `reddit.rs`);
//! 3. Twitter: [`TWITTER_JSONL`](crate::raw::TWITTER_JSONL) (see `twitter.rs`).
//!
//! Items are split across platforms in the proportions of the original sample
//! (facebook 11 : reddit 7.4 : twitter 1.25). Texts come from `text.rs`
//! templates on news, politics, sports, technology and local life; named
//! entities follow a Zipf-like frequency; comments reply to their posts.
//! Each platform draws from its own ChaCha8 stream, so the output is
//! byte-identical for a seed and a size.

mod facebook;
mod reddit;
mod templates;
mod text;
mod twitter;
mod vocab;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    /// Random seed: the same seed and size give byte-identical files.
    pub seed: u64,
    /// Total number of items (posts and comments) over the three platforms.
    pub total_items: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            seed: 42,
            total_items: 20_000,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleReport {
    /// Facebook posts.
    pub facebook_posts: usize,
    /// Facebook comments.
    pub facebook_comments: usize,
    /// Reddit posts.
    pub reddit_posts: usize,
    /// Reddit comments.
    pub reddit_comments: usize,
    /// Tweets that start a conversation.
    pub tweets: usize,
    /// Replies to tweets.
    pub replies: usize,
    /// The files written.
    pub files: Vec<PathBuf>,
}

impl SampleReport {
    /// All items written.
    pub fn total(&self) -> usize {
        self.facebook_posts
            + self.facebook_comments
            + self.reddit_posts
            + self.reddit_comments
            + self.tweets
            + self.replies
    }
}

/// Writing the sample files failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {message}")]
pub struct SampleError {
    path: PathBuf,
    message: String,
}

impl SampleError {
    pub(crate) fn new(path: &Path, e: impl std::fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Generates the raw sample files into `out_dir` (created if needed).
///
/// # Errors
/// [`SampleError`] naming the file that could not be written.
pub fn generate(out_dir: &Path, opts: &SampleOptions) -> Result<SampleReport, SampleError> {
    std::fs::create_dir_all(out_dir).map_err(|e| SampleError::new(out_dir, e))?;
    let n = opts.total_items;
    let fb = (n as f64 * 11.0 / 19.65).round() as usize;
    let rd = ((n as f64 * 7.4 / 19.65).round() as usize).min(n - fb);
    let tw = n - fb - rd;
    let mut report = SampleReport::default();
    facebook::write(out_dir, stream(opts.seed, 1), fb, &mut report)?;
    reddit::write(out_dir, stream(opts.seed, 2), rd, &mut report)?;
    twitter::write(out_dir, stream(opts.seed, 3), tw, &mut report)?;
    Ok(report)
}

fn stream(seed: u64, k: u64) -> ChaCha8Rng {
    let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
    rng.set_stream(k);
    rng
}

/// A log-normally distributed count (engagements are heavy-tailed).
pub(crate) fn lognormal(rng: &mut ChaCha8Rng, mu: f64, sigma: f64) -> u64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (mu + sigma * z).exp().floor().min(1e9) as u64
}

/// An exponential waiting time with the given mean.
pub(crate) fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// A number of comments: 0 with some chance, else heavy-tailed around `mean`.
fn comment_count(rng: &mut ChaCha8Rng, mean: f64) -> usize {
    if rng.random_bool(0.15) {
        return 0;
    }
    (exponential(rng, mean).round() as usize).min(60)
}

/// Picks a topic from weights (news, politics, sports, tech, local).
fn topic(rng: &mut ChaCha8Rng, weights: [u32; 5]) -> text::Topic {
    use text::Topic::*;
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total.max(1));
    for (w, t) in weights.iter().zip([News, Politics, Sports, Tech, Local]) {
        if x < *w {
            return t;
        }
        x -= w;
    }
    Local
}

/// A URL-friendly slug of a headline.
fn slug(headline: &str) -> String {
    let mut s = String::with_capacity(headline.len());
    for w in headline
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
    {
        if !s.is_empty() {
            s.push('-');
        }
        s.push_str(&w.to_ascii_lowercase());
    }
    s
}

/// Lower-case base-36 of `v`, as Reddit ids are written.
fn base36(mut v: u64) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(D[(v % 36) as usize]);
        v /= 36;
        if v == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(
            slug("The Fed's plan: \"X\" in New York!"),
            "the-fed-s-plan-x-in-new-york"
        );
    }
}
