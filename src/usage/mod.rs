//! Token usage as reported by OpenAI, and its extraction from response bodies and streams.
//!
//! Counts that the response did not report are `None`, never zero, so the ledger can tell
//! "absent" from "reported as 0".

mod endpoint;
mod estimate;
mod json;
mod lenient;
mod request_text;
mod sse;
mod stream;
mod stream_events;

#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod test_fixtures;

pub use endpoint::Endpoint;
pub use estimate::{
    Encoding, REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, count_text_tokens, encoding_for_model,
    estimate_prompt_tokens, preload_tokenizers,
};
pub use json::{ResponseFacts, UsageError, read_response};
pub use sse::{DEFAULT_MAX_EVENT_BYTES, FramedEvents, SseError, SseEvent, SseFramer};
pub use stream::{EventAction, StreamMeter, StreamSummary};

use serde::{Deserialize, Serialize};

/// Token counts of one request, normalised across the chat, completions, embeddings and
/// Responses shapes. `cached_tokens` and `cache_write_tokens` are parts of `prompt_tokens`;
/// `reasoning_tokens`, completion audio and prediction tokens are parts of `completion_tokens`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub prompt_audio_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub completion_audio_tokens: Option<u64>,
    pub accepted_prediction_tokens: Option<u64>,
    pub rejected_prediction_tokens: Option<u64>,
}

/// Where the token counts of a charge came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    /// The upstream response carried a usage object.
    Reported,
    /// tollgate counted tokens itself because the upstream reported none.
    Estimated,
}

impl Usage {
    /// Prompt plus completion tokens: the amount of the TOKENS leg.
    pub fn billable_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}
