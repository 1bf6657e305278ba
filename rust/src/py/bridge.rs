//! Rust futures as asyncio awaitables, on the one tokio runtime.
//!
//! Each call creates an asyncio future on the caller's loop, runs the Rust future on the
//! runtime without the GIL, and takes the GIL once at the end to build the Python result and
//! schedule `_bridge.resolve` on the loop with `call_soon_threadsafe`.
//!
//! Three promises, each kept here once for every call:
//!
//! - **A result always comes.** A panic anywhere in the work, or while building its Python
//!   result, is caught and delivered as `pgstreams.errors.InternalError`: the awaiting task
//!   gets an exception, never a future that stays pending forever.
//! - **Cancelling is clean.** Cancelling the asyncio future cancels the task's token. An
//!   ordinary call then drops its work with `runtime::drop_cancelled`, which tells the pooled connection
//!   it held (`store::PooledConnection`) that a statement may still be running: the connection
//!   asks the server to cancel it and goes back to the pool only once idle. A *shielded* call
//!   (dequeue) is never dropped mid-statement: its work sees the token and stops starting new
//!   statements, and if its result reaches a future that was cancelled meanwhile, `undo` gets
//!   the result (it releases the leases nobody received). `_bridge.resolve` decides, on the
//!   event loop, whether a result was delivered, so no result is both dropped and kept.
//! - **No completion touches a finalizing interpreter.** Why not pyo3-async-runtimes'
//!   `future_into_py`: its completion takes the GIL on a tokio thread with no way to hold back
//!   interpreter shutdown, and a completion racing the end of the program crashed CPython
//!   ("PyGILState_Release: thread state must be current", one run in three of a short script).
//!   Here every completion registers itself in `IN_FLIGHT` before touching Python, and an
//!   `atexit` hook (`_shutdown`) stops new ones and waits for those under way.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::IntoPyObjectExt;
use tokio_util::sync::CancellationToken;

use crate::errors::CoreError;
use crate::runtime;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// The process `IN_FLIGHT` counts for: after a fork the child starts from zero, since the
/// parent's calls in flight are not its own.
static IN_FLIGHT_PID: AtomicU32 = AtomicU32::new(0);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Cancels the task's token when its asyncio future is cancelled (an `add_done_callback`).
#[pyclass(frozen)]
struct CancelOnCancel(CancellationToken);

#[pymethods]
impl CancelOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.0.cancel();
        }
        Ok(())
    }
}

/// Counts a completion in flight for as long as it lives, however it ends.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Called under the GIL before each call starts: in a forked child, forgets the parent's
/// completions in flight so `_shutdown` does not wait for them.
fn count_for_this_process() {
    let pid = std::process::id();
    if IN_FLIGHT_PID.swap(pid, Ordering::SeqCst) != pid {
        IN_FLIGHT.store(0, Ordering::SeqCst);
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

fn panicked(payload: Box<dyn std::any::Any + Send>) -> CoreError {
    CoreError::Internal(format!(
        "a pgstreams task panicked: {}",
        panic_message(&*payload)
    ))
}

/// `(ok, value)` for `_bridge.resolve`: the result, or the exception to set.
fn outcome_object<T>(py: Python<'_>, outcome: Result<T, CoreError>) -> (bool, Py<PyAny>)
where
    T: for<'py> IntoPyObject<'py>,
{
    let converted = std::panic::catch_unwind(AssertUnwindSafe(|| match outcome {
        Ok(value) => value.into_bound_py_any(py).map(|object| object.unbind()),
        Err(error) => Err(PyErr::from(error)),
    }));
    match converted {
        Ok(Ok(object)) => (true, object),
        Ok(Err(error)) => (false, error.into_value(py).into_any()),
        Err(payload) => (
            false,
            PyErr::from(panicked(payload)).into_value(py).into_any(),
        ),
    }
}

fn deliver<T>(
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    outcome: Result<T, CoreError>,
    undo: Option<Py<PyAny>>,
) where
    T: for<'py> IntoPyObject<'py>,
{
    let _in_flight = InFlight::enter();
    if SHUTTING_DOWN.load(Ordering::SeqCst) {
        // The interpreter is going away: nobody awaits this any more, and touching Python
        // now is what crashes. Leak the two references rather than decref them late.
        std::mem::forget((event_loop, future, outcome, undo));
        return;
    }
    Python::attach(|py| {
        let (ok, value) = outcome_object(py, outcome);
        let scheduled = RESOLVE
            .get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("pgstreams._bridge")?.getattr("resolve")?.unbind())
            })
            .and_then(|resolve| {
                event_loop
                    .bind(py)
                    .call_method1("call_soon_threadsafe", (resolve, future, ok, value, undo))
            });
        if let Err(error) = scheduled {
            // The loop is closed: the awaiting task is gone with it.
            log::debug!(target: "pgstreams", "pgstreams: could not deliver a result: {error}");
        }
    });
}

