//! Extra nodes for the routing faults: a node on another chain ([`Fault::WrongChain`]) and a
//! node on a fork of the chain ([`Fault::Forked`]). Both are anvil on 127.0.0.1 (free port),
//! killed when the returned instance is dropped.
//!
//! ```text
//!  other_chain(toolchain, 1, None) --> anvil --chain-id 1          (its own genesis and blocks)
//!  fork_of(toolchain, url, None)   --> anvil --fork-url <url>      (the chain up to its head now,
//!                                                                   its own blocks after that)
//!  proxy.set(forks::wrong_chain(&other))   every request through the proxy goes to `other`
//!  proxy.set(forks::forked(&fork))         every request through the proxy goes to `fork`
//! ```
//!
//! With automine (`block_time: None`) a node mines a block per transaction (or `evm_mine`);
//! with a block time it mines on its own clock, so a fork and the chain it left both grow and
//! disagree at every height past the fork point.

use alloy::node_bindings::{Anvil, AnvilInstance};

use crate::{Error, Fault, Result, Toolchain};

/// Starts an anvil whose chain id is `chain_id` (e.g. 1, anything but the devnet's 31337),
/// mining every `block_time` seconds or, with `None`, on every transaction.
pub async fn other_chain(
    toolchain: &Toolchain,
    chain_id: u64,
    block_time: Option<f64>,
) -> Result<AnvilInstance> {
    spawn(node(toolchain, block_time).chain_id(chain_id)).await
}

/// Starts an anvil forked from the node at `url` (an `http://` URL) at its current head: same
/// chain id, same history and state up to that block, its own blocks (so its own hashes) after
/// it. It mines every `block_time` seconds or, with `None`, on every transaction.
pub async fn fork_of(
    toolchain: &Toolchain,
    url: &str,
    block_time: Option<f64>,
) -> Result<AnvilInstance> {
    spawn(node(toolchain, block_time).fork(url)).await
}

/// The node's HTTP URL on 127.0.0.1, e.g. `http://127.0.0.1:40123`.
pub fn rpc_url(node: &AnvilInstance) -> String {
    format!("http://127.0.0.1:{}", node.port())
}

/// [`Fault::WrongChain`] sending everything to `node` (see [`other_chain`]).
pub fn wrong_chain(node: &AnvilInstance) -> Fault {
    Fault::WrongChain { chain_id: node.chain_id(), upstream: rpc_url(node) }
}

/// [`Fault::Forked`] sending everything to `node` (see [`fork_of`]).
pub fn forked(node: &AnvilInstance) -> Fault {
    Fault::Forked { upstream: rpc_url(node) }
}

fn node(toolchain: &Toolchain, block_time: Option<f64>) -> Anvil {
    let anvil = Anvil::at(toolchain.anvil()).host("127.0.0.1").port(0u16);
    match block_time {
        Some(seconds) => anvil.block_time_f64(seconds),
        None => anvil,
    }
}

/// Spawns anvil off the async runtime (the builder blocks reading its banner).
async fn spawn(anvil: Anvil) -> Result<AnvilInstance> {
    let spawned = tokio::task::spawn_blocking(move || anvil.try_spawn())
        .await
        .map_err(|e| Error::Chain(format!("starting anvil: {e}")))??;
    tracing::info!(
        target: "devnet",
        url = %rpc_url(&spawned),
        chain_id = spawned.chain_id(),
        "extra anvil started"
    );
    Ok(spawned)
}
