//! Tokenizer and chat template of a model.
//!
//! From a Hugging Face `tokenizer.json` (+ `tokenizer_config.json` for the template and special
//! tokens), or rebuilt from a GGUF file's metadata: GGUF stores the BPE vocabulary and merges and
//! names its pre-tokenizer (`tokenizer.ggml.pre`); we write the equivalent `tokenizer.json` and
//! load it with the `tokenizers` crate, so encoding is the reference implementation's.
//! SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`: Gemma) have scores instead of
//! merges; the merges are derived from the scores as transformers' converter does (a piece's
//! splits into two vocabulary pieces, ranked by the piece's score), with byte fallback. The chat
//! template (Jinja) is rendered with minijinja, with Python string methods enabled as the HF
//! templates expect.

use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{0}")]
    Msg(String),
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
}

type Result<T> = std::result::Result<T, TokenizerError>;

fn err(m: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Msg(m.to_string())
}

/// Tokens that end an assistant turn in the chat formats we meet (ChatML, Llama 3, Gemma):
/// generation stops on whichever the vocabulary has, besides its EOS token.
const END_OF_TURN: &[&str] = &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"];

/// Gemma's turn format, for a Gemma vocabulary whose file has no template (the base models):
/// a system message opens the first user turn, the assistant is `model`.
const GEMMA_TURNS: &str = concat!(
    r#"{% set ns = namespace(sys="") %}{% for m in messages %}"#,
    r#"{% if m.role == "system" %}{% set ns.sys = m.content ~ "\n\n" %}"#,
    r#"{% else %}{{ "<start_of_turn>" ~ ("model" if m.role == "assistant" else m.role) ~ "\n" }}"#,
    r#"{% if m.role == "user" %}{{ ns.sys }}{% set ns.sys = "" %}{% endif %}"#,
    r#"{{ m.content ~ "<end_of_turn>\n" }}{% endif %}{% endfor %}"#,
    r#"{% if add_generation_prompt %}{{ "<start_of_turn>model\n" }}{% endif %}"#
);

/// One chat message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// The tokenizer as `tokenizer.json` text (what a checkpoint saves).
    json: String,
    pub bos_token: Option<String>,
    pub eos_token: String,
    /// Token ids that end a generation (the EOS token, the chat end-of-turn token).
    pub stop_ids: Vec<u32>,
    pub pad_id: u32,
    pub chat_template: Option<String>,
}

fn gguf_str(md: &HashMap<String, Value>, key: &str) -> Option<String> {
    md.get(key).and_then(|v| v.to_string().ok()).cloned()
}

fn gguf_u32(md: &HashMap<String, Value>, key: &str) -> Option<u32> {
    md.get(key).and_then(|v| v.to_u32().ok())
}

