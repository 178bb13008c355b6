//! Batched generation with a KV cache: many prompts decode together (the recipes sample K
//! rationales per question), greedy or sampled (temperature, top-p, per-request seed), with
//! stop strings, a token limit and per-token log-probabilities.
//!
//! Requests are grouped by prompt length and left-padded, so every row's next token sits in the
//! same column. Each request has its own random stream (ChaCha8 from its seed), so its output
//! does not depend on which other requests share its batch.

use crate::llama::Llama;
use crate::tokenizer::TextTokenizer;
use candle_core::{Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    /// Generation stops when the text contains one of these; the text is cut before it.
    pub stop: Vec<String>,
    /// Keep going past end-of-sequence tokens (benchmarks: a fixed number of new tokens).
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_new_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: vec![],
            ignore_eos: false,
        }
    }
}

impl SamplingParams {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature must be ≥ 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    pub token_ids: Vec<u32>,
    /// log p(token) under the model (temperature 1) for each generated token.
    pub logprobs: Vec<f32>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
}

impl Generation {
    /// Σ log p over the generated tokens: the sequence log-probability.
    pub fn sequence_logprob(&self) -> f64 {
        self.logprobs.iter().map(|&l| l as f64).sum()
    }
}

/// One row of a running batch.
struct Row {
    params: SamplingParams,
    rng: ChaCha8Rng,
    out: Vec<u32>,
    logprobs: Vec<f32>,
    done: Option<FinishReason>,
    text: String,
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let lse = logits.iter().map(|&v| (v - max).exp()).sum::<f32>().ln() + max;
    logits.iter().map(|&v| v - lse).collect()
}

/// The greedy token of `logits` (the first of equal maxima) and its log-probability, without
/// the vocabulary's log-softmax: a vectorised max, the index of its first occurrence, and a
/// vectorised Σ e^(v − max) (`log p = −ln Σ`). libm's scalar `exp` over 49k logits a row a step
/// was ~4 % of a greedy `cot` evaluation.
fn greedy_pick(logits: &[f32]) -> (u32, f32) {
    let max = crate::fastmath::max(logits);
    let Some(tok) = logits.iter().position(|&v| v == max) else {
        // nothing but NaN: the old scan's answer
        return (0, f32::NAN);
    };
    (tok as u32, -crate::fastmath::sum_exp(logits, max).ln())
}

/// Picks the next token from `logprobs` (temperature 1) under `p`.
fn pick(logprobs: &[f32], p: &SamplingParams, rng: &mut ChaCha8Rng) -> u32 {
    if p.temperature == 0.0 {
        let mut best = 0;
        for (i, &v) in logprobs.iter().enumerate() {
            if v > logprobs[best] {
                best = i;
            }
        }
        return best as u32;
    }
    // softmax(logits / T) = softmax(logprobs / T)
    let scaled: Vec<f32> = logprobs.iter().map(|&v| v / p.temperature as f32).collect();
    let probs: Vec<f32> = log_softmax(&scaled).iter().map(|v| v.exp()).collect();
    if p.top_p >= 1.0 {
        // the whole vocabulary: inverse CDF in token order, no sort needed
        let total: f32 = probs.iter().sum();
        let mut u = rng.random::<f32>() * total;
        for (i, &q) in probs.iter().enumerate() {
            u -= q;
            if u <= 0.0 && q > 0.0 {
                return i as u32;
            }
        }
        return probs.iter().rposition(|&q| q > 0.0).unwrap_or(0) as u32;
    }
    let order = nucleus(&probs, p.top_p);
    let total: f32 = order.iter().map(|&i| probs[i]).sum();
    let mut u = rng.random::<f32>() * total;
    for &i in &order {
        u -= probs[i];
        if u <= 0.0 {
            return i as u32;
        }
    }
    order[order.len() - 1] as u32
}

