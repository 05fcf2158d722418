//! Running the server: build the state from the configuration, serve the proxy and admin
//! listeners, run the outbox worker, and shut down gracefully.

use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounts::AccountDirectory;
use crate::billing::worker::{self, Backoff, WorkerSettings};
use crate::billing::{Biller, SystemBalances, hold_lifetime};
use crate::config::Config;
use crate::ledger::BlnkClient;
use crate::outbox::Outbox;
use crate::pricing::PriceTable;
use crate::proxy::{AppState, UpstreamClient};
use crate::task::spawn_named;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("price file: {0}")]
    Pricing(#[from] crate::pricing::PricingError),
    #[error("outbox: {0}")]
    Outbox(#[from] crate::outbox::OutboxError),
    #[error("ledger client: {0}")]
    Ledger(#[from] crate::ledger::LedgerError),
    #[error("upstream client: {0}")]
    Upstream(#[from] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: std::net::SocketAddr, source: std::io::Error },
}

/// Builds the shared state from a validated configuration.
pub fn build_state(config: Config) -> Result<Arc<AppState>, StartError> {
    let prices = PriceTable::load(&config.pricing.file)?.with_default_markup(config.pricing.default_markup)?;
    let blnk = BlnkClient::new(&config.blnk.url, config.blnk.api_key.clone(), config.blnk.request_timeout)?;
    let outbox = Outbox::open_server(&config.data_dir, config.outbox.durability)?;
    let system = SystemBalances {
        revenue: config.blnk.revenue_balance.clone(),
        token_pool: config.blnk.token_pool_balance.clone(),
        world: config.blnk.world_balance.clone(),
    };
    let upstream = &config.upstream;
    let lifetime = hold_lifetime(
        upstream.first_byte_timeout,
        upstream.max_stream_duration,
        upstream.drain_timeout,
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
    let accounts = AccountDirectory::new(blnk, config.blnk.account_cache_ttl, config.blnk.account_cache_max_stale);
    let upstream = UpstreamClient::new(&config.upstream)?;
    Ok(Arc::new(AppState {
        config: Arc::new(config),
        prices: RwLock::new(Arc::new(prices)),
        accounts,
        biller,
        upstream,
    }))
}

/// Serves until `shutdown` is cancelled, then drains within the grace period.
pub async fn run(state: Arc<AppState>, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
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
    };
    worker::resume_pending(&state.biller).await;
    let worker_stop = CancellationToken::new();
    let worker = spawn_named(
        "outbox-worker",
        worker::run(state.biller.clone(), worker_settings, worker_stop.clone()),
    );

    tracing::info!(listen = %listener.local_addr()?, upstream = %config.upstream.url, blnk = %config.blnk.url, "tollgate serving");
    let app = crate::proxy::router(Arc::clone(&state));
    let graceful = shutdown.clone();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move { graceful.cancelled().await });
    let serving = spawn_named("proxy-listener", async move { server.await });
    if let Some(admin) = admin {
        tracing::info!(listen = %admin.local_addr()?, admin_api = config.admin.token.is_some(), "admin listener serving");
        let admin_app = crate::admin::router(Arc::clone(&state));
        let stop = shutdown.clone();
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
    tracing::info!(grace_s = config.shutdown_grace.as_secs(), "shutting down: no new requests; waiting for requests in flight");
    match tokio::time::timeout(config.shutdown_grace, serving).await {
        Ok(_) => tracing::info!("all requests finished"),
        Err(_) => tracing::warn!("grace period over; requests still in flight are cut"),
    }

    // One last pass so charges that just failed get another chance before exit.
    worker_stop.cancel();
    let _ = worker.await;
    worker::run_once(&state.biller, worker_settings).await;
    state.biller.outbox().close().await;
    let counts = state.biller.outbox().counts().await.unwrap_or_default();
    tracing::info!(pending = counts.pending, dead = counts.dead, "tollgate stopped; pending outbox entries resume at the next start");
    Ok(())
}

/// Binds a listener; `run` sets `TCP_NODELAY` on every accepted socket.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Waits for SIGTERM or SIGINT, cancels `token`, and exits at once on a second signal.
pub async fn watch_signals(token: CancellationToken) {
    wait_for_signal().await;
    tracing::info!("shutdown signal received");
    token.cancel();
    wait_for_signal().await;
    tracing::warn!("second signal received; exiting at once");
    std::process::exit(130);
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
