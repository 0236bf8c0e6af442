//! `lifeline-codegen`: compiles the registry with foundry-compilers (through the project's solc
//! wrapper, `tools/solc`) using the compiler settings of `foundry.toml`, and writes the artifact
//! the Rust bindings are generated from (`bindings/artifacts/RouteRegistry.json`).
//!
//! ```text
//! cargo run -p lifeline-codegen            # regenerate (make bindings)
//! cargo run -p lifeline-codegen -- --check # fail if the committed artifact is out of date
//! ```

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use eyre::{WrapErr, bail, eyre};
use foundry_compilers::{
    Project, ProjectBuilder, ProjectPathsConfig,
    artifacts::{
        BytecodeHash, EvmVersion, Remapping, SettingsMetadata, output_selection::OutputSelection,
    },
    solc::{Solc, SolcCompiler, SolcSettings},
};
use serde::Deserialize;

/// Contracts whose artifacts the bindings need, with the source file that defines each.
const CONTRACTS: &[(&str, &str)] = &[("RouteRegistry", "contracts/RouteRegistry.sol")];

/// The `[profile.default]` keys of foundry.toml that change the bytecode.
#[derive(Debug, Deserialize)]
struct FoundryProfile {
    evm_version: String,
    optimizer: bool,
    optimizer_runs: usize,
    #[serde(default)]
    via_ir: bool,
    remappings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct FoundryToml {
    profile: Profiles,
}

#[derive(Debug, Deserialize)]
struct Profiles {
    default: FoundryProfile,
}

fn main() -> ExitCode {
    let check = std::env::args().skip(1).any(|arg| arg == "--check");
    match run(check) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("lifeline-codegen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(check: bool) -> eyre::Result<()> {
    let root = workspace_root();
    let profile = foundry_profile(&root)?;
    let project = project(&root, &profile)?;
    let files: Vec<PathBuf> = CONTRACTS.iter().map(|(_, file)| root.join(file)).collect();
    let output = project.compile_files(files).wrap_err("compiling the registry")?;
    if output.has_compiler_errors() {
        bail!("solc reported errors:\n{output}");
    }

    let mut stale = Vec::new();
    for (name, _) in CONTRACTS {
        let artifact = output
            .find_first(name)
            .ok_or_else(|| eyre!("no artifact for {name} in the compiler output"))?;
        let abi = artifact.abi.as_ref().ok_or_else(|| eyre!("{name}: no ABI"))?;
        let bytecode = artifact
            .bytecode
            .as_ref()
            .and_then(|b| b.object.as_bytes())
            .ok_or_else(|| eyre!("{name}: no creation bytecode"))?;
        let deployed = artifact
            .deployed_bytecode
            .as_ref()
            .and_then(|d| d.bytecode.as_ref())
            .and_then(|b| b.object.as_bytes())
            .ok_or_else(|| eyre!("{name}: no runtime bytecode"))?;
        let json = serde_json::json!({
            "contractName": name,
            "generatedBy": "lifeline-codegen (make bindings); do not edit",
            "abi": abi,
            "bytecode": { "object": bytecode.to_string() },
            "deployedBytecode": { "object": deployed.to_string() },
        });
        let text = serde_json::to_string_pretty(&json)? + "\n";
        let path = root.join("bindings/artifacts").join(format!("{name}.json"));
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current == text {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            fs::write(&path, text).wrap_err_with(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "the contracts changed but the bindings were not regenerated: {} (run `make bindings`)",
            stale.join(", ")
        );
    }
    if check {
        println!("bindings are up to date with contracts/");
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    // tools/codegen -> repository root
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn foundry_profile(root: &Path) -> eyre::Result<FoundryProfile> {
    let path = root.join("foundry.toml");
    let text = fs::read_to_string(&path).wrap_err_with(|| format!("reading {}", path.display()))?;
    let parsed: FoundryToml =
        toml::from_str(&text).wrap_err_with(|| format!("parsing {}", path.display()))?;
    Ok(parsed.profile.default)
}

fn project(root: &Path, profile: &FoundryProfile) -> eyre::Result<Project<SolcCompiler>> {
    let solc_path = root.join("tools/solc");
    let solc = Solc::new(&solc_path).wrap_err_with(|| {
        format!("running the solc wrapper {} (did `npm ci` run?)", solc_path.display())
    })?;

    let remappings = profile
        .remappings
        .iter()
        .map(|r| r.parse::<Remapping>().map_err(|e| eyre!("foundry.toml remapping `{r}`: {e}")))
        .collect::<eyre::Result<Vec<_>>>()?
        .into_iter()
        .map(|mut r| {
            // foundry.toml paths are relative to the root; solc gets absolute ones.
            r.path = root.join(&r.path).display().to_string();
            r
        })
        .collect::<Vec<Remapping>>();

    let mut settings = SolcSettings::default();
    settings.settings.optimizer.enabled = Some(profile.optimizer);
    settings.settings.optimizer.runs = Some(profile.optimizer_runs);
    settings.settings.via_ir = Some(profile.via_ir);
    settings.settings.evm_version = Some(
        profile
            .evm_version
            .parse::<EvmVersion>()
            .map_err(|e| eyre!("foundry.toml evm_version `{}`: {e}", profile.evm_version))?,
    );
    settings.settings.metadata = Some(SettingsMetadata {
        use_literal_content: None,
        bytecode_hash: Some(BytecodeHash::None),
        cbor_metadata: Some(false),
    });
    settings.settings.output_selection = OutputSelection::default_output_selection();
    settings.settings.remappings = remappings.clone();

    let paths = ProjectPathsConfig::builder()
        .root(root)
        .sources(root.join("contracts"))
        .artifacts(root.join("target/codegen/out"))
        .cache(root.join("target/codegen/cache.json"))
        .lib(root.join("node_modules"))
        .remappings(remappings)
        .build_with_root(root);

    ProjectBuilder::<SolcCompiler>::new(Default::default())
        .paths(paths)
        .settings(settings)
        .ephemeral()
        .no_artifacts()
        .offline()
        .build(SolcCompiler::Specific(solc))
        .wrap_err("configuring the foundry-compilers project")
}
