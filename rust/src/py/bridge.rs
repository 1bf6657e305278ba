//! Rust futures as asyncio awaitables, on the one tokio runtime.
//!
//! Each call creates an asyncio future on the caller's loop, runs the Rust future on the
//! runtime without the GIL, and takes the GIL once at the end to build the Python result and
//! schedule `_bridge.resolve` on the loop with `call_soon_threadsafe`. Cancelling the asyncio
//! future aborts the tokio task, which drops the Rust future (and with it any transaction:
//! tokio-postgres rolls back on drop).
//!
//! Why not pyo3-async-runtimes' `future_into_py`: its completion takes the GIL on a tokio
//! thread with no way to hold back interpreter shutdown, and a completion racing the end of
//! the program crashed CPython ("PyGILState_Release: thread state must be current", seen in
//! about one run in three of a short script). Here every completion registers itself in
//! `IN_FLIGHT` before touching Python, and an `atexit` hook (`_shutdown`) stops new ones and
//! waits for those under way, so the interpreter never finalizes under a tokio thread.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::IntoPyObjectExt;
use tokio::task::AbortHandle;

use crate::errors::CoreError;
use crate::runtime;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Aborts the tokio task when its asyncio future is cancelled (an `add_done_callback`).
#[pyclass(frozen)]
struct AbortOnCancel(AbortHandle);

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.0.abort();
        }
        Ok(())
    }
}

fn deliver<T>(event_loop: Py<PyAny>, future: Py<PyAny>, outcome: Result<T, CoreError>)
where
    T: for<'py> IntoPyObject<'py>,
{
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    if SHUTTING_DOWN.load(Ordering::SeqCst) {
        // The interpreter is going away: nobody awaits this any more, and touching Python
        // now is what crashes. Leak the two references rather than decref them late.
        std::mem::forget((event_loop, future));
    } else {
        Python::attach(|py| {
            let (ok, value) = match outcome {
                Ok(value) => match value.into_bound_py_any(py) {
                    Ok(object) => (true, object.unbind()),
                    Err(error) => (false, Into::<PyErr>::into(error).into_value(py).into_any()),
                },
                Err(error) => (false, PyErr::from(error).into_value(py).into_any()),
            };
            let scheduled = RESOLVE
                .get_or_try_init(py, || {
                    Ok::<_, PyErr>(py.import("pgstreams._bridge")?.getattr("resolve")?.unbind())
                })
                .and_then(|resolve| {
                    event_loop
                        .bind(py)
                        .call_method1("call_soon_threadsafe", (resolve, future, ok, value))
                });
            if let Err(error) = scheduled {
                // The loop is closed: the awaiting task is gone with it.
                log::debug!("pgstreams: could not deliver a result: {error}");
            }
        });
    }
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
}

/// Runs `work` on the runtime and returns an awaitable of its result.
pub fn awaitable<'py, F, T>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, CoreError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let get_running_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
    })?;
    let event_loop = get_running_loop.bind(py).call0()?;
    let future = event_loop.call_method0("create_future")?;
    let (loop_ref, future_ref) = (event_loop.unbind(), future.clone().unbind());
    let task = runtime::runtime().spawn(async move {
        let outcome = work.await;
        deliver(loop_ref, future_ref, outcome);
    });
    future.call_method1("add_done_callback", (AbortOnCancel(task.abort_handle()),))?;
    Ok(future)
}

/// Registered with `atexit`: no completion touches Python after this returns.
#[pyfunction]
pub fn _shutdown(py: Python<'_>) {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while IN_FLIGHT.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}
