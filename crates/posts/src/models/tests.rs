//! Unit tests of the models: pydantic-shaped JSON both ways, and validation.

use super::*;

const ITEM: &str = r#"{
  "id": "abc", "post_id": null, "parent_id": null, "title": "A title",
  "text": "Hello from New York City", "author_name_hash": "h1", "type": "post",
  "embedded_urls": ["https://example.com/a?b=1"], "created_at": "2023-10-25 17:11:20",
  "engagements": {"upvote": 3, "downvote": 0, "comment": 2, "award": 0},
  "extra_field_pydantic_ignores": {"nested": [1, 2]}
}"#;

fn request(items: &str) -> String {
    format!(
        r#"{{"session": {{"user_id": "u", "user_name_hash": "uh", "cohort": "AB",
            "platform": "reddit", "current_time": "2024-01-20T18:41:20.123Z"}},
           "survey": null, "items": [{items}]}}"#
    )
}

#[test]
fn content_item_round_trips() -> Result<(), Box<dyn std::error::Error>> {
    let item: ContentItem = serde_json::from_str(ITEM)?;
    assert_eq!(item.kind, ItemType::Post);
    assert_eq!(item.title.as_deref(), Some("A title"));
    assert_eq!(datetime::format_db(&item.created_at), "2023-10-25 17:11:20");
    let json = serde_json::to_string(&item)?;
    // pydantic's model_dump_json keeps null keys and writes ISO datetimes.
    assert!(json.contains(r#""post_id":null"#), "{json}");
    assert!(json.contains(r#""type":"post""#), "{json}");
    assert!(
        json.contains(r#""created_at":"2023-10-25T17:11:20Z""#),
        "{json}"
    );
    assert!(json.contains(r#""engagements":{"upvote":3,"downvote":0,"comment":2,"award":0}"#));
    let back: ContentItem = serde_json::from_str(&json)?;
    assert_eq!(back, item);
    Ok(())
}

#[test]
fn ranking_request_and_response() -> Result<(), Box<dyn std::error::Error>> {
    let req: RankingRequest = from_json(request(ITEM).as_bytes())?;
    assert_eq!(req.session.platform, Platform::Reddit);
    assert_eq!(req.items.len(), 1);
    assert!(req.survey.is_none());
    let back: RankingRequest = from_json(serde_json::to_string(&req)?.as_bytes())?;
    assert_eq!(back, req);
    // `survey` may be omitted altogether.
    let no_survey = request(ITEM).replace(r#""survey": null,"#, "");
    assert!(from_json::<RankingRequest>(no_survey.as_bytes()).is_ok());

    let resp: RankingResponse = from_json(br#"{"ranked_ids": ["b", "a"]}"#)?;
    assert_eq!(resp.new_items, None);
    let resp: RankingResponse =
        from_json(br#"{"ranked_ids": [], "new_items": [{"id": "n", "url": "http://x.org"}]}"#)?;
    assert_eq!(resp.new_items.map(|v| v.len()), Some(1));
    assert!(from_json::<RankingResponse>(
        br#"{"ranked_ids": [], "new_items": [{"id": "n", "url": "ftp://x"}]}"#
    )
    .is_err());
    Ok(())
}

#[test]
fn errors_carry_the_path() {
    let bad = request(&ITEM.replace(r#""upvote": 3"#, r#""upvote": -3"#));
    let err = from_json::<RankingRequest>(bad.as_bytes()).err();
    let err = err
        .map(|e| (e.path().to_string(), e.to_string()))
        .unwrap_or_default();
    assert_eq!(err.0, "items[0].engagements.upvote");
    assert!(err.1.contains("`upvote` must be non-negative"), "{}", err.1);

    let bad = request(&ITEM.replace(r#""type": "post""#, r#""type": "story""#));
    let path = from_json::<RankingRequest>(bad.as_bytes())
        .err()
        .map(|e| e.path().to_string());
    assert_eq!(path.as_deref(), Some("items[0].type"));

    let bad = request(ITEM).replace("reddit", "myspace");
    let path = from_json::<RankingRequest>(bad.as_bytes())
        .err()
        .map(|e| e.path().to_string());
    assert_eq!(path.as_deref(), Some("session.platform"));

    let bad = request(&ITEM.replace("2023-10-25 17:11:20", "last tuesday"));
    let err = from_json::<RankingRequest>(bad.as_bytes())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with("items[0].created_at: invalid datetime `last tuesday`"),
        "{err}"
    );
}

#[test]
fn embedded_urls_key_is_required_but_nullable() -> Result<(), Box<dyn std::error::Error>> {
    let null = ITEM.replace(r#"["https://example.com/a?b=1"]"#, "null");
    let item: ContentItem = serde_json::from_str(&null)?;
    assert_eq!(item.embedded_urls, None);
    let missing = ITEM.replace(r#""embedded_urls": ["https://example.com/a?b=1"],"#, "");
    let err = serde_json::from_str::<ContentItem>(&missing)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("missing field `embedded_urls`"), "{err}");
    let bad = ITEM.replace("https://example.com/a?b=1", "not a url");
    let err = serde_json::from_str::<ContentItem>(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("`embedded_urls[0]` is not a valid URL"),
        "{err}"
    );
    Ok(())
}

#[test]
fn required_fields_are_named() {
    for field in [
        "\"id\": \"abc\",",
        "\"text\": \"Hello from New York City\",",
        "\"author_name_hash\": \"h1\",",
    ] {
        let s = ITEM.replace(field, "");
        let err = serde_json::from_str::<ContentItem>(&s)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("missing field"), "{field}: {err}");
    }
}

#[test]
fn platform_names() -> Result<(), UnknownPlatform> {
    for p in Platform::ALL {
        assert_eq!(p.as_str().parse::<Platform>()?, p);
    }
    assert!("myspace".parse::<Platform>().is_err());
    Ok(())
}

#[test]
fn url_checks() {
    assert!(check_http_url("https://example.com").is_ok());
    assert!(check_http_url("HTTP://user@host:80/p").is_ok());
    assert!(check_http_url("https://").is_err());
    assert!(check_http_url("mailto:a@b").is_err());
    // A multi-byte character where the scheme would end: refused or
    // accepted, never a panic (found by schemathesis: the server dropped
    // the connection).
    assert!(check_http_url("HTTP://\u{80}").is_ok());
    assert!(check_http_url("http:/\u{80}").is_err());
    assert!(check_http_url("\u{e9}ttps://x").is_err());
    assert!(check_http_url("https://a b").is_err());
}
