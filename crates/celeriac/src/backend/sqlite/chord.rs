//! Chord counting in the embedded SQLite file: a row per chord (size,
//! done) and a row per counted part, updated in the writer's transaction,
//! so counting a part and claiming the body is one atomic step for every
//! process sharing the file. No `celery.chord_unlock` polling is needed.

use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::{ChordPartResult, ChordProgress};
use crate::protocol::TaskState;
use crate::sqlite_db::now_secs;

/// The chord tables, created when the backend opens.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS celeriac_chords (
  group_id TEXT PRIMARY KEY,
  size INTEGER,
  done INTEGER NOT NULL DEFAULT 0,
  expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS celeriac_chord_parts (
  group_id TEXT NOT NULL,
  member TEXT NOT NULL,
  position INTEGER NOT NULL,
  task_id TEXT NOT NULL,
  state TEXT NOT NULL,
  result TEXT NOT NULL,
  PRIMARY KEY (group_id, member)
);";

/// A part as the writer thread needs it (owned: it crosses threads).
pub(super) struct OwnedPart {
    pub group_id: String,
    pub task_id: String,
    pub index: Option<i64>,
    pub state: String,
    pub result: String,
}

/// Record a new run of the chord with `size` parts.
pub(super) fn set_size(
    conn: &Connection,
    group_id: &str,
    size: u64,
    expires: f64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM celeriac_chord_parts WHERE group_id = ?1")?
        .execute([group_id])?;
    conn.prepare_cached(
        "INSERT INTO celeriac_chords (group_id, size, done, expires_at) VALUES (?1, ?2, 0, ?3) \
         ON CONFLICT (group_id) DO UPDATE SET size = excluded.size, done = 0, \
         expires_at = excluded.expires_at",
    )?
    .execute(params![group_id, size as i64, now_secs() + expires])?;
    conn.prepare_cached("DELETE FROM celeriac_chords WHERE expires_at < ?1")?
        .execute([now_secs()])?;
    Ok(())
}

/// Count `part` once; claim the chord when it is the last.
pub(super) fn part_return(
    conn: &Connection,
    part: &OwnedPart,
    expires: f64,
) -> rusqlite::Result<ChordProgress> {
    let row: Option<(Option<i64>, i64)> = conn
        .prepare_cached("SELECT size, done FROM celeriac_chords WHERE group_id = ?1")?
        .query_row([&part.group_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((_, 1)) = row {
        return Ok(ChordProgress::Done);
    }
    if row.is_none() {
        // A part before its size: count it, the size comes later.
        conn.prepare_cached(
            "INSERT INTO celeriac_chords (group_id, size, done, expires_at) VALUES (?1, NULL, 0, ?2)",
        )?
        .execute(params![part.group_id, now_secs() + expires])?;
    }
    let position = part.index.unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT OR IGNORE INTO celeriac_chord_parts \
         (group_id, member, position, task_id, state, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        part.group_id,
        format!("{}:{position}", part.task_id),
        position,
        part.task_id,
        part.state,
        part.result
    ])?;
    let counted: i64 = conn
        .prepare_cached("SELECT count(*) FROM celeriac_chord_parts WHERE group_id = ?1")?
        .query_row([&part.group_id], |r| r.get(0))?;
    let size = row.and_then(|(size, _)| size);
    if size != Some(counted) {
        return Ok(ChordProgress::Waiting);
    }
    conn.prepare_cached("UPDATE celeriac_chords SET done = 1 WHERE group_id = ?1")?
        .execute([&part.group_id])?;
    let results = conn
        .prepare_cached(
            "SELECT task_id, state, result FROM celeriac_chord_parts WHERE group_id = ?1 \
             ORDER BY position, rowid",
        )?
        .query_map([&part.group_id], |r| {
            let result: String = r.get(2)?;
            Ok(ChordPartResult {
                task_id: r.get(0)?,
                state: TaskState::from_name(&r.get::<_, String>(1)?),
                result: serde_json::from_str(&result).unwrap_or(serde_json::Value::Null),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ChordProgress::Complete {
        results,
        claim: part.group_id.clone(),
    })
}

/// Drop a done chord's parts (the row stays, marked done, until it expires).
pub(super) fn done(conn: &Connection, group_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM celeriac_chord_parts WHERE group_id = ?1")?
        .execute([group_id])?;
    Ok(())
}
