//! Streaming relay: upstream's SSE events reach the client as soon as each is complete,
//! while a meter watches them. Only an incomplete event, the usage-only chunk the client did
//! not ask for, and the terminator are held back. The terminator (`data: [DONE]`, or the
//! terminal Responses event) is sent after the charge is recorded or the charge timeout passed.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::config::DisconnectPolicy;
use crate::http_client::describe;
use crate::usage::{EventAction, SseFramer, StreamMeter, StreamSummary, Usage, UsageSource};

use super::client_queue::{self, Closed, Receiver, Sender, TrySendError};
use super::headers::client_response_headers;
use super::ledger_step::{BilledUsage, Metering};
use super::metered::{build_response, log_receipt};
use super::upstream::UpstreamResponse;

/// Largest single SSE event accepted from upstream.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Starts relaying a 2xx streamed response and returns the client's response at once.
pub fn relay(
    metering: Metering,
    upstream: UpstreamResponse,
    client_wants_usage: bool,
    operator_key: bool,
) -> Response {
    let status = upstream.status();
    let headers = client_response_headers(upstream.headers(), operator_key);
    let (sender, receiver) = client_queue::channel();
    let span = tracing::Span::current();
    // Tracked, so shutdown waits for a stream whose client left while upstream is drained.
    let biller = metering.state.biller.clone();
    // Boxed first, so the wrappers and the spawn move a pointer, not the whole relay future.
    let relaying = Box::pin(run(metering, upstream, client_wants_usage, sender));
    biller.spawn_tracked(
        "stream-relay",
        tracing::Instrument::instrument(
            crate::telemetry::request::stream(status.as_u16(), relaying),
            span,
        ),
    );
    build_response(status, headers, Body::from_stream(chunks(receiver)))
}

/// Turns the queue's receiving end into the client's response body.
fn chunks(
    mut receiver: Receiver,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx).map(|chunk| chunk.map(Ok)))
}

/// Reason reading upstream stopped.
enum End {
    /// The body ended.
    Complete,
    /// A read failed, or upstream went silent or ran too long.
    Failed(String),
    /// The client left and the policy is to stop at once.
    Stopped,
    /// The client stopped reading, and the queue toward it was still full at the stream's
    /// deadline.
    Stalled,
    /// The client left, and the drain ended (or upstream went silent) before upstream did.
    Drained,
}

/// The outcome of sending a chunk toward the client.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// Queued, or dropped because the client had already left.
    Done,
    /// This send found that the client has left.
    ClientLeft,
    /// The queue stayed full until the deadline.
    TimedOut,
}

struct Client {
    sender: Sender,
    gone: bool,
}

impl Client {
    /// Sends `bytes` unless the client has left, waiting for room in the queue until
    /// `deadline` at most. A client that stopped reading fills the queue, so its leaving is
    /// found here rather than by the relay's watch for it.
    async fn send(&mut self, bytes: Bytes, deadline: Instant) -> Sent {
        if self.gone {
            return Sent::Done;
        }
        let sent = match self.sender.try_send(bytes) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed) => Err(Closed),
            // Boxed: the wait and its timer are rare, and the relay's future, which lives as
            // long as the stream, would otherwise reserve room for them.
            Err(TrySendError::Full(bytes)) => {
                match Box::pin(tokio::time::timeout_at(deadline, self.sender.send(bytes))).await {
                    Ok(sent) => sent,
                    Err(_) => return Sent::TimedOut,
                }
            }
        };
        match sent {
            Ok(()) => Sent::Done,
            Err(Closed) => {
                self.gone = true;
                Sent::ClientLeft
            }
        }
    }
}

/// Applies the disconnect policy to a client that just left: the relay stops at once, or
/// reads upstream on until the drain timeout.
fn client_left(policy: DisconnectPolicy, drain: Duration, deadline: &mut Instant) -> Option<End> {
    tracing::info!(policy = ?policy, "client disconnected mid-stream");
    if policy == DisconnectPolicy::Stop {
        return Some(End::Stopped);
    }
    *deadline = (*deadline).min(Instant::now() + drain);
    None
}

