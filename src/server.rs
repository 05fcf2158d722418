//! Running the server: build the state from the configuration, serve the proxy and admin
//! listeners, run the outbox worker, and shut down gracefully.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounts::AccountDirectory;
use crate::auth::Authenticator;
use crate::billing::worker::{self, Backoff, Clock, WorkerSettings};
use crate::billing::{Biller, SystemBalances, hold_lifetime};
use crate::config::Config;
use crate::ledger::BlnkClient;
use crate::outbox::Outbox;
use crate::proxy::{AppState, UpstreamClient};
use crate::task::spawn_named;

/// How often the worker logs the outbox counts while entries are pending or dead.
const BACKLOG_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Failure to start the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("price file: {0}")]
    Pricing(#[from] crate::pricing::PricingError),
    #[error("outbox: {0}")]
    Outbox(#[from] crate::outbox::OutboxError),
    #[error("ledger client: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("upstream client: {0}")]
    Upstream(#[from] crate::proxy::UpstreamClientError),
    #[error("client keys: {0}")]
    ClientKeys(#[from] crate::auth::ClientKeyError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Builds the shared state from a validated configuration.
pub fn build_state(config: Config) -> Result<Arc<AppState>, StartError> {
    let prices = crate::reload::load_prices(&config.pricing)?;
    let blnk = BlnkClient::new(
        &config.blnk.url,
        config.blnk.api_key.clone(),
        config.blnk.request_timeout,
    )?;
    let outbox = Outbox::open_server(&config.data_dir, config.outbox.durability)?;
    let system = SystemBalances {
        revenue: config.blnk.revenue_balance.clone(),
        token_pool: config.blnk.token_pool_balance.clone(),
        world: config.blnk.world_balance.clone(),
    };
    let upstream = &config.upstream;
    let lifetime = hold_lifetime(
        config.blnk.request_timeout,
        upstream.first_byte_timeout,
        upstream.max_stream_duration,
        config.blnk.charge_timeout,
        config.blnk.hold_expiry_margin,
    );
    let biller = Biller::new(
        blnk.clone(),
        outbox,
        system,
        config.blnk.charge_timeout,
        config.blnk.request_timeout,
        lifetime,
    );
    let auth = Authenticator::new(&config, blnk.clone())?;
    let accounts = AccountDirectory::new(
        blnk,
        config.blnk.account_cache_ttl,
        config.blnk.account_cache_max_stale,
    )
    .with_fail_open_postpaid(config.blnk.fail_open_postpaid);
    let upstream = UpstreamClient::new(&config.upstream)?;
    Ok(Arc::new(AppState {
        config: Arc::new(config),
        prices: RwLock::new(Arc::new(prices)),
        accounts,
        auth,
        biller,
        upstream,
        shutting_down: AtomicBool::new(false),
    }))
}

/// Serves until `shutdown` is cancelled, then drains within the grace period.
pub async fn run(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    run_with_admin(state, listener, None, shutdown).await
}

/// Like [`run`], and also serves the admin listener when one is given.
pub async fn run_with_admin(
    state: Arc<AppState>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = Arc::clone(&state.config);
    let worker_settings = WorkerSettings {
        backoff: Backoff {
            initial: config.outbox.retry_initial_delay,
            max: config.outbox.retry_max_delay,
        },
        max_age: config.outbox.max_age,
        done_retention: config.outbox.done_retention,
        purge_every: worker::PURGE_INTERVAL,
        report_every: BACKLOG_REPORT_INTERVAL,
        clock: Clock::System,
    };
    worker::resume_pending(&state.biller).await;
    let worker_stop = CancellationToken::new();
    let mut worker = spawn_named(
        "outbox-worker",
        worker::run(state.biller.clone(), worker_settings, worker_stop.clone()),
    );
    spawn_named(
        "ledger-probe",
        crate::telemetry::ledger::probe_while_idle(
            state.biller.blnk().clone(),
            config.admin.ledger_probe_interval,
            shutdown.clone(),
        ),
    );
    spawn_named(
        "price-reload-signal",
        crate::reload::reload_on_hangup(Arc::clone(&state), shutdown.clone()),
    );
    spawn_named(
        "price-file-watch",
        crate::reload::watch_file(Arc::clone(&state), shutdown.clone()),
    );

    tracing::info!(listen = %listener.local_addr()?, upstream = %config.upstream.url, blnk = %config.blnk.url, "tollgate serving");
    state.auth.log_exposure(listener.local_addr()?);
    let app = crate::proxy::router(Arc::clone(&state));
    let graceful = shutdown.clone();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
    });
    let listener = crate::limits::ConnectionLimit::new(listener, config.max_connections);
    let serving = spawn_named(
        "proxy-listener",
        crate::listener::serve(listener, app, config.header_read_timeout, graceful),
    );
    // The admin listener outlives the drain, so probes see readiness fail while requests
    // finish, instead of a refused connection.
    let admin_stop = CancellationToken::new();
    if let Some(admin) = admin {
        tracing::info!(listen = %admin.local_addr()?, admin_api = config.admin.token.is_some(), "admin listener serving");
        let admin_app = crate::admin::router(Arc::clone(&state));
        let stop = admin_stop.clone();
        spawn_named("admin-listener", async move {
            let served = axum::serve(admin, admin_app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "admin listener failed");
            }
        });
    }

    shutdown.cancelled().await;
    state.shutting_down.store(true, Ordering::Release);
    drain_requests(&state, serving).await;
    admin_stop.cancel();

    // The worker stops between two entries; an entry cut in the middle is safe to post again.
    let budget = flush_budget(&config);
    worker_stop.cancel();
    if tokio::time::timeout(budget, &mut worker).await.is_err() {
        worker.abort();
    }
    flush_outbox(&state, worker_settings, budget).await;
    Ok(())
}

/// Waits, within `shutdown_grace`, for the requests in flight and for the billing tasks they
/// started: stream relays that outlive their client, charge posts and hold voids.
async fn drain_requests(state: &AppState, serving: tokio::task::JoinHandle<()>) {
    let grace = state.config.shutdown_grace;
    tracing::info!(
        grace_s = grace.as_secs(),
        billing_tasks = state.biller.tracked_tasks(),
        "shutting down: no new connections; waiting for requests in flight"
    );
    let drained = tokio::time::timeout(grace, async {
        if let Err(error) = serving.await {
            tracing::error!(%error, "proxy listener task failed");
        }
        state.biller.wait_idle().await;
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("all requests finished"),
        Err(_) => tracing::warn!(
            billing_tasks = state.biller.tracked_tasks(),
            "grace period over; requests still in flight are cut, and their holds are voided at the next start"
        ),
    }
}

/// Gives every pending entry one more try within `budget`, then closes the outbox. What
/// stays pending resumes at the next start.
async fn flush_outbox(state: &AppState, settings: WorkerSettings, budget: Duration) {
    let biller = &state.biller;
    let flushed = worker::flush(biller, settings, budget).await;
    for record in biller.take_unstored() {
        let payload = serde_json::to_string(&record).unwrap_or_default();
        tracing::error!(request_id = %record.request_id, %payload,
            "a charge that the outbox could not store is not recorded in Blnk and is lost at exit; post it by hand");
    }
    biller.outbox().close().await;

    let counts = biller.outbox().counts().await.unwrap_or_default();
    tracing::info!(
        flushed,
        pending = counts.pending,
        dead = counts.dead,
        "tollgate stopped; pending outbox entries resume at the next start"
    );
}

/// Time the shutdown gives the worker to stop and the outbox to flush: two ledger calls'
/// worth, so one slow entry does not use it all.
fn flush_budget(config: &Config) -> Duration {
    config.blnk.request_timeout.saturating_mul(2)
}

/// Binds a listener; `run` sets `TCP_NODELAY` on every accepted socket.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Waits for SIGTERM or SIGINT, cancels `token`, and exits at once with status 130 on a
/// second signal. Both signals are registered once, before the first wait, so a second
/// signal sent right after the first is not missed.
pub async fn watch_signals(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(interrupt)) => (term, interrupt),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, "listening for SIGTERM and SIGINT failed; stop tollgate with SIGKILL");
            return;
        }
    };
    let mut next_signal = async || {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    };

    let first = next_signal().await;
    tracing::info!(
        signal = first,
        "shutdown signal received; a second signal exits at once"
    );
    token.cancel();
    let second = next_signal().await;
    tracing::warn!(
        signal = second,
        "second signal received; exiting at once, pending outbox entries resume at the next start"
    );
    std::process::exit(130);
}
