//! The ranking server's OpenAPI document (`GET /openapi.json`).
//!
//! The runtime models ([`crate::models`]) carry hand-written, allocation-
//! light deserializers and no schema derive; the schema is described here by
//! documentation-only mirror types, named as the challenge's pydantic
//! models are. They are never deserialized. What the models check is
//! written into the schema (enums, the survey's scales, non-negative
//! counts, required-but-nullable `embedded_urls`); the tests below check
//! the bounds against the models, and `crates/celeriac-cli/tests/schemathesis.rs`
//! checks the document against the running server.

// The mirror types are only described, never built.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
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
        PlatformDoc,
        ItemTypeDoc,
        PartyIdDoc,
        SupportDoc,
        PartyLeanDoc,
        SexDoc,
        EthnicityDoc,
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
    platform: PlatformDoc,
    /// `2024-01-20 18:41:20`, ISO 8601 with or without fraction and offset;
    /// naive times are UTC.
    #[schema(schema_with = datetime, example = "2024-01-20 18:41:20")]
    current_time: String,
}

/// A datetime as the models read it: a string (`2024-01-20 18:41:20`,
/// `2024-01-20T18:41:20.5+01:00`, a bare date, …; naive times are UTC) or a
/// unix timestamp (seconds, or milliseconds above 2×10¹⁰).
fn datetime() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Number]))
        .description(Some(
            "A datetime: ISO 8601 with `T` or a space, with or without fraction and \
             offset (naive times are UTC), a bare date, or a unix timestamp (seconds, \
             or milliseconds above 2e10), as a string or a number.",
        ))
        .build()
}

/// `embedded_urls`: required, null or a list of `http`/`https` URLs of at
/// most 2083 characters (pydantic's `HttpUrl`).
fn embedded_urls() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(2083))
                .pattern(Some("^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#@:][^\\s]*$")),
        )
        .description(Some(
            "URLs embedded in the item (http or https, at most 2083 characters); the key \
             is required, the value may be null.",
        ))
        .build()
}

/// A platform of the challenge.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Platform)]
pub(crate) enum PlatformDoc {
    Twitter,
    Reddit,
    Facebook,
}

/// Whether a content item is a post or a comment.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ItemType)]
pub(crate) enum ItemTypeDoc {
    Post,
    Comment,
}

/// Party identification.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PartyId)]
pub(crate) enum PartyIdDoc {
    Democrat,
    Republican,
    Independent,
    Other,
    NoPreference,
}

/// Strength of party support.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Support)]
pub(crate) enum SupportDoc {
    Strong,
    NotStrong,
}

/// Which party an independent leans to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PartyLean)]
pub(crate) enum PartyLeanDoc {
    Democrat,
    Republican,
}

/// Sex.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Sex)]
pub(crate) enum SexDoc {
    Female,
    Male,
    Nonbinary,
    PreferNotToSay,
}

/// Ethnicity.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Ethnicity)]
pub(crate) enum EthnicityDoc {
    NativeAmerican,
    AsianOrPacificIslander,
    BlackOrAfricanAmerican,
    HispanicOrLatino,
    WhiteOrCaucasian,
    MultipleOrOther,
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
    #[serde(rename = "type")]
    kind: ItemTypeDoc,
    /// Required key; the value may be null.
    #[schema(schema_with = embedded_urls, required = true)]
    embedded_urls: Option<Vec<String>>,
    #[schema(schema_with = datetime, example = "2023-12-06 17:02:11")]
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

/// The participant's survey answers (scales are range-checked: a value
/// outside its range, or not a whole number, is a 400).
#[derive(Serialize, ToSchema)]
#[schema(as = SurveyResponse)]
pub(crate) struct SurveyResponseDoc {
    party_id: PartyIdDoc,
    party_write_in: Option<String>,
    /// Asked of partisans only.
    support: Option<SupportDoc>,
    /// Asked of independents only.
    party_lean: Option<PartyLeanDoc>,
    sex: SexDoc,
    /// Age bracket, 1–6.
    #[schema(minimum = 1, maximum = 6)]
    age: i32,
    /// Education level, 1–6.
    #[schema(minimum = 1, maximum = 6)]
    education: i32,
    /// Ideology, 1–7.
    #[schema(minimum = 1, maximum = 7)]
    ideology: i32,
    /// Income bracket, 1–7.
    #[schema(minimum = 1, maximum = 7)]
    income: i32,
    ethnicity: EthnicityDoc,
    ethnicity_write_in: Option<String>,
    /// Social media use, 1–7.
    #[schema(minimum = 1, maximum = 7)]
    socmed_use: i32,
    /// Share of use in a browser, 0–1.
    #[schema(minimum = 0, maximum = 1)]
    browser_perc: f64,
    /// Share of use on mobile, 0–1.
    #[schema(minimum = 0, maximum = 1)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{RankingRequest, SurveyResponse};
    use serde_json::{json, Value};

