//! Pipelines compiled on background threads, so that a model's kernels compile side by side.
//!
//! Creating a compute pipeline is slow on a CPU adapter for a large kernel (Mesa's lavapipe
//! lowers and optimises the shader there; the README has the times), and a model needs
//! dozens. Each one asked for is compiled on a thread of its own, at most one per core at a
//! time, while the caller goes on binding and recording; whoever needs the pipeline waits for
//! it.

use super::lock;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// A pipeline being compiled, or compiled, or failed (with the error's message).
#[derive(Clone, Default)]
pub(crate) struct PendingPipeline(Arc<OnceLock<Result<wgpu::ComputePipeline, String>>>);

impl PendingPipeline {
    /// The pipeline, once its compile is over.
    pub(crate) fn wait(&self) -> Result<wgpu::ComputePipeline, String> {
        self.0.wait().clone()
    }

    /// Compiles with `compile` on a background thread, holding one of `permits` meanwhile.
    pub(crate) fn start(
        &self,
        permits: &Arc<Permits>,
        compile: impl FnOnce() -> Result<wgpu::ComputePipeline, String> + Send + 'static,
    ) {
        let slot = self.clone();
        let permits = permits.clone();
        let run = move || {
            // Even a compile that panics leaves an answer for those waiting.
            let fallback = FailOnDrop(slot.clone());
            let _permit = permits.acquire();
            let _ = slot.0.set(compile());
            drop(fallback);
        };
        if let Err(e) = std::thread::Builder::new()
            .name("wgml-compile".into())
            .spawn(run)
        {
            let _ = self
                .0
                .set(Err(format!("could not start a compile thread: {e}")));
        }
    }
}

/// Sets a pending pipeline to failed if nothing else set it (a compile that panicked).
struct FailOnDrop(PendingPipeline);

impl Drop for FailOnDrop {
    fn drop(&mut self) {
        let _ = (self.0)
            .0
            .set(Err("the pipeline's compile panicked".into()));
    }
}

/// A counting semaphore: how many compiles may run at once.
pub(crate) struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    /// One permit per core of this machine.
    pub(crate) fn per_core() -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Permits {
            free: Mutex::new(cores),
            freed: Condvar::new(),
        })
    }

    fn acquire(self: &Arc<Self>) -> Permit {
        let mut free = lock(&self.free);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        Permit(self.clone())
    }
}

/// A held permit, given back on drop.
struct Permit(Arc<Permits>);

impl Drop for Permit {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}
