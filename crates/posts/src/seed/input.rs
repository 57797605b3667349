//! Reading the normalized JSON Lines for seeding, fast.
//!
//! [`read_files`]: the files are cut into chunks of whole lines, checked as
//! UTF-8 and parsed by one thread per core, each line by [`super::line`]
//! (kept as it is when it is serde_json's own serialization, through serde
//! otherwise); then, when a user pool needs it, each platform's items are
//! put in time order (as a stable sort: ties keep file order) by sorting
//! small keys, not the items.

use super::line::scan;
pub(crate) use super::line::{Item, Stamp};
use crate::models::Platform;
use crate::raw::{self, RawError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Lines of one file per chunk (about).
const CHUNK_BYTES: usize = 1 << 20;

/// A piece of one file: whole lines.
struct Chunk {
    file: usize,
    start: usize,
    end: usize,
}

/// The items of one file.
#[derive(Debug, Default)]
pub(crate) struct FileItems<'a> {
    /// In file order.
    pub(crate) items: Vec<Item<'a>>,
    /// When asked for: indexes into `items` in `created_at` order, ties in
    /// file order (what a stable sort gives).
    pub(crate) by_time: Vec<usize>,
}

/// Reads and parses the normalized files of `platforms` in `dir`, in
/// parallel; with `by_time`, also orders each file's items by time.
/// `buffers` receives the file contents the items borrow.
pub(crate) fn read_files<'a>(
    dir: &Path,
    platforms: &[Platform],
    by_time: bool,
    buffers: &'a mut Vec<Vec<u8>>,
) -> Result<Vec<FileItems<'a>>, RawError> {
    let paths: Vec<PathBuf> = platforms
        .iter()
        .map(|p| dir.join(raw::normalized_file(*p)))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    // 1. The files, read in parallel.
    let read: Vec<Result<Vec<u8>, RawError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .iter()
            .map(|path| {
                scope.spawn(move || std::fs::read(path).map_err(|e| RawError::new(path, None, e)))
            })
            .collect();
        handles
            .into_iter()
            .zip(&paths)
            .map(|(h, path)| {
                h.join()
                    .unwrap_or_else(|_| Err(RawError::new(path, None, "a reader thread panicked")))
            })
            .collect()
    });
    *buffers = read.into_iter().collect::<Result<_, _>>()?;
    let buffers: &'a [Vec<u8>] = buffers;

    // 2. Chunks of whole lines, parsed by `threads` workers.
    let mut chunks = Vec::new();
    for (file, data) in buffers.iter().enumerate() {
        let mut start = 0;
        while start < data.len() {
            let mut end = (start + CHUNK_BYTES).min(data.len());
            while end < data.len() && data[end - 1] != b'\n' {
                end += 1;
            }
            chunks.push(Chunk { file, start, end });
            start = end;
        }
    }
    let next = AtomicUsize::new(0);
    let parse_chunk = |c: &Chunk| -> Result<Vec<Item<'a>>, RawError> {
        let data = &buffers[c.file][c.start..c.end];
        let path = &paths[c.file];
        let line_of = |offset: usize| -> u64 {
            let before = &buffers[c.file][..c.start + offset];
            before.iter().filter(|b| **b == b'\n').count() as u64 + 1
        };
        let text = std::str::from_utf8(data)
            .map_err(|e| RawError::new(path, Some(line_of(e.valid_up_to())), "not valid UTF-8"))?;
        let mut items = Vec::with_capacity(data.len() / 400);
        let mut offset = 0;
        for line in text.split('\n') {
            let here = offset;
            offset += line.len() + 1;
            if line.trim().is_empty() {
                continue;
            }
            match scan(line) {
                Some(item) => items.push(item),
                None => items.push(
                    Item::from_serde(line)
                        .map_err(|e| RawError::new(path, Some(line_of(here)), e))?,
                ),
            }
        }
        Ok(items)
    };
    let mut parsed: Vec<(usize, Result<Vec<Item<'a>>, RawError>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(chunks.len()).max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(c) = chunks.get(k) else { break };
                        let result = parse_chunk(c);
                        let failed = result.is_err();
                        out.push((k, result));
                        if failed {
                            break;
                        }
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join().unwrap_or_else(|_| {
                    vec![(0, Err(RawError::new(dir, None, "a parser thread panicked")))]
                })
            })
            .collect()
    });
    // The first error in file order wins, as a sequential read would report.
    parsed.sort_by_key(|p| p.0);
    let mut sizes = vec![0; buffers.len()];
    for (k, result) in &parsed {
        match result {
            Ok(items) => sizes[chunks.get(*k).map_or(0, |c| c.file)] += items.len(),
            Err(_) => break,
        }
    }
    let mut per_file: Vec<FileItems<'a>> = sizes
        .into_iter()
        .map(|n| FileItems {
            items: Vec::with_capacity(n),
            by_time: Vec::new(),
        })
        .collect();
    for (k, result) in parsed {
        let items = result?;
        per_file[chunks.get(k).map_or(0, |c| c.file)]
            .items
            .extend(items);
    }
    // 3. Chronological order for the user pool.
    if by_time {
        std::thread::scope(|scope| {
            for f in per_file.iter_mut() {
                scope.spawn(move || f.by_time = time_order(&f.items));
            }
        });
    }
    Ok(per_file)
}

