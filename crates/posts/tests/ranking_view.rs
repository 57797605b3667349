//! The `/rank` fast path against the plain decode, on random documents.
//!
//! - Valid requests: the serde view ([`fast::parse_view`]) takes them all,
//!   the hand-written [`fast::scan`] those of the common shape, and with
//!   either the answer [`fast::write_ranked`] writes is byte for byte the
//!   serialization of the `RankingResponse` that decoding a `RankingRequest`
//!   and ranking it with [`rank`] gives, whatever the matching options.
//! - Invalid ones (a valid request with one thing broken: a field missing,
//!   duplicated or of the wrong type, a value out of range, the text cut
//!   short): neither fast decoder takes them, and the view, decoded with
//!   the JSON path tracked, fails at the same path with the same message as
//!   the `RankingRequest` (the 400's `field`).

use bytes::BytesMut;
use posts::models::view::RankingRequestView;
use posts::models::{from_json, RankingRequest, RankingResponse};
use posts::ranking::{fast, rank, EntityMatcher, MatchOptions};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const WORDS: [&str; 12] = [
    "the", "Council", "said", "New", "York", "paris", "Parisian", "é", "✓", "tab\t", "\"q\"",
    "back\\",
];
const ENTITIES: [&str; 6] = ["New York", "Paris", "paris", "Council", "é", "q\""];

fn words(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(&WORDS[..]), 0..max).prop_map(|w| w.join(" "))
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_-]{1,12}",
        "[a-z]{1,4}[\"\\\\\n\u{1}é✓][a-z]{0,4}",
        Just(String::new()),
    ]
}

fn datetime() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => Just(json!("2024-01-20 18:41:20")),
        3 => Just(json!("2023-12-06T17:02:11.123Z")),
        3 => Just(json!("2023-12-06T17:02:11+02:00")),
        1 => (0i64..2_000_000_000).prop_map(|t| json!(t)),
    ]
}

fn url() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("https://example.com/a?b=1")),
        Just(json!("http://x.org")),
        Just(json!("HTTPS://user@host.example:8080/p#f")),
    ]
}

fn engagements() -> impl Strategy<Value = Value> {
    let n = || 0u64..1000;
    let facebook = |v: Vec<u64>| {
        json!({"like": v[0], "love": v[1], "care": v[2], "haha": v[3], "wow": v[4],
               "sad": v[5], "angry": v[6], "comment": v[7], "share": v[8]})
    };
    prop_oneof![
        6 => (n(), n(), n(), n())
            .prop_map(|(a, b, c, d)| json!({"upvote": a, "downvote": b, "comment": c, "award": d})),
        6 => (n(), n(), n(), n())
            .prop_map(|(a, b, c, d)| json!({"retweet": a, "like": b, "comment": c, "share": d})),
        6 => prop::collection::vec(n(), 9).prop_map(facebook),
        // Valid, but for the serde view only: a float count, an extra key.
        1 => (n(), n(), n(), n()).prop_map(
            |(a, b, c, d)| json!({"retweet": a, "like": b, "comment": c, "share": d as f64})
        ),
        1 => prop::collection::vec(n(), 9).prop_map(move |v| {
            let mut e = facebook(v);
            e["extra"] = json!([1, {"x": null}]);
            e
        }),
    ]
}

/// An optional nullable string field: absent, `null`, or a string.
fn optional_string() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        id().prop_map(|s| Some(json!(s))),
    ]
}

