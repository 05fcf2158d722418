//! A single pass over a request body that counts the tokens of its prompt text.
//!
//! The body is walked with serde visitors instead of being parsed into a DOM. Only values
//! under known text keys are counted, and everything else (images, audio, files, tool
//! definitions) is skipped with [`IgnoredAny`].

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::endpoint::Endpoint;
use super::estimate::{REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE};

/// The counting rule for one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Strings are text, integers are token ids, objects are walked by key.
    Text,
    /// A list of chat messages or Responses input items. A string in its place is one message.
    Items,
    /// One message or input item.
    Item,
}

struct Tally<'f> {
    count_text: &'f dyn Fn(&str) -> u64,
    tokens: u64,
}

/// The top-level request object.
struct Request<'t, 'f> {
    endpoint: Endpoint,
    tally: &'t mut Tally<'f>,
}

/// One value inside the request.
struct Walk<'t, 'f> {
    scope: Scope,
    tally: &'t mut Tally<'f>,
}

/// Reads an object key and maps it to the scope of its value. `None` skips the value.
struct KeyScope<F>(F);

/// Counts the prompt tokens in `body` with `count_text` for each string found. Stops at the
/// first JSON error and returns what was counted up to there.
pub(crate) fn estimate(endpoint: Endpoint, body: &[u8], count_text: impl Fn(&str) -> u64) -> u64 {
    let mut tally = Tally {
        count_text: &count_text,
        tokens: 0,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request = Request {
        endpoint,
        tally: &mut tally,
    };
    if let Err(error) = request.deserialize(&mut deserializer) {
        tracing::debug!(
            endpoint = endpoint.as_str(),
            %error,
            "request body read only in part for the prompt estimate"
        );
    }
    tally.tokens
}

/// Returns the scope of a top-level request field of the endpoint.
fn top_level_scope(endpoint: Endpoint, key: &str) -> Option<Scope> {
    match (endpoint, key) {
        (Endpoint::ChatCompletions, "messages") => Some(Scope::Items),
        (Endpoint::Responses, "input") => Some(Scope::Items),
        (Endpoint::Responses, "instructions") => Some(Scope::Text),
        (Endpoint::Embeddings, "input") => Some(Scope::Text),
        (Endpoint::Completions, "prompt" | "suffix") => Some(Scope::Text),
        _ => None,
    }
}

/// Returns the scope of a field inside a message, item or content part. Only fields that carry
/// prompt text, or lead to it, are walked.
fn nested_scope(key: &str) -> Option<Scope> {
    match key {
        "role" | "name" | "content" | "text" | "refusal" | "input" | "output" | "arguments"
        | "tool_calls" | "function" | "function_call" => Some(Scope::Text),
        _ => None,
    }
}

impl Tally<'_> {
    fn add(&mut self, tokens: u64) {
        self.tokens = self.tokens.saturating_add(tokens);
    }

    fn add_text(&mut self, text: &str) {
        let tokens = (self.count_text)(text);
        self.add(tokens);
    }
}

impl<'de> DeserializeSeed<'de> for Request<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Request<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if matches!(
            self.endpoint,
            Endpoint::ChatCompletions | Endpoint::Responses
        ) {
            self.tally.add(REPLY_PRIMING_TOKENS);
        }
        let endpoint = self.endpoint;
        let key_scope = KeyScope(|key: &str| top_level_scope(endpoint, key));
        walk_fields(map, self.tally, key_scope)
    }
}

