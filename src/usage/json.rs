//! Usage and response facts from complete (non-streaming) JSON bodies.
//!
//! Chat completions, legacy completions and embeddings report `prompt_tokens` and
//! `completion_tokens` with `*_tokens_details` objects. The Responses API reports
//! `input_tokens` and `output_tokens` with `*_tokens_details`. Both map onto [`Usage`].
//! Every field is optional, and a detail the body does not carry stays `None`.

use serde::Deserialize;

use super::Usage;
use super::endpoint::Endpoint;
use super::lenient::{Count, Section, Text};

/// Facts tollgate reads from a complete (non-streaming) 2xx response body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    /// The model that served the request, usually a dated snapshot.
    pub model: Option<String>,
    /// The tier that served the request (`default`, `flex`, `priority`, ...).
    pub service_tier: Option<String>,
    /// `None` when the body has no usage object or `"usage": null`.
    pub usage: Option<Usage>,
    /// The upstream id, such as `chatcmpl-...` or `resp_...`.
    pub response_id: Option<String>,
}

/// Reasons a response body or usage object cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error(
        "invalid JSON in the {endpoint} response body: {reason}; \
         the usage cannot be read, so bill this request from an estimate"
    )]
    InvalidJson {
        endpoint: &'static str,
        reason: String,
    },

    #[error(
        "invalid {endpoint} response body: expected a JSON object, found {found}; \
         the usage cannot be read, so bill this request from an estimate"
    )]
    NotAnObject {
        endpoint: &'static str,
        found: &'static str,
    },

    #[error("invalid usage field `{field}`: found {found}, expected a non-negative integer")]
    InvalidCount { field: &'static str, found: String },

    #[error("invalid usage field `{field}`: found {found}, expected a JSON object or null")]
    InvalidObject {
        field: &'static str,
        found: &'static str,
    },
}

/// A usage object in the shape of any metered endpoint. [`WireUsage::to_usage`] picks the
/// fields of the endpoint's own shape.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireUsage {
    prompt_tokens: Count,
    completion_tokens: Count,
    input_tokens: Count,
    output_tokens: Count,
    total_tokens: Count,
    prompt_tokens_details: Section<PromptDetails>,
    completion_tokens_details: Section<CompletionDetails>,
    input_tokens_details: Section<PromptDetails>,
    output_tokens_details: Section<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PromptDetails {
    cached_tokens: Count,
    cache_write_tokens: Count,
    audio_tokens: Count,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CompletionDetails {
    reasoning_tokens: Count,
    audio_tokens: Count,
    accepted_prediction_tokens: Count,
    rejected_prediction_tokens: Count,
}

#[derive(Deserialize)]
struct ResponseBody<'a> {
    #[serde(default, borrow)]
    id: Text<'a>,
    #[serde(default, borrow)]
    model: Text<'a>,
    #[serde(default, borrow)]
    service_tier: Text<'a>,
    #[serde(default)]
    usage: Section<WireUsage>,
}

/// Reads the model, service tier, usage and id from a complete 2xx response body.
///
/// Only those fields are parsed. Everything else (choices, embeddings, output items) is
/// skipped without being stored.
pub fn read_response(endpoint: Endpoint, body: &[u8]) -> Result<ResponseFacts, UsageError> {
    check_is_object(endpoint, body)?;
    let parsed: ResponseBody<'_> =
        serde_json::from_slice(body).map_err(|error| UsageError::InvalidJson {
            endpoint: endpoint.as_str(),
            reason: error.to_string(),
        })?;

    Ok(ResponseFacts {
        model: parsed.model.non_empty().map(str::to_owned),
        service_tier: parsed.service_tier.non_empty().map(str::to_owned),
        usage: usage_from_section(endpoint, &parsed.usage)?,
        response_id: parsed.id.non_empty().map(str::to_owned),
    })
}

/// Turns a `usage` field into a [`Usage`]: absent and `null` give `None`.
pub(crate) fn usage_from_section(
    endpoint: Endpoint,
    section: &Section<WireUsage>,
) -> Result<Option<Usage>, UsageError> {
    match section {
        Section::Absent | Section::Null => Ok(None),
        Section::Present(wire) => wire.to_usage(endpoint),
        Section::Invalid(found) => Err(UsageError::InvalidObject {
            field: "usage",
            found,
        }),
    }
}

