//! Request facts that tollgate reads from a client's body before calling upstream, and the
//! one rewrite it makes (`stream_options`). Pure: no I/O.

use std::borrow::Cow;

use memchr::memmem;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ProxyError;
use crate::usage::Endpoint;

/// Base64 strings shorter than this are left in the prompt bound; longer ones are replaced
/// by a per-item bound (an image or an audio clip costs far fewer tokens than its bytes).
const INLINE_DATA_MIN_BYTES: usize = 256;

/// Maximum length of a model name, in bytes; OpenAI's model ids, fine-tuned ones included, are far
/// shorter.
const MAX_MODEL_NAME_BYTES: usize = 256;

/// Facts about one request body, read from a parsed copy; the body itself is forwarded as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFacts {
    pub model: String,
    /// `"stream": true` exactly; any other value is not a stream.
    pub stream: bool,
    /// The client's own `stream_options.include_usage`, when it set one.
    pub include_usage: Option<bool>,
    /// `max_completion_tokens`, `max_tokens` or `max_output_tokens`, whichever is set.
    pub max_output_tokens: Option<u64>,
    /// Number of choices generated: `n` (or `best_of` for legacy completions when larger)
    /// for each prompt of a legacy completions request with a list of prompts.
    pub choices: u64,
    pub service_tier: Option<String>,
    /// The request sends audio or requests audio output.
    pub audio: bool,
    /// Images (and other inline files) and audio clips sent as base64 data.
    pub inline_images: u64,
    pub inline_audio: u64,
    /// The request continues a stored response or conversation, or uses a prompt stored
    /// upstream (the Responses API's `prompt` object).
    pub stored_context: bool,
    /// Body bytes that are neither base64 images nor audio: an upper bound of text tokens,
    /// because every BPE token covers at least one byte.
    pub text_bytes: u64,
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    #[serde(borrow)]
    stream_options: Option<&'a RawValue>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    n: Option<u64>,
    best_of: Option<u64>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
    background: Option<bool>,
    #[serde(borrow)]
    modalities: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    audio: Option<&'a RawValue>,
    #[serde(borrow)]
    prompt: Option<&'a RawValue>,
    #[serde(borrow)]
    previous_response_id: Option<&'a RawValue>,
    #[serde(borrow)]
    conversation: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

