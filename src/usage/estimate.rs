//! Token estimates with OpenAI's tokenizers, for requests whose response reports no usage.
//!
//! The BPE tables ship inside tiktoken-rs 0.12 and are loaded once, on first use (or by
//! [`preload_tokenizers`]). If a table fails to load, counts fall back to one token per four
//! bytes of UTF-8 and the failure is logged.

use std::sync::OnceLock;

use memchr::memrchr;
use tiktoken_rs::CoreBPE;

use super::endpoint::Endpoint;
use super::request_text;

/// The tokenizer encodings tollgate can count with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// gpt-4o, gpt-4.1, gpt-4.5, o1, o3, o4 and gpt-5 families.
    O200kBase,
    /// Every other model, including gpt-4, gpt-3.5 and the embedding models.
    Cl100kBase,
}

/// Model families on o200k_base, matched as the whole name or a prefix followed by `-` or
/// `:`. Every name starting with `gpt-5` (`gpt-5.4`, `gpt-5-mini`) is on o200k_base too.
const O200K_FAMILIES: [&str; 7] = [
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "o1",
    "o3",
    "o4",
];

/// Maximum bytes of text per tokenizer call. Longer texts are cut into pieces, at a space
/// where there is one, to bound the cost of one BPE call.
const PIECE_BYTES: usize = 4096;

/// Bytes of streamed text buffered before they are counted.
const TALLY_FLUSH_BYTES: usize = 4096;

/// Bytes per token assumed when a tokenizer table cannot be loaded.
const FALLBACK_BYTES_PER_TOKEN: u64 = 4;

/// Streamed completion text, counted in pieces so memory stays bounded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TextTally {
    pending: String,
    tokens: u64,
}

/// Picks the encoding of a model by name family. Fine-tuned names (`ft:gpt-4o:org::id`) use
/// their base model's encoding.
pub fn encoding_for_model(model: &str) -> Encoding {
    let base = model.strip_prefix("ft:").unwrap_or(model);
    let is_family = |family: &str| {
        base.strip_prefix(family)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', ':']))
    };
    let o200k = O200K_FAMILIES.into_iter().any(is_family) || base.starts_with("gpt-5");
    if o200k {
        Encoding::O200kBase
    } else {
        Encoding::Cl100kBase
    }
}

/// Counts the tokens of `text` in the encoding of `model`, without special tokens.
pub fn count_text_tokens(model: &str, text: &str) -> u64 {
    count_with(encoding_for_model(model), text)
}

/// Estimates the prompt tokens of a request body before upstream reports them.
///
/// Counted in chat requests: role, name, `content` strings and text parts, and tool-call
/// arguments of each `messages[]` entry. Counted in Responses requests: `instructions`, and
/// `input` as a string or as items with text content, tool arguments and tool output.
/// Counted in embeddings `input` and completions `prompt` and `suffix`: strings, arrays of
/// strings, and token-id arrays at one token per id. Each chat message or
/// Responses input item adds [`TOKENS_PER_MESSAGE`], and chat and Responses requests add
/// [`REPLY_PRIMING_TOKENS`] once.
///
/// Not counted: images, audio and files (their tokens depend on size and detail settings),
/// tool and function definitions, and response-format schemas, so the estimate is low for
/// requests that carry them. A body of another shape, or invalid JSON, yields the tokens of
/// whatever text was found before the parser stopped; this function never fails.
pub fn estimate_prompt_tokens(endpoint: Endpoint, model: &str, request_body: &[u8]) -> u64 {
    let encoding = encoding_for_model(model);
    request_text::estimate(endpoint, request_body, |text| count_with(encoding, text))
}

/// Framing tokens per chat message or Responses input item. The value follows tiktoken-rs
/// 0.12's `num_tokens_from_messages`, which adapts OpenAI's counting example for current
/// chat models.
pub const TOKENS_PER_MESSAGE: u64 = 3;

/// Tokens that prime the assistant's reply, counted once per chat or Responses request.
pub const REPLY_PRIMING_TOKENS: u64 = 3;

/// Loads both tokenizer tables now, so the first estimate does not wait for them.
pub fn preload_tokenizers() {
    bpe(Encoding::O200kBase);
    bpe(Encoding::Cl100kBase);
}

fn bpe(encoding: Encoding) -> Option<&'static CoreBPE> {
    static O200K_BASE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    static CL100K_BASE: OnceLock<Option<CoreBPE>> = OnceLock::new();

    match encoding {
        Encoding::O200kBase => O200K_BASE
            .get_or_init(|| loaded(encoding, tiktoken_rs::o200k_base()))
            .as_ref(),
        Encoding::Cl100kBase => CL100K_BASE
            .get_or_init(|| loaded(encoding, tiktoken_rs::cl100k_base()))
            .as_ref(),
    }
}

fn loaded<E: std::fmt::Display>(encoding: Encoding, result: Result<CoreBPE, E>) -> Option<CoreBPE> {
    match result {
        Ok(bpe) => Some(bpe),
        Err(error) => {
            tracing::error!(?encoding, %error, "failed to load tokenizer, so token counts assume 4 bytes per token");
            None
        }
    }
}

fn count_with(encoding: Encoding, text: &str) -> u64 {
    let Some(bpe) = bpe(encoding) else {
        return to_u64(text.len()).div_ceil(FALLBACK_BYTES_PER_TOKEN);
    };
    let mut tokens = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let cut = piece_end(rest, PIECE_BYTES);
        tokens = tokens.saturating_add(to_u64(bpe.count_ordinary(&rest[..cut])));
        rest = &rest[cut..];
    }
    tokens
}

