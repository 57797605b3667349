//! The ranking server's OpenAPI document (`GET /openapi.json`).
//!
//! The runtime models ([`crate::models`]) carry hand-written, allocation-
//! light deserializers and no schema derive; the schema is described here by
//! documentation-only mirror types, named as the challenge's pydantic
//! models are. They are never deserialized: a test checks that the
//! document's example request is accepted by the real models.

// The mirror types are only described, never built.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The ranking server's API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Celeriac post-history ranking server",
        description = "Ranks a feed: items whose text mentions none of the current top named \
                       entities come first, the rest after, each group in its original order. \
                       The entities are the scheduled job's record \
                       `my_worker:scheduled:top_named_entities`, refreshed in the background.",
        version = "0.1.0"
    ),
    paths(super::server::rank, super::server::health),
    components(schemas(
        RankingRequestDoc,
        SessionDoc,
        ContentItemDoc,
        EngagementsDoc,
        TwitterEngagementsDoc,
        RedditEngagementsDoc,
        FacebookEngagementsDoc,
        SurveyResponseDoc,
        RankingResponseDoc,
        NewItemDoc,
        super::server::ErrorBody,
        super::server::Health
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the OpenAPI document: {e}\"}}"))
}

/// A request to rank a feed.
#[derive(Serialize, ToSchema)]
#[schema(as = RankingRequest)]
pub(crate) struct RankingRequestDoc {
    session: SessionDoc,
    /// The participant's survey answers, when known.
    survey: Option<SurveyResponseDoc>,
    /// The items to rank.
    items: Vec<ContentItemDoc>,
}

/// The user's session.
#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
pub(crate) struct SessionDoc {
    user_id: String,
    user_name_hash: String,
    cohort: String,
    /// `twitter`, `reddit` or `facebook`.
    #[schema(example = "reddit")]
    platform: String,
    /// `2024-01-20 18:41:20`, ISO 8601 with or without fraction and offset;
    /// naive times are UTC.
    #[schema(example = "2024-01-20 18:41:20")]
    current_time: String,
}

/// One piece of content in a feed.
#[derive(Serialize, ToSchema)]
#[schema(as = ContentItem)]
pub(crate) struct ContentItemDoc {
    id: String,
    post_id: Option<String>,
    parent_id: Option<String>,
    /// Reddit posts only.
    title: Option<String>,
    text: String,
    author_name_hash: String,
    /// `post` or `comment`.
    #[serde(rename = "type")]
    #[schema(example = "post")]
    kind: String,
    /// Required key; the value may be null.
    embedded_urls: Option<Vec<String>>,
    #[schema(example = "2023-12-06 17:02:11")]
    created_at: String,
    engagements: EngagementsDoc,
}

/// Engagement counts, in the shape of the item's platform.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = Engagements)]
pub(crate) enum EngagementsDoc {
    Twitter(TwitterEngagementsDoc),
    Reddit(RedditEngagementsDoc),
    Facebook(FacebookEngagementsDoc),
}

/// Twitter engagements.
#[derive(Serialize, ToSchema)]
#[schema(as = TwitterEngagements)]
pub(crate) struct TwitterEngagementsDoc {
    retweet: u64,
    like: u64,
    comment: u64,
    share: u64,
}

/// Reddit engagements.
#[derive(Serialize, ToSchema)]
#[schema(as = RedditEngagements)]
pub(crate) struct RedditEngagementsDoc {
    upvote: u64,
    downvote: u64,
    comment: u64,
    award: u64,
}

/// Facebook engagements.
#[derive(Serialize, ToSchema)]
#[schema(as = FacebookEngagements)]
pub(crate) struct FacebookEngagementsDoc {
    like: u64,
    love: u64,
    care: u64,
    haha: u64,
    wow: u64,
    sad: u64,
    angry: u64,
    comment: u64,
    share: u64,
}

/// The participant's survey answers (scales are range-checked).
#[derive(Serialize, ToSchema)]
#[schema(as = SurveyResponse)]
pub(crate) struct SurveyResponseDoc {
    /// democrat, republican, independent, other, no_preference
    party_id: String,
    party_write_in: Option<String>,
    /// strong, not_strong
    support: String,
    /// democrat, republican
    party_lean: String,
    /// female, male, nonbinary, prefer_not_to_say
    sex: String,
    /// 1–6
    age: u8,
    /// 1–6
    education: u8,
    /// 1–7
    ideology: u8,
    /// 1–7
    income: u8,
    /// native_american, asian_or_pacific_islander, black_or_african_american,
    /// hispanic_or_latino, white_or_caucasian, multiple_or_other
    ethnicity: String,
    ethnicity_write_in: Option<String>,
    /// 1–7
    socmed_use: u8,
    /// 0–1
    browser_perc: f64,
    /// 0–1
    mobile_perc: f64,
}

/// The ranker's answer.
#[derive(Serialize, ToSchema)]
#[schema(as = RankingResponse)]
pub(crate) struct RankingResponseDoc {
    /// The request's item ids, ranked.
    ranked_ids: Vec<String>,
    /// Items to add (this ranker adds none).
    new_items: Option<Vec<NewItemDoc>>,
}

/// An item the ranker adds to the feed.
#[derive(Serialize, ToSchema)]
#[schema(as = NewItem)]
pub(crate) struct NewItemDoc {
    id: String,
    url: String,
}
