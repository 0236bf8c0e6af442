//! Errors of the bindings and the client. Registry reverts are decoded into the contract's
//! custom errors ([`RouteRegistryErrors`]) so that callers see `WrongEpoch { signed: 3, current: 4 }`
//! instead of revert bytes.

use alloy::{contract, sol_types::SolInterface, transports::TransportError};

use crate::registry::RouteRegistry::RouteRegistryErrors;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry reverted with one of its custom errors.
    #[error("the registry rejected the call: {}", describe_revert(.0))]
    Revert(RouteRegistryErrors),
    /// A contract call failed for another reason (e.g. no contract at the address).
    #[error("registry call failed: {0}")]
    Contract(#[source] contract::Error),
    /// An endpoint has a status these bindings do not know (newer contract?).
    #[error("endpoint {endpoint} has status {status}, unknown to these bindings (upgrade them)")]
    UnknownStatus {
        /// The endpoint.
        endpoint: u16,
        /// The raw status.
        status: u8,
    },
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

/// A registry revert in one line, its fields by name (never Debug output).
pub fn describe_revert(err: &RouteRegistryErrors) -> String {
    use RouteRegistryErrors as E;
    match err {
        E::WrongEpoch(e) => format!("WrongEpoch (signed {}, current {})", e.signed, e.current),
        E::WrongConfigVersion(e) => {
            format!("WrongConfigVersion (signed {}, current {})", e.signed, e.current)
        }
        E::NonceUsed(e) => {
            format!("NonceUsed (keeper {}, service {}, nonce {})", e.keeper, e.serviceId, e.nonce)
        }
        E::NotKeeper(e) => format!("NotKeeper ({})", e.signer),
        E::AttestationExpired(e) => {
            format!("AttestationExpired (deadline {}, now {})", e.deadline, e.nowTs)
        }
        E::DeadlineTooFar(e) => {
            format!("DeadlineTooFar (deadline {}, max {})", e.deadline, e.maxDeadline)
        }
        E::UnknownService(e) => format!("UnknownService ({})", e.serviceId),
        E::UnknownEndpoint(e) => format!("UnknownEndpoint ({} of {})", e.endpoint, e.serviceId),
        other => RouteRegistryErrors::name_by_selector(other.selector())
            .unwrap_or("unknown error")
            .to_string(),
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
