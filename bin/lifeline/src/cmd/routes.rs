//! `lifeline routes`: what a service's clients are authorised to use right now, and why.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::{
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use clap::Args;
use eyre::{WrapErr, eyre};
use lifeline_bindings::{
    RegistryClient,
    client::{EndpointState, Status},
    quorum::{QuorumReader, RegistrySet},
    registry::RouteRegistry::{RouteRegistryErrors, ServiceCreated},
};

use crate::cli::{RegistryOpts, ServiceRef};

/// Arguments of `lifeline routes`.
#[derive(Debug, Args)]
pub(crate) struct RoutesArgs {
    #[command(flatten)]
    registry: RegistryOpts,
    /// The service, by name (e.g. eth-devnet/rpc) or by its whole 32-byte id (0x and 64 hex
    /// digits: `cast keccak "<name>"`).
    #[arg(long, env = "LIFELINE_SERVICE")]
    service: ServiceRef,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Another registry of the same service, `RPC_URL@ADDRESS` (repeatable; the one above is
    /// the primary): every registry's set is shown side by side with the one clients route by
    /// (the primary's while its chain is live, else the live registry attested most recently).
    #[arg(long, value_name = "RPC_URL@ADDRESS", value_parser = parse_also)]
    also: Vec<(String, Address)>,
    /// With --also: a registry chain is live while the block read is at most this old, seconds
    /// (the clients' `live_bound`).
    #[arg(long, default_value_t = 30)]
    live_bound_secs: u64,
}

/// `RPC_URL@ADDRESS`.
fn parse_also(text: &str) -> Result<(String, Address), String> {
    let (url, address) =
        text.rsplit_once('@').ok_or_else(|| format!("`{text}`: expected RPC_URL@ADDRESS"))?;
    url.parse::<alloy::transports::http::reqwest::Url>()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let address = address.parse().map_err(|e| format!("`{address}` is not an address: {e}"))?;
    Ok((url.to_string(), address))
}

impl RoutesArgs {
    /// Reads the registry and prints the route set and the endpoint table.
    pub(crate) async fn run(self) -> eyre::Result<()> {
        let url = self
            .registry
            .rpc_url
            .parse()
            .wrap_err_with(|| format!("--rpc-url `{}` is not a URL", self.registry.rpc_url))?;
        let provider = ProviderBuilder::new().connect_http(url);
        let client = RegistryClient::new(self.registry.registry, provider.clone());
        let context = || {
            format!(
                "reading service `{}` from registry {} at {}",
                self.service.label, self.registry.registry, self.registry.rpc_url
            )
        };
        let read = async {
            let set = client.routes(self.service.id).await?;
            let service = client.service(self.service.id).await?;
            let endpoints = client.endpoints(self.service.id).await?;
            Ok::<_, lifeline_bindings::Error>((set, service, endpoints))
        };
        let (set, service, endpoints) = match read.await {
            Ok(read) => read,
            Err(lifeline_bindings::Error::Revert(RouteRegistryErrors::UnknownService(_))) => {
                let known = service_names(&provider, self.registry.registry, None).await;
                return Err(eyre!(
                    "service `{}` (id {}) is not registered in registry {}{}",
                    self.service.label,
                    self.service.id,
                    self.registry.registry,
                    match known {
                        Some(names) if !names.is_empty() => {
                            format!("; registered: {}", names.join(", "))
                        }
                        _ => String::new(),
                    }
                ));
            }
            Err(e) => return Err(registry_error(e).wrap_err(context())),
        };
        let name = match self.service.name() {
            Some(name) => Some(name.to_string()),
            None => service_names(&provider, self.registry.registry, Some(self.service.id))
                .await
                .and_then(|names| names.into_iter().next()),
        };

        let registries = if self.also.is_empty() { None } else { Some(self.registries().await?) };
        if self.json {
            let out = serde_json::json!({
                "service": self.service.id,
                "name": name,
                "routeSet": set,
                "endpoints": endpoints,
                "registries": registries.as_ref().map(|(rows, _)| rows),
            });
            return emit(&format!("{}\n", serde_json::to_string_pretty(&out)?));
        }

        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let age = now.saturating_sub(set.last_attested);
        let mut out = format!(
            "service   {} ({})\n",
            name.as_deref().unwrap_or("name not found in the registry's events"),
            self.service.id
        );
        out += &format!(
            "epoch     {}   last attestation {}\n",
            set.epoch,
            if set.last_attested == 0 { "never".to_string() } else { format!("{age}s ago") }
        );
        if set.stale {
            out += "          STALE: keepers silent, the set is fail-static\n";
        }
        out += &format!(
            "routes    {} authorised (target {}, floor {}, quorum {} keepers)\n\n",
            set.routes.len(),
            service.config.targetActive,
            service.config.floor,
            service.config.quorum
        );
        out += &table(&endpoints, now);
        out += "\nVOTES = keepers voting unhealthy / healthy under the current keeper set\n";
        if let Some((_, text)) = registries {
            out += &text;
        }
        emit(&out)
    }

