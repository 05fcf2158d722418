//! Incremental framing of a `text/event-stream` body into raw events.
//!
//! [`SseFramer`] takes the upstream body chunk by chunk and hands back each complete event as
//! the exact bytes upstream sent for it, terminating blank line included. Concatenating every
//! event and the final tail from [`SseFramer::finish`] gives back the input byte for byte, so a
//! proxy can forward each event as soon as it is complete. [`SseEvent::parse`] gives the
//! `event:` name and the joined `data:` lines of one raw event.
//!
//! Line ends may be LF, CRLF or a lone CR, as the WHATWG HTML event-stream format allows. An
//! event ends at a blank line. A blank line that ends with CR is ambiguous until the next byte
//! arrives, because that CR may be the first half of CRLF. So the framer waits for that byte,
//! unless the stream has already used a lone CR as a line end. In that case the event ends at
//! the CR, and an LF right after it counts as the second half of CRLF and starts the next raw
//! event. Either way the split points depend only on the bytes, not on how they were chunked.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use memchr::{memchr, memchr2};

/// A suggested maximum size of one event. Responses streams repeat the whole output in their
/// `*.done` and `response.completed` events, and image generation events carry base64
/// images, so single events of several MiB are legitimate.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Reasons an event stream cannot be framed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error(
        "SSE event exceeds the maximum event size of {max_bytes} bytes ({event_bytes} bytes \
         read without an event terminator); raise the maximum event size if upstream sends \
         events this large"
    )]
    EventTooLarge {
        max_bytes: usize,
        event_bytes: usize,
    },
}

/// Splits a byte stream into raw SSE events.
///
/// After [`SseFramer::push`], drain the events it returns before pushing the next chunk, so
/// only the unfinished event stays buffered between chunks. Each byte is examined once: the scan resumes
/// where the previous search for a terminator stopped.
#[derive(Debug)]
pub struct SseFramer {
    buffer: BytesMut,
    /// Bytes of `buffer` already examined for the end of the current event.
    scan_pos: usize,
    /// Whether the current line has no bytes yet, so a line end here is a blank line.
    line_empty: bool,
    /// Whether the last examined byte was a CR, so an LF next completes a CRLF.
    after_cr: bool,
    /// Whether the stream has used a lone CR (one not followed by LF) as a line end.
    seen_lone_cr: bool,
    /// Whether the event ends at the CR that is the last buffered byte, once the next byte
    /// shows whether an LF belongs to it.
    awaiting_byte_after_cr: bool,
    max_event_bytes: usize,
    failure: Option<SseError>,
}

/// The complete events framed after one [`SseFramer::push`]. Iteration ends after the first
/// error.
#[must_use = "the framed events must be drained before the next push"]
pub struct FramedEvents<'f> {
    framer: &'f mut SseFramer,
    failed: bool,
}

/// The fields of one raw event that metering uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The value of the `event:` field, or `None` when it is missing or empty.
    pub name: Option<&'a str>,
    /// The `data:` lines joined with `\n`, or `None` when the event has no `data` field. A
    /// single data line is borrowed from the raw event.
    pub data: Option<Cow<'a, [u8]>>,
}