/// Rejects bodies whose first value is not an object, because serde would otherwise read a
/// JSON array into the struct's fields by position.
fn check_is_object(endpoint: Endpoint, body: &[u8]) -> Result<(), UsageError> {
    let first = body.iter().find(|byte| !byte.is_ascii_whitespace());
    let found = match first {
        Some(b'{') => return Ok(()),
        None => "an empty body",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => "text that is not JSON",
    };
    Err(UsageError::NotAnObject {
        endpoint: endpoint.as_str(),
        found,
    })
}

impl WireUsage {
    /// Maps the usage onto [`Usage`], in the endpoint's own shape unless only the other
    /// shape's counts are present (`input_tokens` in a chat response, `prompt_tokens` in a
    /// Responses one). A missing prompt or completion count is 0 (embeddings report no
    /// completion tokens), and a missing detail is `None`. A usage object with no prompt or
    /// completion count at all gives `None`, so the request is estimated rather than billed
    /// as zero.
    pub(crate) fn to_usage(&self, endpoint: Endpoint) -> Result<Option<Usage>, UsageError> {
        let present = |count: &Count| !matches!(count, Count::Absent);
        let completions_shape = present(&self.prompt_tokens) || present(&self.completion_tokens);
        let responses_shape = present(&self.input_tokens) || present(&self.output_tokens);
        let usage = match endpoint {
            _ if !completions_shape && !responses_shape => return Ok(None),
            Endpoint::Responses if responses_shape => self.responses_usage(),
            Endpoint::Responses => self.completions_usage(),
            _ if completions_shape => self.completions_usage(),
            _ => self.responses_usage(),
        };
        usage.map(Some)
    }

    fn completions_usage(&self) -> Result<Usage, UsageError> {
        let prompt = details(&self.prompt_tokens_details, "usage.prompt_tokens_details")?;
        let completion = details(
            &self.completion_tokens_details,
            "usage.completion_tokens_details",
        )?;
        Ok(Usage {
            prompt_tokens: count(&self.prompt_tokens, "usage.prompt_tokens")?.unwrap_or(0),
            completion_tokens: count(&self.completion_tokens, "usage.completion_tokens")?
                .unwrap_or(0),
            total_tokens: count(&self.total_tokens, "usage.total_tokens")?,
            cached_tokens: detail(prompt.map(|d| &d.cached_tokens), PROMPT_CACHED)?,
            cache_write_tokens: detail(prompt.map(|d| &d.cache_write_tokens), PROMPT_CACHE_WRITE)?,
            prompt_audio_tokens: detail(prompt.map(|d| &d.audio_tokens), PROMPT_AUDIO)?,
            reasoning_tokens: detail(
                completion.map(|d| &d.reasoning_tokens),
                COMPLETION_REASONING,
            )?,
            completion_audio_tokens: detail(completion.map(|d| &d.audio_tokens), COMPLETION_AUDIO)?,
            accepted_prediction_tokens: detail(
                completion.map(|d| &d.accepted_prediction_tokens),
                COMPLETION_ACCEPTED,
            )?,
            rejected_prediction_tokens: detail(
                completion.map(|d| &d.rejected_prediction_tokens),
                COMPLETION_REJECTED,
            )?,
        })
    }

    /// Responses usage has no audio or prediction details, so those stay `None`.
    fn responses_usage(&self) -> Result<Usage, UsageError> {
        let input = details(&self.input_tokens_details, "usage.input_tokens_details")?;
        let output = details(&self.output_tokens_details, "usage.output_tokens_details")?;
        Ok(Usage {
            prompt_tokens: count(&self.input_tokens, "usage.input_tokens")?.unwrap_or(0),
            completion_tokens: count(&self.output_tokens, "usage.output_tokens")?.unwrap_or(0),
            total_tokens: count(&self.total_tokens, "usage.total_tokens")?,
            cached_tokens: detail(input.map(|d| &d.cached_tokens), INPUT_CACHED)?,
            cache_write_tokens: detail(input.map(|d| &d.cache_write_tokens), INPUT_CACHE_WRITE)?,
            reasoning_tokens: detail(output.map(|d| &d.reasoning_tokens), OUTPUT_REASONING)?,
            ..Usage::default()
        })
    }
}

