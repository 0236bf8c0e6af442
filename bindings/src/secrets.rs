//! Private endpoint URLs: templates on-chain, secrets only in local configuration.
//!
//! Paid RPC providers put the API key in the URL. The registry stores a **template** instead,
//! e.g. `https://eth-mainnet.example/v2/${ALCHEMY_KEY}`; keepers, the failover transport and
//! the gateway resolve each `${NAME}` from their own `[secrets]` table:
//!
//! ```toml
//! [secrets.ALCHEMY_KEY]
//! env = "ALCHEMY_KEY"                 # or: file = "/run/secrets/alchemy" (mode 0600 or stricter)
//! hosts = ["eth-mainnet.example"]     # the only hosts this secret may be sent to
//! ```
//!
//! The rules, each one a refusal before any connection is made:
//! - a name is looked up in `[secrets]` only, never in the environment at large (whoever
//!   governs the registry could otherwise register `https://evil.example/${LIFELINE_KEEPER_KEY}`
//!   and collect every keeper's key);
//! - a template's host must be in the `hosts` of every secret it names, and a secret travels
//!   only over TLS (`https`, `wss`), except to a loopback host (a governor cannot downgrade
//!   `https://host/${KEY}` to `http://host/${KEY}` and read the key off the wire);
//! - placeholders may appear in the path and query only (not in the scheme, host, port or
//!   user info, where a value would leak through DNS or change where the request goes);
//! - the scheme is http(s) or ws(s), and no URL (template or resolved) carries `user:pass@`.
//!
//! A resolved URL exists only where a request is made. Everything shown — logs, errors,
//! metrics, `lifeline routes`, the gateway's `/routes` and `/status` — names the template.

use std::{collections::BTreeMap, fmt, path::PathBuf, sync::Arc};

use alloy::transports::http::reqwest::Url;
use serde::Deserialize;

/// Where one secret's value comes from, and where it may be sent (a `[secrets.NAME]` table).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// The environment variable holding the value.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the value (trailing newline ignored); it must not be readable by group or
    /// others.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The hosts this secret may be sent to (exact names, case-insensitive).
    pub hosts: Vec<String>,
}

/// The secrets a process may put into endpoint URLs. Cheap to clone; `Debug` shows names only.
#[derive(Clone, Default)]
pub struct Secrets(Arc<BTreeMap<String, Secret>>);

struct Secret {
    value: String,
    hosts: Vec<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A `[secrets]` entry that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The name is not `[A-Z0-9_]+`.
    #[error("secrets.{name}: a secret name is upper-case letters, digits and `_`")]
    BadName {
        /// The name.
        name: String,
    },
    /// Neither or both of `env` and `file`.
    #[error("secrets.{name}: set exactly one of `env` and `file`")]
    Source {
        /// The name.
        name: String,
    },
    /// No `hosts`.
    #[error("secrets.{name}: `hosts` is empty; list the hosts this secret may be sent to")]
    NoHosts {
        /// The name.
        name: String,
    },
    /// The environment variable is not set (or empty).
    #[error("secrets.{name}: environment variable {var} is not set")]
    Env {
        /// The name.
        name: String,
        /// The variable.
        var: String,
    },
    /// The file cannot be read.
    #[error("secrets.{name}: cannot read {}", path.display())]
    File {
        /// The name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is readable by group or others.
    #[error("secrets.{name}: {} is readable by group or others (mode {mode:o}); run chmod 600 on it", path.display())]
    Permissions {
        /// The name.
        name: String,
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The value is empty.
    #[error("secrets.{name}: the value is empty")]
    Empty {
        /// The name.
        name: String,
    },
}

/// An endpoint URL template that must not be requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder names no `[secrets]` entry.
    #[error(
        "{template}: ${{{name}}} is not in [secrets] (only secrets configured there are ever put into a URL)"
    )]
    Unknown {
        /// The template.
        template: String,
        /// The placeholder's name.
        name: String,
    },
    /// The template's host is not one the secret may go to.
    #[error("{template}: secret {name} may not be sent to host {host} (secrets.{name}.hosts)")]
    Host {
        /// The template.
        template: String,
        /// The secret.
        name: String,
        /// The template's host.
        host: String,
    },
    /// A secret would travel without TLS to a host that is not loopback.
    #[error(
        "{template}: secrets are sent over https or wss only (plain {scheme} only to a loopback host)"
    )]
    Plaintext {
        /// The template.
        template: String,
        /// Its scheme.
        scheme: String,
    },
    /// A placeholder outside the path and query, or an unclosed one.
    #[error("{template}: placeholders may appear in the path and query only")]
    Placement {
        /// The template.
        template: String,
    },
    /// Not an http(s)/ws(s) URL, credentials in it, or it does not parse.
    #[error("{template}: {why}")]
    Url {
        /// The template.
        template: String,
        /// What is wrong.
        why: String,
    },
}

