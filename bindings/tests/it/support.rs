//! Shared fixtures: anvil from the project's node_modules, a deployed registry.

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, aliases::U48},
    providers::{DynProvider, Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use lifeline_bindings::RouteRegistry;

/// The anvil binary installed by `npm ci` (package `@foundry-rs/anvil-linux-amd64`).
pub(crate) fn anvil_path() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(path.exists(), "{} is missing: run `make test` (it runs `npm ci`)", path.display());
    path
}

/// A fresh anvil on 127.0.0.1 (free port; killed when dropped) and a registry deployed on it by
/// anvil's first account, which is also admin and guardian.
pub(crate) struct Chain {
    /// Keeps anvil alive; dropping it kills the process.
    pub(crate) anvil: AnvilInstance,
    pub(crate) provider: DynProvider,
    pub(crate) registry: Address,
}

impl Chain {
    pub(crate) async fn start() -> eyre::Result<Self> {
        let anvil = Anvil::at(anvil_path()).arg("--host").arg("127.0.0.1").try_spawn()?;
        let deployer: PrivateKeySigner = anvil.keys()[0].clone().into();
        let admin = deployer.address();
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(deployer))
            .connect_http(format!("http://127.0.0.1:{}", anvil.port()).parse()?)
            .erased();
        // admin = governor = guardian; keeper-set delay 0 (anvil's chain id is 31337, the one
        // chain where it is allowed); admin-transfer delay 0.
        let registry =
            RouteRegistry::deploy(provider.clone(), admin, admin, admin, 0, U48::ZERO).await?;
        Ok(Self { anvil, provider, registry: *registry.address() })
    }

    /// anvil's URL on 127.0.0.1 (never `localhost`, which could resolve elsewhere).
    pub(crate) fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.anvil.port())
    }

    pub(crate) fn chain_id(&self) -> u64 {
        self.anvil.chain_id()
    }
}