/// The pre-tokenizer llama.cpp names `pre`, as a `tokenizers` JSON node.
fn pre_tokenizer(pre: &str) -> Result<Json> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": use_regex});
    let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
    Ok(match pre {
        // SmolLM / StarCoder: every digit on its own, then GPT-2 byte-level splitting
        "smollm" | "starcoder" | "refact" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [split(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [split(
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        "gpt2" | "default" | "" => byte_level(true),
        other => {
            return Err(err(format!(
                "GGUF pre-tokenizer `{other}` is not supported (smollm, qwen2, llama-bpe, gpt2); \
                 pass the model's tokenizer.json instead"
            )))
        }
    })
}

/// The llama.cpp `pre` name of a `tokenizers` pre-tokenizer node: the exact node
/// [`pre_tokenizer`] builds for a name, else a guess from its digit handling.
fn pre_tokenizer_name(node: &Json) -> &'static str {
    for name in ["smollm", "qwen2", "llama-bpe", "gpt2"] {
        if pre_tokenizer(name).ok().as_ref() == Some(node) {
            return name;
        }
    }
    let text = node.to_string();
    if text.contains("\"individual_digits\":true") {
        "smollm"
    } else if text.contains("\\p{N}{1,3}") {
        "llama-bpe"
    } else if text.contains("\\p{N}|") {
        "qwen2"
    } else {
        "gpt2"
    }
}

/// BPE merges equivalent to a SentencePiece vocabulary with `scores`: each piece's splits into
/// two pieces of the vocabulary, the best-scored pieces' first (ties: by id), as transformers'
/// `SentencePieceExtractor` derives them.
fn spm_merges(tokens: &[String], scores: &[f32]) -> Vec<Json> {
    let id: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(f32, usize, usize, usize)> = vec![];
    for (i, t) in tokens.iter().enumerate() {
        for (at, _) in t.char_indices().skip(1) {
            if let (Some(&l), Some(&r)) = (id.get(&t[..at]), id.get(&t[at..])) {
                merges.push((scores.get(i).copied().unwrap_or(0.0), i, l, r));
            }
        }
    }
    merges.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    merges
        .into_iter()
        // pairs, not "a b" strings: a piece may hold a space
        .map(|(_, _, l, r)| json!([tokens[l], tokens[r]]))
        .collect()
}

impl TextTokenizer {
    fn build(
        json: String,
        bos: Option<String>,
        eos: String,
        pad: Option<String>,
        template: Option<String>,
        extra_stops: &[&str],
    ) -> Result<Self> {
        let inner: tokenizers::Tokenizer =
            json.parse().map_err(|e| err(format!("tokenizer: {e}")))?;
        let id = |t: &str| inner.token_to_id(t);
        let eos_id =
            id(&eos).ok_or_else(|| err(format!("EOS token `{eos}` is not in the vocabulary")))?;
        let mut stop_ids = vec![eos_id];
        for t in extra_stops {
            if let Some(i) = id(t) {
                if !stop_ids.contains(&i) {
                    stop_ids.push(i);
                }
            }
        }
        let pad_id = pad.as_deref().and_then(id).unwrap_or(eos_id);
        Ok(TextTokenizer {
            inner,
            json,
            bos_token: bos,
            eos_token: eos,
            stop_ids,
            pad_id,
            chat_template: template,
        })
    }

    /// A tokenizer from `tokenizer.json` text and its EOS token (tests, tools).
    pub fn from_json(json: String, eos: &str, chat_template: Option<String>) -> Result<Self> {
        Self::build(json, None, eos.into(), None, chat_template, &[])
    }

    /// A word-level tokenizer over `<eos>` (0), `<pad>` (1) and `w0 … w{n-3}`, split on
    /// whitespace: a real tokenizer for tiny models in tests.
    pub fn word_level(n: usize) -> Self {
        let mut vocab = serde_json::Map::new();
        vocab.insert("<eos>".into(), 0.into());
        vocab.insert("<pad>".into(), 1.into());
        for i in 0..n.saturating_sub(2) {
            vocab.insert(format!("w{i}"), (i + 2).into());
        }
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null,
            "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<pad>"}
        });
        Self::build(
            doc.to_string(),
            None,
            "<eos>".into(),
            Some("<pad>".into()),
            None,
            &[],
        )
        .expect("a valid word-level tokenizer")
    }

    /// A byte-level BPE without merges (each byte one token, ids 0–255) plus the ChatML
    /// specials `<|endoftext|>` (256, EOS and pad), `<|im_start|>` (257), `<|im_end|>` (258):
    /// a real tokenizer for any text, for tiny models in tests of whole recipes.
    pub fn byte_level() -> Self {
        // GPT-2's byte → printable-character table, as the ByteLevel pre-tokenizer writes bytes.
        let mut printable: Vec<u32> = ('!' as u32..='~' as u32).collect();
        printable.extend('¡' as u32..='¬' as u32);
        printable.extend('®' as u32..='ÿ' as u32);
        let mut vocab = serde_json::Map::new();
        let mut extra = 0;
        for b in 0u32..256 {
            let c = if printable.contains(&b) {
                b
            } else {
                extra += 1;
                255 + extra
            };
            vocab.insert(char::from_u32(c).unwrap().to_string(), b.into());
        }
        let special = |id: u32, content: &str| json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
        for (id, t) in [
            (256, "<|endoftext|>"),
            (257, "<|im_start|>"),
            (258, "<|im_end|>"),
        ] {
            vocab.insert(t.into(), id.into());
        }
        let doc = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [special(256, "<|endoftext|>"), special(257, "<|im_start|>"), special(258, "<|im_end|>")],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": []}
        });
        Self::build(
            doc.to_string(),
            None,
            "<|endoftext|>".into(),
            None,
            None,
            END_OF_TURN,
        )
        .expect("a valid byte-level tokenizer")
    }

    /// Rebuilds the tokenizer from GGUF metadata: byte-level BPE ("gpt2") or SentencePiece
    /// ("llama") vocabularies.
    pub fn from_gguf(md: &HashMap<String, Value>) -> Result<Self> {
        let model = gguf_str(md, "tokenizer.ggml.model").unwrap_or_default();
        if model != "gpt2" && model != "llama" {
            return Err(err(format!(
                "GGUF tokenizer model `{model}` is not supported (gpt2, llama); pass tokenizer.json"
            )));
        }
        let spm = model == "llama";
        let list = |key: &str| -> Result<Vec<Value>> {
            md.get(key)
                .and_then(|v| v.to_vec().ok())
                .cloned()
                .ok_or_else(|| err(format!("GGUF metadata lacks `{key}`")))
        };
        let tokens: Vec<String> = list("tokenizer.ggml.tokens")?
            .iter()
            .map(|v| v.to_string().cloned().map_err(err))
            .collect::<Result<_>>()?;
        let merges: Vec<Json> = if spm {
            let scores: Vec<f32> = list("tokenizer.ggml.scores")?
                .iter()
                .map(|v| v.to_f32().map_err(err))
                .collect::<Result<_>>()?;
            spm_merges(&tokens, &scores)
        } else {
            list("tokenizer.ggml.merges")?
                .iter()
                .map(|v| v.to_string().map(|m| json!(m)).map_err(err))
                .collect::<Result<_>>()?
        };
        let types: Vec<i32> = list("tokenizer.ggml.token_type")
            .unwrap_or_default()
            .iter()
            .map(|v| v.to_i32().unwrap_or(1))
            .collect();
        let vocab: serde_json::Map<String, Json> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        // control (3) and user-defined (4) tokens are matched whole, before BPE
        let added: Vec<Json> = types
            .iter()
            .enumerate()
            .filter(|(_, &t)| t == 3 || t == 4)
            .map(|(i, &t)| {
                json!({"id": i, "content": tokens[i], "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": t == 4, "special": t == 3})
            })
            .collect();
        let pre = gguf_str(md, "tokenizer.ggml.pre").unwrap_or_default();
        let doc = if spm {
            let unk = gguf_u32(md, "tokenizer.ggml.unknown_token_id")
                .and_then(|i| tokens.get(i as usize).cloned());
            let prefix = md
                .get("tokenizer.ggml.add_space_prefix")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(true);
            let mut normalizers = vec![];
            if prefix {
                normalizers.push(json!({"type": "Prepend", "prepend": "▁"}));
            }
            normalizers
                .push(json!({"type": "Replace", "pattern": {"String": " "}, "content": "▁"}));
            json!({
                "version": "1.0", "truncation": null, "padding": null,
                "added_tokens": added,
                "normalizer": {"type": "Sequence", "normalizers": normalizers},
                "pre_tokenizer": null,
                "post_processor": null,
                "decoder": {"type": "Sequence", "decoders": [
                    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                    {"type": "ByteFallback"}, {"type": "Fuse"}]},
                "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                          "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
                          "ignore_merges": false, "vocab": vocab, "merges": merges}
            })
        } else {
            json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer(&pre)?,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": false, "vocab": vocab, "merges": merges}
            })
        };
        let tok = |key: &str| gguf_u32(md, key).and_then(|i| tokens.get(i as usize).cloned());
        let eos = tok("tokenizer.ggml.eos_token_id")
            .ok_or_else(|| err("GGUF metadata lacks an EOS token"))?;
        let add_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        Self::build(
            doc.to_string(),
            if add_bos {
                tok("tokenizer.ggml.bos_token_id")
            } else {
                None
            },
            eos,
            tok("tokenizer.ggml.padding_token_id"),
            gguf_str(md, "tokenizer.chat_template").or_else(|| {
                tokens
                    .iter()
                    .any(|t| t == "<start_of_turn>")
                    .then(|| GEMMA_TURNS.to_string())
            }),
            END_OF_TURN,
        )
    }

    /// The tokenizer as llama.cpp's GGUF metadata (`tokenizer.ggml.*`, the chat template), for
    /// a model of `n_vocab` embedding rows: ids past the tokenizer's own are padded with unused
    /// `[PAD<id>]` tokens, as llama.cpp's converter does. BPE ("gpt2") tokenizers only.
    pub fn gguf_metadata(&self, n_vocab: usize) -> Result<Vec<(String, Value)>> {
        let doc: Json = serde_json::from_str(&self.json).map_err(err)?;
        let model = &doc["model"];
        if model["type"] != "BPE" {
            return Err(err(format!(
                "only BPE tokenizers export to GGUF (this one is {})",
                model["type"]
            )));
        }
        let mut tokens: Vec<Option<String>> = vec![None; n_vocab];
        let mut types = vec![1i32; n_vocab];
        let mut place = |id: u64, tok: &str, ty: i32| -> Result<()> {
            let i = id as usize;
            if i >= n_vocab {
                return Err(err(format!(
                    "token `{tok}` has id {i}, past the model's {n_vocab} embedding rows"
                )));
            }
            tokens[i] = Some(tok.to_string());
            types[i] = ty;
            Ok(())
        };
        for (tok, id) in model["vocab"].as_object().into_iter().flatten() {
            place(id.as_u64().unwrap_or(0), tok, 1)?;
        }
        for a in doc["added_tokens"].as_array().into_iter().flatten() {
            let ty = if a["special"].as_bool().unwrap_or(false) {
                3
            } else {
                4
            };
            place(
                a["id"].as_u64().unwrap_or(0),
                a["content"].as_str().unwrap_or(""),
                ty,
            )?;
        }
        let tokens: Vec<Value> = tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                Value::String(t.unwrap_or_else(|| {
                    types[i] = 5;
                    format!("[PAD{i}]")
                }))
            })
            .collect();
        // merges are "a b" strings, or ["a", "b"] pairs in newer files
        let merges: Vec<Value> = model["merges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| match m {
                Json::Array(p) => Value::String(format!(
                    "{} {}",
                    p[0].as_str().unwrap_or(""),
                    p[1].as_str().unwrap_or("")
                )),
                other => Value::String(other.as_str().unwrap_or("").to_string()),
            })
            .collect();
        let id = |t: &str| self.inner.token_to_id(t).map(Value::U32);
        let mut md = vec![
            (
                "tokenizer.ggml.model".to_string(),
                Value::String("gpt2".into()),
            ),
            (
                "tokenizer.ggml.pre".to_string(),
                Value::String(pre_tokenizer_name(&doc["pre_tokenizer"]).into()),
            ),
            ("tokenizer.ggml.tokens".to_string(), Value::Array(tokens)),
            (
                "tokenizer.ggml.token_type".to_string(),
                Value::Array(types.into_iter().map(Value::I32).collect()),
            ),
            ("tokenizer.ggml.merges".to_string(), Value::Array(merges)),
            (
                "tokenizer.ggml.add_bos_token".to_string(),
                Value::Bool(self.bos_token.is_some()),
            ),
            (
                "tokenizer.ggml.padding_token_id".to_string(),
                Value::U32(self.pad_id),
            ),
        ];
        if let Some(eos) = id(&self.eos_token) {
            md.push(("tokenizer.ggml.eos_token_id".into(), eos));
        }
        if let Some(bos) = self.bos_token.as_deref().and_then(id) {
            md.push(("tokenizer.ggml.bos_token_id".into(), bos));
        }
        if let Some(t) = &self.chat_template {
            md.push(("tokenizer.chat_template".into(), Value::String(t.clone())));
        }
        Ok(md)
    }

    /// Loads `tokenizer.json`, and `tokenizer_config.json` beside it when present (chat
    /// template, EOS/BOS/pad tokens).
    pub fn from_file(path: &Path) -> Result<Self> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| TokenizerError::File {
                path: p.display().to_string(),
                msg: e.to_string(),
            })
        };
        let json = read(path)?;
        let cfg_path = path.with_file_name("tokenizer_config.json");
        let cfg: Json = if cfg_path.is_file() {
            serde_json::from_str(&read(&cfg_path)?).map_err(|e| TokenizerError::File {
                path: cfg_path.display().to_string(),
                msg: e.to_string(),
            })?
        } else {
            Json::Null
        };
        let token = |key: &str| match &cfg[key] {
            Json::String(s) => Some(s.clone()),
            Json::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
            _ => None,
        };
        let add_bos = cfg["add_bos_token"].as_bool().unwrap_or(false);
        // transformers ≥ 4.47 writes the template to its own file
        let template_file = path.with_file_name("chat_template.jinja");
        let template = match cfg["chat_template"].as_str() {
            Some(t) => Some(t.to_string()),
            None if template_file.is_file() => Some(read(&template_file)?),
            None => None,
        };
        Self::build(
            json,
            if add_bos { token("bos_token") } else { None },
            token("eos_token").unwrap_or_else(|| "<|endoftext|>".into()),
            token("pad_token"),
            template,
            END_OF_TURN,
        )
    }

    /// Token ids of `text`; special tokens written in the text are recognised. The BOS token is
    /// prepended when the model wants one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| err(format!("encode: {e}")))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if let Some(b) = self
            .bos_token
            .as_deref()
            .and_then(|b| self.inner.token_to_id(b))
        {
            if !text.starts_with(self.bos_token.as_deref().unwrap_or_default()) {
                ids.push(b);
            }
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| err(format!("decode: {e}")))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Both map every token to the same id (what token-level distillation needs).
    pub fn same_vocabulary(&self, other: &TextTokenizer) -> bool {
        self.inner.get_vocab(true) == other.inner.get_vocab(true)
    }

    pub fn token_to_id(&self, t: &str) -> Option<u32> {
        self.inner.token_to_id(t)
    }

    /// Renders `messages` with the model's chat template; `add_generation_prompt` opens the
    /// assistant's turn. Models without a template get ChatML.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let source = self.chat_template.as_deref().unwrap_or(CHATML);
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |m: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    m,
                ))
            },
        );
        env.add_template("chat", source)
            .map_err(|e| err(format!("chat template: {e}")))?;
        let tpl = env.get_template("chat").map_err(err)?;
        tpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone(),
            tools => minijinja::Value::UNDEFINED,
        })
        .map_err(|e| err(format!("chat template: {e}")))
    }

    /// Writes `tokenizer.json` and a `tokenizer_config.json` with the template and special
    /// tokens, as transformers expects them.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |p: &Path, e: std::io::Error| TokenizerError::File {
            path: p.display().to_string(),
            msg: e.to_string(),
        };
        let p = dir.join("tokenizer.json");
        std::fs::write(&p, &self.json).map_err(|e| io(&p, e))?;
        let pad = self.inner.id_to_token(self.pad_id);
        let cfg = json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token,
            "add_bos_token": self.bos_token.is_some(),
            "eos_token": self.eos_token,
            "pad_token": pad,
            "chat_template": self.chat_template,
            "clean_up_tokenization_spaces": false,
        });
        let p = dir.join("tokenizer_config.json");
        std::fs::write(&p, serde_json::to_string_pretty(&cfg).unwrap()).map_err(|e| io(&p, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_round_trips_any_text_and_knows_chatml() {
        let t = TextTokenizer::byte_level();
        let text = "Émile had 3½ apples — ok?\n\ttabs  and 日本";
        let ids = t.encode(text).unwrap();
        assert_eq!(ids.len(), text.len(), "one token per byte");
        assert_eq!(t.decode(&ids).unwrap(), text);
        let chat = t
            .apply_chat_template(&[ChatMessage::new("user", "hi")], true)
            .unwrap();
        let ids = t.encode(&chat).unwrap();
        assert_eq!(ids[0], 257);
        assert!(ids.contains(&258));
        assert!(t.stop_ids.contains(&256) && t.stop_ids.contains(&258));
        assert_eq!(t.vocab_size(), 259);
    }

    #[test]
    fn sentencepiece_gguf_merges_by_score_falls_back_to_bytes_and_speaks_gemma() {
        let mut tokens: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>"]
            .map(String::from)
            .to_vec();
        let mut types = vec![3, 3, 3, 3];
        tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        types.extend([6; 256]);
        // pieces and their scores: a higher score merges first
        let pieces = [
            ("▁", 0.0),
            ("h", 0.0),
            ("e", 0.0),
            ("l", 0.0),
            ("o", 0.0),
            ("w", 0.0),
            ("r", 0.0),
            ("d", 0.0),
            ("▁hello", -1.0),
            ("hello", -2.0),
            ("hell", -3.0),
            ("he", -4.0),
            ("ll", -5.0),
            ("▁w", -7.0),
            ("or", -8.0),
        ];
        let mut scores = vec![0f32; tokens.len()];
        for (p, sc) in pieces {
            tokens.push(p.into());
            types.push(1);
            scores.push(sc);
        }
        for t in ["<start_of_turn>", "<end_of_turn>"] {
            tokens.push(t.into());
            types.push(3);
            scores.push(0.0);
        }
        let arr = |v: Vec<Value>| Value::Array(v);
        let md: HashMap<String, Value> = [
            ("tokenizer.ggml.model", Value::String("llama".into())),
            (
                "tokenizer.ggml.tokens",
                arr(tokens.iter().map(|t| Value::String(t.clone())).collect()),
            ),
            (
                "tokenizer.ggml.scores",
                arr(scores.iter().map(|&s| Value::F32(s)).collect()),
            ),
            (
                "tokenizer.ggml.token_type",
                arr(types.iter().map(|&t| Value::I32(t)).collect()),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(2)),
            ("tokenizer.ggml.eos_token_id", Value::U32(1)),
            ("tokenizer.ggml.unknown_token_id", Value::U32(3)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            ("tokenizer.ggml.add_space_prefix", Value::Bool(false)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let t = TextTokenizer::from_gguf(&md).unwrap();
        let pieces_of = |text: &str| -> Vec<String> {
            t.encode(text)
                .unwrap()
                .iter()
                .map(|&i| tokens[i as usize].clone())
                .collect()
        };
        // he, ll, hell, hello by score; "▁hello" cannot form (the space follows); then ▁w, or
        assert_eq!(
            pieces_of("hello world"),
            ["<bos>", "hello", "▁w", "or", "l", "d"]
        );
        assert_eq!(pieces_of(" hello"), ["<bos>", "▁hello"]);
        // a character outside the vocabulary falls back to its UTF-8 bytes
        assert_eq!(pieces_of("é"), ["<bos>", "<0xC3>", "<0xA9>"]);
        for text in ["hello world", " hello", "é", "we hold  ore"] {
            assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
        }
        // no template in the file, a Gemma vocabulary: Gemma's turns, the system text first
        let chat = t
            .apply_chat_template(
                &[
                    ChatMessage::new("system", "Be brief."),
                    ChatMessage::new("user", "hi"),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            chat,
            "<start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\n"
        );
        assert!(t
            .stop_ids
            .contains(&t.token_to_id("<end_of_turn>").unwrap()));
    }
}