impl Default for SseFramer {
    fn default() -> Self {
        SseFramer::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseFramer {
    /// Creates a framer with [`DEFAULT_MAX_EVENT_BYTES`].
    pub fn new() -> SseFramer {
        SseFramer::default()
    }

    /// Creates a framer that rejects any event longer than `max_event_bytes`.
    pub fn with_max_event_bytes(max_event_bytes: usize) -> SseFramer {
        SseFramer {
            buffer: BytesMut::new(),
            scan_pos: 0,
            line_empty: true,
            after_cr: false,
            seen_lone_cr: false,
            awaiting_byte_after_cr: false,
            max_event_bytes,
            failure: None,
        }
    }

    /// Appends one upstream chunk and returns the events it completes, in order.
    pub fn push(&mut self, chunk: &[u8]) -> FramedEvents<'_> {
        if self.failure.is_none() {
            self.buffer.extend_from_slice(chunk);
        }
        FramedEvents {
            framer: self,
            failed: false,
        }
    }

    /// Returns the next complete event, or `None` when the buffered bytes end inside an event.
    ///
    /// After an error the framer stays failed, because the stream can no longer be split
    /// reliably, and every later call returns the same error.
    pub fn next_event(&mut self) -> Result<Option<Bytes>, SseError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        match self.find_event_end() {
            Some(end) if end > self.max_event_bytes => Err(self.fail(end)),
            Some(end) => {
                self.scan_pos -= end;
                Ok(Some(self.buffer.split_to(end).freeze()))
            }
            None if self.buffer.len() > self.max_event_bytes => Err(self.fail(self.buffer.len())),
            None => Ok(None),
        }
    }

    /// Ends the stream and returns the bytes after the last complete event: an event that
    /// upstream did not close with a blank line, or `None` when nothing is left.
    ///
    /// Call it after draining the pushed events, because undrained complete events would be
    /// returned here as part of the tail. A strict SSE client discards an unterminated final
    /// event, but tollgate still meters it because upstream produced it. Afterwards the framer
    /// is empty and can frame a new stream.
    pub fn finish(&mut self) -> Result<Option<Bytes>, SseError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let tail = self.buffer.split().freeze();
        *self = SseFramer::with_max_event_bytes(self.max_event_bytes);
        Ok((!tail.is_empty()).then_some(tail))
    }

    fn fail(&mut self, event_bytes: usize) -> SseError {
        let error = SseError::EventTooLarge {
            max_bytes: self.max_event_bytes,
            event_bytes,
        };
        self.failure = Some(error.clone());
        self.buffer = BytesMut::new();
        error
    }

    /// Scans from `scan_pos` for the blank line that ends the current event and returns the
    /// event's length in bytes.
    fn find_event_end(&mut self) -> Option<usize> {
        if self.awaiting_byte_after_cr {
            return self.end_after_final_cr();
        }
        while self.scan_pos < self.buffer.len() {
            let unscanned = &self.buffer[self.scan_pos..];
            let Some(offset) = memchr2(b'\n', b'\r', unscanned) else {
                self.note_line_content();
                self.scan_pos = self.buffer.len();
                return None;
            };
            if offset > 0 {
                self.note_line_content();
            }
            let index = self.scan_pos + offset;
            let byte = self.buffer[index];
            self.scan_pos = index + 1;
            if let Some(end) = self.on_line_end(byte, index) {
                return end;
            }
        }
        None
    }

    /// Records that the current line has content, which also settles a pending CR as a lone
    /// line end.
    fn note_line_content(&mut self) {
        self.line_empty = false;
        if self.after_cr {
            self.seen_lone_cr = true;
            self.after_cr = false;
        }
    }

    /// Handles one CR or LF at `index`. Returns `Some(end)` when the scan should stop: with
    /// the event's length, or with `None` while the byte after a final CR is still missing.
    fn on_line_end(&mut self, byte: u8, index: usize) -> Option<Option<usize>> {
        if byte == b'\n' && self.after_cr {
            self.after_cr = false;
            return None;
        }
        if self.after_cr {
            self.seen_lone_cr = true;
        }
        self.after_cr = byte == b'\r';
        if !self.line_empty {
            self.line_empty = true;
            return None;
        }
        if byte == b'\n' {
            return Some(Some(index + 1));
        }
        if self.seen_lone_cr {
            // The CR ends the event. An LF next is skipped as the second half of CRLF.
            return Some(Some(index + 1));
        }
        self.awaiting_byte_after_cr = true;
        Some(self.end_after_final_cr())
    }

    /// Ends the event at the CR just before `scan_pos`, taking the next byte along if it is LF.
    fn end_after_final_cr(&mut self) -> Option<usize> {
        let next = *self.buffer.get(self.scan_pos)?;
        self.awaiting_byte_after_cr = false;
        self.after_cr = false;
        if next == b'\n' {
            self.scan_pos += 1;
        } else {
            self.seen_lone_cr = true;
        }
        Some(self.scan_pos)
    }
}

