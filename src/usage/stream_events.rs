//! The fields of streamed chat, legacy completions and Responses events that metering reads.
//!
//! Each struct names only what [`super::stream::StreamMeter`] uses, borrowing strings from the
//! event where they have no escapes. Unknown fields are skipped without being stored.

use std::fmt;

use memchr::memchr2;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::json::WireUsage;
use super::lenient::{List, Section, Text};

/// Responses event types that end the stream and carry the final `response.usage`.
pub(crate) const RESPONSE_TERMINAL_TYPES: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// Responses event types whose `response` names the model before any output.
const RESPONSE_START_TYPES: [&str; 3] = [
    "response.created",
    "response.in_progress",
    "response.queued",
];

/// Responses event types whose `delta` is model-generated text, counted for estimates. Audio
/// and image deltas are not text and are left out.
pub(crate) const RESPONSE_TEXT_DELTA_TYPES: [&str; 8] = [
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.custom_tool_call_input.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
    "response.mcp_call_arguments.delta",
    "response.code_interpreter_call_code.delta",
];

/// One chat or legacy completions chunk.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatChunk<'a> {
    #[serde(default, borrow)]
    pub(crate) id: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) model: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) service_tier: Text<'a>,
    #[serde(default, borrow)]
    pub(crate) choices: List<Section<ChatChoice<'a>>>,
    #[serde(default)]
    pub(crate) usage: Section<WireUsage>,
    #[serde(default, borrow)]
    pub(crate) error: ErrorField<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ChatChoice<'a> {
    #[serde(borrow)]
    delta: Section<ChatDelta<'a>>,
    /// Legacy completions carry their text here instead of in a delta.
    #[serde(borrow)]
    text: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatDelta<'a> {
    #[serde(borrow)]
    content: Text<'a>,
    #[serde(borrow)]
    refusal: Text<'a>,
    #[serde(borrow)]
    tool_calls: List<Section<ToolCallDelta<'a>>>,
    #[serde(borrow)]
    function_call: Section<FunctionDelta<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ToolCallDelta<'a> {
    #[serde(borrow)]
    function: Section<FunctionDelta<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FunctionDelta<'a> {
    #[serde(borrow)]
    arguments: Text<'a>,
}

/// One Responses stream event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResponseEvent<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Text<'a>,
    #[serde(borrow)]
    pub(crate) delta: Text<'a>,
    #[serde(borrow)]
    pub(crate) response: Section<ResponseObject<'a>>,
    /// `error` events put `code` and `message` at the top level.
    #[serde(borrow)]
    pub(crate) code: Text<'a>,
    #[serde(borrow)]
    pub(crate) message: Text<'a>,
    #[serde(borrow)]
    pub(crate) error: ErrorField<'a>,
}

/// The `response` object inside lifecycle events.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResponseObject<'a> {
    #[serde(borrow)]
    pub(crate) id: Text<'a>,
    #[serde(borrow)]
    pub(crate) model: Text<'a>,
    #[serde(borrow)]
    pub(crate) service_tier: Text<'a>,
    pub(crate) usage: Section<WireUsage>,
    #[serde(borrow)]
    pub(crate) error: ErrorField<'a>,
}

/// An `error` field: an object with `message` and `code`, or a bare message string.
/// `None` when the field is missing or `null`.
#[derive(Debug, Default)]
pub(crate) struct ErrorField<'a>(pub(crate) Option<ErrorBody<'a>>);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorBody<'a> {
    #[serde(borrow)]
    message: Text<'a>,
    #[serde(borrow)]
    code: Text<'a>,
    #[serde(rename = "type", borrow)]
    kind: Text<'a>,
}

impl ChatChunk<'_> {
    /// Calls `visit` with each piece of generated text in the chunk: content, refusal and
    /// tool-call arguments of every choice, or the `text` of a legacy completion.
    pub(crate) fn for_each_text(&self, mut visit: impl FnMut(&str)) {
        for choice in self.choices.items().iter().filter_map(Section::present) {
            if let Some(text) = choice.text.as_str() {
                visit(text);
            }
            let Some(delta) = choice.delta.present() else {
                continue;
            };
            let arguments = (delta.tool_calls.items().iter())
                .filter_map(Section::present)
                .filter_map(|call| call.function.present())
                .chain(delta.function_call.present())
                .filter_map(|function| function.arguments.as_str());
            let content = [delta.content.as_str(), delta.refusal.as_str()];
            content
                .into_iter()
                .flatten()
                .chain(arguments)
                .for_each(&mut visit);
        }
    }

    /// Returns whether `choices` is present and an empty array, as in the usage-only chunk.
    pub(crate) fn has_empty_choices(&self) -> bool {
        self.choices.0.as_ref().is_some_and(Vec::is_empty)
    }
}

impl ErrorBody<'_> {
    pub(crate) fn describe(&self) -> String {
        let code = self.code.non_empty().or(self.kind.non_empty());
        describe_error(code, self.message.non_empty())
    }
}

/// Formats an upstream error as `code: message`, with a fixed text when the message is missing.
pub(crate) fn describe_error(code: Option<&str>, message: Option<&str>) -> String {
    let message = message.unwrap_or("upstream sent an error without a message");
    match code {
        Some(code) => format!("{code}: {message}"),
        None => message.to_owned(),
    }
}

