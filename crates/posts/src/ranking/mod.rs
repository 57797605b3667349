//! The ranking server of the post-history system (SPEC §5): feeds are
//! reordered so that items mentioning none of the currently most-mentioned
//! named entities come first.
//!
//! # How it fits together
//! 1. The scheduled job (`tasks.count_top_named_entities`, see
//!    [`crate::tasks`]) stores the top entities under
//!    [`SCHEDULED_TOP_ENTITIES_KEY`](crate::tasks::SCHEDULED_TOP_ENTITIES_KEY).
//! 2. [`EntityCache`] reads that key through the result backend every few
//!    seconds and keeps an [`EntityMatcher`] (one Aho-Corasick automaton over
//!    all entities) ready; requests never wait on the backend.
//! 3. [`rank`] is the rule: a stable partition of the items into "mentions
//!    no entity" then "mentions one" ([`MatchOptions`] says how a mention is
//!    matched; the default is the original's case-sensitive substring test).
//! 4. [`server::router`] serves it over HTTP (`POST /rank`, `GET /health`,
//!    `GET /openapi.json`); `post-history rank-server` runs it.
//!
//! # Layout
//! - `matcher`: [`EntityMatcher`], [`MatchOptions`].
//! - `cache`: [`EntityCache`] and the background refresh.
//! - [`fast`]: the `/rank` hot path (borrowed view of the body, the answer
//!   written straight into a buffer); [`rank`] is the rule on the models.
//! - [`server`]: the axum router and [`server::serve`].
//! - [`openapi`]: the OpenAPI document.

mod cache;
pub mod fast;
mod matcher;
pub mod openapi;
mod scan;
pub mod server;

pub use cache::{parse_entities, EntityCache, Snapshot, Source};
pub use matcher::{EntityMatcher, MatchOptions, MatcherError};

use crate::models::ContentItem;

/// The ids of `items`, those whose text mentions none of `matcher`'s
/// entities first, then the others; each group keeps the request's order.
pub fn rank(items: &[ContentItem], matcher: &EntityMatcher) -> Vec<String> {
    if matcher.is_empty() {
        return items.iter().map(|item| item.id.clone()).collect();
    }
    let mut ranked = Vec::with_capacity(items.len());
    let mut later = Vec::new();
    for item in items {
        if matcher.is_match(&item.text) {
            later.push(item.id.clone());
        } else {
            ranked.push(item.id.clone());
        }
    }
    ranked.append(&mut later);
    ranked
}
