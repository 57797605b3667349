//! Rows travel from the producing thread to the SQLite thread in packed
//! batches: one byte buffer holding every text field back to back, plus the
//! field boundaries, so a batch of thousands of rows costs two allocations.

/// Rows per batch sent to the writer.
pub(crate) const BATCH_ROWS: usize = 2048;

/// The text fields of a row, in buffer order.
const FIELDS: usize = 6;

/// A batch of rows whose text lives in one buffer.
#[derive(Debug, Default)]
pub(crate) struct RowBatch {
    buf: String,
    /// Per row: the end offset of each field, and the two constant fields.
    rows: Vec<([usize; FIELDS], &'static str, &'static str)>,
}

/// A row borrowed from a batch (or from anywhere else).
pub(crate) struct DbRow<'a> {
    pub(crate) post_id: &'a str,
    pub(crate) session_timestamp: &'a str,
    pub(crate) session_user_id: &'a str,
    pub(crate) platform: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) author_name_hash: &'a str,
    pub(crate) created_at: &'a str,
    pub(crate) post_blob: &'a str,
}

impl RowBatch {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        Self {
            buf: String::with_capacity(rows * 1024),
            rows: Vec::with_capacity(rows),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Appends a row; `created_at` and `post_blob` write those fields.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        post_id: &str,
        session_timestamp: &str,
        session_user_id: &str,
        author_name_hash: &str,
        created_at: impl FnOnce(&mut String),
        platform: &'static str,
        kind: &'static str,
        post_blob: impl FnOnce(&mut String),
    ) {
        let mut ends = [0usize; FIELDS];
        for (k, field) in [
            post_id,
            session_timestamp,
            session_user_id,
            author_name_hash,
        ]
        .into_iter()
        .enumerate()
        {
            self.buf.push_str(field);
            ends[k] = self.buf.len();
        }
        created_at(&mut self.buf);
        ends[FIELDS - 2] = self.buf.len();
        post_blob(&mut self.buf);
        ends[FIELDS - 1] = self.buf.len();
        self.rows.push((ends, platform, kind));
    }

    /// The rows.
    pub(crate) fn rows(&self) -> impl Iterator<Item = DbRow<'_>> {
        let mut start = 0;
        self.rows.iter().map(move |(ends, platform, kind)| {
            let mut f = [""; FIELDS];
            for (k, end) in ends.iter().enumerate() {
                f[k] = self.buf.get(start..*end).unwrap_or_default();
                start = *end;
            }
            DbRow {
                post_id: f[0],
                session_timestamp: f[1],
                session_user_id: f[2],
                author_name_hash: f[3],
                created_at: f[4],
                post_blob: f[5],
                platform,
                kind,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        let mut b = RowBatch::with_capacity(2);
        for i in 0..2 {
            b.push(
                "id",
                "ts",
                "user",
                "author",
                |out| out.push_str(&format!("c{i}")),
                "reddit",
                "post",
                |out| out.push_str("{\"x\":1}"),
            );
        }
        let rows: Vec<DbRow<'_>> = b.rows().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1].post_id, rows[1].created_at, rows[1].post_blob),
            ("id", "c1", "{\"x\":1}")
        );
        assert_eq!(
            (rows[0].session_user_id, rows[0].platform, rows[0].kind),
            ("user", "reddit", "post")
        );
    }
}
