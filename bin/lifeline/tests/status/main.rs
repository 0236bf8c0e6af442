//! The status page in a real browser, in a test binary of its own: cargo runs test binaries one
//! after another, so headless Chromium runs alone rather than beside the other end-to-end tests
//! (beside them, on 2 cores, its first page load was seen never to be reported).

// The shared devnet fixture of the end-to-end tests; this binary uses part of it.
#[allow(dead_code)]
#[path = "../it/world.rs"]
mod world;

mod status_page;
