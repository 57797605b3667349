//! Evaluation of the extractor on a labelled set: entity-level exact-match
//! precision, recall and F1, untyped (surface text only) and typed (text and
//! type), overall and per type, with the errors listed per text.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{EntityKind, Extractor};

/// The shipped hand-labelled evaluation set (JSON Lines), see
/// `crates/posts/data/entities_eval.md`.
pub const EVAL_SET_JSONL: &str = include_str!("../../data/entities_eval.jsonl");

/// One gold entity mention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldEntity {
    /// The mention as written in the text.
    pub text: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: EntityKind,
}

fn default_split() -> String {
    "dev".to_string()
}

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalExample {
    /// Identifier (line number in the shipped set).
    #[serde(default)]
    pub id: u64,
    /// `dev` (used while tuning) or `heldout` (never tuned on).
    #[serde(default = "default_split")]
    pub split: String,
    /// The post text.
    pub text: String,
    /// The gold mentions, in order.
    pub entities: Vec<GoldEntity>,
}

/// A line of an evaluation file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("evaluation set line {line}: {source}")]
pub struct EvalSetError {
    /// 1-based line number.
    pub line: usize,
    /// The JSON error.
    #[source]
    pub source: serde_json::Error,
}

/// Parses a JSON Lines evaluation set (blank lines are skipped).
pub fn parse_eval_set(jsonl: &str) -> Result<Vec<EvalExample>, EvalSetError> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|source| EvalSetError {
                line: n + 1,
                source,
            })
        })
        .collect()
}

/// The shipped evaluation set, parsed.
pub fn builtin_eval_set() -> Result<Vec<EvalExample>, EvalSetError> {
    parse_eval_set(EVAL_SET_JSONL)
}

/// True positives, false positives and false negatives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Predicted mentions that match a gold mention.
    pub tp: usize,
    /// Predicted mentions that match none.
    pub fp: usize,
    /// Gold mentions that were not predicted.
    #[serde(rename = "fn")]
    pub fn_: usize,
}

impl Counts {
    /// tp / (tp + fp); 0 when nothing was predicted.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn); 0 when there is no gold mention.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    fn add(&mut self, other: Counts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The mistakes on one text.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TextErrors {
    /// The example id.
    pub id: u64,
    /// The text.
    pub text: String,
    /// Gold mentions not found (text, gold type).
    pub missed: Vec<(String, EntityKind)>,
    /// Predicted mentions that are not gold (text, predicted type).
    pub spurious: Vec<(String, EntityKind)>,
    /// Found with the wrong type (text, gold type, predicted type).
    pub mistyped: Vec<(String, EntityKind, EntityKind)>,
}

/// The result of an evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Number of texts.
    pub texts: usize,
    /// Number of gold mentions.
    pub gold: usize,
    /// Number of predicted mentions.
    pub predicted: usize,
    /// Match on surface text only.
    pub untyped: Counts,
    /// Match on surface text and type.
    pub typed: Counts,
    /// Typed match restricted to one gold/predicted type.
    pub per_type: Vec<(EntityKind, Counts)>,
    /// The texts with at least one mistake (typed).
    pub errors: Vec<TextErrors>,
}