/// The top-p nucleus, most probable first (ties: lower id first): the shortest prefix of that
/// order whose mass reaches `top_p`, at least one token. Sorting the whole vocabulary (49k
/// tokens) for every sampled token cost about as much as a batch-32 decode step of SmolLM2-135M;
/// the nucleus is usually a few dozen tokens, so the `k` most probable are selected first and
/// only they are sorted, `k` growing while they fall short. The same tokens, in the same order,
/// as sorting everything.
fn nucleus(probs: &[f32], top_p: f64) -> Vec<usize> {
    let desc = |a: &usize, b: &usize| probs[*b].partial_cmp(&probs[*a]).unwrap().then(a.cmp(b));
    let mut ids: Vec<usize> = (0..probs.len()).filter(|&i| probs[i] > 0.0).collect();
    let mut k = 64;
    loop {
        let all = k >= ids.len();
        if all {
            ids.sort_by(desc);
        } else {
            ids.select_nth_unstable_by(k, desc);
            ids[..k].sort_by(desc);
        }
        let top = &ids[..k.min(ids.len())];
        let mut mass = 0f32;
        for (n, &i) in top.iter().enumerate() {
            mass += probs[i];
            if mass as f64 >= top_p {
                return top[..=n].to_vec();
            }
        }
        if all {
            return ids; // the mass never reached top_p: every token (as a full sort keeps)
        }
        k *= 8;
    }
}

/// Generates a completion for each `(prompt ids, params)`, at most `batch_size` rows decoding
/// at a time; `on_done(n)` is called as requests finish (progress). Outputs are in request
/// order.
///
/// The batch is continuous ([`generate_continuous`]): a row that finishes leaves it, and once
/// half the rows have left, the next requests are prefilled and merged in. A batch of answers
/// of unequal length then never spends its steps on rows that are already done, and every
/// output is what the request would have decoded alone (each row keeps its positions and its
/// own random stream).
pub fn generate(
    model: &Llama,
    tokenizer: &TextTokenizer,
    requests: &[(Vec<u32>, SamplingParams)],
    batch_size: usize,
    on_done: &mut dyn FnMut(usize),
) -> Result<Vec<Generation>> {
    // similar prompt lengths join together: less padding in each prefill
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by_key(|&i| requests[i].0.len());
    let mut waiting = order.into_iter();
    let mut results: Vec<Option<Generation>> = vec![None; requests.len()];
    generate_continuous(
        model,
        tokenizer,
        batch_size,
        &mut |room, _idle| {
            waiting
                .by_ref()
                .take(room)
                .map(|i| (i, requests[i].clone()))
                .collect()
        },
        &mut |i, g| {
            results[i] = Some(g);
            on_done(1);
        },
    )?;
    Ok(results
        .into_iter()
        .map(|g| g.expect("every request generated"))
        .collect())
}

/// A request to decode: prompt ids and how to sample.
pub type Request = (Vec<u32>, SamplingParams);