/// Whether `url` is a template (names at least one `${...}`).
pub fn is_template(url: &str) -> bool {
    url.contains("${")
}

/// Characters a secret value keeps as they are; everything else is percent-encoded, so a value
/// can never end the path or query it is put into.
fn unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')
}

impl Secrets {
    /// Reads every secret of a `[secrets]` table (values from the environment or files).
    pub fn load(sources: &BTreeMap<String, SecretSource>) -> Result<Self, SecretError> {
        let mut secrets = BTreeMap::new();
        for (name, source) in sources {
            let err_name = || name.clone();
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(SecretError::BadName { name: err_name() });
            }
            if source.hosts.is_empty() {
                return Err(SecretError::NoHosts { name: err_name() });
            }
            let value = match (&source.env, &source.file) {
                (Some(var), None) => std::env::var(var)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| SecretError::Env { name: err_name(), var: var.clone() })?,
                (None, Some(path)) => read_file(name, path)?,
                _ => return Err(SecretError::Source { name: err_name() }),
            };
            if value.is_empty() {
                return Err(SecretError::Empty { name: err_name() });
            }
            let hosts = source.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
            secrets.insert(name.clone(), Secret { value, hosts });
        }
        Ok(Self(Arc::new(secrets)))
    }

    /// No secrets: every template is refused.
    pub fn none() -> Self {
        Self::default()
    }

    /// The URL to request for `url` as registered: itself when it is not a template; else the
    /// template with each `${NAME}` replaced, if every rule above holds.
    pub fn resolve(&self, url: &str) -> Result<Url, TemplateError> {
        let bad = |why: &str| TemplateError::Url { template: url.to_string(), why: why.into() };
        let (names, marked) = self.parse(url)?;
        // The template's own shape, with neutral markers where the values go.
        let shape = Url::parse(&marked).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if !matches!(shape.scheme(), "http" | "https" | "ws" | "wss") {
            return Err(bad("only http, https, ws and wss URLs are used"));
        }
        if !shape.username().is_empty() || shape.password().is_some() {
            return Err(bad("credentials in the URL (user:pass@) are refused; use a secret"));
        }
        let host = shape.host_str().unwrap_or_default().to_ascii_lowercase();
        if names.is_empty() {
            return Ok(shape);
        }
        if host.contains(MARK) {
            return Err(TemplateError::Placement { template: url.to_string() });
        }
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if matches!(shape.scheme(), "http" | "ws") && !loopback {
            return Err(TemplateError::Plaintext {
                template: url.to_string(),
                scheme: shape.scheme().to_string(),
            });
        }
        let mut resolved = marked;
        for (i, name) in names.iter().enumerate() {
            let secret = &self.0[name];
            if !secret.hosts.contains(&host) {
                return Err(TemplateError::Host {
                    template: url.to_string(),
                    name: name.clone(),
                    host,
                });
            }
            let encoded: String = secret
                .value
                .chars()
                .flat_map(|c| {
                    if unreserved(c) {
                        vec![c]
                    } else {
                        let mut buf = [0u8; 4];
                        c.encode_utf8(&mut buf)
                            .bytes()
                            .flat_map(|b| format!("%{b:02X}").chars().collect::<Vec<_>>())
                            .collect()
                    }
                })
                .collect();
            resolved = resolved.replacen(&marker(i), &encoded, 1);
        }
        let resolved = Url::parse(&resolved).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if resolved.host_str().map(str::to_ascii_lowercase) != Some(host) {
            return Err(TemplateError::Placement { template: url.to_string() });
        }
        Ok(resolved)
    }

    /// The names a template uses (each known), and the template with markers in their place.
    fn parse(&self, url: &str) -> Result<(Vec<String>, String), TemplateError> {
        let mut names = Vec::new();
        let mut marked = String::with_capacity(url.len());
        let mut rest = url;
        while let Some(start) = rest.find("${") {
            marked.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| TemplateError::Placement { template: url.to_string() })?;
            let name = &after[..end];
            if !self.0.contains_key(name) {
                return Err(TemplateError::Unknown {
                    template: url.to_string(),
                    name: name.to_string(),
                });
            }
            marked.push_str(&marker(names.len()));
            names.push(name.to_string());
            rest = &after[end + 1..];
        }
        marked.push_str(rest);
        Ok((names, marked))
    }
}

/// What stands in for a value while a template's shape is checked.
const MARK: &str = "lifeline-secret-";

fn marker(i: usize) -> String {
    format!("{MARK}{i}")
}