/// Indexes of `items` by `created_at`, ties in their present order.
fn time_order(items: &[Item<'_>]) -> Vec<usize> {
    // The index makes every key distinct, so an unstable sort is stable here.
    let mut keys: Vec<(i64, u32, usize)> = items
        .iter()
        .enumerate()
        .map(|(k, i)| {
            (
                i.created_at.timestamp(),
                i.created_at.timestamp_subsec_nanos(),
                k,
            )
        })
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k.2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ContentItem;
    use chrono::{DateTime, Utc};

    /// Every sample item: the fast path takes its line, the line is the
    /// item's serialization, and splicing a new time gives the serialization
    /// of the item with that time, byte for byte.
    #[test]
    fn sample_items_splice_exactly() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (raw_dir, norm) = (dir.path().join("raw"), dir.path().join("norm"));
        for seed in [1, 7] {
            crate::sample::generate(
                &raw_dir,
                &crate::sample::SampleOptions {
                    seed,
                    total_items: 6000,
                },
            )?;
            raw::preprocess(&raw_dir, &norm, &raw::PreprocessOptions::default())?;
            let mut buffers = Vec::new();
            let files = read_files(&norm, &Platform::ALL, true, &mut buffers)?;
            let expected: Vec<Vec<ContentItem>> = Platform::ALL
                .iter()
                .map(|p| raw::read_jsonl(&norm.join(raw::normalized_file(*p))))
                .collect::<Result<_, _>>()?;
            let mut n = 0;
            for (file, serde_items) in files.iter().zip(&expected) {
                let items = &file.items;
                assert_eq!(items.len(), serde_items.len());
                // The time order is what a stable sort gives.
                let mut sorted: Vec<usize> = (0..items.len()).collect();
                sorted.sort_by_key(|&k| serde_items[k].created_at);
                assert_eq!(file.by_time, sorted);
                for (k, (item, parsed)) in items.iter().zip(serde_items).enumerate() {
                    assert!(item.is_borrowed(), "not taken: {}", item.json());
                    let line = scan(item.json()).ok_or("scan")?;
                    assert_eq!(line.json(), serde_json::to_string(parsed)?);
                    assert_eq!(
                        (&*item.id, &*item.author_name_hash),
                        (&*parsed.id, &*parsed.author_name_hash)
                    );
                    assert_eq!(
                        (item.kind, item.created_at),
                        (parsed.kind, parsed.created_at)
                    );
                    let t = from_secs(1_600_000_000 + 7_919 * (n + k as i64));
                    let mut moved = parsed.clone();
                    moved.created_at = t;
                    let (before, after) = item.around_created_at();
                    let mut blob = before.to_string();
                    Stamp::new(&t).push(&mut blob, 'T');
                    blob.push('Z');
                    blob.push_str(after);
                    assert_eq!(blob, serde_json::to_string(&moved)?);
                }
                n += items.len() as i64;
            }
            assert!(n >= 6000);
        }
        Ok(())
    }

    fn from_secs(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap_or_default()
    }
}
