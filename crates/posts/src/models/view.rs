//! A borrowed, validating view of a [`RankingRequest`](super::RankingRequest):
//! the `/rank` fast path.
//!
//! [`RankingRequestView`] accepts exactly the JSON documents
//! `RankingRequest` accepts (every field checked for type and presence, with
//! the same validators and the same error at the same JSON path) but keeps
//! only what ranking reads: each item's `id` and `text`, borrowed from the
//! body when they contain no escapes. Every other value is checked in place
//! and dropped: no `String` per field, no `Vec` of URLs, no owned
//! datetimes; one `Vec` of items is the only allocation for a body without
//! escapes (a survey with write-ins allocates those two strings).
//!
//! The structs mirror the models field for field, in the same order and
//! with the same serde attributes, so that serde's derive reports missing,
//! duplicate and mistyped fields exactly as it does for the models;
//! `tests/ranking_view.rs` checks that on random documents.

use std::borrow::Cow;
use std::fmt;

use serde::{de, Deserialize, Deserializer};

use super::{check_http_url, datetime, Engagements, ItemType, Platform, SurveyResponse};

/// What `/rank` reads of a request: the items' ids and texts.
///
/// (The structs of this module carry the models' names because serde's
/// error messages name the struct: "expected struct Session".)
#[derive(Debug, Deserialize)]
pub struct RankingRequest<'a> {
    /// The session (checked, not kept).
    #[serde(rename = "session")]
    _session: Session,
    /// The survey (checked; kept only as far as its two optional strings).
    #[serde(default, rename = "survey")]
    _survey: Option<SurveyResponse>,
    /// The items to rank.
    #[serde(borrow)]
    pub items: Vec<ContentItem<'a>>,
}

/// [`Session`](super::Session), checked and dropped.
#[derive(Debug, Deserialize)]
struct Session {
    #[serde(rename = "user_id")]
    _user_id: Str,
    #[serde(rename = "user_name_hash")]
    _user_name_hash: Str,
    #[serde(rename = "cohort")]
    _cohort: Str,
    #[serde(rename = "platform")]
    _platform: Platform,
    #[serde(rename = "current_time", deserialize_with = "datetime_checked")]
    _current_time: (),
}

/// One [`ContentItem`](super::ContentItem): its `id` and `text`; every other
/// field checked and dropped.
#[derive(Debug, Deserialize)]
pub struct ContentItem<'a> {
    /// The item's id.
    #[serde(borrow)]
    pub id: BorrowedStr<'a>,
    #[serde(default, rename = "post_id")]
    _post_id: Option<Str>,
    #[serde(default, rename = "parent_id")]
    _parent_id: Option<Str>,
    #[serde(default, rename = "title")]
    _title: Option<Str>,
    /// The item's text.
    #[serde(borrow)]
    pub text: BorrowedStr<'a>,
    #[serde(rename = "author_name_hash")]
    _author_name_hash: Str,
    #[serde(rename = "type")]
    _kind: ItemType,
    #[serde(rename = "embedded_urls", deserialize_with = "embedded_urls_checked")]
    _embedded_urls: (),
    #[serde(rename = "created_at", deserialize_with = "datetime_checked")]
    _created_at: (),
    #[serde(rename = "engagements")]
    _engagements: Engagements,
}

impl ContentItem<'_> {
    /// The item's id (unescaped).
    pub fn id(&self) -> &str {
        &self.id.0
    }

    /// The item's text (unescaped).
    pub fn text(&self) -> &str {
        &self.text.0
    }
}

/// The view of a request, as [`fast`](crate::ranking::fast) names it.
pub type RankingRequestView<'a> = RankingRequest<'a>;

/// The view of one item.
pub type ItemView<'a> = ContentItem<'a>;

/// A JSON string, borrowed from the body unless it had escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BorrowedStr<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // As `String`'s, so that errors read the same.
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_string(V).map(BorrowedStr)
    }
}

/// A JSON string, checked and dropped (what `String` accepts).
#[derive(Debug)]
struct Str;

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Str, E> {
                Ok(Str)
            }
        }
        d.deserialize_string(V)
    }
}

/// A datetime in any spelling the models accept, checked and dropped.
fn datetime_checked<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    datetime::deserialize(d).map(drop)
}

/// `embedded_urls` as the models check it (required key, `null` or a list
/// of `http(s)` URLs, the error naming the index), nothing kept.
fn embedded_urls_checked<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    struct Urls;
    impl<'de> de::Visitor<'de> for Urls {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null or a list of URLs")
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_none<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0usize;
            while let Some(u) = seq.next_element::<BorrowedStr<'de>>()? {
                if let Err(why) = check_http_url(&u.0) {
                    return Err(de::Error::custom(format_args!(
                        "`embedded_urls[{index}]` is not a valid URL (`{}`): {why}",
                        u.0
                    )));
                }
                index += 1;
            }
            Ok(())
        }
    }
    d.deserialize_option(Urls)
}