/// Walks the values of an object's fields in the scope their keys select.
fn walk_fields<'de, A, F>(
    mut map: A,
    tally: &mut Tally<'_>,
    key_scope: KeyScope<F>,
) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    F: Fn(&str) -> Option<Scope> + Copy,
{
    while let Some(scope) = map.next_key_seed(KeyScope(key_scope.0))? {
        match scope {
            Some(scope) => map.next_value_seed(Walk {
                scope,
                tally: &mut *tally,
            })?,
            None => map.next_value::<IgnoredAny>().map(drop)?,
        }
    }
    Ok(())
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E: Error>(self, value: &str) -> Result<(), E> {
        self.tally.add_text(value);
        if self.scope == Scope::Items {
            self.tally.add(TOKENS_PER_MESSAGE);
        }
        Ok(())
    }

    /// Integers in prompt fields are token ids (embeddings and completions accept them).
    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        self.tally.add(1);
        Ok(())
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        self.tally.add(1);
        Ok(())
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let scope = match self.scope {
            Scope::Items => Scope::Item,
            Scope::Text | Scope::Item => Scope::Text,
        };
        while seq
            .next_element_seed(Walk {
                scope,
                tally: &mut *self.tally,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if self.scope != Scope::Text {
            self.tally.add(TOKENS_PER_MESSAGE);
        }
        walk_fields(map, self.tally, KeyScope(nested_scope))
    }
}

impl<'de, F: Fn(&str) -> Option<Scope>> DeserializeSeed<'de> for KeyScope<F> {
    type Value = Option<Scope>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, F: Fn(&str) -> Option<Scope>> Visitor<'de> for KeyScope<F> {
    type Value = Option<Scope>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E: Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok((self.0)(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts one token per whitespace-separated word, so expectations are easy to read.
    fn words(endpoint: Endpoint, body: &str) -> u64 {
        estimate(endpoint, body.as_bytes(), |text| {
            u64::try_from(text.split_whitespace().count()).unwrap()
        })
    }

    const MESSAGE: u64 = TOKENS_PER_MESSAGE;
    const PRIMING: u64 = REPLY_PRIMING_TOKENS;

    #[test]
    fn prompt_text_is_found_in_each_shape() {
        let cases = [
            (
                "chat string content",
                Endpoint::ChatCompletions,
                r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Say hi now"}]}"#,
                PRIMING + MESSAGE + 1 + 3,
            ),
            (
                "chat text parts and image part",
                Endpoint::ChatCompletions,
                r#"{"messages":[{"role":"user","content":[
                    {"type":"text","text":"what is this"},
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA BBBB CCCC"}}
                ]}]}"#,
                PRIMING + MESSAGE + 1 + 3,
            ),
            (
                "chat name and tool calls",
                Endpoint::ChatCompletions,
                r#"{"messages":[
                    {"role":"system","name":"rules","content":"be brief"},
                    {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                        "function":{"name":"lookup","arguments":"{\"q\": \"x y\"}"}}]},
                    {"role":"tool","tool_call_id":"call_1","content":"found"}
                ],"tools":[{"type":"function","function":{"name":"lookup","description":"many words here"}}]}"#,
                PRIMING + 3 * MESSAGE + (1 + 1 + 2) + (1 + 1 + 3) + (1 + 1),
            ),
            (
                "chat audio part",
                Endpoint::ChatCompletions,
                r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA BBBB","format":"wav"}}]}]}"#,
                PRIMING + MESSAGE + 1,
            ),
            (
                "responses string input",
                Endpoint::Responses,
                r#"{"model":"o4-mini","instructions":"answer in French","input":"hello there"}"#,
                PRIMING + 3 + 2 + MESSAGE,
            ),
            (
                "responses items",
                Endpoint::Responses,
                r#"{"input":[
                    {"role":"user","content":[{"type":"input_text","text":"look at"},{"type":"input_image","image_url":"data:x y z"}]},
                    {"type":"function_call","call_id":"c1","name":"f","arguments":"{}"},
                    {"type":"function_call_output","call_id":"c1","output":"sunny and warm"}
                ]}"#,
                PRIMING + 3 * MESSAGE + (1 + 2) + (1 + 1) + 3,
            ),
            (
                "embeddings string",
                Endpoint::Embeddings,
                r#"{"model":"text-embedding-3-small","input":"one two three","encoding_format":"base64"}"#,
                3,
            ),
            (
                "embeddings strings and token ids",
                Endpoint::Embeddings,
                r#"{"input":["a b","c"]}"#,
                3,
            ),
            (
                "embeddings token ids",
                Endpoint::Embeddings,
                r#"{"input":[[1,2,3],[4]]}"#,
                4,
            ),
            (
                "completions prompt and suffix",
                Endpoint::Completions,
                r#"{"model":"gpt-3.5-turbo-instruct","prompt":["once upon","a time"],"suffix":"the end","max_tokens":5}"#,
                6,
            ),
            (
                "completions token ids",
                Endpoint::Completions,
                r#"{"prompt":[10,20,30]}"#,
                3,
            ),
        ];
        for (name, endpoint, body, expected) in cases {
            assert_eq!(words(endpoint, body), expected, "{name}");
        }
    }

    #[test]
    fn fields_of_other_endpoints_are_ignored() {
        let body = r#"{"messages":[{"role":"user","content":"a b"}],"prompt":"c d","input":"e"}"#;
        assert_eq!(words(Endpoint::Embeddings, body), 1);
        assert_eq!(words(Endpoint::Completions, body), 2);
    }

    #[test]
    fn odd_bodies_never_fail() {
        let cases = [
            ("not json", Endpoint::ChatCompletions, "hello", 0),
            (
                "top-level array",
                Endpoint::ChatCompletions,
                r#"[{"content":"a"}]"#,
                0,
            ),
            ("null", Endpoint::Responses, "null", 0),
            (
                "messages not an array",
                Endpoint::ChatCompletions,
                r#"{"messages":"a b"}"#,
                PRIMING + 2 + MESSAGE,
            ),
            (
                "messages of numbers",
                Endpoint::ChatCompletions,
                r#"{"messages":[1,true,null]}"#,
                PRIMING + 1,
            ),
            (
                "truncated after first message",
                Endpoint::ChatCompletions,
                r#"{"messages":[{"role":"user","content":"a b c"},{"role":"us"#,
                PRIMING + 2 * MESSAGE + 1 + 3,
            ),
            ("empty object", Endpoint::Completions, "{}", 0),
        ];
        for (name, endpoint, body, expected) in cases {
            assert_eq!(words(endpoint, body), expected, "{name}");
        }
    }

    #[test]
    fn deep_nesting_stops_without_panic() {
        let depth = 10_000;
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":{}"x"{}}}]}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert_eq!(
            words(Endpoint::ChatCompletions, &body),
            PRIMING + MESSAGE + 1
        );
    }
}
