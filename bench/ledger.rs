//! Ledger stub: responds to the Blnk calls tollgate makes on the request path, either at once or
//! after a Blnk-like delay.
//!
//! The delays follow Blnk measured on a 2-core machine: about 6 ms for a synchronous
//! transaction (a hold, a void) and 10 ms for a two-leg atomic bulk; a balance filter took
//! about 2 ms. The stub checks nothing: every customer exists and every hold succeeds.
//! Customers whose id starts with `bench-prepaid` are prepaid, all others postpaid without a
//! credit limit (no hold).
//!
//! tollgate and the floor (the hop that also makes tollgate's ledger calls) call the stub on
//! separate ports, and the stub counts each caller's calls apart. So neither is counted into
//! the other's arms, even when tollgate's voids, which run after the response, overlap a
//! floor phase.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use memchr::memmem;
use tokio::net::TcpListener;

use tollgate::task::spawn_named;

const TRANSACTION_DELAY: Duration = Duration::from_millis(6);
const BULK_DELAY: Duration = Duration::from_millis(10);
const FILTER_DELAY: Duration = Duration::from_millis(2);

/// The Blnk calls the stub distinguishes, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `POST /balances/filter`: the account lookup, cached by tollgate.
    Filter,
    /// `POST /transactions`: a hold.
    Hold,
    /// `POST /transactions/bulk`: the charge.
    Bulk,
    /// `PUT /transactions/inflight/{id}`: the void of a hold.
    Void,
    /// `GET /health` and anything else.
    Other,
}

impl Call {
    pub const ALL: [Call; 5] = [
        Call::Filter,
        Call::Hold,
        Call::Bulk,
        Call::Void,
        Call::Other,
    ];

    fn index(self) -> usize {
        match self {
            Call::Filter => 0,
            Call::Hold => 1,
            Call::Bulk => 2,
            Call::Void => 3,
            Call::Other => 4,
        }
    }
}

/// The process that made a call, known from the port it called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    Tollgate,
    /// The hop in its floor mode (`bench/floor.rs`).
    Floor,
}

/// A running stub. Clones share the server and its counters.
#[derive(Clone)]
pub struct LedgerStub {
    /// The port tollgate calls.
    pub addr: SocketAddr,
    /// The port the floor calls.
    pub floor_addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Calls served, the time spent serving them and the request body bytes received, per call
/// kind, since the stub started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub calls: [u64; 5],
    pub busy_ns: [u64; 5],
    pub body_bytes: [u64; 5],
}

#[derive(Default)]
struct Shared {
    blnk_like: AtomicBool,
    next_id: AtomicU64,
    /// Indexed by [`Caller::index`].
    tallies: [Tally; 2],
}

/// The atomic form of [`Counters`] for one caller.
#[derive(Default)]
struct Tally {
    calls: [AtomicU64; 5],
    busy_ns: [AtomicU64; 5],
    body_bytes: [AtomicU64; 5],
}

impl Caller {
    fn index(self) -> usize {
        match self {
            Caller::Tollgate => 0,
            Caller::Floor => 1,
        }
    }
}

impl LedgerStub {
    /// Binds two loopback ports, one per [`Caller`], and serves both until the process exits.
    pub async fn start() -> std::io::Result<LedgerStub> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let floor_listener = TcpListener::bind("127.0.0.1:0").await?;
        let stub = LedgerStub {
            addr: listener.local_addr()?,
            floor_addr: floor_listener.local_addr()?,
            shared: Arc::new(Shared::default()),
        };
        spawn_named(
            "ledger-stub",
            accept_loop(listener, Caller::Tollgate, Arc::clone(&stub.shared)),
        );
        spawn_named(
            "ledger-stub-floor",
            accept_loop(floor_listener, Caller::Floor, Arc::clone(&stub.shared)),
        );
        Ok(stub)
    }

    /// Switches between zero latency and Blnk-like latency for the calls that follow.
    pub fn set_blnk_like(&self, on: bool) {
        self.shared.blnk_like.store(on, Ordering::SeqCst);
    }

    /// Returns the counters of the calls `caller` made since the stub started.
    pub fn counters(&self, caller: Caller) -> Counters {
        let tally = &self.shared.tallies[caller.index()];
        let mut counters = Counters::default();
        for index in 0..Call::ALL.len() {
            counters.calls[index] = tally.calls[index].load(Ordering::SeqCst);
            counters.busy_ns[index] = tally.busy_ns[index].load(Ordering::SeqCst);
            counters.body_bytes[index] = tally.body_bytes[index].load(Ordering::SeqCst);
        }
        counters
    }
}

