//! Body encodings other than plain JSON: kombu's `compression` header and
//! the `msgpack` serializer, and the serializers we refuse.
//!
//! The worker's fast path (JSON, base64, no compression) never comes here;
//! [`super::TaskMessage::decode`] takes this slow path only when a message
//! names a compression or a content type other than `application/json`.
//!
//! kombu's names (`kombu/compression.py`, `kombu/serialization.py`):
//!
//! | header value | aliases | format |
//! |---|---|---|
//! | `application/x-gzip` | `gzip`, `zlib` | **zlib** (`zlib.compress`, RFC 1950), not gzip |
//! | `application/x-bz2` | `bzip2`, `bzip` | bzip2 |
//! | `application/x-msgpack` (content type) | `msgpack` | MessagePack |
//!
//! A real gzip stream (magic `1f 8b`) under `application/x-gzip` is read
//! too. Brotli, lzma and zstd, which kombu registers when their Python
//! packages are installed, are refused with a reason.

use std::io::Read;

use super::ProtocolError;

/// The content type of JSON bodies, the only one Celeriac writes.
pub(super) const JSON: &str = "application/json";
/// The content type of MessagePack bodies (kombu's `msgpack` serializer).
pub(super) const MSGPACK: &str = "application/x-msgpack";

/// A compression kombu can apply to a message body, named in the message's
/// `compression` header (Celery's `task_compression` setting or
/// `apply_async(compression=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// zlib (`application/x-gzip`; kombu's `gzip` and `zlib` aliases both
    /// mean `zlib.compress`).
    Zlib,
    /// bzip2 (`application/x-bz2`).
    Bzip2,
}

impl Compression {
    /// The compression a `compression` header value or a setting names:
    /// kombu's content type or one of its aliases (`gzip`, `zlib`, `bzip2`,
    /// `bzip`). `None` for anything else.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "application/x-gzip" | "gzip" | "zlib" => Some(Compression::Zlib),
            "application/x-bz2" | "bzip2" | "bzip" => Some(Compression::Bzip2),
            _ => None,
        }
    }

    /// The value kombu writes in the `compression` header.
    pub fn content_type(self) -> &'static str {
        match self {
            Compression::Zlib => "application/x-gzip",
            Compression::Bzip2 => "application/x-bz2",
        }
    }

    /// Compress `data` as kombu does (default levels of Python's `zlib` and
    /// `bz2`).
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // Reading from a byte slice into a Vec cannot fail.
        let _ = match self {
            Compression::Zlib => flate2::read::ZlibEncoder::new(data, flate2::Compression::new(6))
                .read_to_end(&mut out),
            Compression::Bzip2 => {
                bzip2::read::BzEncoder::new(data, bzip2::Compression::best()).read_to_end(&mut out)
            }
        };
        out
    }

    /// Decompress `data`, refusing output longer than `limit` bytes (a small
    /// message must not expand into gigabytes).
    ///
    /// # Errors
    /// [`ProtocolError::Compression`] when the data is not valid for this
    /// compression or expands past `limit`.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, ProtocolError> {
        let reader: Box<dyn Read + '_> = match self {
            Compression::Zlib if data.starts_with(&[0x1f, 0x8b]) => {
                Box::new(flate2::read::GzDecoder::new(data))
            }
            Compression::Zlib => Box::new(flate2::read::ZlibDecoder::new(data)),
            Compression::Bzip2 => Box::new(bzip2::read::BzDecoder::new(data)),
        };
        let mut out = Vec::new();
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        reader.take(cap).read_to_end(&mut out).map_err(|e| {
            ProtocolError::Compression(format!("{} body: {e}", self.content_type()))
        })?;
        if out.len() > limit {
            return Err(ProtocolError::Compression(format!(
                "{} body expands past the {limit}-byte limit",
                self.content_type()
            )));
        }
        Ok(out)
    }
}

/// How a body is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Serializer {
    Json,
    Msgpack,
}