impl RequestFacts {
    /// Reads the facts tollgate needs from `body`. Rejects what cannot be metered.
    pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<RequestFacts, ProxyError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            let hint = match first {
                Some(0xEF) => "; remove the UTF-8 byte order mark",
                Some(0x1F) => "; send the body uncompressed",
                _ => "",
            };
            return Err(ProxyError::InvalidJson {
                detail: format!(
                    "the body must be a JSON object such as {{\"model\": \"gpt-4o-mini\", ...}}{hint}"
                ),
            });
        }
        let raw: RawRequest<'_> =
            serde_json::from_slice(body).map_err(|_| ProxyError::InvalidJson {
                detail: describe_invalid(body),
            })?;
        let model = match raw.model {
            Some(model) if !model.trim().is_empty() => model.into_owned(),
            _ => return Err(ProxyError::MissingModel),
        };
        // A model name is echoed in errors and logs, so an absurd one is rejected early.
        if model.len() > MAX_MODEL_NAME_BYTES {
            return Err(ProxyError::Unsupported {
                message: format!(
                    "invalid model: the name is {} bytes long; model names have at most \
                     {MAX_MODEL_NAME_BYTES} bytes",
                    model.len()
                ),
                param: Some("model"),
            });
        }
        if raw.background == Some(true) {
            return Err(ProxyError::Unsupported {
                message:
                    "background responses cannot be metered: their usage arrives only on a later \
                          retrieval; send the request without \"background\": true"
                        .to_string(),
                param: Some("background"),
            });
        }

        let stream =
            endpoint != Endpoint::Embeddings && raw.stream.is_some_and(|v| v.get() == "true");
        let include_usage = match raw.stream_options {
            Some(options) => serde_json::from_str::<StreamOptions>(options.get())
                .ok()
                .and_then(|o| o.include_usage),
            None => None,
        };
        let max_output_tokens = raw
            .max_completion_tokens
            .or(raw.max_tokens)
            .or(raw.max_output_tokens);
        let per_prompt = raw.n.unwrap_or(1).max(raw.best_of.unwrap_or(1)).max(1);
        let prompts = match raw.prompt {
            Some(prompt) if endpoint == Endpoint::Completions => prompt_count(prompt),
            _ => 1,
        };
        let choices = per_prompt.saturating_mul(prompts);
        let stored = |value: Option<&RawValue>| value.is_some_and(|v| v.get() != "null");
        // Legacy completions send their text as `prompt`; the Responses API names a stored
        // prompt with it, whose text upstream bills as input.
        let stored_prompt = endpoint == Endpoint::Responses && stored(raw.prompt);
        let stored_context =
            stored(raw.previous_response_id) || stored(raw.conversation) || stored_prompt;
        let wants_audio_out = raw.audio.is_some()
            || raw
                .modalities
                .as_ref()
                .is_some_and(|m| m.iter().any(|x| x == "audio"));

        let inline = InlineData::scan(body);
        Ok(RequestFacts {
            model,
            stream,
            include_usage,
            max_output_tokens,
            choices,
            service_tier: raw.service_tier.map(Cow::into_owned),
            audio: wants_audio_out || inline.audio > 0,
            inline_images: inline.images,
            inline_audio: inline.audio,
            stored_context,
            text_bytes: body.len().saturating_sub(inline.bytes) as u64,
        })
    }

    /// Returns the prompt bound in tokens of `body`, the request these facts were read from.
    /// Each image and inline audio clip counts at its configured bound instead of its bytes. A
    /// prompt that takes in content the body does not carry is bounded by the largest prompt
    /// a model accepts, when that is larger. The body is scanned again only here, because
    /// only a request that places a hold needs the bound.
    pub fn prompt_bound(&self, body: &[u8], bounds: &PromptBounds) -> u64 {
        let body = without_ascii_escapes(body);
        let images = self.inline_images.max(image_parts(&body));
        let seen = self
            .text_bytes
            .saturating_add(images.saturating_mul(bounds.image_tokens))
            .saturating_add(self.inline_audio.saturating_mul(bounds.audio_tokens));
        if self.stored_context || takes_unseen_input(&body) {
            seen.max(bounds.context_tokens)
        } else {
            seen
        }
    }
}

/// Describes why `body` did not parse: a field of the wrong type by its path, anything else
/// (a syntax error, a missing end) with an example of a valid body. It parses the body again
/// to track the path, which only a body that failed pays for.
fn describe_invalid(body: &[u8]) -> String {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let Err(error) = serde_path_to_error::deserialize::<_, RawRequest<'_>>(&mut deserializer)
    else {
        return "the body could not be read; send a JSON object such as {\"model\": \"gpt-4o-mini\", ...}".to_string();
    };
    let inner = error.inner();
    let path = error.path().to_string();
    if inner.is_data() && path != "." {
        format!("field {path}: {inner}; send {path} with the type the API documents for it")
    } else {
        format!("{inner}; send a JSON object such as {{\"model\": \"gpt-4o-mini\", ...}}")
    }
}

/// Tokens counted for request content whose size the body does not show.
#[derive(Clone, Copy, Debug)]
pub struct PromptBounds {
    /// One image.
    pub image_tokens: u64,
    /// One inline audio clip.
    pub audio_tokens: u64,
    /// A whole prompt that takes in content the body does not carry.
    pub context_tokens: u64,
}

/// Parts that bring content into the prompt from elsewhere: a Responses file, a stored item,
/// and hosted tools whose results join the prompt (`web_search` and its variants). A quote
/// inside a JSON string is escaped, so the quoted names match only keys and values, not text.
const UNSEEN_INPUT_MARKERS: [&[u8]; 6] = [
    b"\"input_file\"",
    b"\"item_reference\"",
    b"\"file_search\"",
    b"\"web_search",
    b"\"mcp\"",
    b"\"code_interpreter\"",
];

