use std::collections::HashMap;
use std::time::Duration;

use rust_decimal::dec;

use super::*;
use crate::config::{DisconnectPolicy, Durability, LogFormat};

const PATH: &str = "/etc/tollgate.toml";

/// Sets every key to a value other than its default.
const FULL_FILE: &str = r#"
listen = "0.0.0.0:8081"
data_dir = "/var/lib/tollgate"
customer_header = "X-Tenant"
max_body_bytes = "2MiB"
max_header_bytes = "16KiB"
header_read_timeout = "10s"
body_idle_timeout = "20s"
body_read_timeout = "2m"
max_json_depth = 32
max_connections = 100
shutdown_grace = "45s"
pass_through_routes = ["/v1/files", "/v1/batches"]
client_keys = ["client-key-secret-123-a", "client-key-secret-123-b"]
client_keys_file = "/etc/tollgate/client-keys"
require_client_key = true

[log]
format = "json"
filter = "tollgate=debug,info"

[admin]
listen = "127.0.0.1:9191"
token = "admin-test-secret-123"
ledger_probe_interval = "2s"
ledger_stale_after = "20s"

[upstream]
url = "https://llm.example.com/v1/"
api_key = "sk-test-secret-123"
connect_timeout = "3s"
first_byte_timeout = "2m"
idle_timeout = 90
max_stream_duration = "1h"
on_client_disconnect = "stop"
drain_timeout = "30s"

[blnk]
url = "http://blnk.internal:5001/"
api_key = "blnk-test-secret-123"
request_timeout = "750ms"
ledger_name = "wallets"
revenue_balance = "@Revenue"
token_pool_balance = "@Pool"
world_balance = "@World"
account_cache_ttl = "0s"
account_cache_max_stale = "10m"
charge_timeout = "1s"
hold_expiry_margin = "1m"
fail_open_credit_limited = true
fail_open_postpaid = false

[pricing]
file = "/etc/tollgate/pricing.toml"
watch = false
watch_interval = "30s"
image_token_bound = 5000
audio_token_bound = 7000
context_token_bound = 9000
default_markup = 1.15

[outbox]
durability = "power"
retry_initial_delay = "2s"
retry_max_delay = "10m"
max_age = "7d"
done_retention = "2h"
"#;

/// Reads one field of a [`Config`] as text, for tables of cases.
type Field = fn(&Config) -> String;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_from(None, &env_of(pairs))
}

fn load_file(text: &str) -> Result<Config, ConfigError> {
    load_from(Some((Path::new(PATH), text)), &env_of(&[]))
}

fn load_file_env(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load_from(Some((Path::new(PATH), text)), &env_of(pairs))
}

