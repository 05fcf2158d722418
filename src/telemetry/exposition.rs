//! Rendering of the registry in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::reload::ReloadTrigger;

use super::histogram::{micros_as_seconds, nanos_as_dollars};
use super::metrics::{LedgerOutcome, Metrics, Route, TokenClass};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Values read from outside the registry when Prometheus scrapes.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Pending outbox entries, the age of the oldest one, and dead letters; `None` when
    /// the outbox could not be read.
    pub outbox: Option<OutboxGauges>,
    /// Models in the price table in force.
    pub price_models: usize,
    /// Time since Blnk last responded; `None` when it never has.
    pub ledger_response_age: Option<Duration>,
}

#[derive(Clone, Debug, Default)]
pub struct OutboxGauges {
    pub pending: u64,
    pub oldest_pending_age: Duration,
    pub dead: u64,
}

impl Metrics {
    /// Renders every metric, including the scrape-time values.
    pub fn render(&self, scrape: &Scrape) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        self.render_models(&mut out);
        self.render_ledger(&mut out);
        self.render_latency(&mut out);
        self.render_gauges(&mut out, scrape);
        self.render_reloads(&mut out);
        out
    }

    fn render_requests(&self, out: &mut String) {
        family(
            out,
            "tollgate_requests_total",
            "counter",
            "Requests served, by route and HTTP status.",
        );
        for route in Route::ALL {
            for (index, counter) in self.requests[route as usize].iter().enumerate() {
                let count = counter.load(Ordering::Relaxed);
                if count > 0 {
                    let status = index + 100;
                    let route = route.as_str();
                    let _ = writeln!(
                        out,
                        "tollgate_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                    );
                }
            }
        }

        family(
            out,
            "tollgate_insufficient_funds_total",
            "counter",
            "Requests rejected with 402 because the wallet could not cover the quote.",
        );
        let refused = self.insufficient_funds.load(Ordering::Relaxed);
        let _ = writeln!(out, "tollgate_insufficient_funds_total {refused}");
    }

    fn render_models(&self, out: &mut String) {
        let models = self.models.entries();
        family(
            out,
            "tollgate_tokens_total",
            "counter",
            "Billed tokens, by billed model and class (cached and cache_write are part of prompt, reasoning is part of completion).",
        );
        for (model, counters) in &models {
            let model = escape(model);
            for class in TokenClass::ALL {
                let count = counters.tokens[class as usize].load(Ordering::Relaxed);
                let class = class.as_str();
                let _ = writeln!(
                    out,
                    "tollgate_tokens_total{{model=\"{model}\",class=\"{class}\"}} {count}"
                );
            }
        }

        family(
            out,
            "tollgate_charged_usd_total",
            "counter",
            "US dollars charged, by billed model, summed exactly from nano-dollar amounts.",
        );
        for (model, counters) in &models {
            let dollars = nanos_as_dollars(counters.charged_nanos.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "tollgate_charged_usd_total{{model=\"{}\"}} {dollars}",
                escape(model)
            );
        }
    }

    fn render_ledger(&self, out: &mut String) {
        let operations = self.ledger.entries();
        family(
            out,
            "tollgate_ledger_calls_total",
            "counter",
            "Calls to Blnk, by operation and outcome.",
        );
        for (operation, counters) in &operations {
            let operation = escape(operation);
            for outcome in LedgerOutcome::ALL {
                let count = counters.outcomes[outcome as usize].load(Ordering::Relaxed);
                if count > 0 {
                    let outcome = outcome.as_str();
                    let _ = writeln!(
                        out,
                        "tollgate_ledger_calls_total{{operation=\"{operation}\",outcome=\"{outcome}\"}} {count}"
                    );
                }
            }
        }

        family(
            out,
            "tollgate_ledger_call_duration_seconds",
            "histogram",
            "Duration of calls to Blnk, by operation.",
        );
        for (operation, counters) in &operations {
            let labels = format!("operation=\"{}\"", escape(operation));
            counters
                .duration
                .render(out, "tollgate_ledger_call_duration_seconds", &labels);
        }
    }

    fn render_latency(&self, out: &mut String) {
        family(
            out,
            "tollgate_upstream_duration_seconds",
            "histogram",
            "Time upstream took per metered request: until the whole body for a plain response, until the stream ended for a stream.",
        );
        for (index, stream) in ["false", "true"].iter().enumerate() {
            let labels = format!("stream=\"{stream}\"");
            self.upstream[index].render(out, "tollgate_upstream_duration_seconds", &labels);
        }

        family(
            out,
            "tollgate_overhead_duration_seconds",
            "histogram",
            "tollgate's own share of a metered request: total time minus upstream and ledger time.",
        );
        self.overhead
            .render(out, "tollgate_overhead_duration_seconds", "");
    }

    fn render_gauges(&self, out: &mut String, scrape: &Scrape) {
        family(
            out,
            "tollgate_holds_open",
            "gauge",
            "Holds of requests in flight: placed, and not yet handed over to be voided when their request ended.",
        );
        let _ = writeln!(
            out,
            "tollgate_holds_open {}",
            self.holds_open.load(Ordering::Relaxed)
        );

        if let Some(outbox) = &scrape.outbox {
            family(
                out,
                "tollgate_outbox_pending",
                "gauge",
                "Outbox entries (charges and hold voids) not yet confirmed by Blnk.",
            );
            let _ = writeln!(out, "tollgate_outbox_pending {}", outbox.pending);
            family(
                out,
                "tollgate_outbox_oldest_pending_age_seconds",
                "gauge",
                "Age of the oldest pending outbox entry; 0 when none is pending.",
            );
            let age = seconds(outbox.oldest_pending_age);
            let _ = writeln!(out, "tollgate_outbox_oldest_pending_age_seconds {age}");
            family(
                out,
                "tollgate_outbox_dead",
                "gauge",
                "Outbox entries the worker gave up on (dead letters), waiting for an operator.",
            );
            let _ = writeln!(out, "tollgate_outbox_dead {}", outbox.dead);
        }

        family(
            out,
            "tollgate_price_models",
            "gauge",
            "Models in the price table in force.",
        );
        let _ = writeln!(out, "tollgate_price_models {}", scrape.price_models);

        if let Some(age) = scrape.ledger_response_age {
            family(
                out,
                "tollgate_ledger_last_response_age_seconds",
                "gauge",
                "Time since Blnk last responded to a call.",
            );
            let _ = writeln!(
                out,
                "tollgate_ledger_last_response_age_seconds {}",
                seconds(age)
            );
        }

        family(
            out,
            "tollgate_build_info",
            "gauge",
            "Always 1; the version label names the running build.",
        );
        let _ = writeln!(
            out,
            "tollgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
    }

    fn render_reloads(&self, out: &mut String) {
        family(
            out,
            "tollgate_price_reloads_total",
            "counter",
            "Price file reloads, by trigger and outcome (a failed reload keeps the old prices).",
        );
        for trigger in ReloadTrigger::ALL {
            for (index, outcome) in ["ok", "failed"].iter().enumerate() {
                let count = self.price_reloads[trigger as usize][index].load(Ordering::Relaxed);
                let trigger = trigger.as_str();
                let _ = writeln!(
                    out,
                    "tollgate_price_reloads_total{{trigger=\"{trigger}\",outcome=\"{outcome}\"}} {count}"
                );
            }
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(duration: Duration) -> String {
    micros_as_seconds(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Nanos;
    use crate::usage::Usage;

    #[test]
    fn label_values_are_escaped() {
        let cases = [
            ("plain", "plain"),
            ("a\"b", "a\\\"b"),
            ("a\\b", "a\\\\b"),
            ("a\nb", "a\\nb"),
        ];
        for (raw, expected) in cases {
            assert_eq!(escape(raw), expected);
        }
    }

    #[test]
    fn rendering_shows_counts_and_dollars() {
        let metrics = Metrics::new();
        metrics.request(Route::ChatCompletions, 200);
        metrics.request(Route::ChatCompletions, 200);
        metrics.request(Route::Embeddings, 402);
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            ..Usage::default()
        };
        metrics.charge("gpt-4o", &usage, Nanos(75_000));
        let scrape = Scrape {
            outbox: Some(OutboxGauges {
                pending: 2,
                oldest_pending_age: Duration::from_millis(1500),
                dead: 1,
            }),
            price_models: 12,
            ledger_response_age: None,
        };

        let text = metrics.render(&scrape);

        let expected_lines = [
            "tollgate_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2",
            "tollgate_requests_total{route=\"/v1/embeddings\",status=\"402\"} 1",
            "tollgate_tokens_total{model=\"gpt-4o\",class=\"prompt\"} 10",
            "tollgate_tokens_total{model=\"gpt-4o\",class=\"completion\"} 5",
            "tollgate_charged_usd_total{model=\"gpt-4o\"} 0.000075",
            "tollgate_outbox_pending 2",
            "tollgate_outbox_oldest_pending_age_seconds 1.5",
            "tollgate_outbox_dead 1",
            "tollgate_price_models 12",
            "tollgate_price_reloads_total{trigger=\"admin\",outcome=\"failed\"} 0",
        ];
        for line in expected_lines {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(
            !text.contains("tollgate_ledger_last_response_age_seconds"),
            "{text}"
        );
    }
}