/// Returns `body` with every `\u` escape of a printable ASCII character decoded, so that the
/// byte scans for names see `"input_\u0066ile"` as the `"input_file"` that upstream reads.
/// A decoded quote or backslash stays escaped, so the result is still valid JSON and a name
/// inside text still cannot match. Other bytes, and other escapes, are copied as they are.
/// Most bodies have no such escape (serializers escape only quotes, backslashes, control
/// characters and, by choice, non-ASCII text), and those are returned without a copy.
fn without_ascii_escapes(body: &[u8]) -> Cow<'_, [u8]> {
    let candidate = memmem::find_iter(body, b"\\u").any(|at| ascii_escape(body, at).is_some());
    if !candidate {
        return Cow::Borrowed(body);
    }
    // From the start: a candidate may be the tail of an escaped backslash (`\\u0066` is a
    // backslash and the text `u0066`), and only a pass over every escape can separate them.
    let mut decoded = Vec::with_capacity(body.len());
    let mut at = 0;
    while at < body.len() {
        let Some(offset) = memchr::memchr(b'\\', &body[at..]) else {
            decoded.extend_from_slice(&body[at..]);
            break;
        };
        decoded.extend_from_slice(&body[at..at + offset]);
        at += offset;
        match ascii_escape(body, at) {
            Some(byte @ (b'"' | b'\\')) => {
                decoded.extend_from_slice(&[b'\\', byte]);
                at += 6;
            }
            Some(byte) => {
                decoded.push(byte);
                at += 6;
            }
            None => {
                // Any other escape: the backslash and the byte it escapes, so an escaped
                // backslash is never read as the start of another escape.
                decoded.extend_from_slice(&body[at..(at + 2).min(body.len())]);
                at += 2;
            }
        }
    }
    Cow::Owned(decoded)
}

/// Returns the printable ASCII character that the escape at `at` (a backslash) spells, if it
/// is a `\u00XX` escape of one.
fn ascii_escape(body: &[u8], at: usize) -> Option<u8> {
    let escape = body.get(at..at + 6)?;
    if &escape[..4] != b"\\u00" {
        return None;
    }
    let hex = std::str::from_utf8(&escape[4..]).ok()?;
    let byte = u8::from_str_radix(hex, 16).ok()?;
    (0x20..0x7f).contains(&byte).then_some(byte)
}

/// Returns whether `body` brings content into the prompt from elsewhere. A chat `file` part
/// names `file` as its type and as the key of an object.
fn takes_unseen_input(body: &[u8]) -> bool {
    has_object_key(body, b"\"file\"")
        || UNSEEN_INPUT_MARKERS
            .iter()
            .any(|marker| memmem::find(body, marker).is_some())
}

/// Returns whether `body` has the key `name` (quoted) with an object as its value.
fn has_object_key(body: &[u8], name: &[u8]) -> bool {
    memmem::find_iter(body, name).any(|start| key_opens_object(body, start + name.len()))
}

/// Returns whether the bytes from `from` on are a colon and an opening brace, as after a key
/// whose value is an object.
fn key_opens_object(body: &[u8], from: usize) -> bool {
    let mut rest = body[from..].iter().filter(|b| !b.is_ascii_whitespace());
    rest.next() == Some(&b':') && rest.next() == Some(&b'{')
}

/// Counts the prompts of a legacy completions `prompt`. A list of strings or of token lists
/// contains one prompt per item, while a string or a single token list is one prompt.
fn prompt_count(prompt: &RawValue) -> u64 {
    let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(prompt.get()) else {
        return 1;
    };
    let several = items
        .first()
        .is_some_and(|item| item.get().starts_with(['"', '[']));
    if several {
        (items.len() as u64).max(1)
    } else {
        1
    }
}

/// Counts image parts by their type names, whatever carries the image: `input_image` in
/// the Responses API, and in chat an `image_url` key whose value is an object (the chat part
/// names `image_url` twice, as its type and as that key).
fn image_parts(body: &[u8]) -> u64 {
    let responses = memmem::find_iter(body, b"\"input_image\"").count();
    let key = b"\"image_url\"";
    let chat = memmem::find_iter(body, key)
        .filter(|&start| key_opens_object(body, start + key.len()))
        .count();
    (responses + chat) as u64
}

