//! The one tokio runtime of the process: pool connections, the LISTEN task and every call
//! bridged to asyncio (`py::bridge`) share it; two runtimes would double the threads on a
//! 2-core machine and split the pool's tasks.
//!
//! "Of the process" is meant literally. `fork()` copies the runtime's memory into the child
//! but not its threads, so a child that used the parent's runtime would hand its work to
//! threads that do not exist and wait forever (gunicorn `--preload`, Celery prefork,
//! multiprocessing's fork start method). The runtime remembers the process that built it; in
//! any other process `runtime()` builds a fresh one. The parent's copy is leaked in the
//! child, never dropped: dropping it would try to join threads that are not there.

use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

struct ProcessRuntime {
    pid: u32,
    runtime: Arc<Runtime>,
}

// Only threads holding the GIL call `runtime()`, and `fork()` is called by one, so no other
// thread can hold this lock at the moment of a fork.
static RUNTIME: Mutex<Option<ProcessRuntime>> = Mutex::new(None);

tokio::task_local! {
    /// Set while the work of a cancelled call is being dropped (`drop_cancelled`).
    static CANCELLING: bool;
}

/// Drops the work of a cancelled call, telling what it held (`store::PooledConnection`) that
/// it may have been stopped in the middle of a statement.
pub fn drop_cancelled<T>(work: T) {
    CANCELLING.sync_scope(true, || drop(work));
}

/// True while a cancelled call's work is being dropped, or while a panic unwinds it.
pub fn interrupted() -> bool {
    std::thread::panicking() || CANCELLING.try_with(|c| *c).unwrap_or(false)
}

/// The runtime of this process, built on first use (and again after a fork).
pub fn runtime() -> Arc<Runtime> {
    let pid = std::process::id();
    let mut current = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    match current.as_ref() {
        Some(held) if held.pid == pid => Arc::clone(&held.runtime),
        _ => {
            if let Some(inherited) = current.take() {
                // Built by the parent before a fork: its threads are the parent's.
                std::mem::forget(inherited.runtime);
            }
            let runtime = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .thread_name("pgstreams-io")
                    .build()
                    .expect("pgstreams: cannot start the tokio runtime"),
            );
            *current = Some(ProcessRuntime {
                pid,
                runtime: Arc::clone(&runtime),
            });
            runtime
        }
    }
}
