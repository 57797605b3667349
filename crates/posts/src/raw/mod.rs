//! Loaders for the raw Facebook/Reddit/Twitter formats, and preprocessing
//! into normalized ContentItem JSON Lines.
//!
//! 1. File names of the raw dumps ([`FACEBOOK_POSTS_CSV`], …) and of the
//!    normalized output ([`normalized_file`]: `facebook.jsonl`, …).
//! 2. [`Hasher`]: stable salted SHA-256 ids and author hashes.
//! 3. Loaders, one per platform ([`facebook::load`], [`reddit::load`],
//!    [`twitter::load`]): each returns items with every post followed by its
//!    comments, engagements mapped to the platform's shape.
//! 4. [`preprocess`]: raw directory in, one JSONL file per platform out.
//!
//! Malformed input is a [`RawError`] naming the file and line.

pub mod facebook;
pub mod reddit;
pub mod twitter;

use crate::models::{ContentItem, Platform};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Facebook posts CSV in the raw directory.
pub const FACEBOOK_POSTS_CSV: &str = "facebook_posts.csv";
/// Facebook comments CSV in the raw directory.
pub const FACEBOOK_COMMENTS_CSV: &str = "facebook_comments.csv";
/// Reddit posts and comments CSV in the raw directory.
pub const REDDIT_CSV: &str = "reddit.csv";
/// Twitter JSON Lines in the raw directory.
pub const TWITTER_JSONL: &str = "twitter.jsonl";

/// The salt used when none is given (`--salt` / `CELERIAC_SALT`).
pub const DEFAULT_SALT: &str = "celeriac";

/// The normalized file of a platform: `<platform>.jsonl`.
pub fn normalized_file(platform: Platform) -> String {
    format!("{}.jsonl", platform.as_str())
}

/// Malformed or unreadable raw input; names the file and, when known, the line.
#[derive(Debug, thiserror::Error)]
pub struct RawError {
    path: PathBuf,
    line: Option<u64>,
    message: String,
}

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl RawError {
    pub(crate) fn new(path: &Path, line: Option<u64>, message: impl fmt::Display) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            message: message.to_string(),
        }
    }

    /// The file at fault.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The 1-based line at fault, when known.
    pub fn line(&self) -> Option<u64> {
        self.line
    }
}

/// Salted SHA-256 hashing of raw ids and author names.
///
/// `id = hex(sha256(salt ‖ platform ‖ ":" ‖ raw_id))`,
/// `author = hex(sha256(salt ‖ platform ‖ ":author:" ‖ raw_author))`: stable
/// across runs for a salt, different between platforms.
#[derive(Debug, Clone)]
pub struct Hasher {
    salt: String,
}

impl Hasher {
    /// A hasher with `salt`.
    pub fn new(salt: impl Into<String>) -> Self {
        Self { salt: salt.into() }
    }