/// Returns the event type when the JSON text starts with `{"type":"...`, the order in which
/// OpenAI writes Responses events, without parsing the rest. `None` means the type must be
/// read by a full parse.
pub(crate) fn leading_type(data: &[u8]) -> Option<&str> {
    let rest = data.trim_ascii_start().strip_prefix(b"{")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"type\"")?;
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let end = memchr2(b'"', b'\\', rest)?;
    if rest[end] != b'"' {
        return None;
    }
    std::str::from_utf8(&rest[..end]).ok()
}

/// Returns whether a Responses event of this type can change what the meter records.
pub(crate) fn response_event_matters(kind: &str) -> bool {
    kind == "error"
        || RESPONSE_TERMINAL_TYPES.contains(&kind)
        || RESPONSE_START_TYPES.contains(&kind)
        || RESPONSE_TEXT_DELTA_TYPES.contains(&kind)
}

struct ErrorFieldVisitor;

impl<'de> Visitor<'de> for ErrorFieldVisitor {
    type Value = ErrorField<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an error object or message")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ErrorBody::deserialize(MapAccessDeserializer::new(map)).map(|body| ErrorField(Some(body)))
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        let message = Text(Some(value.into()));
        Ok(ErrorField(Some(ErrorBody {
            message,
            ..ErrorBody::default()
        })))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        let message = Text(Some(value.to_owned().into()));
        Ok(ErrorField(Some(ErrorBody {
            message,
            ..ErrorBody::default()
        })))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ErrorField(None))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(ErrorField(value.then(ErrorBody::default)))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(ErrorField(Some(ErrorBody::default())))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(ErrorField(Some(ErrorBody::default())))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(ErrorField(Some(ErrorBody::default())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(ErrorField(Some(ErrorBody::default())))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ErrorField<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ErrorFieldVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(json: &str) -> Vec<String> {
        let chunk: ChatChunk<'_> = serde_json::from_str(json).unwrap();
        let mut found = Vec::new();
        chunk.for_each_text(|text| found.push(text.to_owned()));
        found
    }

    #[test]
    fn chunk_text_comes_from_every_field() {
        let cases: [(&str, &[&str]); 7] = [
            (r#"{"choices":[{"delta":{"content":"Hi"}}]}"#, &["Hi"]),
            (r#"{"choices":[{"delta":{"refusal":"No."}}]}"#, &["No."]),
            (
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\""}},{"function":{"arguments":":1}"}}]}}]}"#,
                &["{\"a\"", ":1}"],
            ),
            (
                r#"{"choices":[{"delta":{"function_call":{"arguments":"{}"}}}]}"#,
                &["{}"],
            ),
            (r#"{"choices":[{"text":"Once","index":0}]}"#, &["Once"]),
            (
                r#"{"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}"#,
                &["a", "b"],
            ),
            (
                r#"{"choices":[7,{"delta":null},{"delta":{"content":null}}],"usage":null}"#,
                &[],
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(texts(json), expected, "chunk {json}");
        }
    }

    #[test]
    fn empty_choices_need_an_array() {
        let empty = |json: &str| {
            let chunk: ChatChunk<'_> = serde_json::from_str(json).unwrap();
            chunk.has_empty_choices()
        };
        assert!(empty(r#"{"choices":[],"usage":{}}"#));
        assert!(!empty(r#"{"choices":[{"delta":{}}]}"#));
        assert!(!empty(r#"{"usage":{}}"#));
        assert!(!empty(r#"{"choices":null}"#));
    }

    #[test]
    fn error_fields_describe_the_failure() {
        let describe = |json: &str| {
            let chunk: ChatChunk<'_> = serde_json::from_str(json).unwrap();
            chunk.error.0.map(|body| body.describe())
        };
        let cases = [
            (
                r#"{"error":{"message":"overloaded","type":"server_error","code":"server_is_overloaded"}}"#,
                Some("server_is_overloaded: overloaded"),
            ),
            (
                r#"{"error":{"message":"bad","type":"server_error","code":null}}"#,
                Some("server_error: bad"),
            ),
            (r#"{"error":"plain text"}"#, Some("plain text")),
            (
                r#"{"error":{}}"#,
                Some("upstream sent an error without a message"),
            ),
            (
                r#"{"error":true}"#,
                Some("upstream sent an error without a message"),
            ),
            (r#"{"error":null}"#, None),
            (r#"{"error":false}"#, None),
            (r#"{}"#, None),
        ];
        for (json, expected) in cases {
            assert_eq!(describe(json).as_deref(), expected, "chunk {json}");
        }
    }

    #[test]
    fn leading_type_reads_openai_order() {
        let cases = [
            (
                r#"{"type":"response.output_text.delta","delta":"x"}"#,
                Some("response.output_text.delta"),
            ),
            (r#" { "type" : "error" ,"code":"x"}"#, Some("error")),
            (r#"{"sequence_number":1,"type":"response.completed"}"#, None),
            (r#"{"type":"a\"b"}"#, None),
            (r#"{"type":3}"#, None),
            (r#"{"type":"unterminated"#, None),
            ("[DONE]", None),
        ];
        for (data, expected) in cases {
            assert_eq!(leading_type(data.as_bytes()), expected, "data {data}");
        }
    }

    #[test]
    fn relevant_response_types_are_known() {
        for kind in [
            "error",
            "response.created",
            "response.completed",
            "response.failed",
            "response.output_text.delta",
        ] {
            assert!(response_event_matters(kind), "{kind}");
        }
        for kind in [
            "response.output_text.done",
            "response.audio.delta",
            "response.output_item.added",
            "",
        ] {
            assert!(!response_event_matters(kind), "{kind}");
        }
    }
}
