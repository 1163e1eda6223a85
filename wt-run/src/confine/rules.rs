//! The Landlock part of the sandbox: read anywhere, write only in the policy's write list,
//! bind TCP only on the leased ports, and (ABI 6) no signals to processes outside the run and
//! no connecting to abstract unix sockets made outside it.
//!
//! Inside the mount namespace the write list names the private mounts (the private git store
//! is mounted where the shared store was), so the rules and the mounts agree. The rules are a
//! second wall: a path the namespace left writable by mistake is still refused here.

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};

use super::Policy;

/// The newest ABI whose rights wt asks for: 6 (scopes). Newer kernels enforce it as well.
const ABI_USED: ABI = ABI::V6;

/// The Landlock ABI the running kernel offers (0: none). `WT_LANDLOCK_ABI_MAX` lowers it, so
/// that what happens on an older kernel can be tried (and tested) on a newer one.
#[allow(unsafe_code)]
pub fn kernel_abi() -> u32 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns
    // the ABI version (or -1); it reads no memory.
    let v = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    let max = std::env::var("WT_LANDLOCK_ABI_MAX").ok().and_then(|m| m.parse().ok()).unwrap_or(u32::MAX);
    u32::try_from(v).unwrap_or(0).min(max)
}

/// The Landlock features (names as the record lists them) this kernel ABI lacks.
pub fn missing(abi: u32, policy: &Policy) -> Vec<&'static str> {
    let mut out = Vec::new();
    if abi < 5 {
        // ABI 5 adds device ioctls: below it, a command may ioctl any terminal it can open.
        out.push("landlock-filesystem");
    }
    if abi < 4 && !policy.ports.is_empty() {
        out.push("landlock-net");
    }
    if abi < 6 {
        out.extend(["scope-signal", "scope-abstract-unix-socket"]);
    }
    out
}

/// Applies the rules to this process: `full` when every rule is enforced, `partial` or `none`
/// when the kernel could not (best effort only: strict mode refused earlier).
pub fn restrict(policy: &Policy, abi: u32) -> Result<RulesetStatus, String> {
    // Ask for no more than the kernel has (or than WT_LANDLOCK_ABI_MAX allows).
    let abi = ABI::from(abi.min(ABI_USED as u32) as i32);
    let level = if policy.best_effort { CompatLevel::BestEffort } else { CompatLevel::HardRequirement };
    let explain = |e: &dyn std::fmt::Display| {
        format!("Landlock cannot enforce --confine here ({e}); it needs Linux 6.12+ with Landlock enabled (ABI 6), or use --confine=best-effort")
    };
    let mut ruleset =
        Ruleset::default().set_compatibility(level).handle_access(AccessFs::from_all(abi)).map_err(|e| explain(&e))?;
    if abi >= ABI::V6 {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(|e| explain(&e))?;
    }
    if !policy.ports.is_empty() && abi >= ABI::V4 {
        ruleset = ruleset.handle_access(AccessNet::BindTcp).map_err(|e| explain(&e))?;
    }
    let mut created = ruleset
        .create()
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(&policy.write, AccessFs::from_all(abi))))
        .map_err(|e| explain(&e))?;
    for port in policy.ports.iter().filter(|_| abi >= ABI::V4) {
        created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp)).map_err(|e| explain(&e))?;
    }
    Ok(created.restrict_self().map_err(|e| explain(&e))?.ruleset)
}
