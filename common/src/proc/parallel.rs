//! One function over many items on every core: the few file reads per worktree of a registry
//! or a list of hundreds of worktrees, or the git processes of their status.

/// The number of cores to use by default (2 when the system cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `f` of every item, in the items' order, on up to `threads` threads, each a contiguous share.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let share = items.len().div_ceil(threads.max(1)).max(1);
    if share >= items.len() {
        return items.iter().map(f).collect();
    }
    std::thread::scope(|s| {
        let f = &f;
        let workers: Vec<_> =
            items.chunks(share).map(|chunk| s.spawn(move || chunk.iter().map(f).collect::<Vec<R>>())).collect();
        workers.into_iter().flat_map(|w| w.join().expect("a worker does not panic")).collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_in_the_items_order_whatever_the_threads() {
        let items: Vec<u32> = (0..1000).collect();
        for threads in [0, 1, 2, 7, 2000] {
            assert_eq!(super::map(&items, threads, |i| i * 2), items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
        assert_eq!(super::map(&[] as &[u32], 4, |i| *i), Vec::<u32>::new());
    }
}
