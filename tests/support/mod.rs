//! Shared test support: the fake Blnk, the tollgate harness and the acceptance cases.
//! Each test crate uses a different part, so unused items are expected.
#![allow(dead_code)]

pub mod blnk;
pub mod cases;
pub mod harness;
pub mod stream_server;
