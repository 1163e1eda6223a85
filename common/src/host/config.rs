//! `[hosts.NAME]` in wt.toml: where a host is and where the repository lives there.
//!
//! ```toml
//! [hosts.build1]
//! ssh = "build1"            # an ssh destination: an alias of ~/.ssh/config, or user@host
//! path = "/srv/app"         # the repository at that host (made there on first use)
//! bin = "/opt/wt/bin"       # optional: where the wt tools are there (default: its PATH)
//! ssh_config = "ci/ssh"     # optional: an ssh config file instead of ~/.ssh/config (`-F`)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

/// One host.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Host {
    #[serde(skip)]
    pub name: String,
    /// The ssh destination.
    pub ssh: String,
    /// The repository's directory at the host.
    pub path: PathBuf,
    /// The directory of the wt binaries at the host; absent: found on its PATH.
    pub bin: Option<PathBuf>,
    /// An ssh config file (`ssh -F`), relative to the repository root.
    pub ssh_config: Option<PathBuf>,
}

/// Every host of wt.toml, by name.
#[derive(Debug, Clone, Default)]
pub struct Hosts(pub BTreeMap<String, Host>);

impl Hosts {
    /// Reads `[hosts]` of `<root>/wt.toml`; no file or no section: no hosts.
    pub fn load(root: Option<&Path>) -> Result<Hosts, Error> {
        let map: BTreeMap<String, Host> = crate::config::section(root, "hosts")?;
        let mut hosts = BTreeMap::new();
        for (name, mut host) in map {
            host.name = name.clone();
            if let (Some(cfg), Some(root)) = (&host.ssh_config, root) {
                host.ssh_config = Some(root.join(cfg));
            }
            check(&host)?;
            hosts.insert(name, host);
        }
        Ok(Hosts(hosts))
    }

    /// The host called `name`, or an error that says how to declare it.
    pub fn get(&self, name: &str) -> Result<&Host, Error> {
        check_name(name)?;
        self.0.get(name).ok_or_else(|| {
            Error::usage(
                "unknown-host",
                format!("no host '{name}' in wt.toml; declare it: [hosts.{name}] ssh = \"user@machine\" path = \"/srv/repo\""),
            )
        })
    }
}

/// A host's name: it goes into refs (`hosts/NAME/…`) and file names.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::usage(
            "bad-host",
            format!("invalid host name '{}': use letters, digits, - and _", name.escape_debug()),
        ))
    }
}

/// What is handed to ssh and to the remote shell must not be read as an option or split.
fn check(host: &Host) -> Result<(), Error> {
    check_name(&host.name)?;
    let dest_ok = !host.ssh.is_empty()
        && !host.ssh.starts_with('-')
        && host.ssh.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    let bad = |what: &str| Error::usage("bad-config", format!("wt.toml: [hosts.{}] {what}", host.name));
    if !dest_ok {
        return Err(bad("ssh must be an ssh alias or user@host (letters, digits, . _ - @)"));
    }
    let abs_clean = |p: &Path| p.is_absolute() && p.to_str().is_some_and(|s| !s.chars().any(char::is_control));
    if !abs_clean(&host.path) {
        return Err(bad("path must be an absolute path"));
    }
    if host.bin.as_deref().is_some_and(|b| !abs_clean(b)) {
        return Err(bad("bin must be an absolute path"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Hosts, Error> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("wt.toml"), text).unwrap();
        Hosts::load(Some(dir.path()))
    }

    #[test]
    fn reads_hosts_and_refuses_what_ssh_would_take_for_an_option() {
        let hosts = load("[hosts.b1]\nssh = \"root@b1\"\npath = \"/srv/a\"\n").unwrap();
        assert_eq!(hosts.get("b1").unwrap().ssh, "root@b1");
        assert_eq!(hosts.get("nope").unwrap_err().code, "unknown-host");
        assert!(load("[hosts.b1]\nssh = \"-oProxyCommand=x\"\npath = \"/srv/a\"\n").is_err());
        assert!(load("[hosts.b1]\nssh = \"b1\"\npath = \"rel\"\n").is_err());
        assert!(load("[hosts.\"a;b\"]\nssh = \"b1\"\npath = \"/a\"\n").is_err());
        assert!(load("[hosts.b1]\nssh = \"b1\"\npath = \"/a\"\ntypo = 1\n").is_err());
    }
}
