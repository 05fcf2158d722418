//! A cheap pre-scan of a request body for the nesting depth of JSON arrays and objects,
//! run before any parser reads the body.

use memchr::memchr2;

/// The body nests arrays and objects deeper than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JSON nesting deeper than {max_depth} levels")]
pub struct DepthExceeded {
    pub max_depth: usize,
}

/// Fails when `body` opens more than `max_depth` arrays and objects inside one another.
///
/// Brackets inside strings do not count, and escaped quotes do not end a string. This is a
/// depth check, not a validator: malformed JSON may pass it and is rejected by the parser
/// afterwards. It reads each byte at most once and stops at the first level past the limit.
pub fn check_json_depth(body: &[u8], max_depth: usize) -> Result<(), DepthExceeded> {
    let mut depth = 0usize;
    let mut at = 0;
    while at < body.len() {
        match body[at] {
            b'"' => {
                at = string_end(body, at + 1);
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(DepthExceeded { max_depth });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// Returns the index after the closing quote of the string whose content starts at `from`,
/// or the body's length when the string is not closed. Long strings such as base64 images
/// are skipped with a vectorised search.
fn string_end(body: &[u8], mut from: usize) -> usize {
    while let Some(offset) = memchr2(b'"', b'\\', &body[from.min(body.len())..]) {
        let found = from + offset;
        if body[found] == b'"' {
            return found + 1;
        }
        // A backslash escapes the next byte, which may be a quote or another backslash.
        from = found + 2;
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_cases() {
        let cases: [(&str, usize, bool); 12] = [
            ("{}", 1, true),
            ("{}", 0, false),
            (r#"{"a":[1,{"b":2}]}"#, 3, true),
            (r#"{"a":[1,{"b":2}]}"#, 2, false),
            (r#"{"a":"[[[[[[[[["}"#, 1, true),
            (r#"{"a":"\"[[[[["}"#, 1, true),
            (r#"{"a":"\\","b":[[1]]}"#, 3, true),
            (r#"{"a":"\\","b":[[1]]}"#, 2, false),
            (r#"{"a":"unterminated [[[["#, 1, true),
            ("[]]]]][[", 2, true),
            ("", 0, true),
            ("not json at all", 0, true),
        ];
        for (body, max_depth, ok) in cases {
            let result = check_json_depth(body.as_bytes(), max_depth);
            assert_eq!(result.is_ok(), ok, "{body} with max {max_depth}");
        }
    }

    #[test]
    fn limit_is_inclusive() {
        assert!(check_json_depth(nested(64).as_bytes(), 64).is_ok());
        assert_eq!(
            check_json_depth(nested(65).as_bytes(), 64),
            Err(DepthExceeded { max_depth: 64 })
        );
    }

    #[test]
    fn deep_input_stops_early() {
        let body = "[".repeat(1_000_000);
        assert!(check_json_depth(body.as_bytes(), 64).is_err());
    }

    #[test]
    fn trailing_backslash_does_not_overrun() {
        for body in [r#""\"#, r#"["\"#, "\"abc\\"] {
            assert!(check_json_depth(body.as_bytes(), 1).is_ok(), "{body}");
        }
    }
}