impl Counters {
    /// Returns the counts between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut delta = Counters::default();
        for index in 0..Call::ALL.len() {
            delta.calls[index] = self.calls[index].saturating_sub(earlier.calls[index]);
            delta.busy_ns[index] = self.busy_ns[index].saturating_sub(earlier.busy_ns[index]);
            delta.body_bytes[index] =
                self.body_bytes[index].saturating_sub(earlier.body_bytes[index]);
        }
        delta
    }

    pub fn calls_of(&self, call: Call) -> u64 {
        self.calls[call.index()]
    }

    /// Returns the mean time the stub took to serve one call of this kind, in nanoseconds.
    pub fn mean_ns(&self, call: Call) -> u64 {
        self.busy_ns[call.index()]
            .checked_div(self.calls[call.index()])
            .unwrap_or(0)
    }

    /// Returns the mean request body size of one call of this kind, in bytes.
    pub fn mean_body_bytes(&self, call: Call) -> u64 {
        self.body_bytes[call.index()]
            .checked_div(self.calls[call.index()])
            .unwrap_or(0)
    }

    pub fn add(&mut self, other: &Counters) {
        for index in 0..Call::ALL.len() {
            self.calls[index] += other.calls[index];
            self.busy_ns[index] += other.busy_ns[index];
            self.body_bytes[index] += other.body_bytes[index];
        }
    }
}

async fn accept_loop(listener: TcpListener, caller: Caller, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        spawn_named("ledger-stub-connection", async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), caller, request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    caller: Caller,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let path = parts.uri.path();
    let call = match (&parts.method, path) {
        (&Method::POST, "/balances/filter") => Call::Filter,
        (&Method::POST, "/transactions") => Call::Hold,
        (&Method::POST, "/transactions/bulk") => Call::Bulk,
        (&Method::PUT, _) if path.starts_with("/transactions/inflight/") => Call::Void,
        _ => Call::Other,
    };
    if shared.blnk_like.load(Ordering::Relaxed) {
        let delay = match call {
            Call::Filter => FILTER_DELAY,
            Call::Hold | Call::Void => TRANSACTION_DELAY,
            Call::Bulk => BULK_DELAY,
            Call::Other => Duration::ZERO,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (status, text) = match call {
        Call::Filter => (StatusCode::OK, balances(&body)),
        Call::Hold => (StatusCode::CREATED, transaction(id, "", hold_status(&body))),
        Call::Bulk => (
            StatusCode::CREATED,
            format!(r#"{{"batch_id":"bulk_{id}","status":"applied","transaction_count":2}}"#),
        ),
        Call::Void => (
            StatusCode::OK,
            transaction(id, path.rsplit('/').next().unwrap_or(""), "VOID"),
        ),
        Call::Other if path == "/health" || path == "/" => {
            (StatusCode::OK, r#"{"status":"UP"}"#.to_string())
        }
        Call::Other => (
            StatusCode::NOT_FOUND,
            r#"{"error":"route not found"}"#.to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let tally = &shared.tallies[caller.index()];
    tally.calls[call.index()].fetch_add(1, Ordering::Relaxed);
    tally.busy_ns[call.index()].fetch_add(elapsed, Ordering::Relaxed);
    tally.body_bytes[call.index()].fetch_add(body.len() as u64, Ordering::Relaxed);
    Ok(response)
}

fn hold_status(body: &[u8]) -> &'static str {
    if memmem::find(body, b"\"inflight\":true").is_some() {
        "INFLIGHT"
    } else {
        "APPLIED"
    }
}

fn transaction(id: u64, parent: &str, status: &str) -> String {
    format!(
        r#"{{"transaction_id":"txn_bench_{id}","parent_transaction":"{parent}","reference":"","status":"{status}","precise_amount":1,"currency":"USD","source":"","destination":"","description":"","created_at":"2026-01-01T00:00:00Z"}}"#
    )
}

/// Builds the customer's two balances, tagged as tollgate tags them. The customer id is read from
/// the filter's `"value"`.
fn balances(filter: &[u8]) -> String {
    let customer = memmem::find(filter, b"\"value\":\"")
        .map(|at| &filter[at + 9..])
        .and_then(|rest| {
            rest.iter()
                .position(|&byte| byte == b'"')
                .map(|end| &rest[..end])
        })
        .and_then(|id| std::str::from_utf8(id).ok())
        .unwrap_or("unknown");
    let billing = if customer.starts_with("bench-prepaid") {
        "prepaid"
    } else {
        "postpaid"
    };
    let funds = "1000000000000000000";
    format!(
        concat!(
            r#"[{{"balance_id":"bln_usd_{c}","ledger_id":"ldg_bench","identity_id":"idt_{c}","currency":"USD","#,
            r#""balance":{f},"credit_balance":{f},"debit_balance":0,"inflight_balance":0,"inflight_credit_balance":0,"#,
            r#""inflight_debit_balance":0,"created_at":"2026-01-01T00:00:00Z","meta_data":{{"tollgate_customer_id":"{c}","#,
            r#""tollgate_kind":"usd","tollgate_precision":1000000000,"tollgate_billing":"{b}","tollgate_credit_limit_usd":null}}}},"#,
            r#"{{"balance_id":"bln_tokens_{c}","ledger_id":"ldg_bench","identity_id":"idt_{c}","currency":"TOKENS","#,
            r#""balance":0,"credit_balance":0,"debit_balance":0,"inflight_balance":0,"inflight_credit_balance":0,"#,
            r#""inflight_debit_balance":0,"created_at":"2026-01-01T00:00:00Z","meta_data":{{"tollgate_customer_id":"{c}","#,
            r#""tollgate_kind":"tokens","tollgate_precision":1}}}}]"#
        ),
        c = customer,
        f = funds,
        b = billing,
    )
}