fn debug(value: impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

fn client_keys(config: &Config) -> String {
    let keys: Vec<&str> = config
        .client_auth
        .keys
        .iter()
        .map(|key| key.expose())
        .collect();
    keys.join(",")
}

fn exposed(secret: Option<&crate::secret::Secret>) -> String {
    secret
        .map(|secret| secret.expose().to_owned())
        .unwrap_or_default()
}

#[test]
fn defaults_apply_without_file_or_env() {
    let config = load_env(&[]).expect("defaults are valid");

    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert_eq!(config.customer_header.as_str(), "x-customer-id");
    assert_eq!(config.max_body_bytes, 64 * 1024 * 1024);
    assert_eq!(config.max_header_bytes, 32 * 1024);
    assert_eq!(config.header_read_timeout, Duration::from_secs(30));
    assert_eq!(config.body_idle_timeout, Duration::from_secs(30));
    assert_eq!(config.body_read_timeout, Duration::from_secs(300));
    assert_eq!(config.max_json_depth, 64);
    assert_eq!(config.max_connections, 4096);
    assert_eq!(config.shutdown_grace, Duration::from_secs(30));
    assert!(config.pass_through_routes.is_empty());
    assert!(config.client_auth.keys.is_empty());
    assert!(config.client_auth.keys_file.is_none());
    assert!(!config.client_auth.require_key);

    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.filter, "info");

    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9090");
    assert!(config.admin.token.is_none());
    assert_eq!(config.admin.ledger_probe_interval, Duration::from_secs(5));
    assert_eq!(config.admin.ledger_stale_after, Duration::from_secs(15));

    let upstream = &config.upstream;
    assert_eq!(upstream.url, "https://api.openai.com");
    assert!(upstream.api_key.is_none());
    assert_eq!(upstream.connect_timeout, Duration::from_secs(10));
    assert_eq!(upstream.first_byte_timeout, Duration::from_secs(600));
    assert_eq!(upstream.idle_timeout, Duration::from_secs(300));
    assert_eq!(upstream.max_stream_duration, Duration::from_secs(1800));
    assert_eq!(upstream.on_client_disconnect, DisconnectPolicy::Drain);
    assert_eq!(upstream.drain_timeout, Duration::from_secs(300));

    let blnk = &config.blnk;
    assert_eq!(blnk.url, "http://127.0.0.1:5001");
    assert!(blnk.api_key.is_none());
    assert_eq!(blnk.request_timeout, Duration::from_secs(5));
    assert_eq!(blnk.ledger_name, "tollgate customer wallets");
    assert_eq!(blnk.revenue_balance, "@Revenue-USD");
    assert_eq!(blnk.token_pool_balance, "@TokenPool");
    assert_eq!(blnk.world_balance, "@World-USD");
    assert_eq!(blnk.account_cache_ttl, Duration::from_secs(30));
    assert_eq!(blnk.account_cache_max_stale, Duration::from_secs(300));
    assert_eq!(blnk.charge_timeout, Duration::from_secs(2));
    assert_eq!(blnk.hold_expiry_margin, Duration::from_secs(300));
    assert!(!blnk.fail_open_credit_limited);
    assert!(blnk.fail_open_postpaid);

    assert_eq!(config.pricing.file, PathBuf::from("pricing.toml"));
    assert!(config.pricing.watch);
    assert_eq!(config.pricing.watch_interval, Duration::from_secs(5));
    assert_eq!(config.pricing.image_token_bound, 50_000);
    assert_eq!(config.pricing.audio_token_bound, 20_000);
    assert_eq!(config.pricing.context_token_bound, 1_048_576);
    assert_eq!(config.pricing.default_markup, dec!(1));

    assert_eq!(config.outbox.durability, Durability::Process);
    assert_eq!(config.outbox.retry_initial_delay, Duration::from_secs(1));
    assert_eq!(config.outbox.retry_max_delay, Duration::from_secs(300));
    assert_eq!(config.outbox.max_age, Duration::from_secs(72 * 3600));
    assert_eq!(config.outbox.done_retention, Duration::from_secs(24 * 3600));
}

