//! Open-loop load generator with latency measured from each request's scheduled send time.
//!
//! A dispatcher thread wakes at the scheduled send time of every request (`start + i / rate`)
//! and hands it to the async side, which sends it on a pooled keep-alive connection. Latency
//! runs from the scheduled time, not from the moment the request left, so a slow server is
//! charged for the queueing it causes (no coordinated omission). A request that finds
//! `max_in_flight` requests still open is counted as an overload error and not sent.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use memchr::memmem;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::upstream::{RECEIVED_AT_FIELD, SENT_AT_FIELD};

/// How long the generator waits for open requests after the last one was scheduled.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Delay before the first scheduled send, so the dispatcher thread is running by then.
const START_DELAY: Duration = Duration::from_millis(5);

/// A pooled HTTP/1.1 client with `TCP_NODELAY`, shared by every arm.
#[derive(Clone)]
pub struct Client {
    http: LegacyClient<HttpConnector, Full<Bytes>>,
}

/// The request every send of one phase repeats.
pub struct Template {
    pub path: &'static str,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// The response must carry `x-tollgate-charge: recorded`.
    pub expect_charge: bool,
    /// The response is an SSE stream that must end with `data: [DONE]`.
    pub stream: bool,
}

/// One phase of load: a fixed rate for a fixed time against one base URL.
pub struct Plan {
    /// Such as `http://127.0.0.1:4000`, without a trailing slash.
    pub base: String,
    pub template: Arc<Template>,
    pub rate: u32,
    pub duration: Duration,
    pub max_in_flight: usize,
}

/// Measurements of one phase, in nanoseconds.
#[derive(Default)]
pub struct Outcome {
    pub scheduled: u64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Scheduled send to the last byte of the response.
    pub latency_ns: Vec<u64>,
    /// Scheduled send to the first byte of the response body.
    pub ttfb_ns: Vec<u64>,
    /// For streams: upstream's send time of each chunk to its arrival at the client.
    pub transit_ns: Vec<u64>,
    /// For streams: the scheduled send to the mock's receipt of the request.
    pub request_leg_ns: Vec<u64>,
    /// For streams: the mock's receipt of the request to its send of the first chunk.
    pub turnaround_ns: Vec<u64>,
    /// For streams: the first chunk's transit from the mock to the client.
    pub first_chunk_ns: Vec<u64>,
    /// First scheduled send to the end of the last response.
    pub elapsed: Duration,
}

struct Sample {
    latency_ns: u64,
    ttfb_ns: Option<u64>,
    transit_ns: Vec<u64>,
    legs: Option<Legs>,
}

/// A stream's time to first byte split where the mock upstream can see it.
struct Legs {
    request_ns: u64,
    turnaround_ns: u64,
    first_chunk_ns: u64,
}

impl Client {
    pub fn new() -> Client {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = LegacyClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Client { http }
    }
}

impl Outcome {
    /// Completed requests per second over the phase.
    pub fn achieved_rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ok as f64 / seconds
        } else {
            0.0
        }
    }

    fn record(&mut self, result: Result<Sample, String>) {
        match result {
            Ok(sample) => {
                self.ok += 1;
                self.latency_ns.push(sample.latency_ns);
                self.ttfb_ns.extend(sample.ttfb_ns);
                self.transit_ns.extend(sample.transit_ns);
                if let Some(legs) = sample.legs {
                    self.request_leg_ns.push(legs.request_ns);
                    self.turnaround_ns.push(legs.turnaround_ns);
                    self.first_chunk_ns.push(legs.first_chunk_ns);
                }
            }
            Err(error) => self.fail(error),
        }
    }

    fn fail(&mut self, error: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }
}

