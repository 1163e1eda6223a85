//! A few threads for the requests whose answer takes a while to make (a pane killed with its
//! grace, a tmux command, text typed into a program that may not read it yet), so the event
//! loop never waits on them. Requests that block until something happens (`pane.wait`,
//! streams) are not run here: they are state machines on the loop (`conn`).
//!
//! A worker is started when a job comes and none is idle, at most `MAX_WORKERS`, and ends after
//! `IDLE` without work: an idle supervisor keeps none, and one answering requests one after
//! the other keeps one. Most answers take well under a millisecond; the bound is for the few
//! that wait (a kill's grace, a write to a program that reads nothing), so that some of those
//! at once do not hold up the others. Jobs beyond it wait their turn.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Jobs run at once, at most.
pub const MAX_WORKERS: usize = 16;

/// A worker with nothing to do for this long ends.
const IDLE: Duration = Duration::from_secs(2);

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { jobs: VecDeque::new(), threads: 0, idle: 0 });
static WORK: Condvar = Condvar::new();

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `job` on a worker, as soon as one is free.
pub fn submit(job: impl FnOnce() + Send + 'static) {
    let mut p = pool();
    p.jobs.push_back(Box::new(job));
    // More jobs waiting than idle workers to take them: one more worker, if allowed.
    if p.jobs.len() > p.idle && p.threads < MAX_WORKERS {
        p.threads += 1;
        if std::thread::Builder::new().name("wt-worker".into()).spawn(work).is_err() {
            p.threads -= 1; // the jobs wait for a worker that is running
        }
    }
    WORK.notify_one();
}

fn work() {
    let mut p = pool();
    loop {
        if let Some(job) = p.jobs.pop_front() {
            drop(p);
            // A job that panics (a bug) must not take the worker's count with it.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            p = pool();
            continue;
        }
        p.idle += 1;
        let (guard, waited) = WORK.wait_timeout(p, IDLE).unwrap_or_else(std::sync::PoisonError::into_inner);
        p = guard;
        p.idle -= 1;
        if waited.timed_out() && p.jobs.is_empty() {
            p.threads -= 1;
            return;
        }
    }
}