    fn hash(&self, parts: &[&str]) -> String {
        let mut h = Sha256::new();
        h.update(self.salt.as_bytes());
        for p in parts {
            h.update(p.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The stable id of a raw item id.
    pub fn item_id(&self, platform: Platform, raw_id: &str) -> String {
        self.hash(&[platform.as_str(), ":", raw_id])
    }

    /// The stable hash of a raw author name or id.
    pub fn author(&self, platform: Platform, raw_author: &str) -> String {
        self.hash(&[platform.as_str(), ":author:", raw_author])
    }
}

/// Column lookup by header name for CSV loaders.
pub(crate) struct Columns {
    idx: Vec<(&'static str, Option<usize>)>,
}

impl Columns {
    /// Maps `names` to header positions; a missing `required` one is an error.
    pub(crate) fn new(
        path: &Path,
        headers: &csv::StringRecord,
        required: &[&'static str],
        optional: &[&'static str],
    ) -> Result<Self, RawError> {
        let pos = |n: &str| {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(n))
        };
        let mut idx = Vec::new();
        for n in required {
            match pos(n) {
                Some(i) => idx.push((*n, Some(i))),
                None => {
                    return Err(RawError::new(
                        path,
                        Some(1),
                        format_args!(
                            "missing column `{n}` (header has: {})",
                            headers.iter().collect::<Vec<_>>().join(", ")
                        ),
                    ))
                }
            }
        }
        for n in optional {
            idx.push((*n, pos(n)));
        }
        Ok(Self { idx })
    }

    /// The field `name` of `rec` ("" when the column is absent or short).
    pub(crate) fn get<'r>(&self, rec: &'r csv::StringRecord, name: &str) -> &'r str {
        self.idx
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, i)| i.and_then(|i| rec.get(i)))
            .unwrap_or("")
    }
}

/// A count field: empty → 0; `12`, `12.0` accepted; negative or junk → error.
pub(crate) fn count(path: &Path, line: u64, column: &str, v: &str) -> Result<u64, RawError> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("nan") {
        return Ok(0);
    }
    if let Ok(n) = v.parse::<u64>() {
        return Ok(n);
    }
    match v.parse::<f64>() {
        Ok(f) if f >= 0.0 && f.fract() == 0.0 && f.is_finite() => Ok(f as u64),
        _ => Err(RawError::new(
            path,
            Some(line),
            format_args!("column `{column}`: expected a non-negative count, got `{v}`"),
        )),
    }
}

/// The line of a CSV record (1-based, counting the header).
pub(crate) fn line_of(rec: &csv::StringRecord) -> u64 {
    rec.position().map_or(0, |p| p.line())
}

/// Opens a CSV file with headers, naming it on failure.
pub(crate) fn csv_reader(path: &Path) -> Result<csv::Reader<std::fs::File>, RawError> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| RawError::new(path, None, e))
}

/// A CSV parse error, with its line.
pub(crate) fn csv_err(path: &Path, e: csv::Error) -> RawError {
    let line = e.position().map(|p| p.line());
    RawError::new(path, line, e)
}

/// Options of [`preprocess`].
#[derive(Debug, Clone)]
pub struct PreprocessOptions {
    /// The hashing salt.
    pub salt: String,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        Self {
            salt: DEFAULT_SALT.to_string(),
        }
    }
}

/// What [`preprocess`] did for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformReport {
    /// The platform.
    pub platform: Platform,
    /// Posts written.
    pub posts: usize,
    /// Comments written.
    pub comments: usize,
    /// Raw rows left out (empty text, comment of an unknown post…).
    pub skipped: usize,
    /// The normalized file.
    pub output: PathBuf,
}

/// Items of one platform, with counts.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Posts, each followed by its comments.
    pub items: Vec<ContentItem>,
    /// Raw rows left out.
    pub skipped: usize,
}

/// Normalizes every raw file found in `in_dir` into `out_dir/<platform>.jsonl`.
/// Platforms whose raw files are absent are left out of the report.
///
/// # Errors
/// [`RawError`] naming the file (and line) on malformed or missing input
/// (no raw file at all), or when an output cannot be written.
pub fn preprocess(
    in_dir: &Path,
    out_dir: &Path,
    opts: &PreprocessOptions,
) -> Result<Vec<PlatformReport>, RawError> {
    let hasher = Hasher::new(opts.salt.clone());
    let mut reports = Vec::new();
    std::fs::create_dir_all(out_dir).map_err(|e| RawError::new(out_dir, None, e))?;
    for platform in Platform::ALL {
        let loaded = match platform {
            Platform::Facebook => {
                let posts = in_dir.join(FACEBOOK_POSTS_CSV);
                let comments = in_dir.join(FACEBOOK_COMMENTS_CSV);
                if !posts.exists() {
                    continue;
                }
                facebook::load(
                    &posts,
                    comments.exists().then_some(comments.as_path()),
                    &hasher,
                )?
            }
            Platform::Reddit => {
                let p = in_dir.join(REDDIT_CSV);
                if !p.exists() {
                    continue;
                }
                reddit::load(&p, &hasher)?
            }
            Platform::Twitter => {
                let p = in_dir.join(TWITTER_JSONL);
                if !p.exists() {
                    continue;
                }
                twitter::load(&p, &hasher)?
            }
        };
        let output = out_dir.join(normalized_file(platform));
        write_jsonl(&output, &loaded.items)?;
        let posts = loaded
            .items
            .iter()
            .filter(|i| i.kind == crate::models::ItemType::Post)
            .count();
        reports.push(PlatformReport {
            platform,
            posts,
            comments: loaded.items.len() - posts,
            skipped: loaded.skipped,
            output,
        });
    }
    if reports.is_empty() {
        return Err(RawError::new(
            in_dir,
            None,
            format_args!(
                "no raw input found (expected {FACEBOOK_POSTS_CSV}, {REDDIT_CSV} or {TWITTER_JSONL}; `post-history sample-data` generates them)"
            ),
        ));
    }
    Ok(reports)
}

