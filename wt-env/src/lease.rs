//! Handing out leases. Everything here runs under the ledger's lock, so two wt-env processes
//! can never grant the same index or overlapping blocks. The lease types live in
//! `wt_common::ledger::lease`, since every tool that starts processes reads them.

use wt_common::ledger::lease::{block_of, PortBlock};
use wt_common::ledger::Ledger;
use wt_common::Error;

use crate::ports::{browser_refuses, is_free, PortRange};

/// What a worktree asks for.
#[derive(Debug, Clone)]
pub struct PortRequest {
    pub range: PortRange,
    pub size: u16,
    /// `--ports` names; `None` keeps the names leased before.
    pub names: Option<Vec<String>>,
}

/// The smallest positive index no other worktree holds, and no kept database was made for
/// (its database name would be that database's).
pub fn free_index(ledger: &Ledger, except: &str) -> u32 {
    let mut taken: std::collections::BTreeSet<u32> =
        ledger.worktrees.iter().filter(|(n, _)| *n != except).filter_map(|(_, e)| e.index).collect();
    taken.extend(wt_common::ledger::kept_db::reserved_indices(ledger));
    (1..).find(|i| !taken.contains(i)).expect("an unused index exists")
}

/// The worktree's block: the one it already holds (same size, and no other repository's on
/// the machine: `machine`, as `(first, last)` port), or the first block of the range that no
/// other worktree holds, in this repository or in `machine`, that has no port browsers refuse,
/// and whose every port is free.
pub fn port_block(ledger: &Ledger, name: &str, req: &PortRequest, machine: &[(u16, u16)]) -> Result<PortBlock, Error> {
    let names = |old: &[String]| req.names.clone().unwrap_or_else(|| old.to_vec());
    let claimed_elsewhere = |start: u16, end: u16| machine.iter().any(|&(first, last)| first <= end && start <= last);
    if let Some(held) = ledger.worktrees.get(name).and_then(block_of).filter(|b| b.size == req.size) {
        if !claimed_elsewhere(held.start, held.end()) {
            return Ok(PortBlock { names: names(&held.names), ..held });
        }
        // Leased before the machine's registry knew it (two repositories given the same
        // block by an older wt): the repository that registered first keeps it.
        tracing::warn!(
            "'{name}': ports {}-{} are another repository's on this machine; leasing a new block",
            held.start,
            held.end()
        );
    }
    if u32::from(req.size) > req.range.count() {
        return Err(Error::usage(
            "range-too-small",
            format!(
                "--range {} has {} ports, fewer than a block of {}; widen --range or lower --block",
                req.range.show(),
                req.range.count(),
                req.size
            ),
        ));
    }
    // The others' blocks as (first, last) port, sorted: whether a candidate overlaps one is a
    // binary search, so a lease costs about the same at 500 leases as at 10.
    let mut others: Vec<(u16, u16)> = ledger
        .worktrees
        .iter()
        .filter(|(n, _)| *n != name)
        .filter_map(|(_, e)| block_of(e))
        .map(|b| (b.start, b.end()))
        .collect();
    others.sort_unstable();
    let mut machine = machine.to_vec();
    machine.sort_unstable();
    // Sorted by start, non-overlapping blocks are sorted by end too: the first one ending at or
    // after `s` is the one that overlaps, if any does. (The machine's claims of one repository
    // never overlap either; of several, the scan below goes on past the first that ends.)
    let hits = |blocks: &[(u16, u16)], s: u16, end: u16| {
        let i = blocks.partition_point(|&(_, last)| last < s);
        blocks[i..].iter().take_while(|&&(first, _)| first <= end).any(|&(_, last)| last >= s)
    };
    let overlaps_other = |s: u16| {
        let end = s + (req.size - 1);
        hits(&others, s, end) || hits(&machine, s, end)
    };
    let last_start = u32::from(req.range.hi) + 1 - u32::from(req.size);
    let mut start = u32::from(req.range.lo);
    while start <= last_start {
        let s = start as u16;
        let candidate = s..=s + (req.size - 1);
        let usable = !overlaps_other(s) && !candidate.clone().any(browser_refuses) && candidate.clone().all(is_free);
        if usable {
            return Ok(PortBlock { start: s, size: req.size, names: names(&[]) });
        }
        start += u32::from(req.size);
    }
    Err(Error::failed(
        "no-free-block",
        format!(
            "no free block of {} ports in {}: all are leased or in use; widen --range, or release leases of removed worktrees with `wt-env --gc`",
            req.size,
            req.range.show()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use wt_common::ledger::lease::set_block;
    use wt_common::ledger::Entry;

    fn ledger_with(blocks: &[(&str, u16, u32)]) -> Ledger {
        let mut l = Ledger::default();
        for (name, start, index) in blocks {
            let mut e = Entry::new(PathBuf::from(format!("/w/{name}")));
            e.index = Some(*index);
            set_block(&mut e, Some(&PortBlock { start: *start, size: 10, names: vec![] }));
            l.worktrees.insert(name.to_string(), e);
        }
        l
    }

    #[test]
    fn smallest_free_index_fills_holes() {
        let l = ledger_with(&[("a", 40000, 1), ("c", 40020, 3)]);
        assert_eq!(free_index(&l, "b"), 2);
        assert_eq!(free_index(&l, "a"), 1, "its own index does not count as taken");
    }

    #[test]
    fn blocks_never_overlap_leased_ones_and_are_reused() {
        let l = ledger_with(&[("a", 41000, 1), ("b", 41020, 2)]);
        let req = PortRequest { range: PortRange { lo: 41000, hi: 41099 }, size: 10, names: None };
        assert_eq!(port_block(&l, "c", &req, &[]).unwrap().start, 41010);
        assert_eq!(port_block(&l, "b", &req, &[]).unwrap().start, 41020, "same block when asked again");
    }

    #[test]
    fn a_busy_port_skips_its_block_and_browser_refused_ports_are_never_granted() {
        // A port below the ephemeral range, so no outgoing connection can hold the next block.
        let (held, port) = (23000..24000)
            .step_by(20)
            .find_map(|p| std::net::TcpListener::bind(("127.0.0.1", p + 3)).ok().map(|l| (l, p)))
            .unwrap();
        let req = PortRequest { range: PortRange { lo: port, hi: port + 19 }, size: 10, names: None };
        assert_eq!(port_block(&Ledger::default(), "x", &req, &[]).unwrap().start, port + 10);
        drop(held);
        let req = PortRequest { range: PortRange { lo: 5995, hi: 6014 }, size: 10, names: None };
        let b = port_block(&Ledger::default(), "x", &req, &[]).unwrap();
        assert_eq!(b.start, 6005, "5995-6004 holds 6000");
    }

    /// Blocks of another size, out of order and not aligned with the range's steps: a
    /// candidate is refused exactly when it overlaps one of them.
    #[test]
    fn a_candidate_overlapping_any_block_is_skipped_whatever_their_sizes() {
        let mut l = ledger_with(&[("z", 42035, 1), ("a", 42003, 2)]);
        let mut wide = Entry::new(PathBuf::from("/w/m"));
        set_block(&mut wide, Some(&PortBlock { start: 42012, size: 20, names: vec![] }));
        l.worktrees.insert("m".into(), wide);
        let req = PortRequest { range: PortRange { lo: 42000, hi: 42099 }, size: 5, names: None };
        // 42000-04 meets a (42003-12), 42005-09 a, 42010-14 m (42012-31), … 42030-34 m, 42035-39 z
        // (42035-44), 42040-44 z: the first free is 42045.
        assert_eq!(port_block(&l, "new", &req, &[]).unwrap().start, 42045);
        let req = PortRequest { range: PortRange { lo: 42032, hi: 42099 }, size: 3, names: None };
        assert_eq!(port_block(&l, "new", &req, &[]).unwrap().start, 42032, "between m and z");
    }

    /// Another repository's blocks on the machine are never handed out, and a block this
    /// worktree held that another repository registered first is given up.
    #[test]
    fn blocks_another_repository_holds_on_the_machine_are_skipped() {
        let l = ledger_with(&[("a", 43000, 1)]);
        let req = PortRequest { range: PortRange { lo: 43000, hi: 43099 }, size: 10, names: None };
        let machine = [(43010, 43019), (43025, 43034)];
        assert_eq!(port_block(&l, "b", &req, &machine).unwrap().start, 43040);
        assert_eq!(port_block(&l, "a", &req, &machine).unwrap().start, 43000, "its own, unclaimed elsewhere");
        assert_eq!(port_block(&l, "a", &req, &[(43005, 43014)]).unwrap().start, 43020, "given up");
    }

    #[test]
    fn a_range_smaller_than_a_block_is_a_usage_error() {
        let req = PortRequest { range: PortRange { lo: 41000, hi: 41004 }, size: 10, names: None };
        assert_eq!(port_block(&Ledger::default(), "x", &req, &[]).unwrap_err().code, "range-too-small");
    }
}
