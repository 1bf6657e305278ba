//! The one tokio runtime of the process: pool connections, the LISTEN task and every call
//! bridged to asyncio (`py::bridge`) share it; two runtimes would double the threads on a
//! 2-core machine and split the pool's tasks.

use std::sync::OnceLock;
use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("pgstreams-io")
            .build()
            .expect("pgstreams: cannot start the tokio runtime")
    })
}