#[test]
fn full_file_sets_every_key() {
    let config = load_file(FULL_FILE).expect("full file is valid");

    assert_eq!(config.listen.to_string(), "0.0.0.0:8081");
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/tollgate"));
    assert_eq!(config.customer_header.as_str(), "x-tenant");
    assert_eq!(config.max_body_bytes, 2 * 1024 * 1024);
    assert_eq!(config.max_header_bytes, 16 * 1024);
    assert_eq!(config.header_read_timeout, Duration::from_secs(10));
    assert_eq!(config.body_idle_timeout, Duration::from_secs(20));
    assert_eq!(config.body_read_timeout, Duration::from_secs(120));
    assert_eq!(config.max_json_depth, 32);
    assert_eq!(config.max_connections, 100);
    assert_eq!(config.shutdown_grace, Duration::from_secs(45));
    assert_eq!(config.pass_through_routes, ["/v1/files", "/v1/batches"]);
    assert_eq!(
        client_keys(&config),
        "client-key-secret-123-a,client-key-secret-123-b"
    );
    assert_eq!(
        config.client_auth.keys_file,
        Some(PathBuf::from("/etc/tollgate/client-keys"))
    );
    assert!(config.client_auth.require_key);

    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.filter, "tollgate=debug,info");

    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9191");
    assert_eq!(config.admin.ledger_probe_interval, Duration::from_secs(2));
    assert_eq!(config.admin.ledger_stale_after, Duration::from_secs(20));
    assert_eq!(
        exposed(config.admin.token.as_ref()),
        "admin-test-secret-123"
    );

    let upstream = &config.upstream;
    assert_eq!(upstream.url, "https://llm.example.com");
    assert_eq!(exposed(upstream.api_key.as_ref()), "sk-test-secret-123");
    assert_eq!(upstream.connect_timeout, Duration::from_secs(3));
    assert_eq!(upstream.first_byte_timeout, Duration::from_secs(120));
    assert_eq!(upstream.idle_timeout, Duration::from_secs(90));
    assert_eq!(upstream.max_stream_duration, Duration::from_secs(3600));
    assert_eq!(upstream.on_client_disconnect, DisconnectPolicy::Stop);
    assert_eq!(upstream.drain_timeout, Duration::from_secs(30));

    let blnk = &config.blnk;
    assert_eq!(blnk.url, "http://blnk.internal:5001");
    assert_eq!(exposed(blnk.api_key.as_ref()), "blnk-test-secret-123");
    assert_eq!(blnk.request_timeout, Duration::from_millis(750));
    assert_eq!(blnk.ledger_name, "wallets");
    assert_eq!(blnk.revenue_balance, "@Revenue");
    assert_eq!(blnk.token_pool_balance, "@Pool");
    assert_eq!(blnk.world_balance, "@World");
    assert_eq!(blnk.account_cache_ttl, Duration::ZERO);
    assert_eq!(blnk.account_cache_max_stale, Duration::from_secs(600));
    assert_eq!(blnk.charge_timeout, Duration::from_secs(1));
    assert_eq!(blnk.hold_expiry_margin, Duration::from_secs(60));
    assert!(blnk.fail_open_credit_limited);
    assert!(!blnk.fail_open_postpaid);

    assert_eq!(
        config.pricing.file,
        PathBuf::from("/etc/tollgate/pricing.toml")
    );
    assert!(!config.pricing.watch);
    assert_eq!(config.pricing.watch_interval, Duration::from_secs(30));
    assert_eq!(config.pricing.image_token_bound, 5000);
    assert_eq!(config.pricing.audio_token_bound, 7000);
    assert_eq!(config.pricing.context_token_bound, 9000);
    assert_eq!(config.pricing.default_markup, dec!(1.15));

    assert_eq!(config.outbox.durability, Durability::Power);
    assert_eq!(config.outbox.retry_initial_delay, Duration::from_secs(2));
    assert_eq!(config.outbox.retry_max_delay, Duration::from_secs(600));
    assert_eq!(config.outbox.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(config.outbox.done_retention, Duration::from_secs(2 * 3600));
}

#[test]
fn full_file_names_every_key() {
    let file = ConfigFile::parse(Path::new(PATH), FULL_FILE).expect("full file is valid");
    for key in KEYS {
        assert!(file.value(key).is_some(), "{} is missing", key.path());
    }
}

