//! The prompt bound of a prepaid quote against bodies whose billed input the byte scans can
//! miss. Each bound must cover what upstream bills, which is at most one token per text byte,
//! or the context bound when the prompt takes in content the body does not carry.

use tollgate::billing::request::{PromptBounds, RequestFacts};
use tollgate::usage::Endpoint;

/// The defaults of `pricing.image_token_bound` and `pricing.audio_token_bound`, with a
/// context bound far above every body below.
const BOUNDS: PromptBounds = PromptBounds {
    image_tokens: 50_000,
    audio_tokens: 20_000,
    context_tokens: 1_000_000,
};

fn bound(endpoint: Endpoint, body: &str) -> u64 {
    let facts = RequestFacts::parse(endpoint, body.as_bytes()).expect("the body is accepted");
    facts.prompt_bound(body.as_bytes(), &BOUNDS)
}

/// A file part spelled with an escape is found only after the body is decoded. Some values
/// are accepted by the request parse but rejected by `serde_json::Value`, and they must not
/// hide the file part. One is a lone surrogate, which JavaScript's `JSON.stringify` writes for
/// a string cut inside an emoji. Another is a number beyond `f64`, which Python's `json`
/// module reads as infinity.
#[test]
fn escaped_file_beside_unparsable_value() {
    let cases = [
        (
            "lone surrogate in text",
            r#"{"model":"gpt-4o","input":[{"role":"user","content":[{"type":"input_text","text":"cut at \ud83d"},{"type":"input_\u0066ile","file_id":"file-1"}]}]}"#,
        ),
        (
            "number beyond f64 in a tool schema",
            r#"{"model":"gpt-4o","tools":[{"type":"function","name":"f","parameters":{"type":"number","maximum":1e400}}],"input":[{"role":"user","content":[{"type":"input_\u0066ile","file_id":"file-1"}]}]}"#,
        ),
    ];
    for (name, body) in cases {
        assert_eq!(
            bound(Endpoint::Responses, body),
            BOUNDS.context_tokens,
            "{name}: the file's content is not in the body"
        );
    }
}

/// A message whose text starts with `data:` is text to upstream, tokenized like any other,
/// whether it is a pasted server-sent-events log or a data URL pasted as text. Only an image
/// part's URL is billed as an image.
#[test]
fn text_starting_with_data_counts_its_bytes() {
    let event =
        r#"data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"#;
    let sse_log = event.repeat(4_000);
    let pasted_url = format!("data:image/png;base64,{}", "iVBORw0KGgo".repeat(20_000));
    let cases = [("events log", sse_log), ("data URL as text", pasted_url)];
    for (name, text) in cases {
        let body =
            format!(r#"{{"model":"gpt-4.1","messages":[{{"role":"user","content":"{text}"}}]}}"#);
        let prompt_bound = bound(Endpoint::ChatCompletions, &body);
        assert!(
            prompt_bound >= text.len() as u64,
            "{name}: a bound of {prompt_bound} tokens for {} bytes of text",
            text.len()
        );
    }
}

/// `\\u0069` in JSON is a backslash followed by the text `u0069`, not an escape, so it
/// spells no name.
#[test]
fn escaped_backslash_is_not_an_escape() {
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"see \\u0069mage_url and \\u0022input_file\\u0022"}]}"#;
    let facts = RequestFacts::parse(Endpoint::ChatCompletions, body.as_bytes()).expect("accepted");
    assert_eq!(bound(Endpoint::ChatCompletions, body), facts.text_bytes);
}

/// A chat audio part names `input_audio` twice; many parts, each with its own clip, are each
/// counted once, however many names stand between them.
#[test]
fn audio_parts_count_once_each() {
    let clip = "UklGR".repeat(100);
    let part =
        format!(r#"{{"type":"input_audio","input_audio":{{"data":"{clip}","format":"wav"}}}}"#);
    let noise = r#""input_audio","#.repeat(50);
    let body = format!(
        r#"{{"model":"gpt-4o-audio-preview","extra":[{noise}"x"],"messages":[{{"role":"user","content":[{part},{part},{part}]}}]}}"#
    );
    let facts = RequestFacts::parse(Endpoint::ChatCompletions, body.as_bytes()).expect("accepted");
    assert_eq!(facts.inline_audio, 3);
}