const PROMPT_CACHED: &str = "usage.prompt_tokens_details.cached_tokens";
const PROMPT_CACHE_WRITE: &str = "usage.prompt_tokens_details.cache_write_tokens";
const PROMPT_AUDIO: &str = "usage.prompt_tokens_details.audio_tokens";
const COMPLETION_REASONING: &str = "usage.completion_tokens_details.reasoning_tokens";
const COMPLETION_AUDIO: &str = "usage.completion_tokens_details.audio_tokens";
const COMPLETION_ACCEPTED: &str = "usage.completion_tokens_details.accepted_prediction_tokens";
const COMPLETION_REJECTED: &str = "usage.completion_tokens_details.rejected_prediction_tokens";
const INPUT_CACHED: &str = "usage.input_tokens_details.cached_tokens";
const INPUT_CACHE_WRITE: &str = "usage.input_tokens_details.cache_write_tokens";
const OUTPUT_REASONING: &str = "usage.output_tokens_details.reasoning_tokens";

fn count(value: &Count, field: &'static str) -> Result<Option<u64>, UsageError> {
    match value {
        Count::Absent => Ok(None),
        Count::Value(tokens) => Ok(Some(*tokens)),
        Count::Invalid(found) => Err(UsageError::InvalidCount {
            field,
            found: found.clone(),
        }),
    }
}

fn detail(value: Option<&Count>, field: &'static str) -> Result<Option<u64>, UsageError> {
    value.map_or(Ok(None), |value| count(value, field))
}