/// One override per variable: the variable, its value, the field it must reach and the
/// field's expected value.
#[rustfmt::skip]
const ENV_CASES: &[(&str, &str, Field, &str)] = &[
    ("TOLLGATE_LISTEN", "0.0.0.0:80", |c| c.listen.to_string(), "0.0.0.0:80"),
    ("TOLLGATE_DATA_DIR", "/srv/data", |c| debug(&c.data_dir), "\"/srv/data\""),
    ("TOLLGATE_CUSTOMER_HEADER", "X-Org", |c| c.customer_header.to_string(), "x-org"),
    ("TOLLGATE_MAX_BODY_BYTES", "1KiB", |c| c.max_body_bytes.to_string(), "1024"),
    ("TOLLGATE_MAX_HEADER_BYTES", "2KiB", |c| c.max_header_bytes.to_string(), "2048"),
    ("TOLLGATE_HEADER_READ_TIMEOUT", "250ms", |c| debug(c.header_read_timeout), "250ms"),
    ("TOLLGATE_BODY_IDLE_TIMEOUT", "2s", |c| debug(c.body_idle_timeout), "2s"),
    ("TOLLGATE_BODY_READ_TIMEOUT", "90s", |c| debug(c.body_read_timeout), "90s"),
    ("TOLLGATE_MAX_JSON_DEPTH", "8", |c| c.max_json_depth.to_string(), "8"),
    ("TOLLGATE_CLIENT_KEYS", " key-one-0123456789, ,key-two-0123456789 ", client_keys, "key-one-0123456789,key-two-0123456789"),
    ("TOLLGATE_CLIENT_KEYS_FILE", "/k", |c| debug(&c.client_auth.keys_file), "Some(\"/k\")"),
    ("TOLLGATE_REQUIRE_CLIENT_KEY", "true", |c| debug(c.client_auth.require_key), "true"),
    ("TOLLGATE_MAX_CONNECTIONS", "8", |c| c.max_connections.to_string(), "8"),
    ("TOLLGATE_SHUTDOWN_GRACE", "0", |c| debug(c.shutdown_grace), "0ns"),
    ("TOLLGATE_PASS_THROUGH_ROUTES", "/a,/b", |c| c.pass_through_routes.join(" "), "/a /b"),
    ("TOLLGATE_LOG_FORMAT", "json", |c| debug(c.log.format), "Json"),
    ("TOLLGATE_LOG_FILTER", "debug", |c| c.log.filter.clone(), "debug"),
    ("TOLLGATE_ADMIN_LISTEN", "[::1]:9000", |c| c.admin.listen.to_string(), "[::1]:9000"),
    ("TOLLGATE_ADMIN_TOKEN", "tok-1", |c| exposed(c.admin.token.as_ref()), "tok-1"),
    ("TOLLGATE_ADMIN_LEDGER_PROBE_INTERVAL", "250ms", |c| debug(c.admin.ledger_probe_interval), "250ms"),
    ("TOLLGATE_ADMIN_LEDGER_STALE_AFTER", "3s", |c| debug(c.admin.ledger_stale_after), "3s"),
    ("TOLLGATE_UPSTREAM_URL", "http://u:1/v1", |c| c.upstream.url.clone(), "http://u:1"),
    ("TOLLGATE_UPSTREAM_API_KEY", "sk-1", |c| exposed(c.upstream.api_key.as_ref()), "sk-1"),
    ("TOLLGATE_UPSTREAM_CONNECT_TIMEOUT", "1s", |c| debug(c.upstream.connect_timeout), "1s"),
    ("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT", "2s", |c| debug(c.upstream.first_byte_timeout), "2s"),
    ("TOLLGATE_UPSTREAM_IDLE_TIMEOUT", "3s", |c| debug(c.upstream.idle_timeout), "3s"),
    ("TOLLGATE_UPSTREAM_MAX_STREAM_DURATION", "4s", |c| debug(c.upstream.max_stream_duration), "4s"),
    ("TOLLGATE_UPSTREAM_ON_CLIENT_DISCONNECT", "stop", |c| debug(c.upstream.on_client_disconnect), "Stop"),
    ("TOLLGATE_UPSTREAM_DRAIN_TIMEOUT", "5s", |c| debug(c.upstream.drain_timeout), "5s"),
    ("TOLLGATE_BLNK_URL", "https://b/", |c| c.blnk.url.clone(), "https://b"),
    ("TOLLGATE_BLNK_API_KEY", "bk-1", |c| exposed(c.blnk.api_key.as_ref()), "bk-1"),
    ("TOLLGATE_BLNK_REQUEST_TIMEOUT", "6s", |c| debug(c.blnk.request_timeout), "6s"),
    ("TOLLGATE_BLNK_LEDGER_NAME", "L", |c| c.blnk.ledger_name.clone(), "L"),
    ("TOLLGATE_BLNK_REVENUE_BALANCE", "@R", |c| c.blnk.revenue_balance.clone(), "@R"),
    ("TOLLGATE_BLNK_TOKEN_POOL_BALANCE", "@T", |c| c.blnk.token_pool_balance.clone(), "@T"),
    ("TOLLGATE_BLNK_WORLD_BALANCE", "@W", |c| c.blnk.world_balance.clone(), "@W"),
    ("TOLLGATE_BLNK_ACCOUNT_CACHE_TTL", "7s", |c| debug(c.blnk.account_cache_ttl), "7s"),
    ("TOLLGATE_BLNK_ACCOUNT_CACHE_MAX_STALE", "8s", |c| debug(c.blnk.account_cache_max_stale), "8s"),
    ("TOLLGATE_BLNK_CHARGE_TIMEOUT", "9s", |c| debug(c.blnk.charge_timeout), "9s"),
    ("TOLLGATE_BLNK_HOLD_EXPIRY_MARGIN", "10s", |c| debug(c.blnk.hold_expiry_margin), "10s"),
    ("TOLLGATE_BLNK_FAIL_OPEN_CREDIT_LIMITED", "true", |c| debug(c.blnk.fail_open_credit_limited), "true"),
    ("TOLLGATE_BLNK_FAIL_OPEN_POSTPAID", "false", |c| debug(c.blnk.fail_open_postpaid), "false"),
    ("TOLLGATE_PRICING_FILE", "p.toml", |c| debug(&c.pricing.file), "\"p.toml\""),
    ("TOLLGATE_PRICING_WATCH", "0", |c| debug(c.pricing.watch), "false"),
    ("TOLLGATE_PRICING_WATCH_INTERVAL", "2s", |c| debug(c.pricing.watch_interval), "2s"),
    ("TOLLGATE_PRICING_IMAGE_TOKEN_BOUND", "11", |c| debug(c.pricing.image_token_bound), "11"),
    ("TOLLGATE_PRICING_AUDIO_TOKEN_BOUND", "12", |c| debug(c.pricing.audio_token_bound), "12"),
    ("TOLLGATE_PRICING_CONTEXT_TOKEN_BOUND", "13", |c| debug(c.pricing.context_token_bound), "13"),
    ("TOLLGATE_PRICING_DEFAULT_MARKUP", "1.30", |c| c.pricing.default_markup.to_string(), "1.30"),
    ("TOLLGATE_OUTBOX_DURABILITY", "power", |c| debug(c.outbox.durability), "Power"),
    ("TOLLGATE_OUTBOX_RETRY_INITIAL_DELAY", "250ms", |c| debug(c.outbox.retry_initial_delay), "250ms"),
    ("TOLLGATE_OUTBOX_RETRY_MAX_DELAY", "1h", |c| debug(c.outbox.retry_max_delay), "3600s"),
    ("TOLLGATE_OUTBOX_MAX_AGE", "2d", |c| debug(c.outbox.max_age), "172800s"),
    ("TOLLGATE_OUTBOX_DONE_RETENTION", "90m", |c| debug(c.outbox.done_retention), "5400s"),
    ("TOLLGATE_PRICING", "alias.toml", |c| debug(&c.pricing.file), "\"alias.toml\""),
    ("OPENAI_API_KEY", "sk-alias", |c| exposed(c.upstream.api_key.as_ref()), "sk-alias"),
    ("BLNK_URL", "http://blnk:5001/", |c| c.blnk.url.clone(), "http://blnk:5001"),
    ("BLNK_API_KEY", "bk-alias", |c| exposed(c.blnk.api_key.as_ref()), "bk-alias"),
];