/// A continuous batch fed by `next`: whenever at most half of `batch_size` rows are running,
/// `next(room, idle)` is asked for up to `room` more requests, each with a key of the caller's;
/// they are prefilled together and merged into the running batch. `idle` says nothing is
/// running: the source may then block until a request comes, and an empty answer ends the
/// decoding. Each finished generation goes to `done` with its key as soon as its row finishes.
///
/// What a long-lived worker runs (the embedded teacher: requests keep arriving while others
/// decode); [`generate`] is this over a fixed list.
pub fn generate_continuous<K>(
    model: &Llama,
    tokenizer: &TextTokenizer,
    batch_size: usize,
    next: &mut dyn FnMut(usize, bool) -> Vec<(K, Request)>,
    done: &mut dyn FnMut(K, Generation),
) -> Result<()> {
    let batch_size = batch_size.max(1);
    let mut running: Option<Decoder> = None;
    // the key of the request each running row answers
    let mut row_key: Vec<Option<K>> = vec![];
    loop {
        // refill once half the batch has left: a prefill of a few rows costs nearly what one
        // of many does
        if row_key.len() <= batch_size / 2 {
            let idle = row_key.is_empty();
            let group = next(batch_size - row_key.len(), idle);
            if group.is_empty() && idle {
                return Ok(());
            }
            if !group.is_empty() {
                let (keys, reqs): (Vec<K>, Vec<_>) = group.into_iter().unzip();
                let mut joining = Decoder::new(model, tokenizer, &reqs.iter().collect::<Vec<_>>())?;
                joining.step()?;
                match running.as_mut() {
                    Some(batch) => batch.merge(joining)?,
                    None => running = Some(joining),
                }
                row_key.extend(keys.into_iter().map(Some));
            }
        }
        let Some(batch) = running.as_mut() else {
            return Ok(());
        };
        let finished = batch.take_finished()?;
        if !finished.is_empty() {
            let rows: Vec<usize> = finished.iter().map(|(r, _)| *r).collect();
            for (r, g) in finished {
                done(row_key[r].take().expect("a row finishes once"), g);
            }
            let mut r = 0;
            row_key.retain(|_| {
                r += 1;
                !rows.contains(&(r - 1))
            });
        }
        if row_key.is_empty() {
            continue;
        }
        batch.step()?;
    }
}

/// One batch decoding step by step: what [`generate`] runs to the end, and what a server
/// drives itself to stream each row's text as it grows and to drop rows whose client left.
pub struct Decoder<'a> {
    model: &'a Llama,
    tokenizer: &'a TextTokenizer,
    rows: Vec<Row>,
    prompt_tokens: Vec<usize>,
    pad: Vec<usize>,
    cache: crate::llama::Cache,
    input: Tensor,
    /// Decode each row's text after every token (streaming), not only for stop strings.
    track_text: bool,
    /// Before the first step: which prefilled prompt each row continues. Requests with the same
    /// prompt (K samples of one question) are prefilled once and their cache rows copied.
    expand: Option<Vec<usize>>,
}

impl<'a> Decoder<'a> {
    /// Prepares a batch of `(prompt ids, params)`; nothing runs until [`Decoder::step`], whose
    /// first call prefills each distinct prompt once.
    pub fn new(
        model: &'a Llama,
        tokenizer: &'a TextTokenizer,
        reqs: &[&(Vec<u32>, SamplingParams)],
    ) -> Result<Self> {
        // the distinct prompts, and which one each request continues
        let mut first_of: std::collections::HashMap<&[u32], usize> = Default::default();
        let mut prompts: Vec<&[u32]> = vec![];
        let of_row: Vec<usize> = reqs
            .iter()
            .map(|r| {
                *first_of.entry(r.0.as_slice()).or_insert_with(|| {
                    prompts.push(r.0.as_slice());
                    prompts.len() - 1
                })
            })
            .collect();
        let b = prompts.len();
        let width = reqs.iter().map(|r| r.0.len()).max().unwrap_or(0).max(1);
        let max_new = reqs.iter().map(|r| r.1.max_new_tokens).max().unwrap_or(0);
        let limit = model.cfg.max_position_embeddings;
        if width + max_new > limit {
            candle_core::bail!(
                "prompt ({width} tokens) + max_new_tokens ({max_new}) exceeds the model's {limit} positions"
            );
        }
        let pad: Vec<usize> = prompts.iter().map(|p| width - p.len()).collect();
        let mut ids = vec![tokenizer.pad_id; b * width];
        for (r, prompt) in prompts.iter().enumerate() {
            ids[r * width + pad[r]..(r + 1) * width].copy_from_slice(prompt);
        }
        let rows = reqs
            .iter()
            .map(|r| Row {
                params: r.1.clone(),
                rng: ChaCha8Rng::seed_from_u64(r.1.seed),
                out: vec![],
                logprobs: vec![],
                done: (r.1.max_new_tokens == 0).then_some(FinishReason::Length),
                text: String::new(),
            })
            .collect();
        Ok(Decoder {
            model,
            tokenizer,
            rows,
            prompt_tokens: reqs.iter().map(|r| r.0.len()).collect(),
            pad,
            cache: model.new_cache(width + max_new),
            input: Tensor::from_vec(ids, (b, width), model.device())?,
            track_text: false,
            expand: (b < reqs.len()).then_some(of_row),
        })
    }

