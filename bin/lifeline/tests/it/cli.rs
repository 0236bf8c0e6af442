//! The `lifeline` command's read-only faces: `routes` on a live devnet, and refusing bad input
//! with one clear line per error: each cause once, no Debug output, no `Location:`.

use std::process::{Command, Output};

use lifeline_devnet::{Devnet, DevnetOptions, Toolchain, free_port};

const LIFELINE: &str = env!("CARGO_BIN_EXE_lifeline");

/// `lifeline routes` against `rpc_url` and `registry` (backtraces on, as a developer's shell may
/// have them: user errors must print none).
fn routes(rpc_url: &str, registry: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(LIFELINE)
        .arg("routes")
        .args(args)
        .env("LIFELINE_RPC_URL", rpc_url)
        .env("LIFELINE_REGISTRY", registry)
        .env_remove("LIFELINE_SERVICE")
        .env("RUST_BACKTRACE", "1")
        .output()
}

/// Asserts `stderr` is a user error: one `error: ` line, no Debug output, no eyre report.
fn assert_user_error(stderr: &str) {
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line:\n{stderr}");
    for noise in ["Location:", "Caused by", "backtrace", "Error {", "{ ..", "(\""] {
        assert!(!stderr.contains(noise), "`{noise}` in:\n{stderr}");
    }
}

/// The column starts of a table's header line, by header word.
fn column_starts(header: &str, words: &[&str]) -> Vec<usize> {
    words.iter().map(|w| header.find(w).unwrap_or_else(|| panic!("{w} in {header}"))).collect()
}

#[tokio::test]
async fn routes_prints_the_set_and_every_endpoint_state() -> eyre::Result<()> {
    let devnet = Devnet::start(&Toolchain::locate()?, &DevnetOptions::default()).await?;
    devnet.bootstrap_routes().await?;
    let output = Command::new(LIFELINE)
        .args(["routes", "--service", "eth-devnet/rpc"])
        .env("LIFELINE_RPC_URL", devnet.rpc_url())
        .env("LIFELINE_REGISTRY", devnet.registry().to_string())
        .output()?;
    let text = String::from_utf8(output.stdout)?;
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("epoch     1"), "{text}");
    assert!(text.contains("2 authorised (target 2, floor 1, quorum 2 keepers)"), "{text}");
    assert_eq!(text.matches("serving").count(), 2, "{text}");
    assert_eq!(text.matches("ready to promote").count(), 2, "{text}");

    let json = Command::new(LIFELINE)
        .args(["routes", "--service", "eth-devnet/rpc", "--json"])
        .env("LIFELINE_RPC_URL", devnet.rpc_url())
        .env("LIFELINE_REGISTRY", devnet.registry().to_string())
        .output()?;
    let value: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(value["routeSet"]["routes"].as_array().map(Vec::len), Some(2));
    assert_eq!(value["name"], "eth-devnet/rpc");

    // By id: the name still shows (from the registry's ServiceCreated event).
    let (rpc, registry) = (devnet.rpc_url(), devnet.registry().to_string());
    let id = devnet.service_id().to_string();
    let output = routes(&rpc, &registry, &["--service", &id])?;
    let text = String::from_utf8(output.stdout)?;
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.starts_with(&format!("service   eth-devnet/rpc ({id})")), "{text}");

    // The table: every column starts where its header does, on every row.
    let header = text.lines().find(|l| l.trim_start().starts_with("ID")).expect("header");
    let words = ["STATE", "NOTE", "URL", "REGION", "PROVIDER"];
    let starts = column_starts(header, &words);
    let rows: Vec<&str> = text.lines().filter(|l| l.contains("http://127.0.0.1:")).collect();
    assert_eq!(rows.len(), 4, "{text}");
    for row in rows {
        for (word, &at) in words.iter().zip(&starts) {
            let bytes = row.as_bytes();
            assert!(
                bytes[at - 1] == b' ' && bytes[at] != b' ',
                "column {word} at {at} in `{row}`:\n{text}"
            );
        }
        assert_eq!(row.len(), header.len(), "right-aligned VOTES ends with the header:\n{text}");
    }

    // An unknown service is named, with the services that exist; no Debug output.
    let output = routes(&rpc, &registry, &["--service", "eth-nope/rpc"])?;
    let stderr = String::from_utf8(output.stderr)?;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_user_error(&stderr);
    assert!(stderr.contains("service `eth-nope/rpc`"), "{stderr}");
    assert!(stderr.contains("is not registered"), "{stderr}");
    assert!(stderr.contains("registered: eth-devnet/rpc"), "{stderr}");
    Ok(())
}

#[test]
fn routes_refuses_a_short_hex_id_instead_of_hashing_it() -> eyre::Result<()> {
    let output = routes(
        "http://127.0.0.1:1",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        &["--service", "0x1234"],
    )?;
    let stderr = String::from_utf8(output.stderr)?;
    assert_eq!(output.status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("service `0x1234`"), "{stderr}");
    assert!(stderr.contains("32 bytes (0x and 64 hex digits), this has 4 digits"), "{stderr}");
    Ok(())
}

#[test]
fn routes_unreachable_rpc_prints_each_cause_once() -> eyre::Result<()> {
    let closed = format!("http://127.0.0.1:{}", free_port()?);
    let output = routes(
        &closed,
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        &["--service", "eth-devnet/rpc"],
    )?;
    let stderr = String::from_utf8(output.stderr)?;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_user_error(&stderr);
    assert!(stderr.contains("reading service `eth-devnet/rpc` from registry"), "{stderr}");
    // The root cause is kept (it was lost), and every cause appears once.
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("error sending request").count(), 1, "{stderr}");
    Ok(())
}

#[test]
fn keeper_missing_config_prints_the_cause_once() -> eyre::Result<()> {
    let output = Command::new(LIFELINE)
        .args(["keeper", "--config", "/nonexistent/keeper.toml"])
        .env("RUST_BACKTRACE", "1")
        .output()?;
    let stderr = String::from_utf8(output.stderr)?;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_user_error(&stderr);
    assert!(stderr.contains("/nonexistent/keeper.toml"), "{stderr}");
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    Ok(())
}

#[test]
fn keeper_refuses_a_bad_config_naming_the_field() -> eyre::Result<()> {
    let dir = std::env::temp_dir().join(format!("lifeline-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("keeper.toml");
    std::fs::write(
        &config,
        "[registry]\nrpc_urls = [\"http://127.0.0.1:1\"]\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n\
         [probe]\ninterval_ms = 10\n[[service]]\nname = \"x\"\n",
    )?;
    let output = Command::new(LIFELINE).args(["keeper", "--config"]).arg(&config).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("probe.interval_ms = 10: must be at least 50"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn keeper_without_a_key_names_the_variable() -> eyre::Result<()> {
    let dir = std::env::temp_dir().join(format!("lifeline-cli-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("keeper.toml");
    std::fs::write(
        &config,
        "[registry]\nrpc_urls = [\"http://127.0.0.1:1\"]\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n\
         [signer]\nprivate_key_env = \"LIFELINE_TEST_NO_SUCH_KEY\"\n[[service]]\nname = \"x\"\n",
    )?;
    let output = Command::new(LIFELINE).args(["keeper", "--config"]).arg(&config).output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("LIFELINE_TEST_NO_SUCH_KEY"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
