//! End-to-end tests of Lifeline live in `tests/it/`; this crate has no library code.
