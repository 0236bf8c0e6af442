//! Keepers' signed attestations, built with the shared Rust types and relayed by anyone, drive
//! the registry deployed by the scripts: bootstrap, failover, and the client sees each change.

use alloy::{
    network::EthereumWallet,
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use lifeline_bindings::{
    Attestation, RegistryClient, RouteRegistry, Verdict, attestation, client::Status, service_id,
};
use lifeline_devnet::{Devnet, DevnetOptions, Toolchain};

struct Keeper {
    signer: PrivateKeySigner,
    nonce: u64,
}

async fn attest<P: Provider>(
    registry: &RouteRegistry::RouteRegistryInstance<P>,
    chain_id: u64,
    keeper: &mut Keeper,
    verdicts: Vec<Verdict>,
) -> eyre::Result<()> {
    let service = service_id("eth-devnet/rpc");
    let epoch = registry.service(service).call().await?.epoch;
    let (version, _, _) = registry.keepers().call().await.map(|k| (k._0, k._1, k._2))?;
    let latest = registry
        .provider()
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await?
        .ok_or_else(|| eyre::eyre!("no latest block"))?;
    keeper.nonce += 1;
    let report = Attestation {
        service,
        epoch,
        configVersion: version,
        nonce: keeper.nonce,
        deadline: latest.header.timestamp + 60,
        verdicts,
    };
    let signature = attestation::sign(&keeper.signer, &report, chain_id, *registry.address())?;
    let call = registry.attest(report, signature.into());
    // Simulate first so that a rejection surfaces as the registry's custom error.
    call.call().await.map_err(|e| eyre::eyre!("{}", lifeline_bindings::Error::from(e)))?;
    let receipt = call.send().await?.get_receipt().await?;
    eyre::ensure!(
        receipt.status(),
        "attestation transaction {} reverted",
        receipt.transaction_hash
    );
    Ok(())
}

fn verdict(endpoint: u16, healthy: bool, latency_ms: u32) -> Verdict {
    Verdict { endpoint, revision: 0, healthy, latencyMs: latency_ms, headLag: 0 }
}

#[tokio::test]
async fn keeper_quorum_bootstraps_and_fails_over_the_scripted_registry() -> eyre::Result<()> {
    let toolchain = Toolchain::locate()?;
    let devnet = Devnet::start(&toolchain, &example_config()).await?;
    // A relayer (account 9) submits; keepers (accounts 1-3) only sign.
    let relayer = ProviderBuilder::new()
        .wallet(EthereumWallet::from(devnet.account(9)))
        .connect_http(devnet.rpc_url().parse()?);
    let registry = RouteRegistry::new(devnet.registry(), &relayer);
    let client = RegistryClient::new(devnet.registry(), &relayer);
    let service = service_id("eth-devnet/rpc");
    let mut keepers: Vec<Keeper> =
        (1..=3).map(|i| Keeper { signer: devnet.account(i), nonce: 0 }).collect();

    assert!(
        client.routes(service).await?.routes.is_empty(),
        "nothing serves before keepers attest"
    );

    // Two keepers attest all four endpoints healthy: the set fills to its target of 2.
    let all = || (0..4).map(|i| verdict(i, true, 10 + u32::from(i))).collect::<Vec<_>>();
    attest(&registry, devnet.chain_id(), &mut keepers[0], all()).await?;
    assert!(client.routes(service).await?.routes.is_empty(), "one keeper is not a quorum");
    attest(&registry, devnet.chain_id(), &mut keepers[1], all()).await?;
    let set = client.routes(service).await?;
    let ids: Vec<u16> = set.routes.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![0, 1], "lowest latency, then an uncovered region");
    assert_eq!(set.epoch, 1);
    assert!(!set.stale);

    // Endpoint 0 fails: the second unhealthy vote demotes it and promotes ap-south (2).
    attest(&registry, devnet.chain_id(), &mut keepers[2], vec![verdict(0, false, 0)]).await?;
    assert_eq!(client.routes(service).await?.epoch, 1, "one vote changes nothing");
    attest(&registry, devnet.chain_id(), &mut keepers[0], vec![verdict(0, false, 0)]).await?;
    let set = client.routes(service).await?;
    let ids: Vec<u16> = set.routes.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(set.epoch, 2);
    let endpoints = client.endpoints(service).await?;
    assert_eq!(endpoints[0].status, Status::Demoted);
    assert!(endpoints[3].ready, "eu-west #2 stays a ready standby");
    Ok(())
}

fn example_config() -> DevnetOptions {
    DevnetOptions { config: Some("config/example.json".into()), ..Default::default() }
}