/// Creates the asyncio future on the running loop, spawns `task` (given a token that is
/// cancelled when the future is) and returns the future. `undo` is called with a result that
/// arrives after the future was cancelled.
fn spawn_for_loop<'py, T, F>(
    py: Python<'py>,
    task: impl FnOnce(CancellationToken) -> F,
    undo: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Option<Result<T, CoreError>>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let get_running_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
    })?;
    let event_loop = get_running_loop.bind(py).call0()?;
    let future = event_loop.call_method0("create_future")?;
    count_for_this_process();
    let token = CancellationToken::new();
    let work = task(token.clone());
    let (loop_ref, future_ref) = (event_loop.unbind(), future.clone().unbind());
    runtime::runtime().spawn(async move {
        // None: cancelled, and nobody waits for a result.
        if let Some(outcome) = work.await {
            deliver(loop_ref, future_ref, outcome, undo);
        }
    });
    future.call_method1("add_done_callback", (CancelOnCancel(token),))?;
    Ok(future)
}

/// Runs `work` on the runtime and returns an awaitable of its result. Cancelling the
/// awaitable drops `work` where it stands (inside `CANCELLING`).
pub fn awaitable<'py, F, T>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, CoreError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    spawn_for_loop(py, |token| cancellable(work, token), None)
}

/// `work` with its panics caught (as `InternalError`), or None once `token` is cancelled: then
/// `work` is dropped where it stands, inside `CANCELLING` (what `awaitable` and `blocking` run).
async fn cancellable<F, T>(work: F, token: CancellationToken) -> Option<Result<T, CoreError>>
where
    F: Future<Output = Result<T, CoreError>>,
{
    let mut work = Box::pin(AssertUnwindSafe(work).catch_unwind());
    tokio::select! {
        biased;
        outcome = &mut work => Some(outcome.unwrap_or_else(|payload| Err(panicked(payload)))),
        _ = token.cancelled() => {
            runtime::drop_cancelled(work);
            None
        }
    }
}

/// Like `awaitable`, for work that must not be dropped in the middle of a statement: `work`
/// gets the cancellation token (to stop starting statements, and to stop waiting), always
/// runs to its end, and its result goes to `undo` if the future was cancelled meanwhile.
pub fn awaitable_shielded<'py, F, T>(
    py: Python<'py>,
    work: impl FnOnce(CancellationToken) -> F,
    undo: Py<PyAny>,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, CoreError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let task = move |token: CancellationToken| {
        let work = work(token);
        async move {
            let outcome = AssertUnwindSafe(work).catch_unwind().await;
            Some(outcome.unwrap_or_else(|payload| Err(panicked(payload))))
        }
    };
    spawn_for_loop(py, task, Some(undo))
}

/// How often a blocked caller looks for a signal (Ctrl-C) while it waits.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Runs `work` on the runtime and blocks the calling thread (without the GIL) until its
/// result, for synchronous callers in threads of their own (`BlockingCore`): no asyncio loop,
/// so no hop through a loop's thread. The same promises as `awaitable`: a panic arrives as
/// `InternalError`, and a signal handler that raises while the caller waits (Ctrl-C) cancels
/// the work the way cancelling an awaitable does (dropped inside `CANCELLING`).
pub fn blocking<'py, F, T>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, CoreError>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let token = CancellationToken::new();
    let cancelled = token.clone();
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    runtime::runtime().spawn(async move {
        if let Some(outcome) = cancellable(work, cancelled).await {
            // The caller may be gone (interrupted): then nobody wants the result.
            let _ = reply.send(outcome);
        }
    });
    let mut answer = answer;
    let outcome = loop {
        // (The receiver goes into the GIL-free closure and back: it may not be shared.)
        let (received, waited) = py.detach(move || {
            let received = answer.recv_timeout(SIGNAL_CHECK_INTERVAL);
            (received, answer)
        });
        answer = waited;
        match received {
            Ok(outcome) => break outcome,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupted) = py.check_signals() {
                    token.cancel();
                    return Err(interrupted);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // The task was dropped without an answer: the runtime is shutting down.
                break Err(CoreError::Closed);
            }
        }
    };
    let (ok, value) = outcome_object(py, outcome);
    let value = value.into_bound(py);
    if ok {
        Ok(value)
    } else {
        Err(PyErr::from_value(value))
    }
}

/// A result whose conversion to Python panics (for `_panicking_call("result")`).
struct PanicsWhenConverted;

impl<'py> IntoPyObject<'py> for PanicsWhenConverted {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;
    fn into_pyobject(self, _py: Python<'py>) -> PyResult<Self::Output> {
        panic!("a panic while building a result, on purpose");
    }
}

/// The work of `_panicking_call`: it panics in its task (`"task"`) or while its result is
/// built (`"result"`).
async fn panicking_work(in_task: bool) -> Result<PanicsWhenConverted, CoreError> {
    if in_task {
        panic!("a panic in a task, on purpose");
    }
    Ok(PanicsWhenConverted)
}

/// `_panicking_call(where)`: an awaitable that panics in its task (`"task"`) or while its
/// result is built (`"result"`). The tests' proof that a panic reaches the caller as
/// `InternalError` instead of leaving it waiting forever.
#[pyfunction]
pub fn _panicking_call<'py>(py: Python<'py>, place: &str) -> PyResult<Bound<'py, PyAny>> {
    awaitable(py, panicking_work(place == "task"))
}

/// `_panicking_blocking_call(where)`: the same through `blocking`, for a caller that waits in
/// its own thread.
#[pyfunction]
pub fn _panicking_blocking_call<'py>(py: Python<'py>, place: &str) -> PyResult<Bound<'py, PyAny>> {
    blocking(py, panicking_work(place == "task"))
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
