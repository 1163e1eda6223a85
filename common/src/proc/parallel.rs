//! One function over many items on every core: the few file reads per worktree of a registry
//! or a list of hundreds of worktrees, or the git processes of their status.

/// The number of cores to use by default (2 when the system cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `f` of every item, in the items' order, on up to `threads` threads, each taking the next
/// item not yet taken: one slow item (a worktree whose `git status` walks a large tree) holds
/// up one thread, not a contiguous share of the items behind it.
pub fn map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let (f, next) = (&f, &next);
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { return mine };
                        mine.push((i, f(item)));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a worker does not panic")).collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
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
