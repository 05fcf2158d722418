//! Metering of streamed responses, one complete SSE event at a time.
//!
//! [`StreamMeter`] reads each raw event from [`super::sse::SseFramer`], records usage, model,
//! service tier, id and errors, counts the generated text for an estimate, and returns the
//! [`EventAction`] for the event. Only events that can carry something it records are parsed, and
//! then into small borrowed structs.

use super::Usage;
use super::endpoint::Endpoint;
use super::estimate::TextTally;
use super::json::{UsageError, WireUsage, usage_from_section};
use super::lenient::{Section, Text};
use super::sse::SseEvent;
use super::stream_events::{
    ChatChunk, RESPONSE_TERMINAL_TYPES, RESPONSE_TEXT_DELTA_TYPES, ResponseEvent, ResponseObject,
    describe_error, leading_type, response_event_matters,
};

/// The proxy's handling of one upstream event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// Send the event to the client unchanged.
    Forward,
    /// Keep the event from the client: the usage-only chunk that tollgate requested upstream
    /// for a client that did not request it.
    Drop,
    /// Send the event to the client unchanged. It ends the stream (`data: [DONE]` or a
    /// Responses terminal event).
    Terminal,
}

/// The facts one stream reported, for billing once it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// The last usage object the stream carried. `"usage": null` never counts as usage.
    pub usage: Option<Usage>,
    /// The error of the last usage object that could not be read. `usage` keeps the last
    /// valid one, if any.
    pub usage_error: Option<UsageError>,
    /// The last model name seen, usually a dated snapshot.
    pub model: Option<String>,
    /// The last service tier seen.
    pub service_tier: Option<String>,
    /// The upstream id (`chatcmpl-...`, `cmpl-...` or `resp_...`).
    pub response_id: Option<String>,
    /// Whether any non-empty generated text was seen.
    pub saw_content: bool,
    /// The generated text seen, partly counted; see [`StreamSummary::streamed_text_tokens`].
    text: TextTally,
    /// The model whose tokenizer counts `text`.
    text_model: String,
    /// The message of the last upstream error event (or of `response.failed`).
    pub upstream_error: Option<String>,
    /// Whether `[DONE]` or a Responses terminal event was seen.
    pub terminated: bool,
    /// Whether `usage` came in a chunk without choices. Upstream sends that chunk once, after
    /// the last content (`stream_options.include_usage`), so its usage is final even when the
    /// terminator never arrives. Some compatible servers also put a running total in content
    /// chunks, which is not final.
    pub usage_final: bool,
}

impl StreamSummary {
    /// Returns the tokenizer count of the generated text seen: an estimate of the completion
    /// tokens for a stream that ended without usage. The text after the last full piece is
    /// counted on this call, so a stream billed by its reported usage never pays for it.
    pub fn streamed_text_tokens(&self) -> u64 {
        self.text.total(&self.text_model)
    }
}

/// Meters one streamed response. Feed it every complete event in order, then call
/// [`StreamMeter::finish`].
#[derive(Debug)]
pub struct StreamMeter {
    endpoint: Endpoint,
    client_wants_usage: bool,
    /// The model named in the request, used for counting until upstream names its own.
    request_model: Option<String>,
    summary: StreamSummary,
    text: TextTally,
}

impl StreamMeter {
    /// Creates a meter. `client_wants_usage` is whether the client itself set
    /// `stream_options.include_usage` to true. When it did not, the usage-only chunk is
    /// dropped.
    pub fn new(endpoint: Endpoint, client_wants_usage: bool) -> StreamMeter {
        StreamMeter {
            endpoint,
            client_wants_usage,
            request_model: None,
            summary: StreamSummary::default(),
            text: TextTally::default(),
        }
    }

    /// Sets the model the request named, which picks the tokenizer until the stream names the
    /// model that served it.
    pub fn with_request_model(mut self, model: &str) -> StreamMeter {
        self.request_model = Some(model.to_owned());
        self
    }

    /// Classifies one complete event and records what it carries.
    pub fn observe(&mut self, raw_event: &[u8]) -> EventAction {
        let event = SseEvent::parse(raw_event);
        let Some(data) = event.data.as_deref() else {
            return EventAction::Forward;
        };
        if data.trim_ascii() == b"[DONE]" {
            self.summary.terminated = true;
            return EventAction::Terminal;
        }
        match self.endpoint {
            Endpoint::Responses => self.observe_response_event(data),
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Embeddings => {
                self.observe_chunk(data)
            }
        }
    }

    /// Returns the last usage object recorded so far.
    pub fn usage(&self) -> Option<&Usage> {
        self.summary.usage.as_ref()
    }