fn details<'s, T>(
    section: &'s Section<T>,
    field: &'static str,
) -> Result<Option<&'s T>, UsageError> {
    match section {
        Section::Absent | Section::Null => Ok(None),
        Section::Present(value) => Ok(Some(value)),
        Section::Invalid(found) => Err(UsageError::InvalidObject { field, found }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT_WITH_DETAILS: &str = r#"{
        "id": "chatcmpl-abc", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
        "service_tier": "default",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "usage: {}"}}],
        "usage": {
            "prompt_tokens": 2048, "completion_tokens": 300, "total_tokens": 2348,
            "prompt_tokens_details": {"cached_tokens": 1792, "audio_tokens": 0, "cache_write_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 7,
                "accepted_prediction_tokens": 5, "rejected_prediction_tokens": 3}
        }
    }"#;

    fn facts(endpoint: Endpoint, body: &str) -> ResponseFacts {
        read_response(endpoint, body.as_bytes()).unwrap()
    }

    #[test]
    fn chat_usage_reads_every_detail() {
        let read = facts(Endpoint::ChatCompletions, CHAT_WITH_DETAILS);
        let expected = Usage {
            prompt_tokens: 2048,
            completion_tokens: 300,
            total_tokens: Some(2348),
            cached_tokens: Some(1792),
            cache_write_tokens: Some(64),
            prompt_audio_tokens: Some(0),
            reasoning_tokens: Some(128),
            completion_audio_tokens: Some(7),
            accepted_prediction_tokens: Some(5),
            rejected_prediction_tokens: Some(3),
        };
        assert_eq!(read.usage, Some(expected));
        assert_eq!(read.model.as_deref(), Some("gpt-4o-2024-08-06"));
        assert_eq!(read.service_tier.as_deref(), Some("default"));
        assert_eq!(read.response_id.as_deref(), Some("chatcmpl-abc"));
    }

    #[test]
    fn usage_shapes_map_onto_usage() {
        let cases = [
            (
                "chat without details",
                Endpoint::ChatCompletions,
                r#"{"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}}"#,
                Usage {
                    prompt_tokens: 12,
                    completion_tokens: 2,
                    total_tokens: Some(14),
                    ..Usage::default()
                },
            ),
            (
                "chat with null details",
                Endpoint::ChatCompletions,
                r#"{"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_tokens_details":null,"completion_tokens_details":null}}"#,
                Usage {
                    prompt_tokens: 1,
                    completion_tokens: 1,
                    ..Usage::default()
                },
            ),
            (
                "chat with partial details",
                Endpoint::ChatCompletions,
                r#"{"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":null,"audio_tokens":2}}}"#,
                Usage {
                    prompt_tokens: 10,
                    completion_tokens: 4,
                    prompt_audio_tokens: Some(2),
                    ..Usage::default()
                },
            ),
            (
                "legacy completions",
                Endpoint::Completions,
                r#"{"object":"text_completion","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#,
                Usage {
                    prompt_tokens: 5,
                    completion_tokens: 7,
                    total_tokens: Some(12),
                    ..Usage::default()
                },
            ),
            (
                "embeddings without completion tokens",
                Endpoint::Embeddings,
                r#"{"object":"list","data":[{"embedding":[0.1,-0.2]}],"usage":{"prompt_tokens":8,"total_tokens":8}}"#,
                Usage {
                    prompt_tokens: 8,
                    completion_tokens: 0,
                    total_tokens: Some(8),
                    ..Usage::default()
                },
            ),
            (
                "responses with details",
                Endpoint::Responses,
                r#"{"id":"resp_1","usage":{"input_tokens":1500,"input_tokens_details":{"cached_tokens":1024,"cache_write_tokens":10},"output_tokens":500,"output_tokens_details":{"reasoning_tokens":300},"total_tokens":2000}}"#,
                Usage {
                    prompt_tokens: 1500,
                    completion_tokens: 500,
                    total_tokens: Some(2000),
                    cached_tokens: Some(1024),
                    cache_write_tokens: Some(10),
                    reasoning_tokens: Some(300),
                    ..Usage::default()
                },
            ),
            (
                "responses without details",
                Endpoint::Responses,
                r#"{"usage":{"input_tokens":81,"output_tokens":1035,"total_tokens":1116}}"#,
                Usage {
                    prompt_tokens: 81,
                    completion_tokens: 1035,
                    total_tokens: Some(1116),
                    ..Usage::default()
                },
            ),
            (
                "responses ignores chat field names",
                Endpoint::Responses,
                r#"{"usage":{"prompt_tokens":9,"input_tokens":3}}"#,
                Usage {
                    prompt_tokens: 3,
                    ..Usage::default()
                },
            ),
            (
                "chat in the Responses shape",
                Endpoint::ChatCompletions,
                r#"{"usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":200},"output_tokens":800,"total_tokens":2000}}"#,
                Usage {
                    prompt_tokens: 1200,
                    completion_tokens: 800,
                    total_tokens: Some(2000),
                    cached_tokens: Some(200),
                    ..Usage::default()
                },
            ),
            (
                "responses in the chat shape",
                Endpoint::Responses,
                r#"{"usage":{"prompt_tokens":7,"completion_tokens":5}}"#,
                Usage {
                    prompt_tokens: 7,
                    completion_tokens: 5,
                    ..Usage::default()
                },
            ),
            (
                "zero counts are reported",
                Endpoint::ChatCompletions,
                r#"{"usage":{"prompt_tokens":0,"completion_tokens":0}}"#,
                Usage::default(),
            ),
        ];
        for (name, endpoint, body, expected) in cases {
            assert_eq!(facts(endpoint, body).usage, Some(expected), "{name}");
        }
    }

    #[test]
    fn missing_or_null_usage_is_none() {
        let bodies = [
            r#"{"usage":null}"#,
            r#"{"model":"gpt-4o"}"#,
            "{}",
            // A usage object without a prompt or completion count reports nothing to bill.
            r#"{"usage":{}}"#,
            r#"{"usage":{"total_tokens":2000}}"#,
            r#"{"usage":{"prompt_tokens":null,"output_tokens":null}}"#,
        ];
        for body in bodies {
            for endpoint in Endpoint::ALL {
                assert_eq!(facts(endpoint, body).usage, None, "{body} on {endpoint:?}");
            }
        }
    }

    #[test]
    fn odd_text_fields_read_as_absent() {
        let read = facts(
            Endpoint::ChatCompletions,
            r#"{"id":7,"model":"","service_tier":null,"usage":null}"#,
        );
        assert_eq!(read, ResponseFacts::default());
    }

    #[test]
    fn invalid_counts_name_the_field() {
        let cases = [
            (
                Endpoint::ChatCompletions,
                r#"{"usage":{"prompt_tokens":-1}}"#,
                "usage.prompt_tokens",
                "-1",
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"usage":{"completion_tokens":1.5}}"#,
                "usage.completion_tokens",
                "the number 1.5",
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"usage":{"prompt_tokens":1,"total_tokens":"14"}}"#,
                "usage.total_tokens",
                r#"the string "14""#,
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"usage":{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":true}}}"#,
                PROMPT_CACHED,
                "the boolean true",
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"usage":{"completion_tokens":1,"completion_tokens_details":{"rejected_prediction_tokens":-2}}}"#,
                COMPLETION_REJECTED,
                "-2",
            ),
            (
                Endpoint::Responses,
                r#"{"usage":{"output_tokens":2e3}}"#,
                "usage.output_tokens",
                "the number 2000",
            ),
            (
                Endpoint::Responses,
                r#"{"usage":{"output_tokens":1,"output_tokens_details":{"reasoning_tokens":[1]}}}"#,
                OUTPUT_REASONING,
                "an array",
            ),
        ];
        for (endpoint, body, field, found) in cases {
            let error = read_response(endpoint, body.as_bytes()).unwrap_err();
            let expected = UsageError::InvalidCount {
                field,
                found: found.to_owned(),
            };
            assert_eq!(error, expected, "body {body}");
        }
    }

    #[test]
    fn invalid_objects_name_the_field() {
        let cases = [
            (
                Endpoint::ChatCompletions,
                r#"{"usage":12}"#,
                "usage",
                "a number",
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"usage":"none"}"#,
                "usage",
                "a string",
            ),
            (
                Endpoint::ChatCompletions,
                r#"{"usage":{"prompt_tokens":1,"prompt_tokens_details":[]}}"#,
                "usage.prompt_tokens_details",
                "an array",
            ),
            (
                Endpoint::Responses,
                r#"{"usage":{"input_tokens":1,"input_tokens_details":5}}"#,
                "usage.input_tokens_details",
                "a number",
            ),
        ];
        for (endpoint, body, field, found) in cases {
            let error = read_response(endpoint, body.as_bytes()).unwrap_err();
            assert_eq!(
                error,
                UsageError::InvalidObject { field, found },
                "body {body}"
            );
        }
    }

    #[test]
    fn bodies_that_are_not_objects_are_rejected() {
        let cases = [
            ("", "an empty body"),
            ("  \n", "an empty body"),
            ("[1,2]", "an array"),
            ("\"usage\"", "a string"),
            ("42", "a number"),
            ("null", "null"),
            ("<html>", "text that is not JSON"),
        ];
        for (body, found) in cases {
            let error = read_response(Endpoint::ChatCompletions, body.as_bytes()).unwrap_err();
            let expected = UsageError::NotAnObject {
                endpoint: "chat.completions",
                found,
            };
            assert_eq!(error, expected, "body {body:?}");
        }
    }

    #[test]
    fn malformed_json_is_an_error() {
        for body in [
            r#"{"usage":"#,
            r#"{"usage":{"prompt_tokens":1}} trailing"#,
            "{\"model\":\"\\ud800\"x}",
        ] {
            let error = read_response(Endpoint::Responses, body.as_bytes()).unwrap_err();
            assert!(
                matches!(
                    error,
                    UsageError::InvalidJson {
                        endpoint: "responses",
                        ..
                    }
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn large_unused_fields_are_skipped() {
        let embedding = vec!["0.0123456"; 200_000].join(",");
        let body = format!(
            r#"{{"object":"list","data":[{{"embedding":[{embedding}]}}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":8,"total_tokens":8}}}}"#
        );
        let read = facts(Endpoint::Embeddings, &body);
        assert_eq!(read.usage.map(|usage| usage.prompt_tokens), Some(8));
        assert_eq!(read.model.as_deref(), Some("text-embedding-3-small"));
    }
}
