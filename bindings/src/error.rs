//! Errors of the bindings and the client. Registry reverts are decoded into the contract's
//! custom errors ([`RouteRegistryErrors`]) so that callers see `WrongEpoch { signed: 3, current: 4 }`
//! instead of revert bytes.

use alloy::{contract, transports::TransportError};

use crate::registry::RouteRegistry::RouteRegistryErrors;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry reverted with one of its custom errors.
    #[error("the registry rejected the call: {0:?}")]
    Revert(RouteRegistryErrors),
    /// A contract call failed for another reason (e.g. no contract at the address).
    #[error("registry call failed: {0}")]
    Contract(contract::Error),
    /// The RPC endpoint could not be reached or answered with an error.
    #[error("rpc request failed: {0}")]
    Transport(#[from] TransportError),
    /// A signer failed to sign an attestation.
    #[error("signing failed: {0}")]
    Signing(String),
}

impl Error {
    /// True when retrying the same request later (or elsewhere) may succeed: transport failures.
    /// Reverts are answers, not failures, and are never retryable as such.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Contract(contract::Error::TransportError(e)) => e.as_error_resp().is_none(),
            _ => false,
        }
    }

    /// The decoded custom error, when the registry reverted with one.
    pub fn revert(&self) -> Option<&RouteRegistryErrors> {
        match self {
            Self::Revert(e) => Some(e),
            _ => None,
        }
    }
}

impl From<contract::Error> for Error {
    fn from(err: contract::Error) -> Self {
        match err.as_decoded_interface_error::<RouteRegistryErrors>() {
            Some(decoded) => Self::Revert(decoded),
            None => Self::Contract(err),
        }
    }
}
