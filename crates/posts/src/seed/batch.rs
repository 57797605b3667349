//! Rows travel from the serializing thread to the SQLite thread in packed
//! batches: one byte buffer holding every text field back to back, plus the
//! field boundaries, so a batch of thousands of rows costs two allocations.

/// Rows per batch sent to the writer.
pub(crate) const BATCH_ROWS: usize = 2048;

/// The text fields of a row, in buffer order.
const FIELDS: usize = 6;

/// A batch of rows whose text lives in one buffer.
#[derive(Debug, Default)]
pub(crate) struct RowBatch {
    buf: Vec<u8>,
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
            buf: Vec::with_capacity(rows * 1024),
            rows: Vec::with_capacity(rows),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Appends a row; `blob` writes the JSON into the buffer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push<E>(
        &mut self,
        post_id: &str,
        session_timestamp: &str,
        session_user_id: &str,
        author_name_hash: &str,
        created_at: &str,
        platform: &'static str,
        kind: &'static str,
        blob: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut ends = [0usize; FIELDS];
        for (k, field) in [
            post_id,
            session_timestamp,
            session_user_id,
            author_name_hash,
            created_at,
        ]
        .into_iter()
        .enumerate()
        {
            self.buf.extend_from_slice(field.as_bytes());
            ends[k] = self.buf.len();
        }
        blob(&mut self.buf)?;
        ends[FIELDS - 1] = self.buf.len();
        self.rows.push((ends, platform, kind));
        Ok(())
    }

    /// The rows; a field that is not UTF-8 (impossible for what `push`
    /// is given, as serde_json writes UTF-8) is an error.
    pub(crate) fn rows(&self) -> impl Iterator<Item = Result<DbRow<'_>, std::str::Utf8Error>> {
        let mut start = 0;
        self.rows.iter().map(move |(ends, platform, kind)| {
            let mut f = [""; FIELDS];
            for (k, end) in ends.iter().enumerate() {
                f[k] = std::str::from_utf8(&self.buf[start..*end])?;
                start = *end;
            }
            Ok(DbRow {
                post_id: f[0],
                session_timestamp: f[1],
                session_user_id: f[2],
                author_name_hash: f[3],
                created_at: f[4],
                post_blob: f[5],
                platform,
                kind,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() -> Result<(), Box<dyn std::error::Error>> {
        let mut b = RowBatch::with_capacity(2);
        for i in 0..2 {
            b.push(
                "id",
                "ts",
                "user",
                "author",
                &format!("c{i}"),
                "reddit",
                "post",
                |buf| {
                    buf.extend_from_slice(b"{\"x\":1}");
                    Ok::<_, std::io::Error>(())
                },
            )?;
        }
        let rows: Vec<DbRow<'_>> = b.rows().collect::<Result<_, _>>()?;
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1].post_id, rows[1].created_at, rows[1].post_blob),
            ("id", "c1", "{\"x\":1}")
        );
        assert_eq!(
            (rows[0].session_user_id, rows[0].platform, rows[0].kind),
            ("user", "reddit", "post")
        );
        Ok(())
    }
}
