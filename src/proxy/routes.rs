//! The axum route patterns of the operator's `pass_through_routes`.
//!
//! A listed path passes through together with every path below it, so that listing
//! `/v1/files` also lets `GET /v1/files/{id}` and `DELETE /v1/files/{id}` through. Listing a
//! metered path such as `/v1/responses` keeps `POST /v1/responses` metered and lets the
//! other methods and the paths below it (`GET /v1/responses/{id}`) through. The list comes
//! from configuration, and axum panics on a duplicate or conflicting route, so the patterns
//! are cleaned here before the router is built.

/// Paths whose sub-paths the proxy routes itself (`/v1/models/{model}`), so a catch-all
/// below them would conflict.
const SERVED_WITH_SUB_PATHS: [&str; 1] = ["/v1/models"];

/// Builds the route patterns for `paths`: each path and a catch-all below it.
///
/// A trailing slash is dropped, and a path below another listed path adds nothing. A path
/// with `{` or `}` (axum's pattern syntax) is skipped with a warning.
pub fn pass_through_patterns(paths: &[String]) -> Vec<String> {
    let mut prefixes: Vec<&str> = Vec::new();
    for path in paths {
        if path.contains(['{', '}']) {
            tracing::warn!(path = %path, "pass_through_routes entry skipped: it contains {{ or }}; list the path without placeholders, because its sub-paths pass through too");
            continue;
        }
        let path = normalize(path);
        if !prefixes.contains(&path) {
            prefixes.push(path);
        }
    }
    prefixes.sort_by_key(|path| path.len());

    let mut roots: Vec<&str> = Vec::new();
    for path in prefixes {
        if !roots.iter().any(|root| covers(root, path)) {
            roots.push(path);
        }
    }
    roots.into_iter().flat_map(patterns_of).collect()
}

/// Drops trailing slashes, keeping `/` for the root.
fn normalize(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

/// Returns whether `prefix` and the paths below it include `path`.
fn covers(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Returns the path and a catch-all below it. A path the proxy also serves keeps its own
/// methods, because axum sends only the other methods to a route added with `any`.
fn patterns_of(path: &str) -> Vec<String> {
    let mut patterns = vec![path.to_string()];
    if !SERVED_WITH_SUB_PATHS.contains(&path) {
        let below = if path == "/" { "" } else { path };
        patterns.push(format!("{below}/{{*rest}}"));
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(paths: &[&str]) -> Vec<String> {
        let paths: Vec<String> = paths.iter().map(|path| path.to_string()).collect();
        pass_through_patterns(&paths)
    }

    #[test]
    fn listed_paths_cover_their_sub_paths() {
        let cases: [(&[&str], &[&str]); 8] = [
            (&[], &[]),
            (&["/v1/files"], &["/v1/files", "/v1/files/{*rest}"]),
            (
                &["/v1/files", "/v1/moderations"],
                &[
                    "/v1/files",
                    "/v1/files/{*rest}",
                    "/v1/moderations",
                    "/v1/moderations/{*rest}",
                ],
            ),
            (
                &["/v1/files/", "/v1/files"],
                &["/v1/files", "/v1/files/{*rest}"],
            ),
            (
                &["/v1/files/file-1", "/v1/files"],
                &["/v1/files", "/v1/files/{*rest}"],
            ),
            (
                &["/v1/responses"],
                &["/v1/responses", "/v1/responses/{*rest}"],
            ),
            (&["/v1/models"], &["/v1/models"]),
            (&["/"], &["/", "/{*rest}"]),
        ];
        for (listed, expected) in cases {
            assert_eq!(patterns(listed), expected, "listed {listed:?}");
        }
    }

    #[test]
    fn similar_prefixes_stay_separate() {
        let listed = patterns(&["/v1/file", "/v1/files"]);
        assert_eq!(
            listed,
            [
                "/v1/file",
                "/v1/file/{*rest}",
                "/v1/files",
                "/v1/files/{*rest}"
            ]
        );
    }

    #[test]
    fn placeholders_are_skipped() {
        assert_eq!(
            patterns(&["/v1/files/{id}", "/v1/x}"]),
            Vec::<String>::new()
        );
    }
}
