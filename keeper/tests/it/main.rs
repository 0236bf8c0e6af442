//! Integration tests of the keeper library: probe classification against endpoints the test
//! controls, and submission against a real registry on anvil. (Tests that run the `lifeline`
//! binary live with it, in bin/lifeline/tests.)

mod probes;
mod submit;