    /// Keep every row's text current after each step (for [`Decoder::visible_text`]).
    pub fn track_text(mut self) -> Self {
        self.track_text = true;
        self
    }

    pub fn is_done(&self) -> bool {
        self.rows.iter().all(|r| r.done.is_some())
    }

    /// Whether row `r` has finished, and why.
    pub fn finished(&self, r: usize) -> Option<FinishReason> {
        self.rows[r].done
    }

    /// Tokens generated so far in row `r`.
    pub fn generated(&self, r: usize) -> usize {
        self.rows[r].out.len()
    }

    /// Token ids generated so far in row `r`.
    pub fn tokens(&self, r: usize) -> &[u32] {
        &self.rows[r].out
    }

    /// Stops row `r` (its client went away); its slot still rides along until the batch ends.
    pub fn cancel(&mut self, r: usize) {
        self.rows[r].done.get_or_insert(FinishReason::Stop);
    }

    /// Row `r`'s text so far that cannot change any more: without a trailing partial UTF-8
    /// character, and, while the row runs, without a tail that could still grow into a stop
    /// string. Needs [`Decoder::track_text`].
    pub fn visible_text(&self, r: usize) -> &str {
        let row = &self.rows[r];
        let text = row.text.as_str();
        if row.done.is_some() {
            return text;
        }
        let mut end = text.trim_end_matches('\u{FFFD}').len();
        for stop in &row.params.stop {
            // the longest suffix of text[..end] that is a proper prefix of `stop`
            for k in (1..stop.len()).rev() {
                if stop.is_char_boundary(k) && text[..end].ends_with(&stop[..k]) {
                    end = end.min(text[..end].len() - k);
                    break;
                }
            }
        }
        &text[..end]
    }

    /// Rows in the batch (running or finished and not yet [`Decoder::retain`]ed away).
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Moves `other`'s rows to the end of this batch, after both have taken at least one step
    /// (`other`'s first step is its prompts' prefill). The shorter cache is left-padded, so each
    /// row keeps its positions and decodes exactly as it would have alone.
    pub fn merge(&mut self, mut other: Decoder<'a>) -> Result<()> {
        if self.rows.is_empty() {
            *self = other;
            return Ok(());
        }
        if self.cache.len == 0 || other.cache.len == 0 {
            candle_core::bail!("merge: both batches must have taken a step");
        }
        debug_assert!(self.expand.is_none() && other.expand.is_none());
        let (a, b) = (self.cache.len, other.cache.len);
        if a < b {
            self.cache.left_pad(b - a)?;
            self.pad.iter_mut().for_each(|p| *p += b - a);
        } else if b < a {
            other.cache.left_pad(a - b)?;
            other.pad.iter_mut().for_each(|p| *p += a - b);
        }
        self.cache.append_rows(&other.cache)?;
        self.input = Tensor::cat(&[&self.input, &other.input], 0)?;
        self.rows.extend(other.rows);
        self.pad.extend(other.pad);
        self.prompt_tokens.extend(other.prompt_tokens);
        self.track_text |= other.track_text;
        Ok(())
    }