    fn document() -> Value {
        serde_json::from_str(&openapi_json()).unwrap_or(Value::Null)
    }

    fn schema(doc: &Value, name: &str) -> Value {
        doc["components"]["schemas"][name].clone()
    }

    fn survey() -> Value {
        json!({
            "party_id": "independent", "party_write_in": null, "support": null,
            "party_lean": "democrat", "sex": "female", "age": 3, "education": 3,
            "ideology": 4, "income": 4, "ethnicity": "multiple_or_other",
            "ethnicity_write_in": null, "socmed_use": 5, "browser_perc": 0.5,
            "mobile_perc": 0.5
        })
    }

    fn accepts(survey: &Value) -> bool {
        serde_json::from_value::<SurveyResponse>(survey.clone()).is_ok()
    }

    /// Each documented range is exactly what the model accepts: the bounds
    /// pass, one step outside them is refused.
    #[test]
    fn survey_ranges_are_the_models() {
        let doc = document();
        let properties = schema(&doc, "SurveyResponse")["properties"].clone();
        let mut checked = 0;
        for (field, property) in properties.as_object().into_iter().flatten() {
            let (Some(lo), Some(hi)) = (property["minimum"].as_f64(), property["maximum"].as_f64())
            else {
                continue;
            };
            let whole = property["type"] == "integer";
            let step = if whole { 1.0 } else { 0.001 };
            for (value, ok) in [
                (lo, true),
                (hi, true),
                (lo - step, false),
                (hi + step, false),
            ] {
                let mut s = survey();
                s[field] = json!(value);
                assert_eq!(accepts(&s), ok, "{field} = {value}");
            }
            if whole {
                let mut s = survey();
                s[field] = json!(lo + 0.5);
                assert!(!accepts(&s), "{field} accepts a fraction");
            }
            checked += 1;
        }
        assert_eq!(checked, 7, "{properties}");
        assert!(accepts(&survey()));
    }

    /// Every enum value the document lists is accepted, and a value it does
    /// not list is refused.
    #[test]
    fn enums_are_the_models() {
        let doc = document();
        for (name, field) in [
            ("PartyId", "party_id"),
            ("Support", "support"),
            ("PartyLean", "party_lean"),
            ("Sex", "sex"),
            ("Ethnicity", "ethnicity"),
        ] {
            let values = schema(&doc, name)["enum"].clone();
            let values = values.as_array().cloned().unwrap_or_default();
            assert!(values.len() >= 2, "{name}: {values:?}");
            for value in values {
                let mut s = survey();
                s[field] = value.clone();
                assert!(accepts(&s), "{field} = {value}");
            }
            let mut s = survey();
            s[field] = json!("Not_a_value");
            assert!(!accepts(&s), "{field} accepts anything");
        }
        let platforms = schema(&doc, "Platform")["enum"].clone();
        let expected: Vec<Value> = crate::models::Platform::ALL
            .iter()
            .map(|p| json!(p.as_str()))
            .collect();
        let mut listed = platforms.as_array().cloned().unwrap_or_default();
        listed.sort_by_key(|v| v.to_string());
        let mut expected = expected;
        expected.sort_by_key(|v| v.to_string());
        assert_eq!(listed, expected);
        assert_eq!(schema(&doc, "ItemType")["enum"], json!(["post", "comment"]));
    }

    /// A request built from the document's required fields is accepted,
    /// and `embedded_urls` is required (null allowed) as the model has it.
    #[test]
    fn a_documented_request_is_accepted() {
        let doc = document();
        let item_schema = schema(&doc, "ContentItem");
        let required = item_schema["required"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(required.contains(&json!("embedded_urls")), "{item_schema}");
        let item = json!({
            "id": "a", "text": "t", "author_name_hash": "h", "type": "post",
            "embedded_urls": null, "created_at": "2023-12-06 17:02:11",
            "engagements": {"upvote": 1, "downvote": 0, "comment": 0, "award": 0}
        });
        let mut request = json!({
            "session": {"user_id": "u", "user_name_hash": "h", "cohort": "AB",
                "platform": "reddit", "current_time": 1705776080},
            "survey": survey(),
            "items": [item.clone()]
        });
        assert!(serde_json::from_value::<RankingRequest>(request.clone()).is_ok());
        request["items"][0]
            .as_object_mut()
            .map(|o| o.remove("embedded_urls"));
        assert!(serde_json::from_value::<RankingRequest>(request).is_err());
    }
}