/// Multiset difference helper: counts of each key.
fn bag<K: std::hash::Hash + Eq>(items: impl IntoIterator<Item = K>) -> HashMap<K, usize> {
    let mut m = HashMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn matched<K: std::hash::Hash + Eq>(gold: &HashMap<K, usize>, pred: &HashMap<K, usize>) -> usize {
    pred.iter()
        .map(|(k, &n)| n.min(gold.get(k).copied().unwrap_or(0)))
        .sum()
}

/// Scores `extractor` on `examples`.
pub fn evaluate<'a>(
    extractor: &Extractor,
    examples: impl IntoIterator<Item = &'a EvalExample>,
) -> Report {
    let mut report = Report {
        per_type: EntityKind::ALL
            .iter()
            .map(|&k| (k, Counts::default()))
            .collect(),
        ..Report::default()
    };
    for ex in examples {
        let predicted: Vec<(String, EntityKind)> = extractor
            .spans(&ex.text)
            .iter()
            .map(|s| (s.text(&ex.text).to_string(), s.kind))
            .collect();
        let gold: Vec<(String, EntityKind)> = ex
            .entities
            .iter()
            .map(|g| (g.text.clone(), g.kind))
            .collect();
        report.texts += 1;
        report.gold += gold.len();
        report.predicted += predicted.len();

        let gold_u = bag(gold.iter().map(|g| g.0.as_str()));
        let pred_u = bag(predicted.iter().map(|p| p.0.as_str()));
        let tp_u = matched(&gold_u, &pred_u);
        report.untyped.add(Counts {
            tp: tp_u,
            fp: predicted.len() - tp_u,
            fn_: gold.len() - tp_u,
        });

        let gold_t = bag(gold.iter().map(|g| (g.0.as_str(), g.1)));
        let pred_t = bag(predicted.iter().map(|p| (p.0.as_str(), p.1)));
        let tp_t = matched(&gold_t, &pred_t);
        report.typed.add(Counts {
            tp: tp_t,
            fp: predicted.len() - tp_t,
            fn_: gold.len() - tp_t,
        });
        for (kind, counts) in &mut report.per_type {
            let g = gold.iter().filter(|x| x.1 == *kind).count();
            let p = predicted.iter().filter(|x| x.1 == *kind).count();
            let tp = gold_t
                .iter()
                .filter(|((_, k), _)| k == kind)
                .map(|(key, &n)| n.min(pred_t.get(key).copied().unwrap_or(0)))
                .sum();
            counts.add(Counts {
                tp,
                fp: p - tp,
                fn_: g - tp,
            });
        }

        if tp_t != gold.len() || tp_t != predicted.len() {
            report.errors.push(text_errors(ex, &gold, &predicted));
        }
    }
    report
}

fn text_errors(
    ex: &EvalExample,
    gold: &[(String, EntityKind)],
    predicted: &[(String, EntityKind)],
) -> TextErrors {
    let mut errs = TextErrors {
        id: ex.id,
        text: ex.text.clone(),
        ..TextErrors::default()
    };
    let mut pred_left: Vec<Option<&(String, EntityKind)>> = predicted.iter().map(Some).collect();
    let mut gold_left = Vec::new();
    // Exact (text, type) matches first.
    for g in gold {
        match pred_left.iter_mut().find(|p| p.is_some_and(|p| p == g)) {
            Some(slot) => *slot = None,
            None => gold_left.push(g),
        }
    }
    // Then same text, other type.
    for g in gold_left {
        match pred_left.iter_mut().find(|p| p.is_some_and(|p| p.0 == g.0)) {
            Some(slot) => {
                if let Some(p) = slot.take() {
                    errs.mistyped.push((g.0.clone(), g.1, p.1));
                }
            }
            None => errs.missed.push(g.clone()),
        }
    }
    errs.spurious = pred_left.into_iter().flatten().cloned().collect();
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_scores() {
        let set = parse_eval_set(
            r#"{"text": "Angela Merkel met Emmanuel Macron in Berlin.", "entities": [{"text": "Angela Merkel", "type": "PERSON"}, {"text": "Emmanuel Macron", "type": "PERSON"}, {"text": "Berlin", "type": "LOCATION"}]}
{"text": "nothing here at all", "entities": []}"#,
        );
        let set = set.unwrap_or_default();
        assert_eq!(set.len(), 2);
        let r = evaluate(&Extractor::new(), &set);
        assert_eq!(r.gold, 3);
        assert_eq!(r.untyped.tp, 3);
        assert_eq!(r.untyped.fp, 0);
        assert!((r.untyped.f1() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn bad_line_is_reported() {
        let e = parse_eval_set("{\"text\": \"a\", \"entities\": []}\n{oops}\n");
        assert!(matches!(e, Err(EvalSetError { line: 2, .. })));
    }
}
