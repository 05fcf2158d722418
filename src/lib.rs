//! tollgate: an OpenAI-compatible reverse proxy that meters every request and records its
//! cost in a Blnk double-entry ledger.
//!
//! The money path of a request: identify the customer, reserve the worst case with a Blnk
//! hold (prepaid and credit-limited accounts), forward the request byte for byte, read
//! `usage` from the response or the stream, price it exactly, record tokens and dollars in one
//! atomic bulk transaction through a durable outbox, and release the hold.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
pub mod customers;
pub mod error;
pub mod http_client;
pub mod ids;
pub mod invoice;
pub mod ledger;
pub mod limits;
mod listener;
pub mod money;
pub mod outbox;
pub mod pricing;
pub mod proxy;
pub mod reload;
pub mod secret;
pub mod server;
pub mod task;
pub mod telemetry;
pub mod usage;
