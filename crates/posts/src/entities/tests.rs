//! Unit tests of the extractor on tricky cases (sentences written for these
//! tests, not taken from the evaluation set).

use super::*;
use EntityKind::{Location as L, Organization as O, Person as P};

fn names(text: &str) -> Vec<(String, EntityKind)> {
    extract(text)
        .into_iter()
        .map(|e| (e.text, e.kind))
        .collect()
}

fn check(text: &str, expected: &[(&str, EntityKind)]) {
    let want: Vec<(String, EntityKind)> =
        expected.iter().map(|(t, k)| (t.to_string(), *k)).collect();
    assert_eq!(names(text), want, "in {text:?}");
}

#[test]
fn people_places_orgs() {
    check(
        "Angela Merkel met with Emmanuel Macron in Berlin to discuss the Federal Reserve.",
        &[
            ("Angela Merkel", P),
            ("Emmanuel Macron", P),
            ("Berlin", L),
            ("Federal Reserve", O),
        ],
    );
}

#[test]
fn determiners_are_dropped() {
    check(
        "The European Union fined Apple again.",
        &[("European Union", O), ("Apple", O)],
    );
}

#[test]
fn titles_are_split_off() {
    check(
        "Senator Bernie Sanders spoke at the University of Texas at Austin yesterday.",
        &[
            ("Bernie Sanders", P),
            ("University of Texas", O),
            ("Austin", L),
        ],
    );
    check(
        "\"We are not going anywhere,\" said Prime Minister Keir Starmer.",
        &[("Keir Starmer", P)],
    );
    check("Dr. Okafor runs the clinic.", &[("Okafor", P)]);
}

#[test]
fn possessives_are_stripped() {
    check(
        "President Biden's speech in New York City was long.",
        &[("Biden", P), ("New York City", L)],
    );
}

#[test]
fn function_words_inside_names() {
    check(
        "Bank of America and Johnson & Johnson both reported earnings on Tuesday.",
        &[("Bank of America", O), ("Johnson & Johnson", O)],
    );
    check(
        "Ursula von der Leyen met Lula da Silva in Rome.",
        &[
            ("Ursula von der Leyen", P),
            ("Lula da Silva", P),
            ("Rome", L),
        ],
    );
}

#[test]
fn shouting_and_lower_case() {
    check(
        "BIDEN AND PELOSI ARE DESTROYING AMERICA WAKE UP",
        &[("BIDEN", P), ("PELOSI", P), ("AMERICA", L)],
    );
    check(
        "i think elon musk should just sell twitter to someone in canada",
        &[("elon musk", P), ("twitter", O), ("canada", L)],
    );
    check("this is the BEST game EVER", &[]);
}

#[test]
fn acronyms() {
    check(
        "Honestly the FBI and CIA need more oversight imo.",
        &[("FBI", O), ("CIA", O)],
    );
    check(
        "The U.S. and the U.K. signed a deal with NATO in Brussels.",
        &[("U.S.", L), ("U.K.", L), ("NATO", O), ("Brussels", L)],
    );
    check("Our CEO said AI will help with the IPO.", &[]);
}

#[test]
fn hashtags_mentions_urls_are_skipped() {
    check(
        "Check this out https://www.example.com/New-York #NewYork @NewYorkPost",
        &[],
    );
}

#[test]
fn events_and_storms_are_not_entities() {
    check(
        "We watched the Super Bowl at Madison Square Garden with Mike and Sarah.",
        &[("Madison Square Garden", L), ("Mike", P), ("Sarah", P)],
    );
    check(
        "Tropical Storm Alberto is heading toward Corpus Christi.",
        &[("Corpus Christi", L)],
    );
}

#[test]
fn sentence_initial_and_title_case() {
    check("Happy Birthday To My Amazing Mom!", &[]);
    check("Traffic was terrible. Officials blamed the rain.", &[]);
    check(
        "Went to Starbucks on 5th Avenue then took the subway to Central Park.",
        &[("Starbucks", O), ("5th Avenue", L), ("Central Park", L)],
    );
}

#[test]
fn unknown_names_typed_by_cues() {
    check(
        "My daughter goes to Jefferson Elementary School on Maple Street.",
        &[("Jefferson Elementary School", O), ("Maple Street", L)],
    );
    check(
        "Had lunch with Priya Venkataraman at Bluebird Cafe in Millbrook.",
        &[
            ("Priya Venkataraman", P),
            ("Bluebird Cafe", O),
            ("Millbrook", L),
        ],
    );
    check(
        "Traffic is backed up on I-84 near Hartford.",
        &[("I-84", L), ("Hartford", L)],
    );
}

#[test]
fn days_months_and_pronouns() {
    check("On Monday in January I saw it. I'm fine.", &[]);
}

#[test]
fn distinct_names_in_order() {
    let got = distinct_entities("Trump said Trump would visit Ohio, then Trump's plane left Ohio.");
    assert_eq!(got, vec!["Trump".to_string(), "Ohio".to_string()]);
    let names: Vec<&str> = entity_names("Obama met Obama").collect();
    assert_eq!(names, vec!["Obama", "Obama"]);
}

#[test]
fn names_are_joined_with_single_spaces() {
    check(
        "We drove to New  York City\tyesterday.",
        &[("New York City", L)],
    );
    assert_eq!(
        distinct_entities("Visit Lake  Tahoe"),
        vec!["Lake Tahoe".to_string()]
    );
}

#[test]
fn spans_point_into_the_text() {
    let text = "Viktor Orbán met Kylian Mbappé in Paris 😭";
    for s in Extractor::new().spans(text) {
        assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
    }
    check(
        text,
        &[("Viktor Orbán", P), ("Kylian Mbappé", P), ("Paris", L)],
    );
}

#[test]
fn odd_input_does_not_panic() {
    for text in [
        "", " ", "'", "-", "&", "U.", "A.B.", "#", "@", "’s", "Mr.", "I-", "e\u{301}", "\n\n",
        "...", "O'",
    ] {
        let _ = extract(text);
    }
}

#[test]
fn kind_labels_round_trip() {
    for k in EntityKind::ALL {
        assert_eq!(k.as_str().parse::<EntityKind>(), Ok(k));
    }
    assert_eq!("GPE".parse::<EntityKind>(), Ok(L));
    assert!("THING".parse::<EntityKind>().is_err());
}