fn item() -> impl Strategy<Value = Value> {
    (
        id(),
        words(30),
        (optional_string(), optional_string(), optional_string()),
        prop_oneof![Just("post"), Just("comment")],
        prop_oneof![
            Just(Value::Null),
            prop::collection::vec(url(), 0..3).prop_map(Value::Array)
        ],
        datetime(),
        engagements(),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(id, text, (post_id, parent_id, title), kind, urls, created, eng, extra)| {
                let mut m = Map::new();
                m.insert("id".into(), json!(id));
                for (k, v) in [
                    ("post_id", post_id),
                    ("parent_id", parent_id),
                    ("title", title),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                m.insert("text".into(), json!(text));
                m.insert("author_name_hash".into(), json!("60b46b73"));
                m.insert("type".into(), json!(kind));
                m.insert("embedded_urls".into(), urls);
                m.insert("created_at".into(), created);
                m.insert("engagements".into(), eng);
                if extra {
                    m.insert("unknown".into(), json!({"nested": ["\u{fffd}", 1.5e300]}));
                }
                Value::Object(m)
            },
        )
}

fn survey() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => Just(Value::Null),
        1 => (1u8..=6, 0.0f64..=1.0).prop_map(|(age, perc)| json!({
            "party_id": "other", "party_write_in": "Pirates", "sex": "female", "age": age,
            "education": 3, "ideology": 4, "income": 2, "ethnicity": "multiple_or_other",
            "ethnicity_write_in": "x", "socmed_use": 7, "browser_perc": perc, "mobile_perc": 0.5
        })),
    ]
}

fn request() -> impl Strategy<Value = Value> {
    request_of(0..12)
}

/// A request of `items` items.
fn request_of(items: std::ops::Range<usize>) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(item(), items),
        prop::option::weighted(0.3, survey()),
        datetime(),
        prop_oneof![Just("reddit"), Just("twitter"), Just("facebook")],
    )
        .prop_map(|(items, survey, time, platform)| {
            let mut m = Map::new();
            m.insert(
                "session".into(),
                json!({"user_id": "193a9e01", "user_name_hash": "6511c568", "cohort": "AB",
                       "platform": platform, "current_time": time}),
            );
            if let Some(s) = survey {
                m.insert("survey".into(), s);
            }
            m.insert("items".into(), Value::Array(items));
            Value::Object(m)
        })
}

