//! Comparing students scored on the same test questions: per run its accuracy and Wilson
//! interval; per variant (runs grouped over seeds) mean ± sd; per pair of variants the paired
//! numbers a claim needs — the 2×2 table and McNemar's exact p per seed, and the mean paired
//! difference with a bootstrap interval over questions and a t-interval over seeds. Knows no
//! store: the caller hands it per-question correctness.

use mentor_core::score::wilson_interval;
use mentor_core::stats::{
    mcnemar_exact, mean_sd, paired_bootstrap, t_interval, Interval, PairTable,
};
use serde::Serialize;
use std::collections::HashMap;

/// One scored run: its per-question correctness, by question id.
#[derive(Debug, Clone)]
pub struct RunScores {
    /// The run's name (its directory).
    pub name: String,
    /// The variant it belongs to (runs of one variant differ only in seed).
    pub variant: String,
    pub seed: Option<u64>,
    pub ids: Vec<String>,
    pub correct: Vec<bool>,
    /// Validation accuracy of the selected checkpoint, where the run has one.
    pub valid_accuracy: Option<f64>,
    /// Validation accuracy at each validated step of its (last) training stage, and the step
    /// whose checkpoint was kept: on a few dozen questions, how much of a draw the choice was.
    pub valid_curve: Vec<(u64, f64)>,
    pub best_step: Option<u64>,
    /// The inference mode it was scored in (`label`, `cot`, …), where known.
    pub mode: Option<String>,
    /// The median length of its answers in characters, where the predictions keep them: a
    /// student that stopped reasoning (one short sentence where the others write a chain of
    /// thought) shows here before anyone reads its answers.
    pub answer_chars: Option<f64>,
    /// What the run cost, where known.
    pub cost: RunCost,
    /// What its teacher gave it, where the run's training set counted it.
    pub trained_on: Option<TrainedOn>,
    /// Its verdicts on its own sampled answers, where it was scored judging itself
    /// (`self-eval-vote` predictions that record each sample's correctness).
    pub self_judged: Option<SelfJudged>,
}

/// A student's verdicts on its own samples against whether each sample is right: Mind's
/// Mirror's claim is that the student learns to judge; `self-eval-vote` can only beat `vote`
/// where it does (κ above 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SelfJudged {
    /// Samples with a parsed answer and a verdict.
    pub judged: usize,
    /// Of them, those the student called correct, and those whose answer is right.
    pub called_correct: usize,
    pub right: usize,
    pub agreement: Option<f64>,
    pub kappa: Option<f64>,
}

/// What a run's teacher gave it, from the training set's counts: how often the teacher's chains
/// of thought reach the gold answer and how often its verdicts on them agree with gold. A
/// distilled student can only be as good a judge as its teacher: a κ near 0 says the
/// self-evaluation task teaches no judging at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainedOn {
    /// Training pairs, all tasks.
    pub pairs: usize,
    /// The teacher's distinct chains of thought for the run's items, and how many reach gold.
    pub cots: usize,
    pub cots_right: usize,
    /// Of `cots`, replies cut at the teacher's token limit.
    pub cots_truncated: usize,
    /// Parsed self-evaluation verdicts, the share that agrees with gold and Cohen's κ against
    /// gold (None without verdicts).
    pub verdicts: usize,
    pub verdict_agreement: Option<f64>,
    pub verdict_kappa: Option<f64>,
}

/// What a run cost: its wall time, peak memory and teacher use.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunCost {
    /// Wall seconds over every invocation of the run.
    pub wall_s: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    pub teacher_calls: Option<u64>,
    pub teacher_tokens: Option<u64>,
    pub teacher_usd: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub name: String,
    pub variant: String,
    pub seed: Option<u64>,
    pub n: usize,
    pub correct: usize,
    pub accuracy: f64,
    pub wilson95: [f64; 2],
    pub valid_accuracy: Option<f64>,
    pub valid_curve: Vec<(u64, f64)>,
    pub best_step: Option<u64>,
    pub mode: Option<String>,
    pub answer_chars: Option<f64>,
    pub cost: RunCost,
    pub trained_on: Option<TrainedOn>,
    pub self_judged: Option<SelfJudged>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantRow {
    pub variant: String,
    pub runs: usize,
    pub seeds: Vec<Option<u64>>,
    pub accuracies: Vec<f64>,
    pub mean: f64,
    pub sd: f64,
    pub valid_mean: Option<f64>,
}

/// Two runs (one seed) of two variants on the same questions.
#[derive(Debug, Clone, Serialize)]
pub struct SeedPair {
    pub seed: Option<u64>,
    pub run_a: String,
    pub run_b: String,
    pub table: PairTable,
    /// Accuracy of B − accuracy of A.
    pub diff: f64,
    pub mcnemar_p: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantPair {
    pub a: String,
    pub b: String,
    pub per_seed: Vec<SeedPair>,
    /// Mean over seeds of B − A, with the paired bootstrap over questions (one resample of
    /// question indices applied to every seed).
    pub bootstrap95: Interval,
    /// Mean over seeds of B − A with the t-interval over the per-seed differences (NaN bounds
    /// with one seed).
    pub t95: Interval,
    /// What the pair shows, in the words a results table uses.
    pub verdict: Verdict,
}

/// B against A: `beats` / `loses` when the paired bootstrap interval of B − A lies wholly
/// above / below zero, else `ties`; whether every seed alone shows the same (McNemar's p below
/// 0.05, the difference in the outcome's direction: the stricter claim, which one pooled
/// interval does not make); and whether seeds show it both ways (one seed's B significantly
/// better, another's significantly worse: the pooled interval then averages opposite results).
/// A pooled `beats` / `loses` that fewer than all seeds show alone says in how many it does, and
/// whether the t-interval over the seeds' differences holds zero: one seed's large difference
/// can carry the pooled interval by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub outcome: Outcome,
    pub every_seed_p05: bool,
    pub seeds_disagree: bool,
    /// Seeds whose McNemar p is below 0.05 with the difference in the outcome's direction.
    pub seeds_p05: usize,
    pub seeds: usize,
    /// The t-interval over seeds (two or more) holds zero.
    pub t_holds_zero: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Beats,
    Ties,
    Loses,
}