    /// Keeps the rows where `keep[r]` (in order) and drops the others, then the padding columns
    /// every remaining row has. Lets finished rows leave a running batch.
    pub fn retain(&mut self, keep: &[bool]) -> Result<()> {
        if self.expand.is_some() {
            candle_core::bail!("retain: the batch has not taken its first step");
        }
        let kept: Vec<usize> = (0..self.rows.len()).filter(|&r| keep[r]).collect();
        if kept.len() == self.rows.len() {
            return Ok(());
        }
        if kept.is_empty() {
            self.rows.clear();
            self.pad.clear();
            self.prompt_tokens.clear();
            self.cache = self.model.new_cache(1);
            return Ok(());
        }
        let mut r = 0;
        self.rows.retain(|_| {
            r += 1;
            keep[r - 1]
        });
        self.pad = kept.iter().map(|&r| self.pad[r]).collect();
        self.prompt_tokens = kept.iter().map(|&r| self.prompt_tokens[r]).collect();
        let ids = Tensor::new(
            kept.iter()
                .map(|&r| r as u32)
                .collect::<Vec<_>>()
                .as_slice(),
            self.model.device(),
        )?;
        self.input = self.input.index_select(&ids, 0)?;
        self.cache.select_rows(&kept)?;
        let common = self.pad.iter().copied().min().unwrap_or(0);
        self.cache.trim_front(common)?;
        self.pad.iter_mut().for_each(|p| *p -= common);
        Ok(())
    }

    /// Feeds the last tokens and picks one more for every running row.
    pub fn step(&mut self) -> Result<()> {
        let (model, tokenizer) = (self.model, self.tokenizer);
        let mut logits = model
            .forward_step(&self.input, &self.pad, &mut self.cache)?
            .to_vec2::<f32>()?;
        if let Some(of_row) = self.expand.take() {
            // the prefill ran once per distinct prompt: give every request its copy
            self.cache.select_rows(&of_row)?;
            self.pad = of_row.iter().map(|&p| self.pad[p]).collect();
            logits = of_row.iter().map(|&p| logits[p].clone()).collect();
        }
        let mut next = vec![tokenizer.pad_id; self.rows.len()];
        for (r, row) in self.rows.iter_mut().enumerate() {
            if row.done.is_some() {
                continue;
            }
            let (tok, logprob) = if row.params.temperature == 0.0 {
                greedy_pick(&logits[r])
            } else {
                let lp = log_softmax(&logits[r]);
                let tok = pick(&lp, &row.params, &mut row.rng);
                (tok, lp[tok as usize])
            };
            next[r] = tok;
            if !row.params.ignore_eos && tokenizer.stop_ids.contains(&tok) {
                row.done = Some(FinishReason::Stop);
                continue;
            }
            row.out.push(tok);
            row.logprobs.push(logprob);
            if self.track_text || !row.params.stop.is_empty() {
                row.text = tokenizer
                    .decode(&row.out)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                if let Some(cut) = row
                    .params
                    .stop
                    .iter()
                    .filter_map(|s| row.text.find(s.as_str()))
                    .min()
                {
                    row.text.truncate(cut);
                    row.done = Some(FinishReason::Stop);
                    continue;
                }
            }
            if row.out.len() >= row.params.max_new_tokens {
                row.done = Some(FinishReason::Length);
            }
        }
        self.input = Tensor::from_vec(next, (self.rows.len(), 1), model.device())?;
        Ok(())
    }

    /// The finished generations, in request order.
    pub fn finish(self) -> Result<Vec<Generation>> {
        (0..self.rows.len()).map(|r| self.generation(r)).collect()
    }

    /// Takes the finished rows out of the batch: their generations, each with the row index it
    /// had; the rows still running keep their order.
    pub fn take_finished(&mut self) -> Result<Vec<(usize, Generation)>> {
        let keep: Vec<bool> = self.rows.iter().map(|r| r.done.is_none()).collect();
        if keep.iter().all(|&k| k) {
            return Ok(vec![]);
        }
        let done = (0..self.rows.len())
            .filter(|&r| !keep[r])
            .map(|r| Ok((r, self.generation(r)?)))
            .collect::<Result<Vec<_>>>()?;
        self.retain(&keep)?;
        Ok(done)
    }

