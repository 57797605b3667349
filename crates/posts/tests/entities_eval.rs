//! Integration test: the extractor's precision, recall and F1 on the shipped
//! hand-labelled evaluation set, computed here (not hard-coded), must meet
//! the project's target (F1 ≥ 0.75), overall and on each held-out split.

use posts::entities::eval::{builtin_eval_set, evaluate, EvalExample};
use posts::entities::Extractor;

fn load() -> Vec<EvalExample> {
    match builtin_eval_set() {
        Ok(set) => set,
        Err(e) => panic!("the shipped evaluation set does not parse: {e}"),
    }
}

#[test]
fn eval_set_is_large_enough_and_well_formed() {
    let set = load();
    assert!(set.len() >= 300, "only {} texts", set.len());
    for split in ["dev", "heldout", "fresh"] {
        assert!(set.iter().any(|e| e.split == split), "no {split} texts");
    }
    for ex in &set {
        for g in &ex.entities {
            assert!(
                ex.text.contains(&g.text),
                "gold {:?} does not occur in text #{}: {:?}",
                g.text,
                ex.id,
                ex.text
            );
        }
    }
}

#[test]
fn f1_on_the_whole_set_meets_the_target() {
    let set = load();
    let r = evaluate(&Extractor::new(), &set);
    eprintln!(
        "all: untyped P {:.3} R {:.3} F1 {:.3}; typed P {:.3} R {:.3} F1 {:.3}",
        r.untyped.precision(),
        r.untyped.recall(),
        r.untyped.f1(),
        r.typed.precision(),
        r.typed.recall(),
        r.typed.f1()
    );
    assert_eq!(r.gold, set.iter().map(|e| e.entities.len()).sum::<usize>());
    assert!(
        r.untyped.f1() >= 0.75,
        "untyped F1 {:.3} < 0.75",
        r.untyped.f1()
    );
    assert!(r.typed.f1() >= 0.75, "typed F1 {:.3} < 0.75", r.typed.f1());
}

#[test]
fn f1_on_held_out_splits_meets_the_target() {
    let set = load();
    for split in ["heldout", "fresh"] {
        let part: Vec<&EvalExample> = set.iter().filter(|e| e.split == split).collect();
        let r = evaluate(&Extractor::new(), part);
        eprintln!(
            "{split}: untyped F1 {:.3}, typed F1 {:.3}",
            r.untyped.f1(),
            r.typed.f1()
        );
        assert!(
            r.untyped.f1() >= 0.75,
            "{split}: untyped F1 {:.3} < 0.75",
            r.untyped.f1()
        );
    }
}

#[test]
fn rules_alone_without_gazetteer_stay_useful() {
    let set = load();
    let r = evaluate(&Extractor::without_gazetteer(), &set);
    eprintln!(
        "no gazetteer: untyped F1 {:.3}, typed F1 {:.3}",
        r.untyped.f1(),
        r.typed.f1()
    );
    assert!(
        r.untyped.f1() >= 0.75,
        "untyped F1 without gazetteer {:.3}",
        r.untyped.f1()
    );
}
