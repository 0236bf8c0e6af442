//! Finds the project-local tools that `npm ci` installs (Foundry 1.7.1 and the solc wrapper).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Paths of the repository and of the tools inside its `node_modules`.
#[derive(Debug, Clone)]
pub struct Toolchain {
    root: PathBuf,
}

impl Toolchain {
    /// The repository this crate was built from, or `$LIFELINE_ROOT` when set (for a binary
    /// copied elsewhere). Checks that forge and anvil are installed.
    pub fn locate() -> Result<Self> {
        let root = std::env::var_os("LIFELINE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
        let root = root.canonicalize().unwrap_or(root);
        Self::at(root)
    }

    /// The repository at `root`.
    pub fn at(root: PathBuf) -> Result<Self> {
        let toolchain = Self { root };
        for (tool, path) in [("anvil", toolchain.anvil()), ("forge", toolchain.forge())] {
            if !path.exists() {
                return Err(Error::ToolMissing { tool, path });
            }
        }
        Ok(toolchain)
    }

    /// The repository root (where foundry.toml is).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// anvil 1.7.1.
    pub fn anvil(&self) -> PathBuf {
        self.foundry_tool("anvil")
    }

    /// forge 1.7.1.
    pub fn forge(&self) -> PathBuf {
        self.foundry_tool("forge")
    }

    /// cast 1.7.1.
    pub fn cast(&self) -> PathBuf {
        self.foundry_tool("cast")
    }

    fn foundry_tool(&self, name: &str) -> PathBuf {
        self.root.join(format!("node_modules/@foundry-rs/{name}-linux-amd64/bin/{name}"))
    }
}
