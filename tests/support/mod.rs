pub mod blnk;
pub mod harness;
