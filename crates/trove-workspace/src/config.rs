//! `trove.toml`: the workspace's settings, written with comments by `trove init`.

use std::path::Path;

use crate::{Result, WorkspaceError};

pub const DEFAULT: &str = r#"# trove workspace configuration.
#
# This directory is PRIVATE: it holds every original message, the catalogue and the
# signing key. Never serve it or copy it to a public machine. Only the site directory
# below is public.

# Where `trove release` writes the public site (a plain directory: serve it with
# `trove serve`, copy it to mirrors, check it with `trove verify`). A relative path is
# taken from this workspace directory. `trove release --site DIR` overrides it.
site = "site"

# The archive's title, shown on every page of the site.
title = "trove archive"
"#;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub site: String,
    pub title: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(crate::io_err(path))?;
        toml::from_str(&text).map_err(|e| WorkspaceError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_config_parses() {
        let c: super::Config = toml::from_str(super::DEFAULT).unwrap();
        assert_eq!(c.site, "site");
    }
}
