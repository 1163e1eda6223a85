//! Dropping every capability before the command starts, so that a command run as root cannot
//! undo the sandbox's mounts, change files it does not own (CAP_FOWNER, CAP_CHOWN,
//! CAP_DAC_OVERRIDE), or get a capability back by exec'ing a setuid or file-capability binary:
//! the bounding set is emptied, then the ambient, inheritable, permitted and effective sets.

/// `struct __user_cap_header_struct` and `__user_cap_data_struct` of capset(2), version 3.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Drops all capabilities of this process for good. Must run after the mounts (which need
/// CAP_SYS_ADMIN) and is inherited by everything the process execs.
#[allow(unsafe_code)]
pub fn drop_all() -> Result<(), String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments only. EINVAL for a capability this kernel
        // does not know is fine: it cannot be held either.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return Err(format!("cannot drop capability {cap}: {}", std::io::Error::last_os_error()));
        }
    }
    // SAFETY: as above; clears the ambient set.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData { effective: 0, permitted: 0, inheritable: 0 }; 2];
    // SAFETY: a version-3 header and the two data words that version takes.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(format!("cannot drop capabilities: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
