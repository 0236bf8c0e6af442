//! The keeper's signing key: from an encrypted keystore (password from a file or the
//! environment) or from an environment variable. Never from the command line, never logged.

use alloy::signers::local::PrivateKeySigner;

use crate::config::SignerConfig;

/// Why the key could not be loaded. Messages name the source, never the secret.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// No keystore configured and the key variable is unset.
    #[error(
        "no signing key: set the environment variable {0} (hex private key) or configure [signer] keystore"
    )]
    Missing(String),
    /// The variable holds something that is not a private key.
    #[error("environment variable {0} does not hold a 32-byte hex private key")]
    BadKey(String),
    /// A keystore without a password source.
    #[error("[signer] keystore is set but neither password_file nor password_env is")]
    NoPassword,
    /// Both password sources are set: which one is meant is ambiguous.
    #[error("[signer] set either password_file or password_env, not both")]
    TwoPasswords,
    /// The keystore did not decrypt with the password given.
    #[error("decrypting keystore {path}: wrong password (from {source_name})")]
    WrongPassword {
        /// The keystore file.
        path: String,
        /// File path or variable name the password came from.
        source_name: String,
    },
    /// The password source could not be read.
    #[error("reading the keystore password from {source_name}: {reason}")]
    Password {
        /// File path or variable name.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The keystore did not decrypt.
    #[error("decrypting keystore {path}: {reason}")]
    Keystore {
        /// The keystore file.
        path: String,
        /// Why (wrong password, bad file).
        reason: String,
    },
}

/// Loads the key described by `config`.
pub fn load(config: &SignerConfig) -> Result<PrivateKeySigner, SignerError> {
    if let Some(keystore) = &config.keystore {
        if config.password_file.is_some() && config.password_env.is_some() {
            return Err(SignerError::TwoPasswords);
        }
        let source_name = match (&config.password_file, &config.password_env) {
            (Some(file), _) => file.display().to_string(),
            (_, Some(var)) => format!("environment variable {var}"),
            _ => String::new(),
        };
        let password = if let Some(file) = &config.password_file {
            std::fs::read_to_string(file)
                .map(|p| p.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| SignerError::Password {
                    source_name: file.display().to_string(),
                    reason: e.to_string(),
                })?
        } else if let Some(var) = &config.password_env {
            std::env::var(var).map_err(|e| SignerError::Password {
                source_name: var.clone(),
                reason: e.to_string(),
            })?
        } else {
            return Err(SignerError::NoPassword);
        };
        let path = keystore.display().to_string();
        return PrivateKeySigner::decrypt_keystore(keystore, password).map_err(|e| {
            // The keystore's MAC check is what fails on a wrong password.
            if e.to_string().contains("Mac Mismatch") {
                SignerError::WrongPassword { path, source_name }
            } else {
                SignerError::Keystore { path, reason: e.to_string() }
            }
        });
    }
    let var = &config.private_key_env;
    let key = std::env::var(var).map_err(|_| SignerError::Missing(var.clone()))?;
    key.trim().parse::<PrivateKeySigner>().map_err(|_| SignerError::BadKey(var.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystore_round_trip_with_password_file() {
        let dir = std::env::temp_dir().join(format!("lifeline-signer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut rng = alloy::signers::k256::elliptic_curve::rand_core::OsRng;
        let (signer, name) = PrivateKeySigner::new_keystore(&dir, &mut rng, "correct horse", None)
            .expect("keystore");
        let password = dir.join("password");
        std::fs::write(&password, "correct horse\n").expect("password file");
        let config = SignerConfig {
            keystore: Some(dir.join(name)),
            password_file: Some(password.clone()),
            ..Default::default()
        };
        assert_eq!(load(&config).expect("decrypts").address(), signer.address());

        std::fs::write(&password, "wrong").expect("password file");
        let err = load(&config).expect_err("wrong password").to_string();
        assert_eq!(
            err,
            format!(
                "decrypting keystore {}: wrong password (from {})",
                config.keystore.as_ref().map(|k| k.display().to_string()).unwrap_or_default(),
                password.display()
            )
        );
        let both = SignerConfig { password_env: Some("P".into()), ..config.clone() };
        assert!(matches!(load(&both), Err(SignerError::TwoPasswords)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_or_bad_env_key_names_the_variable_not_the_value() {
        let config = SignerConfig {
            private_key_env: "LIFELINE_TEST_KEY_UNSET".into(),
            ..Default::default()
        };
        assert!(
            load(&config).expect_err("missing").to_string().contains("LIFELINE_TEST_KEY_UNSET")
        );
    }
}