/// Variables that need the upstream key as well, because client keys require it.
const NEED_UPSTREAM_KEY: [&str; 3] = [
    "TOLLGATE_CLIENT_KEYS",
    "TOLLGATE_CLIENT_KEYS_FILE",
    "TOLLGATE_REQUIRE_CLIENT_KEY",
];

#[test]
fn env_overrides_each_key() {
    for &(var, value, field, expected) in ENV_CASES {
        let mut pairs = vec![(var, value)];
        if NEED_UPSTREAM_KEY.contains(&var) {
            pairs.push(("OPENAI_API_KEY", "sk-operator"));
        }
        let config = load_env(&pairs).unwrap_or_else(|error| panic!("{var}: {error}"));
        assert_eq!(field(&config), expected, "{var}={value}");
    }
}

#[test]
fn env_cases_cover_every_variable() {
    for key in KEYS {
        let names = std::iter::once(key.env_var()).chain(key.alias.map(str::to_owned));
        for name in names {
            let covered = ENV_CASES.iter().any(|case| case.0 == name);
            assert!(covered, "{name} has no case");
        }
    }
}

#[test]
fn env_overrides_the_file() {
    let config =
        load_file_env(FULL_FILE, &[("TOLLGATE_UPSTREAM_CONNECT_TIMEOUT", "7s")]).expect("valid");
    assert_eq!(config.upstream.connect_timeout, Duration::from_secs(7));
    assert_eq!(config.upstream.idle_timeout, Duration::from_secs(90));
}

#[test]
fn tollgate_name_wins_over_alias() {
    // "http://..." is a valid path, secret and URL alike.
    let cases: [(&str, &str, Field); 4] = [
        ("TOLLGATE_PRICING_FILE", "TOLLGATE_PRICING", |c| {
            debug(&c.pricing.file)
        }),
        ("TOLLGATE_UPSTREAM_API_KEY", "OPENAI_API_KEY", |c| {
            exposed(c.upstream.api_key.as_ref())
        }),
        ("TOLLGATE_BLNK_URL", "BLNK_URL", |c| c.blnk.url.clone()),
        ("TOLLGATE_BLNK_API_KEY", "BLNK_API_KEY", |c| {
            exposed(c.blnk.api_key.as_ref())
        }),
    ];
    for (primary, alias, field) in cases {
        let pairs = [(primary, "http://primary"), (alias, "http://alias")];
        let config = load_env(&pairs).expect("valid");
        let value = field(&config);
        assert!(value.contains("primary"), "{primary} and {alias}: {value}");
    }
}

