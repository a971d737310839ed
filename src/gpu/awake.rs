//! Keeps a CPU adapter's cores awake while it has work in flight.
//!
//! A CPU adapter (Mesa's lavapipe and llvmpipe) runs each dispatch on a pool of worker threads
//! that sleep between dispatches. When a core has nothing to run, the OS idles it, and on a
//! virtual machine the hypervisor halts it; waking a worker there then takes up to milliseconds,
//! so the first worker takes the whole of a short dispatch before the others wake, and a
//! training step runs on one core. While work is in flight, one spinner thread per core at the
//! lowest scheduling priority (`SCHED_IDLE`) keeps every core busy: any worker that wakes
//! preempts it at once. Linux only; elsewhere nothing is started.

use super::lock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the first spinner polls the device, so that submissions are seen done (and the
/// spinners stop) even while nothing else polls.
const POLL_EVERY: Duration = Duration::from_millis(1);

/// Spinner threads, parked while no submission is in flight.
pub(crate) struct KeepAwake {
    shared: Arc<Shared>,
    spinners: Vec<JoinHandle<()>>,
}

struct Shared {
    /// Submissions not yet seen done.
    in_flight: AtomicUsize,
    /// Set on drop, or when the device fails: every spinner leaves.
    stop: AtomicBool,
    /// Held by a spinner between seeing no work and parking, and by [`KeepAwake::track`] while
    /// waking them, so that no wake-up is lost.
    parking: Mutex<()>,
    work: Condvar,
}

impl KeepAwake {
    /// One spinner per core for `device`, where the platform can run them at idle priority.
    pub(crate) fn start(device: &wgpu::Device) -> Option<Self> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        let shared = Arc::new(Shared {
            in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            parking: Mutex::new(()),
            work: Condvar::new(),
        });
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let spinners = (0..cores)
            .filter_map(|i| {
                let shared = shared.clone();
                // The first spinner also polls the device.
                let device = (i == 0).then(|| device.clone());
                std::thread::Builder::new()
                    .name(format!("wgml-awake-{i}"))
                    .spawn(move || spin(&shared, device.as_ref()))
                    .ok()
            })
            .collect();
        Some(KeepAwake { shared, spinners })
    }

    /// Keeps the cores awake until the work submitted to `queue` so far is done.
    pub(crate) fn track(&self, queue: &wgpu::Queue) {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        {
            let _parking = lock(&self.shared.parking);
            self.shared.work.notify_all();
        }
        let shared = self.shared.clone();
        queue.on_submitted_work_done(move || {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Whether no submission is in flight (so every spinner is parked).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.shared.in_flight.load(Ordering::Acquire) == 0
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _parking = lock(&self.shared.parking);
            self.shared.work.notify_all();
        }
        for spinner in self.spinners.drain(..) {
            // A callback run by the polling spinner may drop the last handle to the device.
            if spinner.thread().id() != std::thread::current().id() {
                let _ = spinner.join();
            }
        }
    }
}

/// A spinner's life: parked while there is no work, spinning while there is.
fn spin(shared: &Shared, device: Option<&wgpu::Device>) {
    if !lower_to_idle_priority() {
        // At normal priority a spinner would take turns with the workers it is meant to help.
        return;
    }
    loop {
        {
            let mut parking = lock(&shared.parking);
            while shared.in_flight.load(Ordering::Acquire) == 0 && !shared.stopped() {
                parking = shared.work.wait(parking).unwrap_or_else(|p| p.into_inner());
            }
        }
        let mut next_poll = Instant::now() + POLL_EVERY;
        while shared.in_flight.load(Ordering::Acquire) > 0 && !shared.stopped() {
            std::hint::spin_loop();
            if let Some(device) = device {
                if Instant::now() >= next_poll {
                    if device.poll(wgpu::PollType::Poll).is_err() {
                        // Lost: its submissions may never be reported done.
                        shared.stop.store(true, Ordering::Release);
                    }
                    next_poll = Instant::now() + POLL_EVERY;
                }
            }
        }
        if shared.stopped() {
            return;
        }
    }
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Moves the calling thread to `SCHED_IDLE`, where it runs only on an otherwise idle core.
#[cfg(target_os = "linux")]
fn lower_to_idle_priority() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system call on the calling thread (pid 0) with a valid parameter block.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn lower_to_idle_priority() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use crate::gpu::{Gpu, GpuOptions};
    use crate::Result;
    use std::time::{Duration, Instant};

    /// A CPU adapter (the test machines' lavapipe) opened with `keep_awake`, or `None` when the
    /// adapter found is a real GPU.
    fn cpu_gpu(keep_awake: bool) -> Result<Option<Gpu>> {
        let options = GpuOptions {
            keep_awake,
            ..GpuOptions::from_env()?
        };
        let gpu = Gpu::new(&options)?;
        Ok((gpu.info().device_type == wgpu::DeviceType::Cpu).then_some(gpu))
    }

    fn submit_empty(gpu: &Gpu) {
        let encoder = gpu.device().create_command_encoder(&Default::default());
        gpu.submit([encoder.finish()]);
    }

    #[test]
    fn spinners_park_once_the_submitted_work_is_done() -> Result<()> {
        let Some(gpu) = cpu_gpu(true)? else {
            return Ok(());
        };
        let awake = gpu.inner.awake.as_ref();
        assert_eq!(awake.is_some(), cfg!(target_os = "linux"));
        let Some(awake) = awake else { return Ok(()) };
        assert!(awake.is_idle());
        // Seen done by the caller's wait ...
        submit_empty(&gpu);
        gpu.wait()?;
        assert!(awake.is_idle());
        // ... or, with nobody else polling, by the spinners' own polls.
        submit_empty(&gpu);
        let start = Instant::now();
        while !awake.is_idle() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "spinners never parked"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    #[test]
    fn keep_awake_off_starts_no_spinners() -> Result<()> {
        if let Some(gpu) = cpu_gpu(false)? {
            assert!(gpu.inner.awake.is_none());
            submit_empty(&gpu);
            gpu.wait()?;
        }
        Ok(())
    }
}