/// Runs one phase and returns what it measured.
pub async fn run(client: &Client, plan: &Plan) -> Outcome {
    let count = u64::from(plan.rate).saturating_mul(plan.duration.as_micros() as u64) / 1_000_000;
    let start = Instant::now() + START_DELAY;
    let (schedule, mut due) = mpsc::unbounded_channel::<Instant>();
    let rate = u64::from(plan.rate.max(1));
    let dispatcher = std::thread::Builder::new()
        .name("bench-dispatch".into())
        .spawn(move || dispatch(start, rate, count, &schedule));

    let mut outcome = Outcome::default();
    let mut open = JoinSet::new();
    loop {
        tokio::select! {
            next = due.recv() => match next {
                Some(scheduled) => {
                    outcome.scheduled += 1;
                    if open.len() >= plan.max_in_flight {
                        outcome.fail(format!("overload: {} requests already open", open.len()));
                        continue;
                    }
                    let request = build_request(plan);
                    open.spawn(send(client.clone(), request, Arc::clone(&plan.template), scheduled));
                }
                None => break,
            },
            Some(joined) = open.join_next(), if !open.is_empty() => {
                outcome.record(joined.unwrap_or_else(|error| Err(error.to_string())));
            }
        }
    }
    if let Ok(handle) = dispatcher {
        let _ = handle.join();
    }

    let deadline = tokio::time::Instant::now() + DRAIN_GRACE;
    while !open.is_empty() {
        match tokio::time::timeout_at(deadline, open.join_next()).await {
            Ok(Some(joined)) => {
                outcome.record(joined.unwrap_or_else(|error| Err(error.to_string())))
            }
            Ok(None) => break,
            Err(_) => {
                let left = open.len();
                open.abort_all();
                for _ in 0..left {
                    outcome.fail(format!(
                        "no response within {} s after the phase",
                        DRAIN_GRACE.as_secs()
                    ));
                }
                break;
            }
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

/// Sleeps until each scheduled time and passes it on. Runs on its own thread, because the
/// runtime's timer has a resolution of one millisecond.
fn dispatch(start: Instant, rate: u64, count: u64, schedule: &mpsc::UnboundedSender<Instant>) {
    for index in 0..count {
        let offset = Duration::from_nanos(index.saturating_mul(1_000_000_000) / rate);
        let at = start + offset;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        if schedule.send(at).is_err() {
            return;
        }
    }
}

fn build_request(plan: &Plan) -> Request<Full<Bytes>> {
    let uri = format!("{}{}", plan.base, plan.template.path);
    let mut request = Request::new(Full::new(plan.template.body.clone()));
    *request.method_mut() = Method::POST;
    if let Ok(uri) = uri.parse() {
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    for (name, value) in &plan.template.headers {
        headers.insert(name.clone(), value.clone());
    }
    request
}

async fn send(
    client: Client,
    request: Request<Full<Bytes>>,
    template: Arc<Template>,
    scheduled: Instant,
) -> Result<Sample, String> {
    let scheduled_unix = unix_nanos().saturating_sub(nanos_since(scheduled));
    let response = client
        .http
        .request(request)
        .await
        .map_err(|error| format!("request failed: {error:?}"))?;
    let status = response.status();
    let charge = response.headers().get("x-tollgate-charge").cloned();
    let mut body = response.into_body();
    let mut ttfb_ns = None;
    let mut transit_ns = Vec::new();
    let mut legs = None;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("response body broke off: {error}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let first = ttfb_ns.is_none();
        if first {
            ttfb_ns = Some(nanos_since(scheduled));
        }
        if template.stream {
            let arrived = unix_nanos();
            if first {
                legs = split_first_byte(&data, scheduled_unix, arrived);
            }
            transit_ns
                .extend(stamps(&data, SENT_AT_FIELD).map(|sent| arrived.saturating_sub(sent)));
            keep_tail(&mut tail, &data);
        }
    }
    let latency_ns = nanos_since(scheduled);

    if status != StatusCode::OK {
        return Err(format!("status {status}"));
    }
    // A stream's headers leave before its charge, so only a complete response carries the
    // charge header.
    let charge_expected = template.expect_charge && !template.stream;
    if charge_expected && charge.as_ref().is_none_or(|value| value != "recorded") {
        return Err(format!(
            "x-tollgate-charge is {charge:?}, expected \"recorded\""
        ));
    }
    if template.stream && memmem::find(&tail, b"data: [DONE]").is_none() {
        return Err("the stream ended without data: [DONE]".to_string());
    }
    Ok(Sample {
        latency_ns,
        ttfb_ns,
        transit_ns,
        legs,
    })
}

/// Splits the way to a stream's first chunk, when `data` starts with the mock's first chunk.
fn split_first_byte(data: &[u8], scheduled_unix: u64, arrived: u64) -> Option<Legs> {
    let received = stamps(data, RECEIVED_AT_FIELD).next()?;
    let sent = stamps(data, SENT_AT_FIELD).next()?;
    Some(Legs {
        request_ns: received.saturating_sub(scheduled_unix),
        turnaround_ns: sent.saturating_sub(received),
        first_chunk_ns: arrived.saturating_sub(sent),
    })
}

/// Keeps the last bytes of a stream, enough to find its terminator.
fn keep_tail(tail: &mut Vec<u8>, data: &[u8]) {
    const KEEP: usize = 64;
    tail.extend_from_slice(&data[data.len().saturating_sub(KEEP)..]);
    if tail.len() > KEEP {
        tail.drain(..tail.len() - KEEP);
    }
}

/// Returns the values of every `field` (Unix nanoseconds, written by the mock) in `data`.
fn stamps<'a>(data: &'a [u8], field: &'a [u8]) -> impl Iterator<Item = u64> + 'a {
    memmem::find_iter(data, field).filter_map(move |at| {
        let digits = &data[at + field.len()..];
        let end = digits.iter().position(|byte| !byte.is_ascii_digit())?;
        std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
    })
}

fn nanos_since(at: Instant) -> u64 {
    u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Wall-clock time in Unix nanoseconds, comparable across the processes of one machine.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::content_chunk;

    #[test]
    fn first_chunk_splits_the_way_to_it() {
        let received = unix_nanos();
        let chunk = content_chunk(Some(received));
        let sent = stamps(&chunk, SENT_AT_FIELD).next().expect("send time");
        let legs = split_first_byte(&chunk, received - 40_000, sent + 15_000).expect("legs");
        assert_eq!(legs.request_ns, 40_000);
        assert_eq!(legs.turnaround_ns, sent - received);
        assert_eq!(legs.first_chunk_ns, 15_000);
    }

    #[test]
    fn later_chunks_carry_no_receipt() {
        let chunk = content_chunk(None);
        assert!(split_first_byte(&chunk, 0, unix_nanos()).is_none());
        assert_eq!(stamps(&chunk, SENT_AT_FIELD).count(), 1);
    }
}