/// Returns where the first piece of `text` ends: before the last space within `max_bytes`,
/// because the tokenizer attaches a space to the word after it, or else at the last character
/// boundary within `max_bytes`.
fn piece_end(text: &str, max_bytes: usize) -> usize {
    if text.len() <= max_bytes {
        return text.len();
    }
    if let Some(space) = memrchr(b' ', &text.as_bytes()[..=max_bytes]).filter(|&at| at > 0) {
        return space;
    }
    let mut cut = max_bytes;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

fn to_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

impl TextTally {
    /// Adds streamed text, counting the buffered text once it passes the flush size.
    pub(crate) fn push(&mut self, model: &str, text: &str) {
        self.pending.push_str(text);
        if self.pending.len() < TALLY_FLUSH_BYTES {
            return;
        }
        // The last word may continue in the next delta, so it stays buffered.
        let cut = memrchr(b' ', self.pending.as_bytes())
            .filter(|&at| at > 0)
            .unwrap_or(self.pending.len());
        let counted = count_text_tokens(model, &self.pending[..cut]);
        self.tokens = self.tokens.saturating_add(counted);
        self.pending.drain(..cut);
    }

    /// Returns the total: the tokens counted so far plus a count of what is still buffered.
    pub(crate) fn total(&self, model: &str) -> u64 {
        let rest = count_text_tokens(model, &self.pending);
        self.tokens.saturating_add(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_map_to_encodings() {
        let cases = [
            ("gpt-4o", Encoding::O200kBase),
            ("gpt-4o-mini-2024-07-18", Encoding::O200kBase),
            ("chatgpt-4o-latest", Encoding::O200kBase),
            ("gpt-4.1-nano", Encoding::O200kBase),
            ("gpt-4.5-preview", Encoding::O200kBase),
            ("o1", Encoding::O200kBase),
            ("o3-mini", Encoding::O200kBase),
            ("o4-mini-2025-04-16", Encoding::O200kBase),
            ("gpt-5", Encoding::O200kBase),
            ("gpt-5.4-pro", Encoding::O200kBase),
            ("ft:gpt-4o-mini:acme::abc123", Encoding::O200kBase),
            ("gpt-4", Encoding::Cl100kBase),
            ("gpt-4-turbo", Encoding::Cl100kBase),
            ("gpt-3.5-turbo-instruct", Encoding::Cl100kBase),
            ("text-embedding-3-small", Encoding::Cl100kBase),
            ("o100", Encoding::Cl100kBase),
            ("", Encoding::Cl100kBase),
        ];
        for (model, encoding) in cases {
            assert_eq!(encoding_for_model(model), encoding, "model {model}");
        }
    }

    #[test]
    fn text_counts_match_the_tokenizer() {
        assert_eq!(count_text_tokens("gpt-4o", ""), 0);
        assert_eq!(count_text_tokens("gpt-4o", "hello world"), 2);
        assert_eq!(count_text_tokens("gpt-4", "hello world"), 2);
        let special = "<|endoftext|>";
        assert!(
            count_text_tokens("gpt-4o", special) > 1,
            "special tokens count as text"
        );
    }

    #[test]
    fn long_text_counts_like_whole() {
        let sentence = "The quick brown fox jumps over the lazy dog. ";
        let text = sentence.repeat(2_000);
        let whole = to_u64(bpe(Encoding::O200kBase).unwrap().count_ordinary(&text));
        let pieces = count_text_tokens("gpt-4o", &text);
        assert_eq!(
            pieces, whole,
            "cuts before a space keep the token boundaries"
        );
    }

    #[test]
    fn text_without_spaces_is_cut_at_char_boundaries() {
        let text = "é".repeat(10_000);
        assert!(count_text_tokens("gpt-4o", &text) > 0);
        assert_eq!(piece_end(&text, 4095), 4094);
        assert_eq!(piece_end("ab cd", 4), 2);
        assert_eq!(piece_end("abc", 4), 3);
    }

    #[test]
    fn chat_prompt_estimate_adds_overhead() {
        let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi"}]}"#;
        let estimate = estimate_prompt_tokens(Endpoint::ChatCompletions, "gpt-4o-mini", body);
        let text =
            count_text_tokens("gpt-4o-mini", "user") + count_text_tokens("gpt-4o-mini", "Say hi");
        assert_eq!(estimate, REPLY_PRIMING_TOKENS + TOKENS_PER_MESSAGE + text);
    }

    #[test]
    fn embeddings_estimate_counts_strings() {
        let body = br#"{"model":"text-embedding-3-small","input":["hello world","again"]}"#;
        let estimate = estimate_prompt_tokens(Endpoint::Embeddings, "text-embedding-3-small", body);
        assert_eq!(estimate, 3);
    }

    #[test]
    fn tally_matches_direct_count() {
        let deltas = [
            "Once", " upon", " a", " time", ",", " there", " was", " a", " fox", ".",
        ];
        let mut tally = TextTally::default();
        let mut text = String::new();
        for round in 0..400 {
            let delta = deltas[round % deltas.len()];
            tally.push("gpt-4o", delta);
            text.push_str(delta);
            assert!(
                tally.pending.len() < TALLY_FLUSH_BYTES + 8,
                "buffer stays bounded"
            );
        }
        let direct = count_text_tokens("gpt-4o", &text);
        let tallied = tally.total("gpt-4o");
        assert!(
            direct.abs_diff(tallied) <= 2,
            "direct {direct}, tallied {tallied}"
        );
    }
}