    /// Row `r` as a finished generation (a running row: what it has so far, cut at the limit).
    fn generation(&self, r: usize) -> Result<Generation> {
        let row = &self.rows[r];
        let text = if row.params.stop.is_empty() && !self.track_text {
            self.tokenizer
                .decode(&row.out)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?
        } else {
            row.text.clone()
        };
        Ok(Generation {
            text,
            token_ids: row.out.clone(),
            logprobs: row.logprobs.clone(),
            finish_reason: row.done.unwrap_or(FinishReason::Length),
            prompt_tokens: self.prompt_tokens[r],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `nucleus` replaced: sort the whole vocabulary, keep the prefix that reaches top_p.
    fn nucleus_by_full_sort(probs: &[f32], top_p: f64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..probs.len()).filter(|&i| probs[i] > 0.0).collect();
        order.sort_by(|&a, &b| probs[b].partial_cmp(&probs[a]).unwrap().then(a.cmp(&b)));
        let mut kept = 0;
        let mut mass = 0f32;
        for &i in &order {
            mass += probs[i];
            kept += 1;
            if mass as f64 >= top_p {
                break;
            }
        }
        order.truncate(kept.max(1));
        order
    }

    #[test]
    fn greedy_pick_is_the_log_softmax_argmax_and_its_logprob() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let greedy = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        for case in 0..40 {
            let n = [1, 7, 17, 49_152][case % 4];
            // spread and tied logits (the first of equal maxima wins, as the scan did)
            let logits: Vec<f32> = (0..n)
                .map(|i| match case % 2 {
                    0 => rng.random::<f32>() * 30.0 - 15.0,
                    _ => (i % 3) as f32,
                })
                .collect();
            let lp = log_softmax(&logits);
            let want = pick(&lp, &greedy, &mut rng);
            let (tok, logprob) = greedy_pick(&logits);
            assert_eq!(tok, want, "case {case}");
            // against the log-probability in f64 (the serial f32 sum of 49k terms that
            // log_softmax does is itself off by ~2e-5 relative)
            let max = logits[want as usize] as f64;
            let exact = -logits
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
            let err = (logprob as f64 - exact).abs();
            assert!(
                err <= 2e-6 * exact.abs().max(1.0),
                "case {case}: {logprob} vs {exact}"
            );
        }
        assert_eq!(greedy_pick(&[f32::NEG_INFINITY, 2.0, 2.0]).0, 1);
    }

    #[test]
    fn the_nucleus_is_the_full_sorts_prefix() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for case in 0..60 {
            let n = [3, 50, 700, 5000][case % 4];
            // peaked, flat and tied distributions (ties order by token id)
            let logits: Vec<f32> = (0..n)
                .map(|i| match case % 3 {
                    0 => rng.random::<f32>() * 12.0,
                    1 => rng.random::<f32>() * 0.5,
                    _ => (i % 5) as f32,
                })
                .collect();
            let probs: Vec<f32> = log_softmax(&logits).iter().map(|v| v.exp()).collect();
            for top_p in [0.05, 0.5, 0.9, 0.95, 0.999_999] {
                assert_eq!(
                    nucleus(&probs, top_p),
                    nucleus_by_full_sort(&probs, top_p),
                    "case {case}, n {n}, top_p {top_p}"
                );
            }
        }
    }

    #[test]
    fn sampling_follows_the_distribution_with_and_without_a_nucleus() {
        let logprobs: Vec<f32> = [0.5f32, 0.3, 0.2, 0.0].iter().map(|p| p.ln()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (top_p, want) in [
            (1.0, [0.5, 0.3, 0.2, 0.0]),
            (0.75, [0.625, 0.375, 0.0, 0.0]),
        ] {
            let p = SamplingParams {
                temperature: 1.0,
                top_p,
                ..Default::default()
            };
            let mut seen = [0usize; 4];
            let draws = 20_000;
            for _ in 0..draws {
                seen[pick(&logprobs, &p, &mut rng) as usize] += 1;
            }
            for (s, w) in seen.iter().zip(want) {
                let f = *s as f64 / draws as f64;
                assert!((f - w).abs() < 0.015, "top_p {top_p}: {seen:?} vs {want:?}");
            }
        }
    }
}