/// Large base64 payloads found in a body by a byte scan (no parse).
#[derive(Default)]
struct InlineData {
    images: u64,
    audio: u64,
    bytes: usize,
}

impl InlineData {
    fn scan(body: &[u8]) -> InlineData {
        let mut found = InlineData::default();
        // Data URLs: images, and files such as PDFs, sent inline. Only the value of a key
        // that carries one counts. Text that starts with `data:` (a pasted event log, or a
        // data URL pasted as text) is tokenized like any text, so its bytes stay text bytes.
        for start in memmem::find_iter(body, b"\"data:") {
            if !matches!(
                key_before(body, start),
                Some(b"url" | b"image_url" | b"file_data")
            ) {
                continue;
            }
            let len = string_len(body, start + 1);
            if len >= INLINE_DATA_MIN_BYTES {
                found.bytes += len;
                if body[start + 1..].starts_with(b"data:audio/") {
                    found.audio += 1;
                } else {
                    found.images += 1;
                }
            }
        }
        // Chat `input_audio` parts carry raw base64 under "data". The name appears twice per
        // part (as the type and as the key), so each data string is counted once.
        // Each search starts where the previous one ended, so a body that repeats the name
        // without data is still read once, not once per name.
        let mut counted_until = 0;
        let mut searched_until = 0;
        for start in memmem::find_iter(body, b"\"input_audio\"") {
            if start < counted_until {
                continue;
            }
            let from = start.max(searched_until);
            let window_end = (start + 4096).min(body.len());
            if from >= window_end {
                continue;
            }
            let Some(offset) = memmem::find(&body[from..window_end], b"\"data\"") else {
                searched_until = window_end;
                continue;
            };
            searched_until = from + offset + 6;
            let mut at = searched_until;
            while at < body.len() && matches!(body[at], b' ' | b':' | b'\n' | b'\r' | b'\t') {
                at += 1;
            }
            if body.get(at) == Some(&b'"') {
                let len = string_len(body, at + 1);
                counted_until = at + 1 + len;
                if len >= INLINE_DATA_MIN_BYTES {
                    found.bytes += len;
                    found.audio += 1;
                }
            }
        }
        found
    }
}

/// Returns the key whose value is the string that opens at `quote` (the index of its opening
/// quote), when the bytes before it are a quoted key and a colon.
fn key_before(body: &[u8], quote: usize) -> Option<&[u8]> {
    let before = body[..quote].trim_ascii_end().strip_suffix(b":")?;
    let key = before.trim_ascii_end().strip_suffix(b"\"")?;
    let opening = memchr::memrchr(b'"', key)?;
    Some(&key[opening + 1..])
}