#[test]
fn alias_wins_over_file() {
    let config = load_file_env(FULL_FILE, &[("OPENAI_API_KEY", "sk-from-env")]).expect("valid");
    assert_eq!(exposed(config.upstream.api_key.as_ref()), "sk-from-env");
}

#[test]
fn empty_env_value_counts_as_unset() {
    let pairs = [
        ("TOLLGATE_LISTEN", ""),
        ("TOLLGATE_UPSTREAM_API_KEY", ""),
        ("OPENAI_API_KEY", "sk-alias"),
    ];
    let config = load_file_env(FULL_FILE, &pairs).expect("valid");
    assert_eq!(config.listen.to_string(), "0.0.0.0:8081");
    assert_eq!(exposed(config.upstream.api_key.as_ref()), "sk-alias");
}

#[test]
fn unknown_file_key_is_named() {
    let cases = [
        (
            "[upstream]\nurll = \"x\"\n",
            "unknown key \"upstream.urll\" in /etc/tollgate.toml at line 2",
        ),
        (
            "lisen = \"x\"\n",
            "unknown key \"lisen\" in /etc/tollgate.toml at line 1",
        ),
        ("[upstreams]\nurl = \"x\"\n", "unknown key \"upstreams\""),
        (
            "[upstream.extra]\nurl = \"x\"\n",
            "unknown key \"upstream.extra\"",
        ),
        (
            "upstream = \"x\"\n",
            "\"upstream\" in /etc/tollgate.toml at line 1 must be a table",
        ),
    ];
    for (text, expected) in cases {
        let error = load_file(text).expect_err(text).to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}

#[test]
fn unknown_key_lists_accepted_keys() {
    let error = load_file("[outbox]\nmax_ag = \"1d\"\n")
        .expect_err("unknown key")
        .to_string();
    assert!(
        error.contains("[outbox] accepts durability, retry_initial_delay"),
        "{error}"
    );
}

#[test]
fn unknown_tollgate_variable_is_rejected() {
    let error = check_var_names(["PATH", "TOLLGATE_UPSTREAM_URLL"]).expect_err("unknown");
    assert!(
        matches!(&error, ConfigError::UnknownVariable { name } if name == "TOLLGATE_UPSTREAM_URLL"),
        "{error}"
    );
    assert!(error.to_string().contains("TOLLGATE_UPSTREAM_URLL"));
}

#[test]
fn known_and_reserved_variables_pass() {
    let names = [
        "TOLLGATE_CONFIG",
        "TOLLGATE_CLIENT_KEYS",
        "TOLLGATE_CLIENT_KEYS_FILE",
        "TOLLGATE_PRICING",
        "TOLLGATE_LISTEN",
        "TOLLGATE_BLNK_CHARGE_TIMEOUT",
        "OPENAI_API_KEY",
        "BLNK_URL",
        "HOME",
    ];
    assert!(check_var_names(names).is_ok());
}

#[test]
fn invalid_values_name_key_and_source() {
    let cases = [
        (
            "TOLLGATE_UPSTREAM_CONNECT_TIMEOUT",
            "abc",
            "invalid value \"abc\" for upstream.connect_timeout \
             (from TOLLGATE_UPSTREAM_CONNECT_TIMEOUT): expected a duration such as 500ms, 10s or 5m",
        ),
        (
            "TOLLGATE_MAX_BODY_BYTES",
            "64MB",
            "invalid value \"64MB\" for max_body_bytes (from TOLLGATE_MAX_BODY_BYTES): \
             expected a size in bytes",
        ),
        ("TOLLGATE_MAX_BODY_BYTES", "512", "of at least 1024 bytes"),
        (
            "TOLLGATE_PRICING_WATCH",
            "maybe",
            "invalid value \"maybe\" for pricing.watch (from TOLLGATE_PRICING_WATCH): \
             expected true or false",
        ),
        (
            "BLNK_URL",
            "blnk:5001",
            "invalid value \"blnk:5001\" for blnk.url (from BLNK_URL): expected an http or https URL",
        ),
        (
            "TOLLGATE_CUSTOMER_HEADER",
            "Authorization",
            "for customer_header",
        ),
        (
            "TOLLGATE_PASS_THROUGH_ROUTES",
            "v1/files",
            "for pass_through_routes",
        ),
        (
            "TOLLGATE_PRICING_DEFAULT_MARKUP",
            "0",
            "for pricing.default_markup",
        ),
        (
            "TOLLGATE_BLNK_CHARGE_TIMEOUT",
            "0s",
            "expected a duration greater than zero",
        ),
        (
            "TOLLGATE_ADMIN_LISTEN",
            "localhost:9090",
            "for admin.listen",
        ),
        ("TOLLGATE_MAX_CONNECTIONS", "0", "for max_connections"),
        ("TOLLGATE_MAX_JSON_DEPTH", "0", "for max_json_depth"),
        ("TOLLGATE_MAX_HEADER_BYTES", "100", "for max_header_bytes"),
    ];
    for (var, value, expected) in cases {
        let error = load_env(&[(var, value)]).expect_err(var).to_string();
        assert!(error.contains(expected), "{var}={value}: {error}");
    }
}

#[test]
fn invalid_file_value_names_file_and_line() {
    let text = "[upstream]\nurl = \"https://x\"\nconnect_timeout = \"abc\"\n";
    let error = load_file(text).expect_err("bad duration").to_string();
    assert_eq!(
        error,
        "invalid value \"abc\" for upstream.connect_timeout (from /etc/tollgate.toml at line 3): \
         expected a duration such as 500ms, 10s or 5m"
    );
}

#[test]
fn invalid_file_types_are_rejected() {
    let cases = [
        (
            "max_connections = -1\n",
            "invalid value -1 for max_connections",
        ),
        ("listen = 8080\n", "invalid value 8080 for listen"),
        (
            "[pricing]\nwatch = \"yes\"\n",
            "invalid value \"yes\" for pricing.watch",
        ),
        (
            "[blnk]\nurl = [\"http://x\"]\n",
            "invalid value [...] for blnk.url",
        ),
        ("[log]\nformat = \"yaml\"\n", "expected text or json"),
    ];
    for (text, expected) in cases {
        let error = load_file(text).expect_err(text).to_string();
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}

#[test]
fn trailing_v1_is_stripped() {
    let cases = [
        ("https://api.openai.com/v1", "https://api.openai.com"),
        ("https://api.openai.com/v1/", "https://api.openai.com"),
        (
            "http://127.0.0.1:4000/openai/v1",
            "http://127.0.0.1:4000/openai",
        ),
    ];
    for (url, expected) in cases {
        let from_env = load_env(&[("TOLLGATE_UPSTREAM_URL", url)]).expect("valid");
        assert_eq!(from_env.upstream.url, expected, "env {url}");

        let from_file = load_file(&format!("[upstream]\nurl = \"{url}\"\n")).expect("valid");
        assert_eq!(from_file.upstream.url, expected, "file {url}");
    }
}

#[test]
fn retry_initial_delay_above_max_is_rejected() {
    let pairs = [("TOLLGATE_OUTBOX_RETRY_INITIAL_DELAY", "10m")];
    let error = load_env(&pairs).expect_err("initial above max").to_string();
    assert!(
        error.contains(
            "outbox.retry_initial_delay (600s, from TOLLGATE_OUTBOX_RETRY_INITIAL_DELAY)"
        ),
        "{error}"
    );
    assert!(
        error.contains("outbox.retry_max_delay (300s, from the default)"),
        "{error}"
    );

    let equal = [
        ("TOLLGATE_OUTBOX_RETRY_INITIAL_DELAY", "5m"),
        ("TOLLGATE_OUTBOX_RETRY_MAX_DELAY", "300s"),
    ];
    assert!(load_env(&equal).is_ok());
}

#[test]
fn syntax_error_reports_position() {
    let error = load_file("[log]\nformat = \"json\nfilter = 1\n").expect_err("bad TOML");
    let ConfigError::Syntax { line, .. } = &error else {
        panic!("expected a syntax error, got {error}");
    };
    assert_eq!(*line, 2);
    assert!(
        error
            .to_string()
            .starts_with("invalid TOML in /etc/tollgate.toml at line 2")
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let pairs = [
        ("TOLLGATE_ADMIN_TOKEN", "admin-test-secret-123"),
        ("OPENAI_API_KEY", "sk-test-secret-123"),
        ("BLNK_API_KEY", "blnk-test-secret-123"),
    ];
    let config = load_env(&pairs).expect("valid");
    let debug = format!("{config:?}");
    assert!(!debug.contains("secret-123"), "{debug}");

    let from_file = load_file(FULL_FILE).expect("valid");
    let debug = format!("{from_file:?}");
    assert!(!debug.contains("secret-123"), "{debug}");
}

#[test]
fn secrets_stay_out_of_errors() {
    let env_cases: [&[(&str, &str)]; 4] = [
        &[("TOLLGATE_ADMIN_TOKEN", "admin test-secret-123")],
        &[("OPENAI_API_KEY", "sk-test-secret-123\n")],
        &[("BLNK_API_KEY", "blnk-tést-secret-123")],
        &[
            ("OPENAI_API_KEY", "sk-test-secret-123"),
            ("TOLLGATE_LISTEN", "bad"),
        ],
    ];
    for pairs in env_cases {
        let error = load_env(pairs).expect_err("invalid");
        assert_secret_absent(&error);
    }

    let file_cases = [
        "[upstream]\napi_key = sk-test-secret-123\n",
        "[upstream]\napi_key = \"sk-test-secret-123\n",
        "[upstream]\napi_key = \"sk-test secret-123\"\n",
        "[admin]\ntoken = [\"admin-test-secret-123\"]\n",
        "[blnk]\napi_keyy = \"blnk-test-secret-123\"\n",
        "api_key = \"sk-test-secret-123\"\n",
        "[upstream]\nurl = \"https://user:sk-test-secret-123@example.com\"\n",
    ];
    for text in file_cases {
        let error = load_file(text).expect_err(text);
        assert_secret_absent(&error);
    }
}

fn assert_secret_absent(error: &ConfigError) {
    let message = error.to_string();
    assert!(!message.contains("secret-123"), "{message}");
    let debug = format!("{error:?}");
    assert!(!debug.contains("secret-123"), "{debug}");
}

#[test]
fn invalid_secret_names_key_and_source() {
    let error = load_env(&[("BLNK_API_KEY", "two words")]).expect_err("invalid");
    assert_eq!(
        error.to_string(),
        "invalid value for blnk.api_key (from BLNK_API_KEY): expected a non-empty string of \
         visible ASCII characters without spaces"
    );
}

#[test]
fn unreadable_file_names_path() {
    let path = Path::new("/nonexistent/tollgate.toml");
    let error = read_file(path).expect_err("missing file").to_string();
    assert!(error.contains("/nonexistent/tollgate.toml"), "{error}");
}

#[test]
fn client_keys_need_the_upstream_key() {
    let cases: [(&str, &str); 3] = [
        ("TOLLGATE_CLIENT_KEYS", "client-key-secret-123"),
        ("TOLLGATE_CLIENT_KEYS_FILE", "/etc/tollgate/client-keys"),
        ("TOLLGATE_REQUIRE_CLIENT_KEY", "true"),
    ];
    for (var, value) in cases {
        let error = load_env(&[(var, value)]).expect_err(var);
        assert!(
            matches!(error, ConfigError::ClientKeysWithoutUpstreamKey { .. }),
            "{var}: {error}"
        );
        let message = error.to_string();
        assert!(message.contains("OPENAI_API_KEY"), "{message}");
        assert!(message.contains(&format!("from {var}")), "{message}");
        assert!(!message.contains("secret-123"), "{message}");

        let with_key = load_env(&[(var, value), ("OPENAI_API_KEY", "sk-operator")]);
        assert!(with_key.is_ok(), "{var} with OPENAI_API_KEY");
    }
}

#[test]
fn invalid_client_keys_stay_secret() {
    let cases = [
        "secret-123",
        "client-key-secret-123,bad key secret-123",
        "tg-0123456789abcdef-secret-123",
        " , ",
    ];
    for value in cases {
        let pairs = [
            ("TOLLGATE_CLIENT_KEYS", value),
            ("OPENAI_API_KEY", "sk-operator"),
        ];
        let error = load_env(&pairs).expect_err(value);
        let message = error.to_string();
        assert!(
            message.starts_with("invalid value for client_keys (from TOLLGATE_CLIENT_KEYS)"),
            "{value:?}: {message}"
        );
        assert_secret_absent(&error);
    }

    let text = "client_keys = [\"client-key-secret-123\", 7]\n[upstream]\napi_key = \"sk-1\"\n";
    let error = load_file(text).expect_err("number in key list");
    assert_secret_absent(&error);
}