    /// Every registry's set side by side (as JSON rows and as text), read and chosen by the
    /// clients' rule (`lifeline_bindings::quorum::RegistrySet`).
    async fn registries(&self) -> eyre::Result<(Vec<serde_json::Value>, String)> {
        let all: Vec<(String, Address)> =
            std::iter::once((self.registry.rpc_url.clone(), self.registry.registry))
                .chain(self.also.iter().cloned())
                .collect();
        let mut readers = Vec::new();
        for (url, address) in &all {
            let provider = ProviderBuilder::new()
                .connect_http(url.parse().wrap_err_with(|| format!("`{url}` is not a URL"))?)
                .erased();
            readers.push(QuorumReader::new(vec![RegistryClient::new(*address, provider)], 1, 0));
        }
        let set = RegistrySet::new(
            readers,
            Duration::from_secs(self.live_bound_secs),
            Duration::from_secs(30),
        );
        let (choice, agreed) = set.read_and_choose(self.service.id).await;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let in_force = choice.as_ref().map(|c| c.registry);
        let mut rows = Vec::new();
        let mut cells: Vec<[String; 8]> = vec![
            [
                "REGISTRY",
                "RPC",
                "ADDRESS",
                "HEAD AGE",
                "EPOCH",
                "LAST ATTEST",
                "ROUTES",
                "IN FORCE",
            ]
            .map(String::from),
        ];
        for (i, ((url, address), agreed)) in all.iter().zip(&agreed).enumerate() {
            let live = agreed.as_ref().is_some_and(|a| set.is_live(a, now));
            let label = if i == 0 { "0 (primary)".to_string() } else { i.to_string() };
            let forced = if in_force == Some(i) { "<- in force" } else { "" };
            let (age, epoch, attested, routes) = match agreed {
                Some(a) => (
                    format!(
                        "{}s{}",
                        now.saturating_sub(a.block_time),
                        if live { "" } else { " (halted?)" }
                    ),
                    a.set.epoch.to_string(),
                    format!("{}s ago", now.saturating_sub(a.set.last_attested)),
                    a.set
                        .routes
                        .iter()
                        .map(|r| format!("#{} {}", r.id, r.region))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                None => ("unreadable".into(), "-".into(), "-".into(), "-".into()),
            };
            rows.push(serde_json::json!({
                "index": i,
                "rpcUrl": url,
                "address": address,
                "live": live,
                "inForce": in_force == Some(i),
                "blockTime": agreed.as_ref().map(|a| a.block_time),
                "routeSet": agreed.as_ref().map(|a| &a.set),
            }));
            cells.push([
                label,
                url.clone(),
                address.to_string(),
                age,
                epoch,
                attested,
                routes,
                forced.into(),
            ]);
        }
        let mut text = format!(
            "\nregistries (live while the head read is at most {}s old; clients route by the primary's set while it is live, else by the live registry attested most recently)\n",
            self.live_bound_secs
        );
        let widths: Vec<usize> =
            (0..8).map(|c| cells.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for row in &cells {
            let line: Vec<String> =
                row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            text += line.join("  ").trim_end();
            text += "\n";
        }
        if in_force.is_none() {
            text += "no registry is live: clients keep the last set they had\n";
        }
        Ok((rows, text))
    }
}

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
fn emit(text: &str) -> eyre::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(eyre::Report::new(e).wrap_err("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// The endpoint table, each column as wide as its widest cell.
fn table(endpoints: &[EndpointState], now: u64) -> String {
    const HEADER: [&str; 8] =
        ["ID", "STATE", "NOTE", "URL", "REGION", "PROVIDER", "LATENCY", "VOTES"];
    // Right-aligned: the numbers.
    const RIGHT: [bool; 8] = [true, false, false, false, false, false, true, true];
    let mut rows: Vec<[String; 8]> = vec![HEADER.map(String::from)];
    for e in endpoints {
        let note = match e.status {
            _ if unusable(&e.url).is_some() => {
                format!("UNUSABLE: {}", unusable(&e.url).unwrap_or_default())
            }
            Status::Active if e.degraded => "DEGRADED (kept)".to_string(),
            Status::Active => "serving".to_string(),
            Status::Standby if e.ready => "ready to promote".to_string(),
            Status::Standby => "awaiting healthy quorum".to_string(),
            Status::Demoted if e.cooldown_until > now => {
                format!("cooling down {}s", e.cooldown_until - now)
            }
            Status::Demoted => "awaiting healthy quorum".to_string(),
            Status::Retired => "retired".to_string(),
        };
        rows.push([
            e.id.to_string(),
            e.status.to_string(),
            note,
            e.url.clone(),
            e.region.clone(),
            e.provider.clone(),
            format!("{}ms", e.latency_ms),
            format!("{}/{}", e.down_votes.count_ones(), e.up_votes.count_ones()),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths.iter().zip(RIGHT))
            .map(
                |(cell, (&width, right))| {
                    if right { format!("{cell:>width$}") } else { format!("{cell:<width$}") }
                },
            )
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Why clients cannot use an endpoint URL registered on chain, if they cannot.
fn unusable(url: &str) -> Option<String> {
    match url.parse::<alloy::transports::http::reqwest::Url>() {
        Err(e) => Some(format!("URL does not parse ({e})")),
        Ok(u) if !matches!(u.scheme(), "http" | "https" | "ws" | "wss") => {
            Some(format!("scheme `{}` is not http(s) or ws(s)", u.scheme()))
        }
        Ok(_) => None,
    }
}

/// Names of the registry's services (of `only` if given), from their `ServiceCreated` events;
/// `None` when the logs cannot be read within 5 s (some RPCs refuse long ranges).
async fn service_names<P: Provider>(
    provider: &P,
    registry: Address,
    only: Option<B256>,
) -> Option<Vec<String>> {
    let mut filter = Filter::new()
        .address(registry)
        .event_signature(ServiceCreated::SIGNATURE_HASH)
        .from_block(0);
    if let Some(id) = only {
        filter = filter.topic1(id);
    }
    let logs = tokio::time::timeout(Duration::from_secs(5), provider.get_logs(&filter))
        .await
        .ok()?
        .ok()?;
    Some(
        logs.iter()
            .filter_map(|log| ServiceCreated::decode_log_data(log.data()).ok())
            .map(|event| event.name)
            .collect(),
    )
}

/// A bindings error with its whole cause chain kept as sources (so that e.g. "Connection
/// refused" is printed, once), and a revert by its error's signature rather than Debug output.
fn registry_error(err: lifeline_bindings::Error) -> eyre::Report {
    match err {
        lifeline_bindings::Error::Contract(inner) => {
            eyre::Report::new(inner).wrap_err("registry call failed")
        }
        lifeline_bindings::Error::Transport(inner) => {
            eyre::Report::new(inner).wrap_err("RPC request failed")
        }
        revert @ lifeline_bindings::Error::Revert(_) => eyre!("{revert}"),
        other => eyre::Report::new(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: u16, url: &str, region: &str, status: Status) -> EndpointState {
        EndpointState {
            id,
            status,
            ready: false,
            degraded: false,
            latency_ms: 12,
            cooldown_until: 0,
            down_votes: 0,
            up_votes: 0b11,
            url: url.into(),
            region: region.into(),
            provider: "node-a".into(),
            operator: Address::ZERO,
        }
    }

    #[test]
    fn table_columns_line_up_whatever_the_cell_widths() {
        let text = table(
            &[
                endpoint(0, "http://127.0.0.1:1", "eu", Status::Active),
                endpoint(
                    11,
                    "https://a-very-long-endpoint-name.example.org/some/long/path",
                    "ap-southeast-2",
                    Status::Standby,
                ),
            ],
            0,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // Every column starts at the same offset on every line.
        for word in ["STATE", "NOTE", "URL", "REGION", "PROVIDER"] {
            let col = lines[0].find(word).expect("header");
            for line in &lines[1..] {
                assert_eq!(&line[col - 2..col], "  ", "column {word} starts at {col}:\n{text}");
                assert_ne!(line.as_bytes()[col], b' ', "column {word}:\n{text}");
            }
        }
    }

    #[test]
    fn an_unparsable_url_is_shown_unusable() {
        let text = table(&[endpoint(0, "not a url", "eu", Status::Standby)], 0);
        assert!(text.contains("UNUSABLE: URL does not parse"), "{text}");
        assert!(unusable("ftp://x").is_some_and(|r| r.contains("scheme `ftp`")));
        assert_eq!(unusable("http://127.0.0.1:8545"), None);
    }
}
