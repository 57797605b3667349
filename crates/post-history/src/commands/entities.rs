//! `entities`: named-entity extraction and its evaluation.
//!
//! - `post-history entities eval [--file F] [--errors] [--json] [--min-f1 X]`:
//!   precision, recall and F1 (untyped and typed, per split and per type) on
//!   the shipped labelled set or a JSON Lines file of the same format.
//! - `post-history entities extract [TEXT…]`: entities of the text given as
//!   arguments, or of each line of standard input, as JSON.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use posts::entities::eval::{self, Counts, EvalExample, Report};
use posts::entities::{EntityKind, Extractor};

/// Arguments of `post-history entities`.
#[derive(Debug, clap::Args)]
pub(crate) struct EntitiesArgs {
    #[command(subcommand)]
    command: EntitiesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum EntitiesCommand {
    /// Print precision, recall and F1 on a labelled set (default: the shipped one).
    Eval(EvalArgs),
    /// Print the entities of a text (the arguments) or of each line of stdin, as JSON.
    Extract(ExtractArgs),
}

/// Arguments of `post-history entities eval`.
#[derive(Debug, clap::Args)]
struct EvalArgs {
    /// JSON Lines file of {"text", "entities": [{"text", "type"}], "split"?}
    /// [default: the set shipped in crates/posts/data/entities_eval.jsonl]
    #[arg(long)]
    file: Option<PathBuf>,
    /// Also list the mistakes of this split ("dev", "heldout" or "all").
    #[arg(long, value_name = "SPLIT", num_args = 0..=1, default_missing_value = "all")]
    errors: Option<String>,
    /// Print the reports as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Fail (exit status 1) when the untyped F1 on the whole set is below this.
    #[arg(long, value_name = "F1")]
    min_f1: Option<f64>,
    /// Evaluate without the embedded gazetteer of well-known names (rules and
    /// word lists only), to see how much the gazetteer contributes.
    #[arg(long)]
    no_gazetteer: bool,
}

/// Arguments of `post-history entities extract`.
#[derive(Debug, clap::Args)]
struct ExtractArgs {
    /// The text (words are joined with spaces); without it, each line of stdin is one text.
    text: Vec<String>,
    /// Print only the distinct entity names, in order of first appearance.
    #[arg(long)]
    distinct: bool,
}

pub(crate) fn run(args: EntitiesArgs) -> anyhow::Result<()> {
    match args.command {
        EntitiesCommand::Eval(a) => run_eval(a),
        EntitiesCommand::Extract(a) => run_extract(a),
    }
}

fn run_eval(args: EvalArgs) -> anyhow::Result<()> {
    let (source, examples) = match &args.file {
        Some(path) => {
            let data = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let set = eval::parse_eval_set(&data)
                .with_context(|| format!("parsing {}", path.display()))?;
            (path.display().to_string(), set)
        }
        None => (
            "crates/posts/data/entities_eval.jsonl (shipped)".to_string(),
            eval::builtin_eval_set().context("parsing the shipped evaluation set")?,
        ),
    };
    let extractor = if args.no_gazetteer {
        Extractor::without_gazetteer()
    } else {
        Extractor::new()
    };
    let mut splits: Vec<String> = Vec::new();
    for ex in &examples {
        if !splits.contains(&ex.split) {
            splits.push(ex.split.clone());
        }
    }
    let mut reports: Vec<(String, Report)> = Vec::new();
    if splits.len() > 1 {
        for split in &splits {
            let part = examples.iter().filter(|e| &e.split == split);
            reports.push((split.clone(), eval::evaluate(&extractor, part)));
        }
    }
    let all = eval::evaluate(&extractor, &examples);
    reports.push(("all".to_string(), all));

    let mut out = std::io::stdout().lock();
    if args.json {
        let value: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(name, r)| {
                Ok((
                    name.clone(),
                    report_json(r, args.errors.as_deref() == Some(name))?,
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        print_tables(&mut out, args.no_gazetteer, &source, &examples, &reports)?;
        if let Some(split) = &args.errors {
            let Some((_, r)) = reports.iter().find(|(n, _)| n == split) else {
                anyhow::bail!(
                    "no split named {split:?} (have: {}, all)",
                    splits.join(", ")
                );
            };
            print_errors(&mut out, r)?;
        }
    }
    if let Some(min) = args.min_f1 {
        let f1 = reports.last().map_or(0.0, |(_, r)| r.untyped.f1());
        if f1 < min {
            anyhow::bail!("untyped F1 {f1:.3} is below the required {min:.3}");
        }
    }
    Ok(())
}

fn report_json(r: &Report, with_errors: bool) -> anyhow::Result<serde_json::Value> {
    let scores = |c: &Counts| {
        serde_json::json!({
            "tp": c.tp, "fp": c.fp, "fn": c.fn_,
            "precision": c.precision(), "recall": c.recall(), "f1": c.f1(),
        })
    };
    let per_type: serde_json::Map<String, serde_json::Value> = r
        .per_type
        .iter()
        .map(|(k, c)| (k.as_str().to_string(), scores(c)))
        .collect();
    let mut v = serde_json::json!({
        "texts": r.texts,
        "gold": r.gold,
        "predicted": r.predicted,
        "untyped": scores(&r.untyped),
        "typed": scores(&r.typed),
        "per_type": per_type,
    });
    if with_errors {
        v["errors"] = serde_json::to_value(&r.errors)?;
    }
    Ok(v)
}

fn print_tables(
    out: &mut impl Write,
    gazetteer_off: bool,
    source: &str,
    examples: &[EvalExample],
    reports: &[(String, Report)],
) -> anyhow::Result<()> {
    writeln!(out, "Named-entity extraction: evaluation on {source}")?;
    if gazetteer_off {
        writeln!(out, "(without the gazetteer of well-known names)")?;
    }
    writeln!(
        out,
        "{} texts; entity-level exact match on the surface text (typed: text and type)",
        examples.len()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<9} {:>5} {:>5} {:>5} | {:>9} {:>6} {:>6} | {:>7} {:>6} {:>6}",
        "split", "texts", "gold", "pred", "untyped P", "R", "F1", "typed P", "R", "F1"
    )?;
    for (name, r) in reports {
        let (u, t) = (&r.untyped, &r.typed);
        writeln!(
            out,
            "{:<9} {:>5} {:>5} {:>5} | {:>9.3} {:>6.3} {:>6.3} | {:>7.3} {:>6.3} {:>6.3}",
            name,
            r.texts,
            r.gold,
            r.predicted,
            u.precision(),
            u.recall(),
            u.f1(),
            t.precision(),
            t.recall(),
            t.f1()
        )?;
    }
    writeln!(out)?;
    writeln!(out, "per type (typed match):")?;
    write!(out, "{:<13}", "type")?;
    for (name, _) in reports {
        write!(out, " | {:>7} {:>5} {:>5} {:>5}", name, "P", "R", "F1")?;
    }
    writeln!(out)?;
    for kind in EntityKind::ALL {
        write!(out, "{:<13}", kind.as_str())?;
        for (_, r) in reports {
            let c = r
                .per_type
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, c)| *c)
                .unwrap_or_default();
            write!(
                out,
                " | {:>7} {:>5.3} {:>5.3} {:>5.3}",
                format!("gold {}", c.tp + c.fn_),
                c.precision(),
                c.recall(),
                c.f1()
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn print_errors(out: &mut impl Write, r: &Report) -> anyhow::Result<()> {
    writeln!(out)?;
    writeln!(out, "mistakes ({} texts):", r.errors.len())?;
    for e in &r.errors {
        writeln!(out, "#{} {}", e.id, e.text)?;
        for (t, k) in &e.missed {
            writeln!(out, "    missed    {t:?} {k}")?;
        }
        for (t, k) in &e.spurious {
            writeln!(out, "    spurious  {t:?} {k}")?;
        }
        for (t, g, p) in &e.mistyped {
            writeln!(out, "    mistyped  {t:?} gold {g}, got {p}")?;
        }
    }
    Ok(())
}

fn run_extract(args: ExtractArgs) -> anyhow::Result<()> {
    let extractor = Extractor::new();
    let mut out = std::io::stdout().lock();
    let emit = |text: &str, out: &mut std::io::StdoutLock<'_>| -> anyhow::Result<()> {
        let value = if args.distinct {
            serde_json::json!({ "text": text, "entities": extractor.distinct(text) })
        } else {
            serde_json::json!({ "text": text, "entities": extractor.extract(text) })
        };
        writeln!(out, "{}", serde_json::to_string(&value)?)?;
        Ok(())
    };
    if args.text.is_empty() {
        for line in std::io::stdin().lock().lines() {
            let line = line.context("reading standard input")?;
            if !line.trim().is_empty() {
                emit(&line, &mut out)?;
            }
        }
    } else {
        emit(&args.text.join(" "), &mut out)?;
    }
    Ok(())
}
