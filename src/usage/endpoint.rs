//! The OpenAI endpoints tollgate meters.

/// One metered OpenAI endpoint. Each one reports usage in its own JSON shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
}

impl Endpoint {
    /// Every metered endpoint, in a fixed order.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Responses,
    ];

    /// Returns the request path on the OpenAI API, including the `/v1` prefix.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Responses => "/v1/responses",
        }
    }

    /// Maps a request path to its endpoint.
    ///
    /// Accepts the `/v1` form and the bare form (`/chat/completions`), which clients send
    /// when their base URL lacks `/v1`, each with or without one trailing slash. The path
    /// must not carry a query string.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.strip_suffix('/').unwrap_or(path);
        let path = path.strip_prefix("/v1").unwrap_or(path);
        Endpoint::ALL
            .into_iter()
            .find(|endpoint| endpoint.path().strip_prefix("/v1") == Some(path))
    }

    /// Returns the name used in ledger metadata and logs, such as `chat.completions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_back_to_endpoints() {
        let cases = [
            ("/v1/chat/completions", Some(Endpoint::ChatCompletions)),
            ("/chat/completions", Some(Endpoint::ChatCompletions)),
            ("/v1/chat/completions/", Some(Endpoint::ChatCompletions)),
            ("/v1/completions", Some(Endpoint::Completions)),
            ("/v1/embeddings", Some(Endpoint::Embeddings)),
            ("/responses", Some(Endpoint::Responses)),
            ("/v1/responses", Some(Endpoint::Responses)),
            ("/v1/models", None),
            ("/v1", None),
            ("", None),
            ("/v1/responses/resp_123", None),
            ("/v1/chat/completions?x=1", None),
        ];
        for (path, expected) in cases {
            assert_eq!(Endpoint::from_path(path), expected, "path {path:?}");
        }
    }

    #[test]
    fn every_endpoint_round_trips_its_path() {
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::from_path(endpoint.path()), Some(endpoint));
        }
    }

    #[test]
    fn metadata_names_are_dotted() {
        let names = Endpoint::ALL.map(Endpoint::as_str);
        assert_eq!(
            names,
            ["chat.completions", "completions", "embeddings", "responses"]
        );
    }
}