impl Iterator for FramedEvents<'_> {
    type Item = Result<Bytes, SseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.framer.next_event().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

impl<'a> SseEvent<'a> {
    /// Parses the fields of one raw event as returned by [`SseFramer`].
    ///
    /// Comment lines (`:` first), `id:`, `retry:` and unknown fields are skipped. One space
    /// after the colon is removed, so `data:x` and `data: x` carry the same data. Parsing
    /// stops at the first blank line after a field, and blank lines before any field are
    /// skipped.
    pub fn parse(raw: &'a [u8]) -> SseEvent<'a> {
        let mut event = SseEvent::default();
        let mut seen_field = false;
        for line in Lines::new(raw) {
            if line.is_empty() {
                if seen_field {
                    break;
                }
                continue;
            }
            seen_field = true;
            let (field, value) = split_field(line);
            match field {
                b"data" => event.append_data(value),
                b"event" => {
                    event.name = std::str::from_utf8(value)
                        .ok()
                        .filter(|name| !name.is_empty());
                }
                _ => {}
            }
        }
        event
    }

    /// Returns the joined data as text, or `None` if it is missing or not valid UTF-8.
    pub fn data_str(&self) -> Option<&str> {
        self.data
            .as_deref()
            .and_then(|data| std::str::from_utf8(data).ok())
    }

    fn append_data(&mut self, value: &'a [u8]) {
        self.data = Some(match self.data.take() {
            None => Cow::Borrowed(value),
            Some(previous) => {
                let mut joined = previous.into_owned();
                joined.push(b'\n');
                joined.extend_from_slice(value);
                Cow::Owned(joined)
            }
        });
    }
}

/// Splits a non-comment line into field name and value, dropping one space after the colon.
/// A comment line yields an empty field name.
fn split_field(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr(b':', line) {
        Some(0) => (&[], &[]),
        Some(colon) => {
            let value = &line[colon + 1..];
            (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &[]),
    }
}

/// Lines of a raw event, split at LF, CRLF or a lone CR, without their line ends.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn new(raw: &'a [u8]) -> Lines<'a> {
        Lines { rest: raw }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(end) = memchr2(b'\n', b'\r', self.rest) else {
            let line = self.rest;
            self.rest = &[];
            return Some(line);
        };
        let line = &self.rest[..end];
        let crlf = self.rest[end] == b'\r' && self.rest.get(end + 1) == Some(&b'\n');
        self.rest = &self.rest[end + if crlf { 2 } else { 1 }..];
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `chunks` in order and returns every event plus the tail.
    fn frame(framer: &mut SseFramer, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut events = Vec::new();
        for chunk in chunks {
            for event in framer.push(chunk) {
                events.push(event.unwrap().to_vec());
            }
        }
        events.extend(framer.finish().unwrap().map(|tail| tail.to_vec()));
        events
    }

    fn frame_default(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        frame(&mut SseFramer::new(), chunks)
    }

    /// Pushes one chunk and returns the events it completed, or the first error.
    fn push(framer: &mut SseFramer, chunk: &[u8]) -> Result<Vec<Bytes>, SseError> {
        framer.push(chunk).collect()
    }

    fn owned(events: &[&str]) -> Vec<Vec<u8>> {
        events
            .iter()
            .map(|event| event.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn events_split_at_blank_lines() {
        let cases: [(&str, &[&str], &[&str]); 9] = [
            (
                "lf",
                &["data: a\n\ndata: b\n\n"],
                &["data: a\n\n", "data: b\n\n"],
            ),
            (
                "crlf",
                &["data: a\r\n\r\ndata: b\r\n\r\n"],
                &["data: a\r\n\r\n", "data: b\r\n\r\n"],
            ),
            (
                "lone cr",
                &["data: a\r\rdata: b\r\r"],
                &["data: a\r\r", "data: b\r\r"],
            ),
            ("no space after colon", &["data:a\n\n"], &["data:a\n\n"]),
            (
                "comment",
                &[": keep-alive\n\ndata: a\n\n"],
                &[": keep-alive\n\n", "data: a\n\n"],
            ),
            (
                "stray blank line",
                &["data: a\n\n\ndata: b\n\n"],
                &["data: a\n\n", "\n", "data: b\n\n"],
            ),
            (
                "named event with id and retry",
                &["event: response.created\nid: 7\nretry: 10\ndata: {}\n\n"],
                &["event: response.created\nid: 7\nretry: 10\ndata: {}\n\n"],
            ),
            (
                "multi-line data",
                &["data: a\ndata: b\n\n"],
                &["data: a\ndata: b\n\n"],
            ),
            (
                "tail without blank line",
                &["data: a\n\ndata: [DONE]\n"],
                &["data: a\n\n", "data: [DONE]\n"],
            ),
        ];
        for (name, chunks, expected) in cases {
            let chunks: Vec<&[u8]> = chunks.iter().map(|chunk| chunk.as_bytes()).collect();
            assert_eq!(frame_default(&chunks), owned(expected), "{name}");
        }
    }

    #[test]
    fn splits_inside_terminators_give_same_events() {
        let input = "data: a\r\n\r\ndata: é\r\n\r\n: c\n\nevent: x\rdata: y\r\r";
        let whole = frame_default(&[input.as_bytes()]);
        for split in 0..=input.len() {
            let (head, tail) = input.as_bytes().split_at(split);
            assert_eq!(frame_default(&[head, tail]), whole, "split at {split}");
        }
        assert_eq!(whole.concat(), input.as_bytes());
    }

    #[test]
    fn byte_by_byte_feed_gives_same_events() {
        let input = "data: {\"a\":\"é😀\"}\n\ndata:[DONE]\n\n";
        let chunks: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
        assert_eq!(
            frame_default(&chunks),
            owned(&["data: {\"a\":\"é😀\"}\n\n", "data:[DONE]\n\n"])
        );
    }

    #[test]
    fn event_larger_than_one_read_is_joined() {
        let text = "x".repeat(100_000);
        let input = format!("data: {text}\n\ndata: [DONE]\n\n");
        let chunks: Vec<&[u8]> = input.as_bytes().chunks(4096).collect();
        let events = frame_default(&chunks);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], format!("data: {text}\n\n").into_bytes());
    }

    #[test]
    fn final_cr_waits_for_next_byte() {
        let mut framer = SseFramer::new();
        assert_eq!(push(&mut framer, b"data: a\r\n\r"), Ok(vec![]));
        let events = push(&mut framer, b"\ndata: b");
        assert_eq!(events, Ok(vec![Bytes::from_static(b"data: a\r\n\r\n")]));
        let tail = framer.finish();
        assert_eq!(tail, Ok(Some(Bytes::from_static(b"data: b"))));
    }

    #[test]
    fn final_cr_is_tail_at_eof() {
        let events = frame_default(&[b"data: a\r\n\r"]);
        assert_eq!(events, owned(&["data: a\r\n\r"]));
    }

    #[test]
    fn lone_cr_stream_ends_event_at_cr() {
        let mut framer = SseFramer::new();
        let first = push(&mut framer, b"data: a\r\r").unwrap();
        assert_eq!(first, vec![Bytes::from_static(b"data: a\r\r")]);
        let second = push(&mut framer, b"\ndata: b\r\r").unwrap();
        assert_eq!(second, vec![Bytes::from_static(b"\ndata: b\r\r")]);
        assert_eq!(SseEvent::parse(&second[0]).data_str(), Some("b"));
    }

    #[test]
    fn oversized_event_is_rejected() {
        let mut framer = SseFramer::with_max_event_bytes(16);
        assert_eq!(push(&mut framer, b"data: 0123456"), Ok(vec![]));
        let expected = SseError::EventTooLarge {
            max_bytes: 16,
            event_bytes: 22,
        };
        let results: Vec<_> = framer.push(b"789abcdef").collect();
        assert_eq!(
            results,
            vec![Err(expected.clone())],
            "iteration stops after the error"
        );
        assert_eq!(push(&mut framer, b"\n\n"), Err(expected.clone()));
        assert_eq!(framer.next_event(), Err(expected.clone()));
        assert_eq!(framer.finish(), Err(expected));
    }

    #[test]
    fn events_before_oversized_one_are_kept() {
        let mut framer = SseFramer::with_max_event_bytes(10);
        let results: Vec<_> = framer.push(b"data: 1\n\ndata: 123456789\n\n").collect();
        let expected = SseError::EventTooLarge {
            max_bytes: 10,
            event_bytes: 17,
        };
        let first = Bytes::from_static(b"data: 1\n\n");
        assert_eq!(results, vec![Ok(first), Err(expected)]);
    }

    #[test]
    fn event_at_size_limit_is_accepted() {
        let mut framer = SseFramer::with_max_event_bytes(10);
        let events = push(&mut framer, b"data: 12\n\n");
        assert_eq!(events, Ok(vec![Bytes::from_static(b"data: 12\n\n")]));
    }

    #[test]
    fn finished_framer_starts_fresh() {
        let mut framer = SseFramer::new();
        assert_eq!(push(&mut framer, b"data: cut"), Ok(vec![]));
        let tail = framer.finish();
        assert_eq!(tail, Ok(Some(Bytes::from_static(b"data: cut"))));
        let events = push(&mut framer, b"\ndata: next\n\n");
        let expected = vec![
            Bytes::from_static(b"\n"),
            Bytes::from_static(b"data: next\n\n"),
        ];
        assert_eq!(events, Ok(expected));
    }

    #[test]
    fn empty_stream_has_no_tail() {
        assert_eq!(frame_default(&[]), Vec::<Vec<u8>>::new());
        assert_eq!(frame_default(&[b""]), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn parse_reads_name_and_data() {
        let cases: [(&str, Option<&str>, Option<&str>); 12] = [
            ("data: {\"a\":1}\n\n", None, Some("{\"a\":1}")),
            ("data:{\"a\":1}\n\n", None, Some("{\"a\":1}")),
            ("data:  two spaces\n\n", None, Some(" two spaces")),
            ("data: a\r\ndata: b\r\n\r\n", None, Some("a\nb")),
            ("data: a\rdata:\rdata: c\r\r", None, Some("a\n\nc")),
            (
                "event: response.completed\ndata: {}\n\n",
                Some("response.completed"),
                Some("{}"),
            ),
            ("event:error\ndata: {}\n\n", Some("error"), Some("{}")),
            ("event:\ndata: x\n\n", None, Some("x")),
            (": keep-alive\n\n", None, None),
            ("\n", None, None),
            ("id: 1\nretry: 5\nfoo: bar\ndata\n\n", None, Some("")),
            (
                "\ndata: after carried lf\r\r",
                None,
                Some("after carried lf"),
            ),
        ];
        for (raw, name, data) in cases {
            let event = SseEvent::parse(raw.as_bytes());
            assert_eq!(event.name, name, "name of {raw:?}");
            assert_eq!(event.data_str(), data, "data of {raw:?}");
        }
    }

    #[test]
    fn parse_borrows_single_data_line() {
        let event = SseEvent::parse(b"data: [DONE]\n\n");
        assert!(matches!(event.data, Some(Cow::Borrowed(b"[DONE]"))));
    }

    #[test]
    fn parse_of_tail_without_line_end() {
        assert_eq!(SseEvent::parse(b"data: [DONE]").data_str(), Some("[DONE]"));
    }
}
