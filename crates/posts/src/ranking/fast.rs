//! The `/rank` hot path: body in, response bytes out, in one pass over the
//! body.
//!
//! 1. [`parse`]: the items' ids and texts, borrowed from the body, for a
//!    body the models accept. First [`scan`] (hand-written, the common
//!    shape of a request only); when it gives up, [`parse_view`] (serde
//!    into [`RankingRequestView`]: every shape the models accept, the same
//!    validation, only ids and texts kept). UTF-8 is checked once for the
//!    whole body.
//! 2. [`write_ranked`]: each item's text scanned once by the entity
//!    automaton, then the `RankingResponse` JSON written straight into the
//!    caller's buffer, byte for byte what serializing a
//!    [`RankingResponse`](crate::models::RankingResponse) gives.
//!
//! A body [`parse`] refuses is not necessarily invalid (`from_slice` accepts
//! invalid UTF-8 inside an ignored field, say): the server then decodes it
//! the plain way, which decides, and names the JSON path of what is wrong.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};

pub use super::scan::scan;
use super::EntityMatcher;
use crate::models::view::RankingRequestView;

/// What ranking reads of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// The item's id.
    pub id: Cow<'a, str>,
    /// The item's text.
    pub text: Cow<'a, str>,
    /// Whether the text mentions an entity (set by [`write_ranked`]).
    matched: bool,
}

impl<'a> Item<'a> {
    /// An item not ranked yet.
    pub fn new(id: Cow<'a, str>, text: Cow<'a, str>) -> Self {
        Item {
            id,
            text,
            matched: false,
        }
    }
}

/// The items of a body the models accept, or `None` when neither fast
/// decoder can take it.
pub fn parse(body: &[u8]) -> Option<Vec<Item<'_>>> {
    scan(body).or_else(|| {
        let view = parse_view(body)?;
        Some(
            view.items
                .into_iter()
                .map(|i| Item::new(i.id.0, i.text.0))
                .collect(),
        )
    })
}

/// The body as a [`RankingRequestView`], or `None` when it is not valid
/// UTF-8 or not a valid request.
pub fn parse_view(body: &[u8]) -> Option<RankingRequestView<'_>> {
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str(text).ok()
}

/// Write the `RankingResponse` for `items` into `out`: the ids of the items
/// whose text mentions none of `matcher`'s entities, then the others, each
/// group in the request's order; `new_items` is `null`.
pub fn write_ranked(items: &mut [Item<'_>], matcher: &EntityMatcher, out: &mut BytesMut) {
    let check = !matcher.is_empty();
    let mut any_match = false;
    for item in items.iter_mut() {
        item.matched = check && matcher.is_match(&item.text);
        any_match |= item.matched;
    }
    // The ids plus quotes and commas; escapes may need more (reserved as
    // they come).
    let estimate = 40 + items.iter().map(|i| i.id.len() + 3).sum::<usize>();
    out.reserve(estimate);
    out.put_slice(b"{\"ranked_ids\":[");
    let mut first = true;
    let mut write = |out: &mut BytesMut, id: &str| {
        if !first {
            out.put_u8(b',');
        }
        first = false;
        write_json_str(out, id);
    };
    for item in items.iter().filter(|i| !i.matched) {
        write(out, &item.id);
    }
    if any_match {
        for item in items.iter().filter(|i| i.matched) {
            write(out, &item.id);
        }
    }
    out.put_slice(b"],\"new_items\":null}");
}

/// `s` as a JSON string, escaped as `serde_json` escapes it.
fn write_json_str(out: &mut BytesMut, s: &str) {
    let plain = s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.put_u8(b'"');
        out.put_slice(s.as_bytes());
        out.put_u8(b'"');
    } else {
        let mut writer = (&mut *out).writer();
        // Writing into memory cannot fail.
        let _ = serde_json::to_writer(&mut writer, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::RankingResponse;
    use crate::ranking::MatchOptions;

    #[test]
    fn escaped_ids_are_written_as_serde_json_writes_them() {
        let ids = [
            "plain",
            "quo\"te",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "é ✓",
        ];
        let mut out = BytesMut::new();
        for id in ids {
            write_json_str(&mut out, id);
            let expected = serde_json::to_vec(id).unwrap_or_default();
            assert_eq!(&out[..], &expected[..], "{id:?}");
            out.clear();
        }
    }

    #[test]
    fn the_response_is_the_models_serialization() {
        let body = br#"{"session": {"user_id": "u", "user_name_hash": "h", "cohort": "AB",
            "platform": "reddit", "current_time": "2024-01-20 18:41:20"},
          "items": [
            {"id": "a\"1", "text": "about foo", "author_name_hash": "h", "type": "post",
             "embedded_urls": null, "created_at": "2024-01-20 18:41:20",
             "engagements": {"upvote": 1, "downvote": 0, "comment": 0, "award": 0}},
            {"id": "b", "text": "nothing", "author_name_hash": "h", "type": "comment",
             "embedded_urls": [], "created_at": 1700000000,
             "engagements": {"retweet": 1, "like": 0, "comment": 0, "share": 0}}]}"#;
        let Some(mut view) = parse(body) else {
            panic!("the fast path refused a valid body")
        };
        let matcher = EntityMatcher::new(["foo".to_owned()], MatchOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = BytesMut::new();
        write_ranked(&mut view, &matcher, &mut out);
        let expected = serde_json::to_vec(&RankingResponse {
            ranked_ids: vec!["b".to_owned(), "a\"1".to_owned()],
            new_items: None,
        })
        .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
        out.clear();
        write_ranked(&mut view, &EntityMatcher::empty(), &mut out);
        assert_eq!(&out[..], br#"{"ranked_ids":["a\"1","b"],"new_items":null}"#);
    }
}
