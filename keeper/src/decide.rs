//! Attest, step one: which verdicts to put in the next attestation. A keeper writes only where
//! its verdict differs from its vote on chain (its bit in the endpoint's vote bitmaps), so a
//! steady network costs one heartbeat per interval, not one vote per endpoint per round.

use lifeline_bindings::client::Status;

use crate::judge::Verdict;

/// An endpoint's on-chain state, as far as the decision needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnChain {
    /// Lifecycle state.
    pub status: Status,
    /// Ready standby.
    pub ready: bool,
    /// While demoted: unix time before which healthy votes are ignored.
    pub cooldown_until: u64,
    /// Keepers voting unhealthy.
    pub down_votes: u32,
    /// Keepers voting healthy.
    pub up_votes: u32,
    /// The endpoint's revision (bumped by a URL change or a slot reuse): each verdict names the
    /// one it judged, and the registry ignores verdicts about another.
    pub revision: u32,
}

/// The vote this keeper (bit `keeper_bit`) should cast on an endpoint, if any.
///
/// - healthy: withdraw an unhealthy vote; vouch for a standby (or a cooled-down demoted
///   endpoint) that is not ready yet.
/// - unhealthy: flag an active endpoint or a ready standby; withdraw a healthy vote.
pub fn vote_to_cast(verdict: Verdict, chain: &OnChain, keeper_bit: u32, now: u64) -> Option<bool> {
    let voted_down = chain.down_votes & keeper_bit != 0;
    let voted_up = chain.up_votes & keeper_bit != 0;
    match verdict {
        Verdict::Unknown => None,
        Verdict::Healthy => {
            if voted_down {
                return Some(true);
            }
            let vouchable = match chain.status {
                Status::Standby => !chain.ready,
                Status::Demoted => now >= chain.cooldown_until,
                _ => false,
            };
            (vouchable && !voted_up).then_some(true)
        }
        Verdict::Unhealthy => {
            let flaggable =
                chain.status == Status::Active || (chain.status == Status::Standby && chain.ready);
            if (flaggable && !voted_down) || voted_up { Some(false) } else { None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 0b10;

    fn chain(status: Status) -> OnChain {
        OnChain { status, ready: false, cooldown_until: 0, down_votes: 0, up_votes: 0, revision: 0 }
    }

    #[test]
    fn flags_a_failing_active_endpoint_once() {
        assert_eq!(vote_to_cast(Verdict::Unhealthy, &chain(Status::Active), ME, 0), Some(false));
        let voted = OnChain { down_votes: ME, ..chain(Status::Active) };
        assert_eq!(vote_to_cast(Verdict::Unhealthy, &voted, ME, 0), None, "already recorded");
        assert_eq!(
            vote_to_cast(Verdict::Healthy, &voted, ME, 0),
            Some(true),
            "recovered: withdraw"
        );
    }

    #[test]
    fn vouches_for_standbys_until_ready() {
        assert_eq!(vote_to_cast(Verdict::Healthy, &chain(Status::Standby), ME, 0), Some(true));
        let voted = OnChain { up_votes: ME, ..chain(Status::Standby) };
        assert_eq!(vote_to_cast(Verdict::Healthy, &voted, ME, 0), None);
        let ready = OnChain { ready: true, ..chain(Status::Standby) };
        assert_eq!(vote_to_cast(Verdict::Healthy, &ready, ME, 0), None, "nothing to add");
        assert_eq!(
            vote_to_cast(Verdict::Unhealthy, &ready, ME, 0),
            Some(false),
            "a ready standby failed"
        );
    }

    #[test]
    fn waits_for_the_cooldown_before_vouching_for_a_demoted_endpoint() {
        let demoted = OnChain { cooldown_until: 100, ..chain(Status::Demoted) };
        assert_eq!(vote_to_cast(Verdict::Healthy, &demoted, ME, 99), None);
        assert_eq!(vote_to_cast(Verdict::Healthy, &demoted, ME, 100), Some(true));
    }

    #[test]
    fn unknown_and_retired_cast_nothing() {
        assert_eq!(vote_to_cast(Verdict::Unknown, &chain(Status::Active), ME, 0), None);
        assert_eq!(vote_to_cast(Verdict::Unhealthy, &chain(Status::Retired), ME, 0), None);
        assert_eq!(vote_to_cast(Verdict::Healthy, &chain(Status::Retired), ME, 0), None);
    }
}