/// Builds the relay's future, which lives as long as the stream. An `async fn` would keep its
/// arguments and the locals they move to side by side, so this returns an `async move` block,
/// which keeps each captured value once. In a release build the `async fn` was 1,920 bytes,
/// and this block is 1,192 (the metering's hold is boxed too).
fn run(
    metering: Metering,
    upstream: UpstreamResponse,
    client_wants_usage: bool,
    sender: Sender,
) -> impl Future<Output = ()> + Send + 'static {
    let config = &metering.state.config.upstream;
    let policy = config.on_client_disconnect;
    let (idle, drain) = (config.idle_timeout, config.drain_timeout);
    let mut deadline = Instant::now() + config.max_stream_duration;

    let mut client = Client {
        sender,
        gone: false,
    };
    let mut framer = SseFramer::with_max_event_bytes(MAX_EVENT_BYTES);
    let mut meter = StreamMeter::new(metering.endpoint, client_wants_usage);
    let mut held: Vec<Bytes> = Vec::new();
    let mut events: Vec<Bytes> = Vec::new();
    let mut body = upstream.into_body().into_data_stream();

    async move {
        let end = loop {
            let wait = idle.min(deadline.saturating_duration_since(Instant::now()));
            let next = tokio::select! {
                biased;
                _ = client.sender.closed(), if !client.gone => {
                    client.gone = true;
                    if let Some(end) = client_left(policy, drain, &mut deadline) {
                        break end;
                    }
                    continue;
                }
                next = tokio::time::timeout(wait, body.next()) => next,
            };
            let chunk = match next {
                // A client that left is billed for what upstream did, as after `Stopped`.
                Err(_) if client.gone => break End::Drained,
                Err(_) => break End::Failed(timeout_reason(deadline, idle)),
                Ok(None) => break End::Complete,
                Ok(Some(Err(error))) => {
                    break End::Failed(format!("upstream stream broke off: {}", describe(&error)));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let mut framing_error = None;
            for event in framer.push(&chunk) {
                match event {
                    Ok(event) => events.push(event),
                    Err(error) => framing_error = Some(error),
                }
            }
            if let Some(error) = framing_error {
                break End::Failed(error.to_string());
            }
            let ready = classify(&mut meter, &mut events, &mut held);
            if let Some(bytes) = ready {
                match client.send(bytes, deadline).await {
                    Sent::Done => {}
                    Sent::ClientLeft => {
                        if let Some(end) = client_left(policy, drain, &mut deadline) {
                            break end;
                        }
                    }
                    Sent::TimedOut => break End::Stalled,
                }
            }
        };

        if let Ok(Some(tail)) = framer.finish() {
            events.push(tail);
            if let Some(bytes) = classify(&mut meter, &mut events, &mut held)
                && client.send(bytes, deadline).await == Sent::ClientLeft
            {
                tracing::info!("client disconnected mid-stream");
            }
        }
        // Boxed, so the relay's future, which lives as long as the stream, does not reserve room
        // for the charge's future from the start. In a release build it shrank from 5,008 to
        // 2,000 bytes.
        Box::pin(finish(
            metering,
            meter.finish(),
            end,
            client,
            held,
            deadline,
        ))
        .await;
    }
}

/// Runs the meter over complete events; returns the bytes to forward now and moves the
/// terminator (and anything after it) to `held`.
fn classify(
    meter: &mut StreamMeter,
    events: &mut Vec<Bytes>,
    held: &mut Vec<Bytes>,
) -> Option<Bytes> {
    let mut forward: Option<BytesMut> = None;
    let mut single: Option<Bytes> = None;
    for event in events.drain(..) {
        let action = meter.observe(&event);
        if !held.is_empty() {
            if action != EventAction::Drop {
                held.push(event);
            }
            continue;
        }
        match action {
            EventAction::Forward => match (&mut forward, single.take()) {
                (Some(buffer), _) => buffer.extend_from_slice(&event),
                (None, Some(first)) => {
                    let mut buffer = BytesMut::with_capacity(first.len() + event.len());
                    buffer.extend_from_slice(&first);
                    buffer.extend_from_slice(&event);
                    forward = Some(buffer);
                }
                (None, None) => single = Some(event),
            },
            EventAction::Drop => {}
            EventAction::Terminal => held.push(event),
        }
    }
    forward.map(BytesMut::freeze).or(single)
}

fn timeout_reason(deadline: Instant, idle: Duration) -> String {
    if Instant::now() >= deadline {
        "the stream exceeded its maximum duration".to_string()
    } else {
        format!("upstream sent nothing for {} ms", idle.as_millis())
    }
}

/// Charges what the stream used, then sends the held terminator and closes the stream.
async fn finish(
    metering: Metering,
    summary: StreamSummary,
    end: End,
    mut client: Client,
    held: Vec<Bytes>,
    deadline: Instant,
) {
    crate::telemetry::request::upstream_finished();
    let disconnected = client.gone;
    let failed = matches!(end, End::Failed(_) | End::Stalled);
    match &end {
        End::Failed(reason) => {
            tracing::warn!(%reason, saw_content = summary.saw_content, "upstream stream ended abnormally");
        }
        End::Stalled => {
            tracing::warn!(
                "client stopped reading until the stream's deadline; upstream no longer read"
            );
        }
        End::Drained => {
            tracing::info!("the drain ended before upstream did; upstream no longer read");
        }
        End::Complete | End::Stopped => {}
    }

    match billed_usage(&metering, &summary, &end, disconnected) {
        Some(billed) => {
            let receipt = metering.charge(billed).await;
            log_receipt(&receipt);
        }
        None => {
            tracing::info!("stream failed before any content; nothing billed");
            metering.abandon();
        }
    }

    // The rest goes to the client only as long as the stream's deadline allows: a client that
    // stopped reading gets the queued chunks and then the end of the body.
    let mut sent = Sent::Done;
    for event in held {
        sent = client.send(event, deadline).await;
        if sent != Sent::Done {
            break;
        }
    }
    // A stream that ended without its terminator was cut: after a failure, or at a plain end
    // of body that brought no usage either. Both official SDKs raise an exception on an error
    // event, so the caller learns the response is incomplete.
    let cut = !summary.terminated && (failed || (summary.usage.is_none() && summary.saw_content));
    if cut && sent == Sent::Done {
        let event = Bytes::from_static(
            b"data: {\"error\":{\"message\":\"the upstream stream ended before completion\",\"type\":\"upstream_error\",\"param\":null,\"code\":\"upstream_stream_interrupted\"}}\n\n",
        );
        sent = client.send(event, deadline).await;
    }
    match sent {
        Sent::Done => {}
        Sent::ClientLeft => tracing::info!("client disconnected mid-stream"),
        Sent::TimedOut => {
            tracing::warn!("client stopped reading; the end of the stream was dropped")
        }
    }
    crate::telemetry::request::finish();
}

/// Decides what a stream is billed for. `None`: nothing was generated, or upstream failed
/// before generating anything, so nothing is billed.
fn billed_usage(
    metering: &Metering,
    summary: &StreamSummary,
    end: &End,
    disconnected: bool,
) -> Option<BilledUsage> {
    // tollgate ended these streams, not upstream, so upstream has billed what it generated.
    // Their reported usage counts only if it was final: a running total leaves out the rest.
    let stopped_early = matches!(end, End::Stopped | End::Stalled | End::Drained);
    let reported = summary
        .usage
        .clone()
        .filter(|_| !stopped_early || summary.terminated || summary.usage_final);
    let (usage, source) = match reported {
        Some(usage) => (usage, UsageSource::Reported),
        // Upstream failed (`response.failed` or an error event) before generating anything
        // and reported no usage, so there is nothing to bill.
        None if summary.upstream_error.is_some() && !summary.saw_content => return None,
        None if summary.saw_content || summary.terminated || stopped_early => {
            let usage = Usage {
                prompt_tokens: metering.estimate_prompt(),
                completion_tokens: summary.streamed_text_tokens(),
                ..Usage::default()
            };
            (usage, UsageSource::Estimated)
        }
        None => return None,
    };
    Some(BilledUsage {
        usage,
        source,
        response_model: summary.model.clone(),
        service_tier: summary.service_tier.clone(),
        client_disconnected: disconnected,
    })
}
