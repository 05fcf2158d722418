//! The field formatter of text logs without colours. It writes the same text as
//! tracing-subscriber's default formatter with colours off: `name=value` pairs, strings quoted
//! and escaped as Rust's `Debug` writes them, and the message as it is. It does less work per
//! field, because it skips the colour styles that the default wraps around every name and `=`,
//! and writes a string with nothing to escape in one piece. The request log line has about
//! twenty fields, and the default spent about 32,000 instructions per request formatting them.

use std::error::Error;
use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// The formatter, set with `fmt_fields` on a subscriber whose output has no colours.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        PlainVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// The visitor that writes one event's or span's fields.
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    /// True until the first field is written, so no space goes before it.
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Writes the separator and `name=` for the field `name`, or nothing for the message.
    /// Returns false when the field is not written: an earlier write failed, or the field is
    /// metadata of a `log` record, which the event's header already shows.
    fn begin(&mut self, name: &str) -> bool {
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.result = self.writer.write_char(' ');
        }
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(name))
                .and_then(|()| self.writer.write_char('='));
        }
        self.result.is_ok()
    }

    /// Writes a message: as it is, with terminal control characters escaped when the writer
    /// sanitizes them.
    fn message(&mut self, message: fmt::Arguments<'_>) {
        let sanitize = self.writer.sanitizes_ansi_escapes();
        self.result = match message.as_str() {
            Some(text) if !sanitize || !has_terminal_controls(text) => self.writer.write_str(text),
            _ if sanitize => write!(Sanitizing(&mut self.writer), "{message}"),
            _ => self.writer.write_fmt(message),
        };
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.begin(field.name()) {
            return;
        }
        if field.name() == "message" {
            self.message(format_args!("{value}"));
        } else if needs_no_escape(value) {
            self.result = self
                .writer
                .write_char('"')
                .and_then(|()| self.writer.write_str(value))
                .and_then(|()| self.writer.write_char('"'));
        } else {
            self.result = write!(self.writer, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.begin(field.name()) {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.begin(field.name()) {
            self.result = write!(self.writer, "{value}");
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.begin(field.name()) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn Error + 'static)) {
        let sanitize = self.writer.sanitizes_ansi_escapes();
        let error = Escaped {
            value: value as &dyn fmt::Display,
            sanitize,
        };
        match value.source() {
            Some(source) => self.record_debug(
                field,
                &format_args!(
                    "{error} {}.sources={}",
                    field.name(),
                    Sources { source, sanitize }
                ),
            ),
            None => self.record_debug(field, &format_args!("{error}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.begin(field.name()) {
            return;
        }
        if field.name() == "message" {
            self.message(format_args!("{value:?}"));
        } else {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn Write {
        &mut self.writer
    }
}

/// Returns whether `Debug` writes `text` unchanged between quotes: printable ASCII without
/// `"` or `\`.
fn needs_no_escape(text: &str) -> bool {
    text.bytes()
        .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\')
}

/// Returns whether `text` contains a character that [`Sanitizing`] escapes.
fn has_terminal_controls(text: &str) -> bool {
    text.chars().any(is_terminal_control)
}

/// Returns whether a terminal can read `ch` as the start of a control sequence: ESC, BEL,
/// BS, FF, DEL and the C1 controls.
fn is_terminal_control(ch: char) -> bool {
    matches!(
        ch,
        '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
    )
}

/// A writer wrapper that escapes terminal control characters, as tracing-subscriber does in
/// messages and errors.
struct Sanitizing<'a, W>(&'a mut W);

impl<W: Write> Write for Sanitizing<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for ch in text.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                ch if is_terminal_control(ch) => write!(self.0, "\\u{{{:x}}}", ch as u32)?,
                ch => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

/// A value displayed with terminal control characters escaped when `sanitize` is set.
struct Escaped<'a> {
    value: &'a dyn fmt::Display,
    sanitize: bool,
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sanitize {
            write!(Sanitizing(f), "{}", self.value)
        } else {
            write!(f, "{}", self.value)
        }
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An error's chain of sources, displayed as a list.
struct Sources<'a> {
    source: &'a (dyn Error + 'static),
    sanitize: bool,
}

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut next = Some(self.source);
        while let Some(error) = next {
            list.entry(&Escaped {
                value: &format_args!("{error}"),
                sanitize: self.sanitize,
            });
            next = error.source();
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;

    /// A buffer of what a subscriber writes.
    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<Vec<u8>>>);

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("UTF-8")
        }
    }

    impl io::Write for Output {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Output {
        type Writer = Output;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("the ledger is unavailable")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused \x1b[31m")]
    struct Inner;

    /// Logs events with every kind of field the proxy uses, and some it may meet.
    fn log_samples() {
        let span = tracing::info_span!(
            "request",
            request_id = %"0190-abc",
            route = "/v1/chat/completions",
            customer = tracing::field::Empty,
        );
        span.record("customer", "acme");
        let _entered = span.enter();
        tracing::info!(
            customer_id = "acme",
            model = "gpt-4o \"mini\"\n",
            unicode = "café ✓",
            status = 200u16,
            delta = -5i64,
            stream = true,
            missing = Option::<&str>::None,
            present = Some(3u64),
            cost = %"0.000150",
            debug = ?vec![1, 2],
            ratio = 0.5f64,
            r#type = "chat",
            "request finished"
        );
        tracing::warn!(
            error = &Outer(Inner) as &(dyn Error + 'static),
            "charge failed"
        );
        tracing::info!("a message with a \x1b[2J terminal control");
        tracing::info!(value = 1, "{} formatted {}", "message", 2);
    }

    fn render<N>(fields: N, sanitize: bool) -> String
    where
        N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let output = Output::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(output.clone())
            .with_ansi(false)
            .with_ansi_sanitization(sanitize)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, log_samples);
        output.text()
    }

    #[test]
    fn plain_fields_match_default_text() {
        for sanitize in [true, false] {
            let expected = render(DefaultFields::new(), sanitize);
            let actual = render(PlainFields, sanitize);
            assert_eq!(actual, expected, "sanitize: {sanitize}");
        }
    }

    #[test]
    fn plain_fields_quote_strings() {
        let text = render(PlainFields, true);
        assert!(text.contains(r#"customer_id="acme""#), "{text}");
        assert!(text.contains(r#"model="gpt-4o \"mini\"\n""#), "{text}");
        assert!(text.contains("request{request_id=0190-abc"), "{text}");
    }
}
