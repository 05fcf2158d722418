//! Starts the real tollgate app on a loopback port, against the fake Blnk and a wiremock
//! upstream, with the shipped price file and a temporary data directory.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use wiremock::MockServer;

use tollgate::accounts::Billing;
use tollgate::billing::SystemBalances;
use tollgate::customers::Operations;
use tollgate::ids::CustomerId;
use tollgate::ledger::BlnkClient;
use tollgate::money::Usd;
use tollgate::proxy::AppState;

use super::blnk::FakeBlnk;

/// A running tollgate with its fakes.
pub struct Harness {
    /// Base URL of the proxy, without `/v1`.
    pub url: String,
    pub blnk: FakeBlnk,
    pub upstream: MockServer,
    pub state: Arc<AppState>,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    pub data_dir: tempfile::TempDir,
}

/// Options of a harness; `env` holds configuration overrides as environment variables.
#[derive(Default)]
pub struct Options {
    pub env: Vec<(&'static str, String)>,
    pub pricing_toml: Option<String>,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Harness {
        let blnk = FakeBlnk::start().await;
        let upstream = MockServer::start().await;
        Harness::start_on(blnk, upstream, options).await
    }

    /// Starts tollgate against a given Blnk URL holder and upstream.
    pub async fn start_on(blnk: FakeBlnk, upstream: MockServer, options: Options) -> Harness {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let pricing = match &options.pricing_toml {
            Some(text) => {
                let path = data_dir.path().join("pricing.toml");
                std::fs::write(&path, text).expect("write pricing");
                path
            }
            None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"),
        };
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("TOLLGATE_LISTEN".into(), "127.0.0.1:0".into());
        env.insert("TOLLGATE_UPSTREAM_URL".into(), upstream.uri());
        env.insert("OPENAI_API_KEY".into(), "sk-operator-test".into());
        env.insert("BLNK_URL".into(), blnk.url());
        env.insert(
            "TOLLGATE_DATA_DIR".into(),
            data_dir.path().join("data").display().to_string(),
        );
        env.insert("TOLLGATE_PRICING".into(), pricing.display().to_string());
        env.insert("TOLLGATE_PRICING_WATCH".into(), "false".into());
        for (key, value) in options.env {
            env.insert(key.to_string(), value);
        }
        let lookup = move |key: &str| env.get(key).cloned();
        let config = tollgate::config::load_from(None, &lookup).expect("test config is valid");
        let state = tollgate::server::build_state(config).expect("state builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let server = tollgate::task::spawn_named(
            "test-server",
            tollgate::server::run(Arc::clone(&state), listener, shutdown.clone()),
        );
        Harness {
            url,
            blnk,
            upstream,
            state,
            shutdown,
            server,
            data_dir,
        }
    }

    /// Operator actions against the fake Blnk.
    pub fn operations(&self) -> Operations {
        let config = &self.state.config;
        Operations {
            blnk: BlnkClient::new(&self.blnk.url(), None, std::time::Duration::from_secs(5))
                .expect("client"),
            ledger_name: config.blnk.ledger_name.clone(),
            system: SystemBalances {
                revenue: config.blnk.revenue_balance.clone(),
                token_pool: config.blnk.token_pool_balance.clone(),
                world: config.blnk.world_balance.clone(),
            },
        }
    }

    /// Creates a customer and, when `funds` is given, tops its wallet up.
    pub async fn customer(
        &self,
        id: &str,
        billing: Billing,
        funds: Option<&str>,
    ) -> tollgate::customers::Created {
        let ops = self.operations();
        let customer = CustomerId::parse(id).expect("valid id");
        let created = ops
            .create_customer(&customer, None, billing)
            .await
            .expect("customer created");
        if let Some(funds) = funds {
            let amount = Usd::parse_positive(funds).expect("amount");
            ops.fund(
                &customer,
                amount,
                &format!("tg:topup:{id}:initial"),
                "topup",
            )
            .await
            .expect("topped up");
        }
        created
    }

    pub async fn prepaid(&self, id: &str, funds: &str) -> tollgate::customers::Created {
        self.customer(id, Billing::Prepaid, Some(funds)).await
    }

    pub async fn postpaid(&self, id: &str) -> tollgate::customers::Created {
        self.customer(id, Billing::Postpaid { credit_limit: None }, None)
            .await
    }

    /// An async-openai client pointed at tollgate for `customer`.
    pub fn openai(
        &self,
        customer: &str,
    ) -> async_openai::Client<async_openai::config::OpenAIConfig> {
        let config = async_openai::config::OpenAIConfig::new()
            .with_api_base(format!("{}/v1", self.url))
            .with_api_key("sk-client-test")
            .with_header("X-Customer-Id", customer)
            .expect("header");
        async_openai::Client::with_config(config)
    }

    /// A plain HTTP client for raw requests.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder().build().expect("client")
    }

    /// Stops the server and waits for its shutdown to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
    }
}
