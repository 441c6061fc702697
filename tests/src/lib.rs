//! End-to-end tests against real SIP peers live in `tests/`; this crate has no library code.
