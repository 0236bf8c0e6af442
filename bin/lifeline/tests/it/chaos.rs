//! The chaos run (bounded: about a minute): random faults on endpoints and keepers, with the
//! invariants checked throughout: after each fault the set converges to healthy endpoints within
//! the failover bound, it never drops below the floor, and the client fails no request while a
//! healthy authorised route exists (here: always, one endpoint is faulted at a time).
//! `LIFELINE_CHAOS_SEED=<n>` replays a run.

use std::time::{Duration, Instant};

use lifeline_devnet::{DevnetOptions, Fault, KeeperOptions};

use crate::world::{FAILOVER_BOUND, World, ids};

const STEPS: usize = 5;

/// xorshift64*: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test]
async fn random_faults_on_endpoints_and_keepers_keep_the_invariants() -> eyre::Result<()> {
    let seed = std::env::var("LIFELINE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_1F3E);
    eprintln!("chaos seed {seed} (LIFELINE_CHAOS_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    // Short cooldowns so healed endpoints come back between steps; the blast-radius rail
    // (3 demotions per 10 min by default) is lifted, since every step demotes one endpoint.
    let options = DevnetOptions { cooldown: 4, max_demotions: 100, ..Default::default() };
    let mut world = World::start_with(&[1, 2, 3], options).await?;
    let lifeline = std::path::Path::new(env!("CARGO_BIN_EXE_lifeline"));
    let started = Instant::now();

    for step in 1..=STEPS {
        let set = world.routes().await?;
        let victim = set.routes[rng.below(set.routes.len() as u64) as usize].id;
        let fault = match rng.below(5) {
            0 => Fault::Down,
            1 => Fault::Hang,
            2 => Fault::Lag(10),
            3 => Fault::DivergentHash,
            _ => Fault::Slow(Duration::from_secs(2)),
        };
        // Half the time, a keeper crashes too (two remain: still a quorum).
        let crashed = (rng.below(2) == 0).then(|| rng.below(3) as usize);
        if let Some(keeper) = crashed.and_then(|k| world.keepers[k].as_mut()) {
            keeper.kill();
        }
        eprintln!("step {step}: {fault:?} on endpoint {victim}, keeper crash: {crashed:?}");
        world.proxy(victim).set(fault);

        // Converges within the bound, never below the floor on the way.
        let deadline = Instant::now() + FAILOVER_BOUND;
        loop {
            let now = world.routes().await?;
            assert!(!now.routes.is_empty(), "step {step}: below the floor: {now:?}");
            if !ids(&now).contains(&victim) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "step {step}: endpoint {victim} still authorised after {FAILOVER_BOUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Heal: the endpoint recovers, the keeper restarts; wait for it to be a ready standby
        // again so the next step has a replacement to promote.
        world.proxy(victim).set(Fault::Up);
        if let Some(k) = crashed {
            let config =
                world.devnet.keeper_config(&world.toolchain, k + 1, &KeeperOptions::default())?;
            world.keepers[k] =
                Some(world.devnet.spawn_keeper(&world.toolchain, lifeline, k + 1, &config)?);
        }
        let ready_by = Instant::now() + Duration::from_secs(40);
        loop {
            let e = world
                .registry
                .contract()
                .endpoint(world.devnet.service_id(), victim)
                .call()
                .await?;
            if e.ready || e.status == 2 {
                break;
            }
            assert!(Instant::now() < ready_by, "step {step}: endpoint {victim} never came back");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!("chaos: {STEPS} steps in {:?}", started.elapsed());
    world.assert_client_clean();
    Ok(())
}