/// The serializer of `content_type`, or why it is refused.
pub(super) fn serializer(content_type: &str) -> Result<Serializer, ProtocolError> {
    match content_type {
        JSON => Ok(Serializer::Json),
        MSGPACK => Ok(Serializer::Msgpack),
        _ => Err(ProtocolError::ContentType(content_type.to_owned())),
    }
}

/// The compression named by a `compression` header, or why it is refused.
pub(super) fn compression(name: &str) -> Result<Compression, ProtocolError> {
    Compression::from_name(name).ok_or_else(|| {
        ProtocolError::Compression(format!(
            "compression {name:?} is not supported by Celeriac (use gzip/zlib or bzip2, \
             or no task_compression)"
        ))
    })
}

/// The advice for a refused content type: which Celery setting to change.
pub(super) fn refusal_advice(content_type: &str) -> &'static str {
    match content_type {
        "application/x-python-serialize" => {
            "pickle is never accepted (it runs code chosen by the sender): send with \
             task_serializer='json' (or 'msgpack'), and keep accept_content=['json']"
        }
        "application/x-yaml" => {
            "yaml is not accepted: send with task_serializer='json' (or 'msgpack')"
        }
        _ => "Celeriac accepts application/json and application/x-msgpack: send with task_serializer='json'",
    }
}

/// Whether JSON text uses Python's `NaN`, `Infinity` or `-Infinity`
/// outside strings (Python's `json.dumps` writes them; JSON has no such
/// numbers). Only asked after a body failed to parse.
pub(super) fn has_non_finite(text: &[u8]) -> bool {
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'N' if text[i..].starts_with(b"NaN") => return true,
            b'I' if text[i..].starts_with(b"Infinity") => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kombus() {
        for name in ["application/x-gzip", "gzip", "zlib"] {
            assert_eq!(Compression::from_name(name), Some(Compression::Zlib));
        }
        for name in ["application/x-bz2", "bzip2", "bzip"] {
            assert_eq!(Compression::from_name(name), Some(Compression::Bzip2));
        }
        assert_eq!(Compression::from_name("application/x-lzma"), None);
        assert_eq!(Compression::Bzip2.content_type(), "application/x-bz2");
    }

    #[test]
    fn round_trips_and_reads_zlib_gzip_and_bzip2() {
        let data = br#"[[1, 2], {}, {"callbacks": null}]"#.repeat(50);
        for c in [Compression::Zlib, Compression::Bzip2] {
            let packed = c.compress(&data);
            assert!(packed.len() < data.len(), "{c:?} compresses");
            assert_eq!(c.decompress(&packed, data.len()).expect("back"), data);
        }
        // zlib.compress output starts 0x78; a real gzip stream is read too.
        assert_eq!(Compression::Zlib.compress(b"x")[0], 0x78);
        let mut gz = Vec::new();
        flate2::read::GzEncoder::new(&data[..], flate2::Compression::fast())
            .read_to_end(&mut gz)
            .expect("gzip");
        assert_eq!(
            Compression::Zlib.decompress(&gz, 1 << 20).expect("gz"),
            data
        );
    }

    #[test]
    fn refuses_corrupt_data_and_bombs() {
        let err = Compression::Zlib
            .decompress(b"not zlib", 100)
            .expect_err("corrupt");
        assert!(err.to_string().contains("application/x-gzip"), "{err}");
        let bomb = Compression::Bzip2.compress(&vec![0u8; 1 << 20]);
        let err = Compression::Bzip2
            .decompress(&bomb, 1000)
            .expect_err("too large");
        assert!(err.to_string().contains("1000-byte limit"), "{err}");
    }

    #[test]
    fn finds_python_non_finite_numbers_outside_strings() {
        assert!(has_non_finite(b"[[NaN], {}, {}]"));
        assert!(has_non_finite(b"[[1, -Infinity], {}, {}]"));
        assert!(has_non_finite(br#"[[], {"x": Infinity}, {}]"#));
        assert!(!has_non_finite(br#"[["NaN", "Infinity"], {}, {}]"#));
        assert!(!has_non_finite(br#"[["a\"NaN"], {}, {}]"#));
        assert!(!has_non_finite(b"[[1e308], {}, {}]"));
    }
}
