//! The one tokio runtime of the process. pyo3-async-runtimes is handed this same runtime
//! (`init_with_runtime`), so pool connections, the LISTEN task and every bridged future share
//! it; two runtimes would double the threads on a 2-core machine and split the pool's tasks.

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

/// Registers the runtime with pyo3-async-runtimes; idempotent.
pub fn install() {
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(runtime());
}