/// Writes items as JSON Lines.
///
/// # Errors
/// [`RawError`] naming the file.
pub fn write_jsonl(path: &Path, items: &[ContentItem]) -> Result<(), RawError> {
    let file = std::fs::File::create(path).map_err(|e| RawError::new(path, None, e))?;
    let mut out = std::io::BufWriter::new(file);
    for item in items {
        serde_json::to_writer(&mut out, item).map_err(|e| RawError::new(path, None, e))?;
        out.write_all(b"\n")
            .map_err(|e| RawError::new(path, None, e))?;
    }
    out.flush().map_err(|e| RawError::new(path, None, e))
}

/// `data` as UTF-8, or an error naming the line of the first bad byte.
pub(crate) fn utf8_text<'a>(path: &Path, data: &'a [u8]) -> Result<&'a str, RawError> {
    std::str::from_utf8(data).map_err(|e| {
        let line = data[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
            + 1;
        RawError::new(path, Some(line), "not valid UTF-8")
    })
}

/// Reads normalized JSON Lines; errors name the file and line.
///
/// # Errors
/// [`RawError`] for an unreadable file or a line that is not a ContentItem.
pub fn read_jsonl(path: &Path) -> Result<Vec<ContentItem>, RawError> {
    let data = std::fs::read(path).map_err(|e| RawError::new(path, None, e))?;
    let mut items = Vec::with_capacity(data.len() / 600);
    // One UTF-8 check for the whole file; `lines` then finds line ends with
    // memchr, and `from_str` need not re-check every string.
    let text = utf8_text(path, &data)?;
    for (i, line) in text.split('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // Fast path; on failure, parse again to report the JSON path.
        let item = match serde_json::from_str::<ContentItem>(line) {
            Ok(item) => item,
            Err(_) => crate::models::from_json::<ContentItem>(line.as_bytes())
                .map_err(|e| RawError::new(path, Some(i as u64 + 1), e))?,
        };
        items.push(item);
    }
    Ok(items)
}

/// Orders posts chronologically, each followed by its comments by time.
/// `group` gives an item's post key (its own for posts); orphans go last.
pub(crate) fn order_threads(items: Vec<(String, ContentItem)>) -> Vec<ContentItem> {
    use std::collections::HashMap;
    let mut posts: Vec<(String, ContentItem)> = Vec::new();
    let mut comments: HashMap<String, Vec<ContentItem>> = HashMap::new();
    for (key, item) in items {
        match item.kind {
            crate::models::ItemType::Post => posts.push((key, item)),
            crate::models::ItemType::Comment => comments.entry(key).or_default().push(item),
        }
    }
    posts.sort_by_key(|p| p.1.created_at);
    let mut out = Vec::new();
    for (key, post) in posts {
        out.push(post);
        if let Some(mut cs) = comments.remove(&key) {
            cs.sort_by_key(|c| c.created_at);
            out.extend(cs);
        }
    }
    // Comments whose post is not in the dump: kept, in a stable order.
    let mut orphans: Vec<(String, Vec<ContentItem>)> = comments.into_iter().collect();
    orphans.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, mut cs) in orphans {
        cs.sort_by_key(|c| c.created_at);
        out.extend(cs);
    }
    out
}