fn matcher(entities: &[&str], options: MatchOptions) -> EntityMatcher {
    EntityMatcher::new(entities.iter().map(|s| (*s).to_owned()), options)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every value of `v`, by JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

/// Break `doc` at the `pick`-th value with the `how`-th mutation; the text.
fn break_it(mut doc: Value, pick: usize, how: usize) -> String {
    let mut all = Vec::new();
    pointers(&doc, String::new(), &mut all);
    let replacements = [
        json!(null),
        json!(-1),
        json!(1.5),
        json!("not a url or date"),
        json!(true),
        json!([1]),
        json!({"a": 1}),
    ];
    if all.is_empty() || how == replacements.len() + 2 {
        // Cut short: a syntax error where the parser stops.
        let text = doc.to_string();
        let cut = (pick % text.len().max(1)).max(1);
        return String::from_utf8_lossy(&text.as_bytes()[..cut]).into_owned();
    }
    let target = &all[pick % all.len()];
    let (parent, key) = target.rsplit_once('/').unwrap_or(("", ""));
    if how == replacements.len() {
        // Remove it.
        match doc.pointer_mut(parent) {
            Some(Value::Object(m)) => {
                m.remove(key);
            }
            Some(Value::Array(a)) => {
                if let Ok(i) = key.parse::<usize>() {
                    a.remove(i);
                }
            }
            _ => {}
        }
        return doc.to_string();
    }
    if how == replacements.len() + 1 {
        // Duplicate it (serde_json's Map keeps one key, so textually).
        if let Some(Value::Object(m)) = doc.pointer(parent) {
            if let Some(v) = m.get(key) {
                let dup = format!("{}:{},", Value::String(key.to_owned()), v);
                let mut text = doc.to_string();
                let needle = Value::Object(m.clone()).to_string();
                if let Some(at) = text.find(&needle) {
                    text.insert_str(at + 1, &dup);
                }
                return text;
            }
        }
        return doc.to_string();
    }
    if let Some(v) = doc.pointer_mut(target) {
        *v = replacements[how].clone();
    }
    doc.to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_requests_rank_as_the_plain_decode(
        doc in request(),
        ignore_ascii_case in any::<bool>(),
        whole_words in any::<bool>(),
        n_entities in 0usize..=ENTITIES.len(),
    ) {
        let body = doc.to_string();
        let options = MatchOptions { ignore_ascii_case, whole_words };
        check_valid(&body, &matcher(&ENTITIES[..n_entities], options))?;
    }

    /// Each case breaks one value of a small request in every way.
    #[test]
    fn invalid_requests_fail_at_the_same_path(
        doc in request_of(0..4),
        pick in any::<usize>(),
    ) {
        for how in 0..10 {
            check_broken(&break_it(doc.clone(), pick, how))?;
        }
    }
}

/// `body` is valid: each fast decoder that takes it (the serde view must)
/// ranks it as the plain decode and [`rank`] do.
fn check_valid(body: &str, m: &EntityMatcher) -> Result<(), TestCaseError> {
    let plain: RankingRequest = from_json(body.as_bytes())
        .map_err(|e| TestCaseError::fail(format!("not a valid request: {e}\n{body}")))?;
    let expected = serde_json::to_vec(&RankingResponse {
        ranked_ids: rank(&plain.items, m),
        new_items: None,
    })
    .unwrap_or_default();
    let expected = String::from_utf8_lossy(&expected);
    let scanned = fast::scan(body.as_bytes());
    let viewed = fast::parse_view(body.as_bytes()).map(|v| {
        v.items
            .into_iter()
            .map(|i| fast::Item::new(i.id.0, i.text.0))
            .collect::<Vec<_>>()
    });
    prop_assert!(
        viewed.is_some(),
        "the serde view refused a valid request: {}",
        body
    );
    for mut items in [scanned, viewed, fast::parse(body.as_bytes())]
        .into_iter()
        .flatten()
    {
        let mut out = BytesMut::new();
        fast::write_ranked(&mut items, m, &mut out);
        prop_assert_eq!(String::from_utf8_lossy(&out), expected.clone());
    }
    Ok(())
}

/// `body` may be valid (some breaks are harmless: an extra field, a null
/// title): then as [`check_valid`]. If not, neither fast decoder takes it
/// and the view fails where and as the model does.
fn check_broken(body: &str) -> Result<(), TestCaseError> {
    let plain = from_json::<RankingRequest>(body.as_bytes());
    let view = from_json::<RankingRequestView<'_>>(body.as_bytes());
    match (plain, view) {
        (Ok(_), Ok(_)) => check_valid(body, &matcher(&ENTITIES, MatchOptions::default())),
        (Err(p), Err(v)) => {
            prop_assert_eq!(p.path(), v.path(), "{}", body);
            prop_assert_eq!(p.message(), v.message(), "{}", body);
            prop_assert!(fast::scan(body.as_bytes()).is_none(), "scan took {}", body);
            prop_assert!(
                fast::parse_view(body.as_bytes()).is_none(),
                "view took {}",
                body
            );
            Ok(())
        }
        (p, v) => Err(TestCaseError::fail(format!(
            "the decodes disagree on {body}: plain {:?}, view {:?}",
            p.map(|_| ()),
            v.map(|_| ())
        ))),
    }
}

/// A good share of the generator's requests have the common shape the
/// scanner takes (so the property above exercises it), and the scan gives the same items
/// as the serde view.
#[test]
fn the_scanner_takes_a_good_share_of_generated_requests() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut scanned, mut total) = (0, 0);
    for _ in 0..300 {
        let Ok(tree) = request().new_tree(&mut runner) else {
            continue;
        };
        let body = tree.current().to_string();
        total += 1;
        if let Some(items) = fast::scan(body.as_bytes()) {
            scanned += 1;
            let view = fast::parse_view(body.as_bytes()).map(|v| v.items.len());
            assert_eq!(view, Some(items.len()), "{body}");
        }
    }
    assert!(
        scanned * 5 > total,
        "the scanner took only {scanned} of {total} valid requests"
    );
}

/// The mutations above do break requests: most of them are refused.
#[test]
fn the_mutations_mostly_produce_invalid_requests() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut refused, mut total) = (0, 0);
    for i in 0..300usize {
        let Ok(tree) = request().new_tree(&mut runner) else {
            continue;
        };
        let body = break_it(tree.current(), i * 7919, i % 10);
        total += 1;
        if from_json::<RankingRequest>(body.as_bytes()).is_err() {
            refused += 1;
        }
    }
    assert!(
        refused * 2 > total,
        "only {refused} of {total} broken requests were refused"
    );
}
