//! The survey a participant answered ([`SurveyResponse`]) and its answer enums.
//!
//! Scales are checked on the way in (1–6, 1–7, fractions in [0, 1]); every
//! error names the field, e.g. "`age` must be between 1 and 6, got 9".

use serde::{de, Deserialize, Deserializer, Serialize};

/// Party identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyId {
    /// Democrat.
    Democrat,
    /// Republican.
    Republican,
    /// Independent.
    Independent,
    /// Another party.
    Other,
    /// No preference.
    NoPreference,
}

/// Strength of party support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Strong.
    Strong,
    /// Not strong.
    NotStrong,
}

/// Which party an independent leans to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyLean {
    /// Democrat.
    Democrat,
    /// Republican.
    Republican,
}

/// Sex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Nonbinary.
    Nonbinary,
    /// Prefer not to say.
    PreferNotToSay,
}

/// Ethnicity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ethnicity {
    /// Native American.
    NativeAmerican,
    /// Asian or Pacific Islander.
    AsianOrPacificIslander,
    /// Black or African American.
    BlackOrAfricanAmerican,
    /// Hispanic or Latino.
    HispanicOrLatino,
    /// White or Caucasian.
    WhiteOrCaucasian,
    /// Multiple or other.
    MultipleOrOther,
}

/// A participant's survey answers.
///
/// `support` and `party_lean` are optional: the survey asks only one of them
/// depending on `party_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurveyResponse {
    /// Party identification.
    pub party_id: PartyId,
    /// Free text when `party_id` is `other`.
    #[serde(default)]
    pub party_write_in: Option<String>,
    /// Strength of support, for partisans.
    #[serde(default)]
    pub support: Option<Support>,
    /// Lean, for independents.
    #[serde(default)]
    pub party_lean: Option<PartyLean>,
    /// Sex.
    pub sex: Sex,
    /// Age bracket, 1–6.
    #[serde(deserialize_with = "age")]
    pub age: u8,
    /// Education level, 1–6.
    #[serde(deserialize_with = "education")]
    pub education: u8,
    /// Ideology, 1–7.
    #[serde(deserialize_with = "ideology")]
    pub ideology: u8,
    /// Income bracket, 1–7.
    #[serde(deserialize_with = "income")]
    pub income: u8,
    /// Ethnicity.
    pub ethnicity: Ethnicity,
    /// Free text when `ethnicity` is `multiple_or_other`.
    #[serde(default)]
    pub ethnicity_write_in: Option<String>,
    /// Social media use, 1–7.
    #[serde(deserialize_with = "socmed_use")]
    pub socmed_use: u8,
    /// Share of use in a browser, 0–1.
    #[serde(deserialize_with = "browser_perc")]
    pub browser_perc: f64,
    /// Share of use on mobile, 0–1.
    #[serde(deserialize_with = "mobile_perc")]
    pub mobile_perc: f64,
}

fn scale<'de, D: Deserializer<'de>>(d: D, field: &str, lo: i64, hi: i64) -> Result<u8, D::Error> {
    let v = f64::deserialize(d)?;
    if v.fract() != 0.0 || !(lo as f64..=hi as f64).contains(&v) {
        return Err(de::Error::custom(format_args!(
            "`{field}` must be a whole number between {lo} and {hi}, got {v}"
        )));
    }
    Ok(v as u8)
}

fn fraction<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(de::Error::custom(format_args!(
            "`{field}` must be between 0 and 1, got {v}"
        )));
    }
    Ok(v)
}

macro_rules! scale_field {
    ($($name:ident: $lo:literal..=$hi:literal),*) => {$(
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
            scale(d, stringify!($name), $lo, $hi)
        }
    )*};
}
scale_field!(age: 1..=6, education: 1..=6, ideology: 1..=7, income: 1..=7, socmed_use: 1..=7);

fn browser_perc<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    fraction(d, "browser_perc")
}

fn mobile_perc<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    fraction(d, "mobile_perc")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"party_id":"no_preference","party_write_in":null,"support":"not_strong",
        "party_lean":"democrat","sex":"prefer_not_to_say","age":6,"education":1,"ideology":7,
        "income":3,"ethnicity":"asian_or_pacific_islander","ethnicity_write_in":null,
        "socmed_use":2,"browser_perc":0.25,"mobile_perc":1}"#;

    #[test]
    fn round_trips() -> serde_json::Result<()> {
        let s: SurveyResponse = serde_json::from_str(OK)?;
        assert_eq!(s.party_id, PartyId::NoPreference);
        assert_eq!(s.mobile_perc, 1.0);
        let back: SurveyResponse = serde_json::from_str(&serde_json::to_string(&s)?)?;
        assert_eq!(back, s);
        Ok(())
    }

    #[test]
    fn ranges_name_the_field() {
        for (from, to, needle) in [
            (
                "\"age\":6",
                "\"age\":7",
                "`age` must be a whole number between 1 and 6, got 7",
            ),
            ("\"ideology\":7", "\"ideology\":0", "`ideology`"),
            ("\"income\":3", "\"income\":2.5", "`income`"),
            (
                "\"browser_perc\":0.25",
                "\"browser_perc\":1.5",
                "`browser_perc` must be between 0 and 1",
            ),
            ("\"mobile_perc\":1", "\"mobile_perc\":-0.1", "`mobile_perc`"),
        ] {
            let bad = OK.replace(from, to);
            let err = serde_json::from_str::<SurveyResponse>(&bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(needle), "{to}: {err}");
        }
    }
}
