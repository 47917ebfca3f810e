//! Fault injection for the reliability tests, read from `SELFSUP_FAULT=<kind>:<step>`:
//! * `abort-in-checkpoint:N` — abort the process while the checkpoint of step N is half written;
//! * `nan-input-at:N` — replace the first view of step N by NaNs (a corrupt batch);
//! * `slow-checkpoint:MS` — pause MS milliseconds inside every checkpoint write (so that a test
//!   can deliver a signal while one is being written);
//! * `slow-step:MS` — pause MS milliseconds after every training step (so that a test can kill
//!   one process of a data-parallel run part-way).
//!
//! Unset (the normal case) costs one environment lookup per use.

/// The step of the fault `kind`, when `SELFSUP_FAULT` asks for one.
pub fn step_of(kind: &str) -> Option<u64> {
    let spec = std::env::var("SELFSUP_FAULT").ok()?;
    spec.strip_prefix(kind)?.strip_prefix(':')?.parse().ok()
}