    /// Ends metering and returns what the stream reported.
    pub fn finish(self) -> StreamSummary {
        let text_model = counting_model(&self.summary, self.request_model.as_deref()).to_owned();
        StreamSummary {
            text: self.text,
            text_model,
            ..self.summary
        }
    }

    fn observe_chunk(&mut self, data: &[u8]) -> EventAction {
        let chunk: ChatChunk<'_> = match serde_json::from_slice(data) {
            Ok(chunk) => chunk,
            Err(error) => {
                tracing::debug!(%error, "stream chunk is not a JSON object; forwarded unread");
                return EventAction::Forward;
            }
        };
        remember(&mut self.summary.model, &chunk.model);
        remember(&mut self.summary.service_tier, &chunk.service_tier);
        remember(&mut self.summary.response_id, &chunk.id);
        if let Some(error) = &chunk.error.0 {
            self.summary.upstream_error = Some(error.describe());
        }
        chunk.for_each_text(|text| self.add_text(text));

        let carries_usage = self.record_usage(&chunk.usage, chunk.has_empty_choices());
        if carries_usage && chunk.has_empty_choices() && !self.client_wants_usage {
            EventAction::Drop
        } else {
            EventAction::Forward
        }
    }

    fn observe_response_event(&mut self, data: &[u8]) -> EventAction {
        if leading_type(data).is_some_and(|kind| !response_event_matters(kind)) {
            return EventAction::Forward;
        }
        let event: ResponseEvent<'_> = match serde_json::from_slice(data) {
            Ok(event) => event,
            Err(error) => {
                tracing::debug!(%error, "Responses event is not a JSON object; forwarded unread");
                return EventAction::Forward;
            }
        };
        if let Some(response) = event.response.present() {
            self.record_response(response);
        }
        let kind = event.kind.as_str().unwrap_or_default();
        if kind == "error" {
            self.record_response_error(&event);
        } else if RESPONSE_TEXT_DELTA_TYPES.contains(&kind) {
            self.add_text(event.delta.as_str().unwrap_or_default());
        } else if let Some(error) = &event.error.0 {
            self.summary.upstream_error = Some(error.describe());
        }

        if !RESPONSE_TERMINAL_TYPES.contains(&kind) {
            return EventAction::Forward;
        }
        self.summary.terminated = true;
        if kind == "response.failed" {
            let error = event
                .response
                .present()
                .and_then(|response| response.error.0.as_ref());
            let message = error.map_or_else(
                || "the response failed without an error".to_owned(),
                |error| error.describe(),
            );
            self.summary.upstream_error = Some(message);
        }
        EventAction::Terminal
    }

    fn record_response(&mut self, response: &ResponseObject<'_>) {
        remember(&mut self.summary.model, &response.model);
        remember(&mut self.summary.service_tier, &response.service_tier);
        remember(&mut self.summary.response_id, &response.id);
        // A Responses stream's usage arrives with its terminal event, which sets `terminated`.
        self.record_usage(&response.usage, false);
    }

    /// Records an `error` event, whose `code` and `message` sit at the top level (or, from
    /// some relays, in a nested `error` object).
    fn record_response_error(&mut self, event: &ResponseEvent<'_>) {
        let description = match (&event.error.0, event.message.non_empty()) {
            (Some(nested), None) => nested.describe(),
            (_, message) => describe_error(event.code.non_empty(), message),
        };
        self.summary.upstream_error = Some(description);
    }

    /// Records a usage object if the field contains one and returns whether it did. `null` and
    /// a missing field leave the recorded usage as it was. `is_final` is true when the event
    /// that carries it comes after all content.
    fn record_usage(&mut self, usage: &Section<WireUsage>, is_final: bool) -> bool {
        match usage_from_section(self.endpoint, usage) {
            Ok(Some(read)) => {
                self.summary.usage = Some(read);
                self.summary.usage_final = is_final;
                true
            }
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(endpoint = self.endpoint.as_str(), %error, "upstream stream carried an invalid usage object");
                self.summary.usage_error = Some(error);
                matches!(usage, Section::Present(_))
            }
        }
    }

    fn add_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.summary.saw_content = true;
        let model = counting_model(&self.summary, self.request_model.as_deref());
        self.text.push(model, text);
    }
}

/// Returns the model whose tokenizer counts the text: upstream's, else the request's, else
/// none (which counts with cl100k_base).
fn counting_model<'s>(summary: &'s StreamSummary, request_model: Option<&'s str>) -> &'s str {
    summary
        .model
        .as_deref()
        .or(request_model)
        .unwrap_or_default()
}

/// Stores a non-empty text field, allocating only when it differs from what is stored.
fn remember(slot: &mut Option<String>, value: &Text<'_>) {
    if let Some(value) = value.non_empty()
        && slot.as_deref() != Some(value)
    {
        *slot = Some(value.to_owned());
    }
}