/// Length of the JSON string content starting at `from` up to its closing quote.
fn string_len(body: &[u8], from: usize) -> usize {
    let mut at = from;
    while at < body.len() {
        match body[at] {
            b'"' => return at - from,
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    body.len().saturating_sub(from)
}

/// Returns `body` with `stream_options.include_usage` set to true, keeping every other byte.
/// An existing `stream_options` object is replaced by the same object with the flag set; a
/// missing one is inserted as the first member of the top-level object.
pub fn force_include_usage(body: &[u8]) -> Result<Vec<u8>, ProxyError> {
    #[derive(Deserialize)]
    struct Options<'a> {
        // `null` must be captured too: a null member left in place beside an inserted one
        // would leave upstream free to read the null and report no usage.
        #[serde(borrow, default, deserialize_with = "raw_including_null")]
        stream_options: Option<&'a RawValue>,
    }
    let parsed: Options<'_> =
        serde_json::from_slice(body).map_err(|error| ProxyError::InvalidJson {
            detail: error.to_string(),
        })?;

    match parsed.stream_options {
        Some(raw) => {
            let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
            let end = start + raw.get().len();
            let mut options: serde_json::Map<String, serde_json::Value> = if raw.get() == "null" {
                serde_json::Map::new()
            } else {
                serde_json::from_str(raw.get()).map_err(|_| ProxyError::Unsupported {
                    message:
                        "stream_options must be a JSON object such as {\"include_usage\": true}"
                            .to_string(),
                    param: Some("stream_options"),
                })?
            };
            options.insert("include_usage".to_string(), serde_json::Value::Bool(true));
            let replacement =
                serde_json::to_vec(&options).map_err(|error| ProxyError::Internal {
                    detail: error.to_string(),
                })?;
            let mut out = Vec::with_capacity(body.len() + 24);
            out.extend_from_slice(&body[..start]);
            out.extend_from_slice(&replacement);
            out.extend_from_slice(&body[end..]);
            Ok(out)
        }
        None => {
            let open =
                body.iter()
                    .position(|&b| b == b'{')
                    .ok_or_else(|| ProxyError::InvalidJson {
                        detail: "the body is not a JSON object".to_string(),
                    })?;
            let rest_is_empty = body[open + 1..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|&b| b == b'}');
            let insert: &[u8] = if rest_is_empty {
                br#""stream_options":{"include_usage":true}"#
            } else {
                br#""stream_options":{"include_usage":true},"#
            };
            let mut out = Vec::with_capacity(body.len() + insert.len());
            out.extend_from_slice(&body[..=open]);
            out.extend_from_slice(insert);
            out.extend_from_slice(&body[open + 1..]);
            Ok(out)
        }
    }
}

/// Deserializes a member as raw JSON, `null` included, so its bytes can be replaced.
fn raw_including_null<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(body: &str) -> RequestFacts {
        RequestFacts::parse(Endpoint::ChatCompletions, body.as_bytes()).unwrap()
    }

    #[test]
    fn stream_is_true_only_for_literal_true() {
        let cases = [
            (r#"{"model":"m","stream":true}"#, true),
            (r#"{"model":"m","stream": true }"#, true),
            (r#"{"model":"m","stream":false}"#, false),
            (r#"{"model":"m","stream":"true"}"#, false),
            (r#"{"model":"m","stream":1}"#, false),
            (r#"{"model":"m"}"#, false),
        ];
        for (body, stream) in cases {
            assert_eq!(facts(body).stream, stream, "{body}");
        }
    }

    #[test]
    fn embeddings_never_stream() {
        let body = br#"{"model":"text-embedding-3-small","input":"x","stream":true}"#;
        assert!(
            !RequestFacts::parse(Endpoint::Embeddings, body)
                .unwrap()
                .stream
        );
    }

    #[test]
    fn output_limits_and_choices() {
        let f = facts(r#"{"model":"m","max_tokens":8,"n":3}"#);
        assert_eq!(f.max_output_tokens, Some(8));
        assert_eq!(f.choices, 3);
        let f = facts(r#"{"model":"m","max_completion_tokens":9,"max_tokens":8}"#);
        assert_eq!(f.max_output_tokens, Some(9));
        let f = facts(r#"{"model":"m","max_output_tokens":7}"#);
        assert_eq!(f.max_output_tokens, Some(7));
        assert_eq!(facts(r#"{"model":"m","n":0}"#).choices, 1);
        assert_eq!(facts(r#"{"model":"m","best_of":4}"#).choices, 4);
    }

    #[test]
    fn bad_bodies_are_rejected() {
        let bad_json = RequestFacts::parse(Endpoint::ChatCompletions, b"{nope");
        assert!(
            matches!(&bad_json, Err(ProxyError::InvalidJson { detail }) if detail.contains("such as")),
            "{bad_json:?}"
        );
        let wrong_types = [
            (r#"{"model":"m","max_tokens":"5"}"#, "field max_tokens:"),
            (r#"{"model":5}"#, "field model:"),
            (r#"{"model":"m","stream_options":{},"n":-1}"#, "field n:"),
        ];
        for (body, named) in wrong_types {
            let parsed = RequestFacts::parse(Endpoint::ChatCompletions, body.as_bytes());
            assert!(
                matches!(&parsed, Err(ProxyError::InvalidJson { detail }) if detail.contains(named)),
                "{body}: {parsed:?}"
            );
        }
        let no_model = RequestFacts::parse(Endpoint::ChatCompletions, br#"{"messages":[]}"#);
        assert!(matches!(no_model, Err(ProxyError::MissingModel)));
        let empty_model = RequestFacts::parse(Endpoint::ChatCompletions, br#"{"model":" "}"#);
        assert!(matches!(empty_model, Err(ProxyError::MissingModel)));
        let array = RequestFacts::parse(Endpoint::ChatCompletions, b"[1]");
        assert!(
            matches!(&array, Err(ProxyError::InvalidJson { detail }) if detail.contains("must be a JSON object"))
        );
        let bom = RequestFacts::parse(Endpoint::ChatCompletions, b"\xEF\xBB\xBF{}");
        assert!(
            matches!(&bom, Err(ProxyError::InvalidJson { detail }) if detail.contains("byte order mark"))
        );
        let long = format!(r#"{{"model":"{}"}}"#, "m".repeat(300));
        let long = RequestFacts::parse(Endpoint::ChatCompletions, long.as_bytes());
        assert!(matches!(
            long,
            Err(ProxyError::Unsupported {
                param: Some("model"),
                ..
            })
        ));
        let background =
            RequestFacts::parse(Endpoint::Responses, br#"{"model":"m","background":true}"#);
        assert!(matches!(background, Err(ProxyError::Unsupported { .. })));
    }

    #[test]
    fn inline_images_are_bounded_per_item() {
        let image = "A".repeat(10_000);
        let body = format!(
            r#"{{"model":"gpt-4o","messages":[{{"role":"user","content":[{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{image}"}}}}]}}]}}"#
        );
        let f = facts(&body);
        assert_eq!(f.inline_images, 1);
        assert!(f.text_bytes < 200, "{}", f.text_bytes);
        assert_eq!(
            f.prompt_bound(body.as_bytes(), &BOUNDS),
            f.text_bytes + 1000
        );
    }

    const BOUNDS: PromptBounds = PromptBounds {
        image_tokens: 1000,
        audio_tokens: 5000,
        context_tokens: 100_000,
    };

    #[test]
    fn images_count_in_every_form() {
        let cases = [
            (
                "chat image by URL",
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]}"#,
                1,
            ),
            (
                "chat image as short base64",
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type": "image_url", "image_url" : {"url":"data:image/png;base64,iVBO"}}]}]}"#,
                1,
            ),
            (
                "responses images by URL and by file id",
                r#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://example.com/a.png"},{"type":"input_image","file_id":"file-1"}]}]}"#,
                2,
            ),
            (
                "the name inside text",
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":"say \"image_url\": {}"}]}"#,
                0,
            ),
            (
                "names spelled with escapes",
                r#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_\u0069mage","image_url":"https://example.com/a.png"}]}],"messages":[{"role":"user","content":[{"type":"image_url","\u0069mage_url":{"url":"https://example.com/b.png"}}]}]}"#,
                2,
            ),
            (
                "an escaped name inside text",
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":"say \u0022image_url\u0022: {}"}]}"#,
                0,
            ),
        ];
        for (name, body, images) in cases {
            let f = facts(body);
            assert_eq!(
                image_parts(&without_ascii_escapes(body.as_bytes())),
                images,
                "{name}"
            );
            assert!(
                !takes_unseen_input(&without_ascii_escapes(body.as_bytes())),
                "{name}"
            );
            let bound = f.prompt_bound(body.as_bytes(), &BOUNDS);
            assert_eq!(bound, f.text_bytes + images * 1000, "{name}");
        }
    }

    #[test]
    fn unseen_input_is_bounded_by_context() {
        let bodies = [
            r#"{"model":"gpt-4o","previous_response_id":"resp_1","input":"and then?"}"#,
            r#"{"model":"gpt-4o","conversation":"conv_1","input":"hi"}"#,
            r#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}"#,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}"#,
            r#"{"model":"gpt-4o","input":[{"type":"item_reference","id":"msg_1"}]}"#,
            r#"{"model":"gpt-4o","input":"news?","tools":[{"type":"web_search_preview"}]}"#,
            r#"{"model":"gpt-4o","input":"docs?","tools":[{"type":"file_search","vector_store_ids":["vs_1"]}]}"#,
            r#"{"model":"gpt-4o","input":"hi","tools":[{"type":"mcp","server_label":"x"}]}"#,
            r#"{"model":"gpt-4o","input":"plot it","tools":[{"type":"code_interpreter","container":{"type":"auto"}}]}"#,
            r#"{"model":"gpt-4o","prompt":{"id":"pmpt_1","version":"2"},"input":"go"}"#,
            r#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_\u0066ile","file_id":"file-1"}]}]}"#,
            r#"{"model":"gpt-4o","tools":[{"type":"\u006dcp","server_label":"x"}],"input":"hi"}"#,
        ];
        for body in bodies {
            // Parsed as the Responses API's, where `prompt` names a stored prompt.
            let f = RequestFacts::parse(Endpoint::Responses, body.as_bytes()).unwrap();
            assert_eq!(f.prompt_bound(body.as_bytes(), &BOUNDS), 100_000, "{body}");
        }
        // A legacy completions prompt is the text itself, not a stored prompt.
        let legacy = r#"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi"}"#;
        let f = RequestFacts::parse(Endpoint::Completions, legacy.as_bytes()).unwrap();
        assert!(!f.stored_context);
        let plain = r#"{"model":"gpt-4o","previous_response_id":null,"input":"hi"}"#;
        let f = facts(plain);
        assert!(!f.stored_context);
        assert_eq!(f.prompt_bound(plain.as_bytes(), &BOUNDS), f.text_bytes);
    }

    #[test]
    fn prompt_lists_multiply_choices() {
        let parse = |body: &str| RequestFacts::parse(Endpoint::Completions, body.as_bytes());
        let cases = [
            (r#"{"model":"m","prompt":"one"}"#, 1),
            (r#"{"model":"m","prompt":["a","b","c","d"]}"#, 4),
            (r#"{"model":"m","prompt":["a","b"],"n":3}"#, 6),
            (r#"{"model":"m","prompt":[[1,2],[3]],"best_of":2,"n":1}"#, 4),
            (r#"{"model":"m","prompt":[1,2,3]}"#, 1),
            (r#"{"model":"m","prompt":[]}"#, 1),
        ];
        for (body, choices) in cases {
            assert_eq!(parse(body).unwrap().choices, choices, "{body}");
        }
        // Chat has no `prompt` field, so a stray one changes nothing.
        assert_eq!(facts(r#"{"model":"m","prompt":["a","b"]}"#).choices, 1);
    }

    #[test]
    fn input_audio_counts_as_audio() {
        let clip = "B".repeat(4_000);
        let body = format!(
            r#"{{"model":"gpt-4o-audio-preview","messages":[{{"role":"user","content":[{{"type":"input_audio","input_audio":{{"data":"{clip}","format":"wav"}}}}]}}]}}"#
        );
        let f = facts(&body);
        assert_eq!(f.inline_audio, 1);
        assert!(f.audio);
        let asks_audio = facts(r#"{"model":"m","modalities":["text","audio"]}"#);
        assert!(asks_audio.audio);
    }

    #[test]
    fn include_usage_inserted_when_absent() {
        let body = br#"{"model":"m","stream":true,"messages":[]}"#;
        let out = force_include_usage(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}"#
        );
    }

    #[test]
    fn include_usage_replaced_keeping_other_bytes() {
        let body = br#"{ "model" : "m",  "stream_options": {"include_usage": false, "include_obfuscation": false}, "stream":true }"#;
        let out = force_include_usage(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "model" : "m",  "stream_options": {"include_obfuscation":false,"include_usage":true}, "stream":true }"#
        );
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["stream_options"]["include_usage"], true);
    }

    #[test]
    fn null_stream_options_is_replaced() {
        let out =
            force_include_usage(br#"{"model":"m","stream":true,"stream_options":null}"#).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
        );
    }

    #[test]
    fn client_include_usage_is_read() {
        assert_eq!(
            facts(r#"{"model":"m","stream_options":{"include_usage":true}}"#).include_usage,
            Some(true)
        );
        assert_eq!(
            facts(r#"{"model":"m","stream_options":{"include_usage":false}}"#).include_usage,
            Some(false)
        );
        assert_eq!(facts(r#"{"model":"m"}"#).include_usage, None);
    }
}