fn read_file(name: &str, path: &std::path::Path) -> Result<String, SecretError> {
    let file = |source| SecretError::File { name: name.to_string(), path: path.into(), source };
    let metadata = std::fs::metadata(path).map_err(file)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Permissions {
                name: name.to_string(),
                path: path.into(),
                mode,
            });
        }
    }
    let text = std::fs::read_to_string(path).map_err(file)?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str, &[&str])]) -> Secrets {
        Secrets(Arc::new(
            pairs
                .iter()
                .map(|(name, value, hosts)| {
                    let hosts = hosts.iter().map(|h| h.to_string()).collect();
                    (name.to_string(), Secret { value: value.to_string(), hosts })
                })
                .collect(),
        ))
    }

    #[test]
    fn templates_resolve_only_to_their_secrets_hosts() {
        let s = secrets(&[("ALCHEMY_KEY", "k3y/with?odd#chars", &["eth-mainnet.example"])]);
        let url = s.resolve("https://eth-mainnet.example/v2/${ALCHEMY_KEY}").expect("resolves");
        assert_eq!(url.as_str(), "https://eth-mainnet.example/v2/k3y%2Fwith%3Fodd%23chars");
        let query = s.resolve("https://ETH-mainnet.example/rpc?key=${ALCHEMY_KEY}").expect("ok");
        assert_eq!(query.query(), Some("key=k3y%2Fwith%3Fodd%23chars"));
        assert!(matches!(
            s.resolve("https://evil.example/${ALCHEMY_KEY}"),
            Err(TemplateError::Host { host, .. }) if host == "evil.example"
        ));
        // The right host, but in the clear: refused (loopback aside).
        assert!(matches!(
            s.resolve("http://eth-mainnet.example/v2/${ALCHEMY_KEY}"),
            Err(TemplateError::Plaintext { .. })
        ));
        let local = secrets(&[("K", "v", &["127.0.0.1", "localhost"])]);
        assert!(local.resolve("http://127.0.0.1:8545/${K}").is_ok());
        assert!(local.resolve("ws://localhost:8545/${K}").is_ok());
    }

    #[test]
    fn names_outside_the_secrets_table_are_never_resolved() {
        let s = secrets(&[("ALCHEMY_KEY", "k", &["a.example"])]);
        let err = s.resolve("https://a.example/${LIFELINE_KEEPER_KEY}").expect_err("refused");
        assert_eq!(
            err,
            TemplateError::Unknown {
                template: "https://a.example/${LIFELINE_KEEPER_KEY}".into(),
                name: "LIFELINE_KEEPER_KEY".into()
            }
        );
        assert!(err.to_string().contains("${LIFELINE_KEEPER_KEY} is not in [secrets]"));
    }

    #[test]
    fn placeholders_only_in_path_and_query_and_no_credentials() {
        let s = secrets(&[("K", "v", &["a.example", "v.a.example"])]);
        for bad in [
            "https://${K}.a.example/",
            "https://a.example:${K}/",
            "https://${K}@a.example/",
            "https://a.example/${K",
        ] {
            assert!(s.resolve(bad).is_err(), "{bad}");
        }
        assert!(matches!(s.resolve("ftp://a.example/${K}"), Err(TemplateError::Url { .. })));
        assert!(matches!(s.resolve("https://u:p@a.example/"), Err(TemplateError::Url { .. })));
        assert_eq!(
            s.resolve("wss://a.example/ws/${K}").map(|u| u.to_string()),
            Ok("wss://a.example/ws/v".into())
        );
        assert_eq!(
            Secrets::none().resolve("http://127.0.0.1:8545/").map(|u| u.port()),
            Ok(Some(8545))
        );
        assert!(!is_template("http://127.0.0.1:8545/") && is_template("http://h/${K}"));
    }

    #[test]
    fn sources_are_validated_and_debug_shows_names_only() {
        let table =
            |toml: &str| -> BTreeMap<String, SecretSource> { toml::from_str(toml).expect("toml") };
        let dir = std::env::temp_dir().join(format!("lifeline-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("key");
        std::fs::write(&path, "s3cret\n").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let open = table(&format!("[K]\nfile = {:?}\nhosts = [\"a\"]", path));
            assert!(matches!(
                Secrets::load(&open),
                Err(SecretError::Permissions { mode: 0o644, .. })
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let loaded = Secrets::load(&table(&format!("[K]\nfile = {:?}\nhosts = [\"a\"]", path)))
            .expect("loads");
        assert_eq!(
            loaded.resolve("https://a/${K}").map(|u| u.path().to_string()),
            Ok("/s3cret".into())
        );
        assert_eq!(format!("{loaded:?}"), "{\"K\"}", "names only");
        assert!(matches!(
            Secrets::load(&table("[K]\nhosts = [\"a\"]")),
            Err(SecretError::Source { .. })
        ));
        assert!(matches!(
            Secrets::load(&table("[K]\nenv = \"LIFELINE_TEST_UNSET_VARIABLE\"\nhosts = [\"a\"]")),
            Err(SecretError::Env { .. })
        ));
        assert!(matches!(
            Secrets::load(&table("[k]\nenv = \"X\"\nhosts = [\"a\"]")),
            Err(SecretError::BadName { .. })
        ));
        assert!(matches!(
            Secrets::load(&table("[K]\nenv = \"X\"\nhosts = []")),
            Err(SecretError::NoHosts { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
