//! Hardening of the proxy listener: every size, depth, time and connection limit rejects
//! with its own clear error, no secret in logs, errors or Debug output, and property tests
//! that feed the request, response and price-file parsers arbitrary input.

mod support;

#[path = "hardening/connections.rs"]
mod connections;
#[path = "hardening/limits.rs"]
mod limits;
#[path = "hardening/parsers.rs"]
mod parsers;
#[path = "hardening/secrets.rs"]
mod secrets;
#[path = "hardening/timeouts.rs"]
mod timeouts;