impl Verdict {
    fn of(bootstrap95: &Interval, t95: &Interval, per_seed: &[SeedPair]) -> Verdict {
        let outcome = if bootstrap95.lo > 0.0 {
            Outcome::Beats
        } else if bootstrap95.hi < 0.0 {
            Outcome::Loses
        } else {
            Outcome::Ties
        };
        let significant = |sign: f64| {
            per_seed
                .iter()
                .any(|s| s.mcnemar_p < 0.05 && s.diff * sign > 0.0)
        };
        let direction = match outcome {
            Outcome::Beats => 1.0,
            Outcome::Loses => -1.0,
            Outcome::Ties => 0.0,
        };
        let seeds_p05 = per_seed
            .iter()
            .filter(|s| s.mcnemar_p < 0.05 && s.diff * direction > 0.0)
            .count();
        Verdict {
            outcome,
            every_seed_p05: !per_seed.is_empty() && seeds_p05 == per_seed.len(),
            seeds_disagree: significant(1.0) && significant(-1.0),
            seeds_p05,
            seeds: per_seed.len(),
            t_holds_zero: per_seed.len() >= 2 && t95.lo <= 0.0 && t95.hi >= 0.0,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = match self.outcome {
            Outcome::Beats => "beats",
            Outcome::Ties => "ties",
            Outcome::Loses => "loses",
        };
        f.write_str(word)?;
        if self.every_seed_p05 {
            f.write_str(" (p < 0.05 in every seed)")?;
        }
        if self.seeds_disagree {
            f.write_str(" (seeds disagree: p < 0.05 both ways)")?;
        } else if self.outcome != Outcome::Ties && !self.every_seed_p05 && self.seeds >= 2 {
            write!(
                f,
                " (p < 0.05 in {} of {} seeds",
                self.seeds_p05, self.seeds
            )?;
            if self.t_holds_zero {
                f.write_str("; the t-interval over seeds holds 0")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub n: usize,
    pub resamples: usize,
    pub bootstrap_seed: u64,
    pub runs: Vec<RunRow>,
    pub variants: Vec<VariantRow>,
    pub pairs: Vec<VariantPair>,
}

/// Why runs cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    #[error("nothing to compare: give at least two runs")]
    TooFew,
    #[error("run {run} was scored on {n} questions, {first} on {n0}: compare runs scored on the same test questions")]
    DifferentCount {
        run: String,
        n: usize,
        first: String,
        n0: usize,
    },
    #[error("run {run} has no answer for question `{id}`, which {first} was scored on: compare runs scored on the same test questions")]
    DifferentQuestions {
        run: String,
        id: String,
        first: String,
    },
    #[error("run {run} lists question `{id}` twice")]
    Duplicate { run: String, id: String },
    #[error("variant `{variant}` has two runs with seed {seed}: {a} and {b}")]
    SameSeed {
        variant: String,
        seed: u64,
        a: String,
        b: String,
    },
    #[error("baseline variant `{0}` is not among the runs (`@MODE` needs variants named VARIANT@MODE: several modes, --mode cot,vote)")]
    NoBaseline(String),
}

/// Compares `runs`; `baseline` (a variant) limits the pairs to baseline vs each other variant,
/// otherwise every pair of variants in order of first appearance. A baseline `@MODE`, for
/// variants named `VARIANT@MODE` (the same students scored in several inference modes), pairs
/// each `VARIANT@OTHER` with its own `VARIANT@MODE`.
pub fn compare(
    runs: &[RunScores],
    baseline: Option<&str>,
    resamples: usize,
    bootstrap_seed: u64,
) -> Result<Comparison, CompareError> {
    if runs.len() < 2 {
        return Err(CompareError::TooFew);
    }
    // every run's correctness in the first run's question order
    let first = &runs[0];
    let order: HashMap<&str, usize> = first
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut aligned: Vec<Vec<bool>> = vec![];
    for r in runs {
        if r.ids.len() != first.ids.len() {
            return Err(CompareError::DifferentCount {
                run: r.name.clone(),
                n: r.ids.len(),
                first: first.name.clone(),
                n0: first.ids.len(),
            });
        }
        let by_id: HashMap<&str, bool> = r
            .ids
            .iter()
            .map(String::as_str)
            .zip(r.correct.iter().copied())
            .collect();
        if by_id.len() != r.ids.len() {
            let mut seen = std::collections::HashSet::new();
            let dup = r.ids.iter().find(|id| !seen.insert(id.as_str())).unwrap();
            return Err(CompareError::Duplicate {
                run: r.name.clone(),
                id: dup.clone(),
            });
        }
        let mut v = vec![false; first.ids.len()];
        for id in &first.ids {
            let Some(&c) = by_id.get(id.as_str()) else {
                return Err(CompareError::DifferentQuestions {
                    run: r.name.clone(),
                    id: id.clone(),
                    first: first.name.clone(),
                });
            };
            v[order[id.as_str()]] = c;
        }
        aligned.push(v);
    }
    let n = first.ids.len();
    let rows: Vec<RunRow> = runs
        .iter()
        .zip(&aligned)
        .map(|(r, v)| {
            let correct = v.iter().filter(|&&c| c).count();
            RunRow {
                name: r.name.clone(),
                variant: r.variant.clone(),
                seed: r.seed,
                n,
                correct,
                accuracy: correct as f64 / n.max(1) as f64,
                wilson95: wilson_interval(correct, n),
                valid_accuracy: r.valid_accuracy,
                valid_curve: r.valid_curve.clone(),
                best_step: r.best_step,
                mode: r.mode.clone(),
                answer_chars: r.answer_chars,
                cost: r.cost.clone(),
                trained_on: r.trained_on.clone(),
                self_judged: r.self_judged.clone(),
            }
        })
        .collect();
    // variants in order of first appearance
    let mut names: Vec<&str> = vec![];
    for r in runs {
        if !names.contains(&r.variant.as_str()) {
            names.push(&r.variant);
        }
    }
    let members =
        |v: &str| -> Vec<usize> { (0..runs.len()).filter(|&i| runs[i].variant == v).collect() };
    for v in &names {
        let m = members(v);
        for (x, &i) in m.iter().enumerate() {
            for &j in &m[x + 1..] {
                if let (Some(s), Some(t)) = (runs[i].seed, runs[j].seed) {
                    if s == t {
                        return Err(CompareError::SameSeed {
                            variant: v.to_string(),
                            seed: s,
                            a: runs[i].name.clone(),
                            b: runs[j].name.clone(),
                        });
                    }
                }
            }
        }
    }
    let variants: Vec<VariantRow> = names
        .iter()
        .map(|v| {
            let m = members(v);
            let accs: Vec<f64> = m.iter().map(|&i| rows[i].accuracy).collect();
            let (mean, sd) = mean_sd(&accs);
            let valid: Vec<f64> = m.iter().filter_map(|&i| runs[i].valid_accuracy).collect();
            VariantRow {
                variant: v.to_string(),
                runs: m.len(),
                seeds: m.iter().map(|&i| runs[i].seed).collect(),
                accuracies: accs,
                mean,
                sd,
                valid_mean: (!valid.is_empty()).then(|| mean_sd(&valid).0),
            }
        })
        .collect();
    let pair_list: Vec<(&str, &str)> = match baseline {
        // variants named VARIANT@MODE (one student scored in several modes): each with its own
        // variant's MODE
        Some(b) if b.starts_with('@') => {
            let pairs: Vec<(&str, &str)> = names
                .iter()
                .filter(|v| !v.ends_with(b))
                .filter_map(|v| {
                    let (variant, _) = v.rsplit_once('@')?;
                    let base = names.iter().find(|n| **n == format!("{variant}{b}"))?;
                    Some((*base, *v))
                })
                .collect();
            if pairs.is_empty() {
                return Err(CompareError::NoBaseline(b.to_string()));
            }
            pairs
        }
        Some(b) => {
            if !names.contains(&b) {
                return Err(CompareError::NoBaseline(b.to_string()));
            }
            names.iter().filter(|v| **v != b).map(|v| (b, *v)).collect()
        }
        None => {
            let mut p = vec![];
            for (x, a) in names.iter().enumerate() {
                for b in &names[x + 1..] {
                    p.push((*a, *b));
                }
            }
            p
        }
    };
    let mut pairs = vec![];
    for (a, b) in pair_list {
        let (ma, mb) = (members(a), members(b));
        // runs are paired by seed; two single runs without a shared seed pair with each other
        let mut matched: Vec<(usize, usize)> = vec![];
        for &i in &ma {
            if let Some(&j) = mb
                .iter()
                .find(|&&j| runs[i].seed.is_some() && runs[j].seed == runs[i].seed)
            {
                matched.push((i, j));
            }
        }
        if matched.is_empty() && ma.len() == 1 && mb.len() == 1 {
            matched.push((ma[0], mb[0]));
        }
        // one run without a seed (a greedy untrained student, the same whatever the seed) pairs
        // with every seed of the other variant
        let seedless = |m: &[usize]| m.len() == 1 && runs[m[0]].seed.is_none();
        if matched.is_empty() && seedless(&ma) {
            matched.extend(mb.iter().map(|&j| (ma[0], j)));
        } else if matched.is_empty() && seedless(&mb) {
            matched.extend(ma.iter().map(|&i| (i, mb[0])));
        }
        let per_seed: Vec<SeedPair> = matched
            .iter()
            .map(|&(i, j)| {
                let table = PairTable::new(&aligned[i], &aligned[j]);
                SeedPair {
                    seed: runs[i].seed.or(runs[j].seed),
                    run_a: runs[i].name.clone(),
                    run_b: runs[j].name.clone(),
                    table,
                    diff: (table.only_b as f64 - table.only_a as f64) / n.max(1) as f64,
                    mcnemar_p: mcnemar_exact(table.only_a, table.only_b),
                }
            })
            .collect();
        let vecs: Vec<(&[bool], &[bool])> = matched
            .iter()
            .map(|&(i, j)| (aligned[i].as_slice(), aligned[j].as_slice()))
            .collect();
        let diffs: Vec<f64> = per_seed.iter().map(|s| s.diff).collect();
        let bootstrap95 = paired_bootstrap(&vecs, resamples, bootstrap_seed);
        let t95 = t_interval(&diffs);
        pairs.push(VariantPair {
            a: a.to_string(),
            b: b.to_string(),
            verdict: Verdict::of(&bootstrap95, &t95, &per_seed),
            per_seed,
            bootstrap95,
            t95,
        });
    }
    Ok(Comparison {
        n,
        resamples,
        bootstrap_seed,
        runs: rows,
        variants,
        pairs,
    })
}

fn pct(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{:.1}", 100.0 * x)
    }
}

fn signed_pct(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{:+.1}", 100.0 * x)
    }
}

fn p_value(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// A table as aligned plain text (`markdown = false`) or a Markdown table.
pub fn render_table(headers: &[&str], rows: &[Vec<String>], markdown: bool) -> String {
    let width: Vec<usize> = (0..headers.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([headers[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        if markdown {
            format!("| {} |", padded.join(" | "))
        } else {
            padded.join("  ").trim_end().to_string()
        }
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.push(if markdown {
        format!(
            "|{}|",
            width
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("|")
        )
    } else {
        width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    });
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n") + "\n"
}

impl Comparison {
    /// Each trained student once, by its run's name: `mentor compare --mode a,b` loads a run once
    /// per mode (as RUN@MODE), and its training (validation curve, teacher's side) is one.
    fn students(&self) -> Vec<(&str, &RunRow)> {
        let mut seen: Vec<&str> = vec![];
        self.runs
            .iter()
            .filter_map(|r| {
                let name = match (&r.mode, r.name.rsplit_once('@')) {
                    (Some(m), Some((run, suffix))) if suffix == m => run,
                    _ => r.name.as_str(),
                };
                (!seen.contains(&name)).then(|| {
                    seen.push(name);
                    (name, r)
                })
            })
            .collect()
    }

    /// The three tables (runs, variants, paired differences) as plain text or Markdown.
    pub fn render(&self, markdown: bool) -> String {
        let seed = |s: Option<u64>| s.map_or("–".into(), |s| s.to_string());
        // students scored in different inference modes (a grid's variants may be): say which
        let mixed = self.runs.iter().any(|r| r.mode != self.runs[0].mode);
        let with_cost = self
            .runs
            .iter()
            .any(|r| r.cost.wall_s.is_some() || r.cost.teacher_calls.is_some());
        let with_chars = self.runs.iter().any(|r| r.answer_chars.is_some());
        let runs: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                let mut row = vec![
                    r.name.clone(),
                    r.variant.clone(),
                    seed(r.seed),
                    format!("{} / {}", r.correct, r.n),
                    pct(r.accuracy),
                    format!("[{}, {}]", pct(r.wilson95[0]), pct(r.wilson95[1])),
                    r.valid_accuracy.map_or("–".into(), pct),
                ];
                if mixed {
                    row.push(r.mode.clone().unwrap_or_else(|| "–".into()));
                }
                if with_chars {
                    row.push(r.answer_chars.map_or("–".into(), |c| format!("{c:.0}")));
                }
                if with_cost {
                    row.push(
                        r.cost
                            .wall_s
                            .map_or("–".into(), |s| format!("{:.0} min", s / 60.0)),
                    );
                    row.push(
                        r.cost
                            .peak_rss_mb
                            .map_or("–".into(), |m| format!("{:.1} GB", m / 1000.0)),
                    );
                    row.push(match (r.cost.teacher_calls, r.cost.teacher_tokens) {
                        (Some(c), Some(t)) => {
                            format!("{c} / {t} / ${:.2}", r.cost.teacher_usd.unwrap_or(0.0))
                        }
                        _ => "–".into(),
                    });
                }
                row
            })
            .collect();
        let mut out = String::new();
        let h = |t: &str| {
            if markdown {
                format!("**{t}**\n\n")
            } else {
                format!("{t}\n")
            }
        };
        // one mode for every run: say it in the title (a column when they differ)
        let one_mode = match (mixed, self.runs.first().and_then(|r| r.mode.as_deref())) {
            (false, Some(m)) => format!(", mode {m}"),
            _ => String::new(),
        };
        let chars_note = if with_chars {
            "; answer chars: the median answer's length"
        } else {
            ""
        };
        out += &h(&format!(
            "Runs (test, n = {}{one_mode}; accuracy in %, 95% Wilson interval{chars_note})",
            self.n
        ));
        let mut headers = vec![
            "run",
            "variant",
            "seed",
            "correct",
            "acc",
            "wilson 95%",
            "valid",
        ];
        if mixed {
            headers.push("mode");
        }
        if with_chars {
            headers.push("answer chars");
        }
        if with_cost {
            headers.extend(["wall", "peak RSS", "teacher calls / tokens / $"]);
        }
        out += &render_table(&headers, &runs, markdown);
        if self.runs.iter().any(|r| !r.valid_curve.is_empty()) {
            let rows: Vec<Vec<String>> = self
                .students()
                .into_iter()
                .map(|(name, r)| {
                    let points: Vec<String> = r
                        .valid_curve
                        .iter()
                        .map(|&(step, acc)| {
                            let point = format!("{step}: {}", pct(acc));
                            match (Some(step) == r.best_step, markdown) {
                                (true, true) => format!("**{point}**"),
                                (true, false) => format!("{point}*"),
                                (false, _) => point,
                            }
                        })
                        .collect();
                    vec![name.to_string(), points.join(", ")]
                })
                .collect();
            out += "\n";
            out += &h(&format!(
                "Validation accuracy % by step (the checkpoint kept {})",
                if markdown { "in bold" } else { "starred" }
            ));
            out += &render_table(&["run", "step: valid"], &rows, markdown);
        }
        // the teacher's side of each run, where any run's training set counted chains of thought
        // or verdicts: a student distilled from a teacher that judges no better than chance
        // cannot learn to judge
        if self.runs.iter().any(|r| {
            r.trained_on
                .as_ref()
                .is_some_and(|t| t.cots > 0 || t.verdicts > 0)
        }) {
            let share = |k: usize, n: usize| {
                if n == 0 {
                    "–".to_string()
                } else {
                    format!("{k} / {n} ({})", pct(k as f64 / n as f64))
                }
            };
            // the verdict columns only where some run's teacher judged
            let judged = self
                .runs
                .iter()
                .any(|r| r.trained_on.as_ref().is_some_and(|t| t.verdicts > 0));
            let rows: Vec<Vec<String>> = self
                .students()
                .into_iter()
                .filter_map(|(name, r)| {
                    let t = r.trained_on.as_ref()?;
                    let mut row = vec![
                        name.to_string(),
                        t.pairs.to_string(),
                        share(t.cots_right, t.cots),
                        t.cots_truncated.to_string(),
                    ];
                    if judged {
                        row.extend([
                            t.verdicts.to_string(),
                            t.verdict_agreement.map_or("–".into(), pct),
                            t.verdict_kappa.map_or("–".into(), |k| format!("{k:.2}")),
                        ]);
                    }
                    Some(row)
                })
                .collect();
            out += "\n";
            out += &h(if judged {
                "The teacher's side of each run (its training pairs; the teacher's distinct chains of thought for its items that reach gold; the teacher's verdicts on them against gold: agreement in %, Cohen's κ, 0 is chance)"
            } else {
                "The teacher's side of each run (its training pairs; the teacher's distinct chains of thought for its items that reach gold)"
            });
            let mut headers = vec!["run", "pairs", "teacher CoTs right", "cut at limit"];
            if judged {
                headers.extend(["verdicts", "agree", "κ"]);
            }
            out += &render_table(&headers, &rows, markdown);
        }
        if self.runs.iter().any(|r| r.self_judged.is_some()) {
            let rows: Vec<Vec<String>> = self
                .runs
                .iter()
                .filter_map(|r| {
                    let j = r.self_judged.as_ref()?;
                    let share =
                        |k: usize| format!("{k} ({})", pct(k as f64 / j.judged.max(1) as f64));
                    Some(vec![
                        r.name.clone(),
                        j.judged.to_string(),
                        share(j.called_correct),
                        share(j.right),
                        j.agreement.map_or("–".into(), pct),
                        j.kappa.map_or("–".into(), |k| format!("{k:.2}")),
                    ])
                })
                .collect();
            out += "\n";
            out += &h("The student's verdicts on its own samples (each sampled answer judged by the student; against whether that answer is right: agreement in %, Cohen's κ, 0 is chance)");
            out += &render_table(
                &["run", "judged", "called correct", "right", "agree", "κ"],
                &rows,
                markdown,
            );
        }
        if self.variants.iter().any(|v| v.runs > 1) {
            let rows: Vec<Vec<String>> = self
                .variants
                .iter()
                .map(|v| {
                    vec![
                        v.variant.clone(),
                        v.accuracies
                            .iter()
                            .map(|a| pct(*a))
                            .collect::<Vec<_>>()
                            .join(", "),
                        format!("{} ± {}", pct(v.mean), pct(v.sd)),
                        v.valid_mean.map_or("–".into(), pct),
                    ]
                })
                .collect();
            out += "\n";
            out += &h("Variants over seeds (test accuracy %, mean ± sd)");
            out += &render_table(
                &["variant", "per seed", "mean ± sd", "valid mean"],
                &rows,
                markdown,
            );
        }
        let rows: Vec<Vec<String>> = self
            .pairs
            .iter()
            .map(|p| {
                let tables: Vec<String> = p
                    .per_seed
                    .iter()
                    .map(|s| {
                        format!(
                            "{}/{}/{}/{}",
                            s.table.both_right, s.table.only_a, s.table.only_b, s.table.both_wrong
                        )
                    })
                    .collect();
                let ps: Vec<String> = p.per_seed.iter().map(|s| p_value(s.mcnemar_p)).collect();
                vec![
                    format!("{} − {}", p.b, p.a),
                    p.per_seed.len().to_string(),
                    signed_pct(p.bootstrap95.estimate),
                    format!(
                        "[{}, {}]",
                        signed_pct(p.bootstrap95.lo),
                        signed_pct(p.bootstrap95.hi)
                    ),
                    if p.per_seed.len() >= 2 {
                        format!("[{}, {}]", signed_pct(p.t95.lo), signed_pct(p.t95.hi))
                    } else {
                        "–".into()
                    },
                    tables.join(" "),
                    ps.join(", "),
                    format!("B {}", p.verdict),
                ]
            })
            .collect();
        out += "\n";
        out += &h(&format!(
            "Paired differences (points; bootstrap: {} resamples of questions, seed {}, all seeds at once; t: over seeds)",
            self.resamples, self.bootstrap_seed
        ));
        out += &render_table(
            &[
                "B − A",
                "seeds",
                "mean diff",
                "bootstrap 95%",
                "t 95%",
                "both/onlyA/onlyB/neither",
                "McNemar p",
                "verdict",
            ],
            &rows,
            markdown,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, variant: &str, seed: u64, bits: &str) -> RunScores {
        RunScores {
            mode: None,
            answer_chars: None,
            cost: RunCost::default(),
            trained_on: None,
            self_judged: None,
            name: name.into(),
            variant: variant.into(),
            seed: Some(seed),
            ids: (0..bits.len()).map(|i| format!("q{i}")).collect(),
            correct: bits.chars().map(|c| c == '1').collect(),
            valid_accuracy: None,
            valid_curve: vec![],
            best_step: None,
        }
    }

    #[test]
    fn the_teachers_side_shows_its_accuracy_and_how_well_it_judges() {
        let plain = [run("a-0", "a", 0, "1100"), run("b-0", "b", 0, "1000")];
        let text = compare(&plain, None, 100, 0).unwrap().render(false);
        assert!(!text.contains("teacher's side"), "{text}");
        let mut taught = plain.clone();
        taught[1].trained_on = Some(TrainedOn {
            pairs: 165,
            cots: 100,
            cots_right: 77,
            ..Default::default()
        });
        let text = compare(&taught, None, 100, 0).unwrap().render(true);
        assert!(
            text.contains("77 / 100 (77.0)") && !text.contains("κ"),
            "verdict columns without verdicts: {text}"
        );
        let mut judged = plain.clone();
        judged[1].trained_on = Some(TrainedOn {
            pairs: 1200,
            cots: 600,
            cots_right: 450,
            cots_truncated: 7,
            verdicts: 590,
            verdict_agreement: Some(0.71),
            verdict_kappa: Some(0.084),
        });
        let text = compare(&judged, None, 100, 0).unwrap().render(true);
        assert!(text.contains("teacher's side"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("| b-0") && l.contains("1200"))
            .unwrap_or_else(|| panic!("{text}"));
        for cell in ["450 / 600 (75.0)", "| 7 ", "| 590 ", "71.0", "0.08"] {
            assert!(row.contains(cell), "{cell} not in {row}");
        }
        // a run without counts has no row there
        let section = text.split("teacher's side").nth(1).unwrap();
        let section = section.split("**Paired").next().unwrap();
        assert!(!section.contains("| a-0"), "{section}");
    }

    #[test]
    fn a_student_that_judges_itself_shows_how_well() {
        let mut runs = [run("a-0", "a", 0, "1100"), run("b-0", "b", 0, "1000")];
        let text = compare(&runs, None, 100, 0).unwrap().render(false);
        assert!(!text.contains("own samples"), "{text}");
        runs[0].self_judged = Some(SelfJudged {
            judged: 750,
            called_correct: 741,
            right: 300,
            agreement: Some(0.41),
            kappa: Some(0.012),
        });
        let text = compare(&runs, None, 100, 0).unwrap().render(true);
        let row = text
            .lines()
            .find(|l| l.starts_with("| a-0") && l.contains("750"))
            .unwrap_or_else(|| panic!("{text}"));
        for cell in ["741 (98.8)", "300 (40.0)", "41.0", "0.01"] {
            assert!(row.contains(cell), "{cell} not in {row}");
        }
        let section = text.split("own samples").nth(1).unwrap();
        let section = section.split("**Paired").next().unwrap();
        assert!(!section.contains("| b-0"), "{section}");
    }

    #[test]
    fn the_runs_table_shows_what_each_run_cost_when_known() {
        let plain = [run("a-0", "a", 0, "1100"), run("b-0", "b", 0, "1000")];
        let text = compare(&plain, None, 100, 0).unwrap().render(true);
        assert!(!text.contains("peak RSS"), "{text}");
        let mut costly = plain.clone();
        costly[0].cost = RunCost {
            wall_s: Some(720.0),
            peak_rss_mb: Some(4100.0),
            teacher_calls: Some(64),
            teacher_tokens: Some(13623),
            teacher_usd: Some(0.0),
        };
        costly[1].answer_chars = Some(36.0);
        let text = compare(&costly, None, 100, 0).unwrap().render(true);
        assert!(text.contains("| wall"), "{text}");
        // the median answer length, where a run's predictions keep the answers
        assert!(text.contains("answer chars"), "{text}");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| a-0") || l.starts_with("| b-0"))
            .collect();
        assert!(
            lines[0].contains("| –") && lines[1].contains("| 36 "),
            "{text}"
        );
        assert!(
            text.contains("12 min")
                && text.contains("4.1 GB")
                && text.contains("64 / 13623 / $0.00"),
            "{text}"
        );
        assert!(!text.contains("by step"), "no curves, no section: {text}");
    }

    #[test]
    fn a_run_without_a_seed_pairs_with_every_seed_of_the_other_variant() {
        let mut untrained = run("untrained", "untrained", 0, "1000");
        untrained.seed = None;
        let runs = [
            untrained,
            run("sbs-0", "sbs", 0, "1100"),
            run("sbs-1", "sbs", 1, "1110"),
        ];
        let c = compare(&runs, Some("untrained"), 100, 0).unwrap();
        let p = &c.pairs[0];
        let seeds: Vec<Option<u64>> = p.per_seed.iter().map(|s| s.seed).collect();
        assert_eq!(seeds, [Some(0), Some(1)]);
        assert!(p.per_seed.iter().all(|s| s.run_a == "untrained"));
        // +1 and +2 questions of 4
        assert!((p.bootstrap95.estimate - 0.375).abs() < 1e-12, "{p:?}");
    }

    /// `--mode cot,vote --baseline @cot`: each variant's vote against its own cot, never
    /// against another variant's.
    #[test]
    fn a_mode_baseline_pairs_each_variant_with_itself_in_that_mode() {
        let mut runs = [
            run("one-s0@cot", "one@cot", 0, "1000"),
            run("one-s0@vote", "one@vote", 0, "1110"),
            run("k-s0@cot", "k@cot", 0, "1100"),
            run("k-s0@vote", "k@vote", 0, "1000"),
        ];
        for r in runs.iter_mut() {
            r.mode = r.name.rsplit_once('@').map(|(_, m)| m.to_string());
            r.valid_curve = vec![(10, 0.5), (20, 0.75)];
            r.best_step = Some(20);
        }
        let c = compare(&runs, Some("@cot"), 100, 0).unwrap();
        // one training, one validation curve: each student's once, by its run's name
        let text = c.render(false);
        let curves = &text[text.find("by step").unwrap()..text.find("Paired").unwrap()];
        assert_eq!(curves.matches("one-s0").count(), 1, "{curves}");
        assert!(
            curves.contains("k-s0 ") && !curves.contains('@'),
            "{curves}"
        );
        let pairs: Vec<(&str, &str)> = c
            .pairs
            .iter()
            .map(|p| (p.a.as_str(), p.b.as_str()))
            .collect();
        assert_eq!(pairs, [("one@cot", "one@vote"), ("k@cot", "k@vote")]);
        // +2 of 4 for one, −1 of 4 for k
        assert!((c.pairs[0].bootstrap95.estimate - 0.5).abs() < 1e-12);
        assert!((c.pairs[1].bootstrap95.estimate + 0.25).abs() < 1e-12);
        // no variant in that mode: said, not an empty table
        let err = compare(&runs, Some("@label"), 100, 0).unwrap_err();
        assert!(err.to_string().contains("@label"), "{err}");
        assert!(compare(&runs[..2], Some("@vote"), 100, 0).is_ok());
    }

    #[test]
    fn each_runs_validation_curve_marks_the_checkpoint_it_kept() {
        let mut runs = [run("a-0", "a", 0, "1100"), run("b-0", "b", 0, "1000")];
        runs[0].valid_curve = vec![(20, 0.171), (40, 0.171), (60, 0.146)];
        runs[0].best_step = Some(20);
        let md = compare(&runs, None, 100, 0).unwrap().render(true);
        let section = &md[md.find("by step").unwrap_or_else(|| panic!("{md}"))..];
        let cells = |run: &str| -> Vec<String> {
            let line = section
                .lines()
                .find(|l| l.starts_with(&format!("| {run} ")));
            let line = line.unwrap_or_else(|| panic!("{md}"));
            line.split('|').map(|c| c.trim().to_string()).collect()
        };
        assert_eq!(cells("a-0")[2], "**20: 17.1**, 40: 17.1, 60: 14.6", "{md}");
        assert_eq!(cells("b-0")[2], "", "a run without a curve: {md}");
        let plain = compare(&runs, None, 100, 0).unwrap().render(false);
        assert!(plain.contains("20: 17.1*, 40: 17.1, 60: 14.6"), "{plain}");
    }

    #[test]
    fn variants_pair_by_seed_with_exact_numbers() {
        let runs = [
            run("std-0", "standard", 0, "1100000000"),
            run("std-1", "standard", 1, "1000000000"),
            run("sbs-1", "step-by-step", 1, "1111100000"),
            run("sbs-0", "step-by-step", 0, "1111110000"),
        ];
        let c = compare(&runs, None, 2000, 0).unwrap();
        assert_eq!(c.n, 10);
        assert_eq!(c.variants.len(), 2);
        assert!((c.variants[0].mean - 0.15).abs() < 1e-12);
        assert!((c.variants[1].mean - 0.55).abs() < 1e-12);
        let p = &c.pairs[0];
        assert_eq!((p.a.as_str(), p.b.as_str()), ("standard", "step-by-step"));
        // seed 0: 2 both, 0 only-standard, 4 only-sbs, 4 neither → p = 2/16
        let s0 = p.per_seed.iter().find(|s| s.seed == Some(0)).unwrap();
        assert_eq!(s0.run_b, "sbs-0");
        assert_eq!(
            (
                s0.table.both_right,
                s0.table.only_a,
                s0.table.only_b,
                s0.table.both_wrong
            ),
            (2, 0, 4, 4)
        );
        assert!((s0.mcnemar_p - 0.125).abs() < 1e-15);
        assert!((s0.diff - 0.4).abs() < 1e-12);
        // seeds differ by 0.4 each: mean 0.4, t-interval of zero width
        assert!((p.t95.estimate - 0.4).abs() < 1e-12 && (p.t95.hi - p.t95.lo).abs() < 1e-12);
        assert!((p.bootstrap95.estimate - 0.4).abs() < 1e-12);
        assert!(p.bootstrap95.lo < 0.4 && p.bootstrap95.hi > 0.4);
        let text = c.render(true);
        assert!(text.contains("| step-by-step − standard |"), "{text}");
        assert!(text.contains("15.0 ± 7.1"), "{text}");
    }

    /// The verdict follows the paired interval: a variant right on 30 more of 40 questions in
    /// both seeds beats the baseline (and at p < 0.05 in each); its mirror image loses; one
    /// that trades questions evenly ties.
    #[test]
    fn the_verdict_reads_the_paired_interval() {
        let (base, more) = ("0".repeat(40), "1".repeat(30) + &"0".repeat(10));
        let even = "10".repeat(20);
        let odd = "01".repeat(20);
        let runs = [
            run("base-0", "base", 0, &base),
            run("base-1", "base", 1, &base),
            run("more-0", "more", 0, &more),
            run("more-1", "more", 1, &more),
        ];
        let c = compare(&runs, Some("base"), 500, 0).unwrap();
        assert_eq!(c.pairs[0].b, "more");
        assert_eq!(
            c.pairs[0].verdict,
            Verdict {
                outcome: Outcome::Beats,
                every_seed_p05: true,
                seeds_disagree: false,
                seeds_p05: 2,
                seeds: 2,
                t_holds_zero: false,
            }
        );
        assert!(c.render(true).contains("B beats (p < 0.05 in every seed)"));
        let c = compare(&runs, Some("more"), 500, 0).unwrap();
        assert_eq!(c.pairs[0].verdict.outcome, Outcome::Loses);
        let runs = [run("a-0", "a", 0, &even), run("b-0", "b", 0, &odd)];
        let c = compare(&runs, Some("a"), 500, 0).unwrap();
        assert_eq!(
            c.pairs[0].verdict,
            Verdict {
                outcome: Outcome::Ties,
                every_seed_p05: false,
                seeds_disagree: false,
                seeds_p05: 0,
                seeds: 1,
                t_holds_zero: false,
            }
        );
        assert!(c.render(true).contains("B ties"), "{}", c.render(true));
        // B far better in seed 0 and worse in seed 1, both significant: the pooled interval
        // says `beats`, but no seed-wise claim holds, and the table says the seeds disagree
        let (worse, better) = ("1".repeat(20) + &"0".repeat(20), "1".repeat(40));
        let runs = [
            run("a-0", "a", 0, &base),
            run("a-1", "a", 1, &worse),
            run("b-0", "b", 0, &better),
            run("b-1", "b", 1, &base),
        ];
        let c = compare(&runs, Some("a"), 500, 0).unwrap();
        let v = c.pairs[0].verdict;
        assert_eq!(v.outcome, Outcome::Beats, "{}", c.render(true));
        assert!(!v.every_seed_p05 && v.seeds_disagree, "{v:?}");
        assert!(
            c.render(true)
                .contains("B beats (seeds disagree: p < 0.05 both ways)"),
            "{}",
            c.render(true)
        );
        // B far worse in one seed of three and level in the others (row 2's full MAPD): the
        // pooled interval says `loses`, carried by one seed; the verdict says how many seeds
        // show it and that the seeds' t-interval holds zero
        let worse = "0".repeat(40);
        let level = "10".repeat(20);
        let runs = [
            run("a-0", "a", 0, &"1".repeat(40)),
            run("a-1", "a", 1, &level),
            run("a-2", "a", 2, &level),
            run("b-0", "b", 0, &worse),
            run("b-1", "b", 1, &level),
            run("b-2", "b", 2, &level),
        ];
        let c = compare(&runs, Some("a"), 500, 0).unwrap();
        let v = c.pairs[0].verdict;
        assert_eq!(v.outcome, Outcome::Loses, "{}", c.render(true));
        assert_eq!(
            (v.seeds_p05, v.seeds, v.t_holds_zero),
            (1, 3, true),
            "{v:?}"
        );
        assert!(
            c.render(true)
                .contains("B loses (p < 0.05 in 1 of 3 seeds; the t-interval over seeds holds 0)"),
            "{}",
            c.render(true)
        );
    }

    #[test]
    fn different_question_sets_are_refused_by_name() {
        let mut b = run("b", "y", 0, "1010");
        b.ids[3] = "other".into();
        let err = compare(&[run("a", "x", 0, "1100"), b], None, 100, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "run b has no answer for question `q3`, which a was scored on: compare runs scored on the same test questions"
        );
        let err = compare(
            &[run("a", "x", 0, "1100"), run("c", "y", 0, "110")],
            None,
            100,
            0,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            CompareError::DifferentCount { n: 3, n0: 4, .. }
        ));
        let err = compare(
            &[run("a", "x", 0, "1100"), run("c", "x", 0, "1100")],
            None,
            100,
            0,
        )
        .unwrap_err();
        assert!(matches!(err, CompareError::SameSeed { seed: 0, .. }));
    }

    #[test]
    fn question_order_does_not_matter() {
        let a = run("a", "x", 0, "1100");
        let mut b = run("b", "y", 0, "0011");
        b.ids.reverse(); // q3 q2 q1 q0 → correct on q1, q0
        let c = compare(&[a, b], None, 100, 0).unwrap();
        let t = c.pairs[0].per_seed[0].table;
        assert_eq!((t.both_right, t.only_a, t.only_b), (2, 0, 0));
    }
}
