//! The training loop: epochs of fixed, pre-recorded steps that run ahead on the GPU.
//!
//! A step — gather a batch, forward, loss and gradient, backward, Adam — is one [`Program`] built
//! when the [`Trainer`] is made. An epoch records it once per batch, many steps to a submit, and
//! reads back only at the end: the per-step losses (kept on the GPU at `losses[step]`) and the
//! loss kernel's target check. The last partial batch is kept, as PyTorch's `DataLoader` does.

use crate::checkpoint::TrainingState;
use crate::data::{GpuSplit, Mnist};
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Readback, Tensor};
use crate::kernels::counter::Advance;
use crate::kernels::cross_entropy::{CrossEntropyKernel, CrossEntropyOptions};
use crate::kernels::data::BatchLayout;
use crate::kernels::linear_cross_entropy::LinearCrossEntropyKernel;
use crate::kernels::policy;
use crate::kernels::reduce::count_correct_dispatch;
use crate::kernels::small_head::{self, SmallHeadGrads, SmallHeadKernel};
use crate::loss::{CrossEntropyLoss, Reduction, Targets};
use crate::nn::{LinearParams, Module, Sequential, Workspace};
use crate::optim::{Optimizer, OptimizerConfig, StepLr};
use crate::rng::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to train.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Samples per step.
    pub batch_size: usize,
    /// The optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Cross-entropy's label smoothing ε.
    pub label_smoothing: f32,
    /// Seeds the per-epoch shuffle.
    pub seed: u64,
    /// Reshuffle the training set every epoch (`false`: always in file order).
    pub shuffle: bool,
    /// Input scaling: x = byte · scale + shift (default byte / 255, as `ToTensor`).
    pub scale: f32,
    /// See `scale`.
    pub shift: f32,
    /// Samples per evaluation batch.
    pub eval_batch_size: usize,
    /// Training steps recorded into one submit.
    pub steps_per_submit: usize,
    /// Stop with [`Error::NonFiniteLoss`] when a step's loss is NaN or infinite (else carry on).
    pub stop_on_non_finite: bool,
    /// Train the last Linear layer and the loss as one fused linear cross-entropy, which never
    /// holds the logits (for many classes); the same numbers up to rounding.
    pub fused_head: bool,
    /// A learning-rate schedule stepped after every epoch, or a constant rate.
    pub lr_schedule: Option<StepLr>,
    /// Where a model's last Linear layer is small enough (the MNIST tutorial's 128 → 10 at
    /// batch 64), run it, the loss and both their backward passes as one dispatch
    /// ([`crate::kernels::small_head`]) instead of five; the same numbers up to rounding.
    /// `None`: where the adapter runs it faster ([`crate::kernels::policy::small_head`]).
    pub small_head: Option<bool>,
}

impl Default for TrainConfig {
    /// PyTorch's MNIST tutorial: batch 64, Adam with lr 1e-3, inputs in [0, 1].
    fn default() -> Self {
        TrainConfig {
            batch_size: 64,
            optimizer: OptimizerConfig::default(),
            label_smoothing: 0.0,
            seed: 0,
            shuffle: true,
            scale: 1.0 / 255.0,
            shift: 0.0,
            eval_batch_size: 1000,
            steps_per_submit: 64,
            stop_on_non_finite: true,
            fused_head: false,
            lr_schedule: None,
            small_head: None,
        }
    }
}

/// What one epoch did.
#[derive(Clone, Debug)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean of the steps' losses.
    pub train_loss: f32,
    /// Each step's loss, in order.
    pub step_losses: Vec<f32>,
    /// Steps taken.
    pub steps: usize,
    /// Wall time, submit to last readback.
    pub seconds: f64,
}

/// Where an epoch stands, as [`Trainer::epoch_with_progress`] reports it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Steps the GPU has finished.
    pub steps: usize,
    /// Steps in the epoch.
    pub total: usize,
    /// Mean loss of the steps read back so far (a few times an epoch), once there is one.
    pub running_loss: Option<f32>,
}

/// The progress display's view of an epoch: which loss readbacks are queued, which are read.
struct Watch {
    total: usize,
    /// Steps each progress readback covers, once queued.
    covered: Vec<Option<usize>>,
    read: Vec<bool>,
    running_loss: Option<f32>,
    error: Option<Error>,
}

impl Watch {
    fn new(readbacks: usize, total: usize) -> Self {
        Watch {
            total,
            covered: vec![None; readbacks],
            read: vec![false; readbacks],
            running_loss: None,
            error: None,
        }
    }

    /// Queues the readback of each quarter mark that `submitted` steps have passed.
    fn queue_readbacks(&mut self, gpu: &Gpu, readbacks: &[Readback<f32>], submitted: usize) {
        let parts = readbacks.len() + 1;
        for (i, slot) in self.covered.iter_mut().enumerate() {
            let mark = (self.total * (i + 1) / parts).max(1);
            if slot.is_none() && submitted >= mark && submitted < self.total {
                readbacks[i].begin(gpu);
                *slot = Some(submitted);
            }
        }
    }

    /// Polls, waiting up to `wait` for the GPU to finish what it was given; takes in landed
    /// readbacks, reports; true once every step is done (or on a fault, kept for
    /// [`Watch::finish`]).
    fn tick(
        &mut self,
        gpu: &Gpu,
        readbacks: &[Readback<f32>],
        done: &AtomicUsize,
        report: &mut dyn FnMut(Progress),
        wait: Option<Duration>,
    ) -> bool {
        let poll = match wait {
            Some(timeout) => wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(timeout),
            },
            None => wgpu::PollType::Poll,
        };
        let polled = match gpu.device().poll(poll) {
            Err(wgpu::PollError::Timeout) => Ok(wgpu::PollStatus::Poll),
            other => other,
        };
        if let Err(e) = gpu.check() {
            self.error = Some(e);
            return true;
        }
        for (i, readback) in readbacks.iter().enumerate() {
            if let (Some(steps), false) = (self.covered[i], self.read[i]) {
                if readback.is_ready() {
                    self.read[i] = true;
                    match readback.finish(gpu) {
                        Ok(losses) => {
                            let sum: f64 = losses.iter().take(steps).map(|&l| f64::from(l)).sum();
                            self.running_loss = Some((sum / steps as f64) as f32);
                        }
                        Err(e) => self.error = Some(e),
                    }
                }
            }
        }
        let steps = done.load(Ordering::Relaxed);
        report(Progress {
            steps,
            total: self.total,
            running_loss: self.running_loss,
        });
        steps >= self.total || polled.is_err()
    }

    /// Collects readbacks still mapped (so the next epoch can read again); reports any fault.
    fn finish(mut self, gpu: &Gpu, readbacks: &[Readback<f32>]) -> Result<()> {
        for (i, readback) in readbacks.iter().enumerate() {
            if self.covered[i].is_some() && !self.read[i] {
                readback.finish(gpu)?;
            }
        }
        self.error.take().map_or(Ok(()), Err)
    }
}

/// How the model does on the test split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Fraction of samples whose largest logit is the true class.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
}

/// A pass over a split: `full` recorded once per full batch, then `tail` for the remainder.
struct Pass {
    full: Program,
    full_batches: usize,
    tail: Option<Program>,
}

impl Pass {
    /// Waits for the pipelines' compiles and makes the bind groups ([`Program::ready`]).
    fn ready(&self) -> Result<()> {
        self.full.ready()?;
        self.tail.as_ref().map_or(Ok(()), Program::ready)
    }

    fn steps(&self) -> usize {
        self.full_batches + usize::from(self.tail.is_some())
    }

    /// Submits every step, `steps_per_submit` to a command buffer; `done` counts the steps the
    /// GPU has finished (updated as the device is polled), and `after` hears how many steps have
    /// been submitted after each command buffer.
    fn submit(
        &self,
        gpu: &Gpu,
        steps_per_submit: usize,
        done: Option<&Arc<AtomicUsize>>,
        after: &mut dyn FnMut(usize),
    ) {
        let mut submitted = 0;
        let mut left = self.full_batches;
        let mut chunks = Vec::new();
        while left > 0 {
            let n = left.min(steps_per_submit.max(1));
            chunks.push((&self.full, n));
            left -= n;
        }
        chunks.extend(self.tail.iter().map(|t| (t, 1)));
        for (program, n) in chunks {
            program.submit(gpu, n);
            if let Some(done) = done {
                let done = done.clone();
                gpu.queue().on_submitted_work_done(move || {
                    done.fetch_add(n, Ordering::Relaxed);
                });
            }
            submitted += n;
            after(submitted);
        }
    }
}

/// Builds a [`Pass`] over `len` samples in batches of `batch`, from a builder of the program for
/// a batch of `rows` rows.
fn pass(len: usize, batch: usize, mut build: impl FnMut(usize) -> Result<Program>) -> Result<Pass> {
    let tail_rows = len % batch;
    Ok(Pass {
        full: build(batch)?,
        full_batches: len / batch,
        tail: if tail_rows > 0 {
            Some(build(tail_rows)?)
        } else {
            None
        },
    })
}

/// A pass over one split in batches: the buffers each batch is gathered into, the model's
/// workspace for it, and the steps both passes are built from.
struct Batches<'a> {
    gpu: &'a Gpu,
    model: &'a Sequential,
    config: &'a TrainConfig,
    split: &'a GpuSplit,
    /// Samples per full batch.
    batch: usize,
    layout: BatchLayout,
    x: Tensor,
    y: Tensor,
    ws: Workspace,
    /// The classifier head that trains fused with its loss, when asked for.
    head: Option<(usize, &'a LinearParams)>,
}

impl<'a> Batches<'a> {
    /// Batches for training when `optimizer` is given (its step counter keys dropout), else
    /// for evaluation.
    fn new(
        gpu: &'a Gpu,
        model: &'a Sequential,
        config: &'a TrainConfig,
        split: &'a GpuSplit,
        batch: usize,
        optimizer: Option<&Optimizer>,
    ) -> Result<Self> {
        let batch = batch.min(split.len());
        let fused_head = optimizer.is_some() && config.fused_head;
        let head = match (fused_head, model.classifier_head()) {
            (false, _) => None,
            (true, Some(head)) => Some(head),
            (true, None) => {
                return Err(Error::invalid(
                    "a fused head needs a model whose last layer is Linear",
                ))
            }
        };
        // The fused loss reads its input row by row.
        let layout = match head {
            Some((0, _)) => BatchLayout::Rows,
            _ => model.input_layout(gpu, batch),
        };
        Ok(Batches {
            gpu,
            model,
            config,
            split,
            batch,
            layout,
            x: Tensor::zeros(gpu, &[batch * model.in_features()], DType::F32)?,
            y: Tensor::zeros(gpu, &[batch], DType::I32)?,
            ws: match optimizer {
                Some(optimizer) => {
                    let mut ws = model.workspace(gpu, batch)?;
                    ws.key_dropout_by(optimizer.step_counter())?;
                    ws
                }
                None => model.eval_workspace(gpu, batch)?,
            },
            head,
        })
    }

    /// The views a batch of `rows` samples is gathered into, and the gather, which then does
    /// what `advance` says.
    fn gather(&self, rows: usize, advance: Option<Advance>) -> Result<(Tensor, Tensor, Program)> {
        let x = self
            .x
            .view(0, &self.layout.shape(rows, self.model.in_features()))?;
        let y = self.y.rows(rows)?;
        let norm = (self.config.scale, self.config.shift);
        let gather =
            self.split
                .gather(self.gpu, ((&x, self.layout), &y), self.batch, norm, advance)?;
        Ok((x, y, Program::from(gather)))
    }

    /// Training steps: gather, forward, loss and gradient (fused with the head when asked),
    /// backward, optimizer, next batch; per-step losses into `losses`.
    fn training(
        self,
        optimizer: &Optimizer,
        losses: &Tensor,
        kernels: &mut Vec<LossKernel>,
    ) -> Result<Pass> {
        let (gpu, model, ws) = (self.gpu, self.model, &self.ws);
        let loss = CrossEntropyLoss::new().label_smoothing(self.config.label_smoothing);
        pass(self.split.len(), self.batch, |rows| {
            // The step count advances first: dropout and the update read it.
            let (x, y, mut step) = self.gather(rows, Some(optimizer.step_advance()))?;
            let input = (&x, self.layout);
            let cursor = self.split.cursor();
            if let Some((index, head)) = self.head {
                let (forward, hidden) = model.forward_until(gpu, input, ws, index)?;
                step.append(forward);
                let dx = index.checked_sub(1).map(|i| ws.grad(i, rows)).transpose()?;
                let opts = CrossEntropyOptions {
                    label_smoothing: self.config.label_smoothing,
                    ..Default::default()
                };
                let fused = head.fused_loss(gpu, &hidden, &y, opts, dx.as_ref(), losses, cursor)?;
                step.append(fused.forward.clone());
                step.append(fused.backward.clone().unwrap_or_default());
                kernels.push(LossKernel::Fused(fused));
                step.append(model.backward_until(gpu, input, ws, index)?);
            } else if let Some(small) = self.small_head(rows) {
                let (index, head, relu_before) = small;
                let (forward, hidden) = model.forward_until(gpu, input, ws, index)?;
                step.append(forward);
                // A ReLU before the head is the head's gate; the backward then starts below it.
                let below = if relu_before { index - 1 } else { index };
                let needs_dx = model.modules()[..below].iter().any(weighted);
                let dx = match below.checked_sub(1) {
                    Some(i) if needs_dx => Some(ws.grad(i, rows)?),
                    _ => None,
                };
                let grads = SmallHeadGrads {
                    dx: dx.as_ref(),
                    gate: relu_before && needs_dx,
                    dweight: &head.dweight,
                    dbias: &head.dbias,
                };
                let opts = CrossEntropyOptions {
                    label_smoothing: self.config.label_smoothing,
                    ..Default::default()
                };
                let kernel = SmallHeadKernel::new(
                    gpu,
                    (&hidden, &head.weight, &head.bias),
                    &y,
                    &opts,
                    grads,
                    losses,
                    cursor,
                )?;
                step.push(kernel.dispatch.clone());
                kernels.push(LossKernel::Small(kernel));
                step.append(model.backward_until(gpu, input, ws, below)?);
            } else {
                let (forward, out) = model.forward_program(gpu, input, ws)?;
                step.append(forward);
                let targets = Targets::Classes(&y);
                let grad = ws.output_grad(rows)?;
                let ce = loss.prepare(gpu, &out, targets, &grad, losses, cursor)?;
                step.append(ce.program.clone());
                kernels.push(LossKernel::Plain(ce));
                step.append(model.backward_program(gpu, input, ws)?);
            }
            // The next batch: its cursor advances at the end of the update.
            step.append(optimizer.update_program(gpu, model.params(), Some(cursor))?);
            Ok(step)
        })
    }

    /// The classifier head the small-head kernel computes for batches of `rows`, when the
    /// config allows it and it fits: (its index, its parameters, whether a ReLU precedes it).
    fn small_head(&self, rows: usize) -> Option<(usize, &'a LinearParams, bool)> {
        let (index, head) = self.model.classifier_head()?;
        let (classes, features) = (head.weight.shape()[0], head.weight.shape()[1]);
        // The kernel reads its input row by row.
        let rows_in = index > 0 || self.layout == BatchLayout::Rows;
        let wanted = (self.config.small_head)
            .unwrap_or_else(|| policy::small_head(self.gpu.profile(), rows, features, classes));
        let usable = wanted
            && rows_in
            && self.head.is_none()
            && small_head::supported(self.gpu)
            && small_head::fits(self.gpu.profile(), rows, features, classes);
        let relu_before = index > 0 && matches!(self.model.modules()[index - 1], Module::Relu(_));
        usable.then_some((index, head, relu_before))
    }

    /// Evaluation steps: gather, forward, count correct predictions into `correct`, each
    /// batch's summed loss into `losses`, next batch.
    fn evaluation(self, correct: &Tensor, losses: &Tensor) -> Result<Pass> {
        let (gpu, model, ws) = (self.gpu, self.model, &self.ws);
        let sum = CrossEntropyLoss::new().reduction(Reduction::Sum);
        pass(self.split.len(), self.batch, |rows| {
            let (x, y, mut step) = self.gather(rows, None)?;
            let (forward, out) = model.forward_program(gpu, (&x, self.layout), ws)?;
            step.append(forward);
            step.push(count_correct_dispatch(gpu, &out, &y, correct)?);
            let grad = ws.output_grad(rows)?;
            let cursor = self.split.cursor();
            let ce = sum.prepare(gpu, &out, Targets::Classes(&y), &grad, losses, cursor)?;
            step.append(ce.program);
            step.push(self.split.next_batch(gpu)?);
            Ok(step)
        })
    }
}

/// A training step's loss, kept for its check of the class targets.
enum LossKernel {
    Plain(CrossEntropyKernel),
    Fused(LinearCrossEntropyKernel),
    Small(SmallHeadKernel),
}

impl LossKernel {
    fn check_targets(&self, gpu: &Gpu) -> Result<()> {
        match self {
            LossKernel::Plain(k) => k.check_targets(gpu),
            LossKernel::Fused(k) => k.check_targets(gpu),
            LossKernel::Small(k) => k.check_targets(gpu),
        }
    }
}

/// Whether a module has parameters.
fn weighted(module: &Module) -> bool {
    matches!(module, Module::Linear(_) | Module::Conv2d(_))
}

/// Trains a [`Sequential`] classifier with cross-entropy and Adam on an MNIST-format dataset.
pub struct Trainer {
    gpu: Gpu,
    model: Sequential,
    config: TrainConfig,
    train: GpuSplit,
    test: GpuSplit,
    train_pass: Pass,
    eval_pass: Pass,
    loss_kernels: Vec<LossKernel>,
    losses: Readback<f32>,
    /// Extra readbacks of the losses, queued a few times an epoch for the progress display.
    progress_losses: Vec<Readback<f32>>,
    correct: Tensor,
    correct_readback: Readback<u32>,
    eval_losses: Readback<f32>,
    rng: Rng,
    epoch: usize,
    optimizer: Optimizer,
}

impl Trainer {
    /// Uploads `data`, allocates every buffer and records-ready program for training `model`.
    pub fn new(gpu: &Gpu, model: Sequential, data: &Mnist, config: TrainConfig) -> Result<Self> {
        if config.batch_size == 0 || config.eval_batch_size == 0 {
            return Err(Error::invalid("batch size must be at least 1"));
        }
        let features = data.train.features;
        if features != model.in_features() || data.test.features != features {
            let shape = model.input_shape();
            let images = match shape {
                [c, h, w] => format!("{c}×{h}×{w} images: "),
                _ => String::new(),
            };
            return Err(Error::shape(format!(
                "the model takes {images}{} features but the data has {features}",
                model.in_features()
            )));
        }
        let batch = config.batch_size.min(data.train.len());
        let fits = model.max_batch(gpu);
        if batch > fits {
            return Err(Error::invalid(format!(
                "a batch of {batch} samples does not fit this device: the model's largest \
                 tensor (for a CNN, a convolution's taps) holds {fits} samples within \
                 max_storage_buffer_binding_size ({} bytes); use --batch-size {fits} or less",
                gpu.limits().max_storage_buffer_binding_size
            )));
        }
        let train = GpuSplit::upload(gpu, &data.train)?;
        let test = GpuSplit::upload(gpu, &data.test)?;
        let optimizer = Optimizer::new(gpu, model.params(), config.optimizer)?;
        if let Some(schedule) = &config.lr_schedule {
            schedule.validate()?;
        }
        let steps = train.len().div_ceil(config.batch_size.min(train.len()));
        let losses = Tensor::zeros(gpu, &[steps], DType::F32)?;
        let mut loss_kernels = Vec::new();
        let train_pass = Batches::new(
            gpu,
            &model,
            &config,
            &train,
            config.batch_size,
            Some(&optimizer),
        )?
        .training(&optimizer, &losses, &mut loss_kernels)?;
        let correct = Tensor::zeros(gpu, &[1], DType::U32)?;
        // Convolutions' scratch grows with the batch: evaluation takes no more than fits.
        let eval_batch = (config.eval_batch_size.min(test.len())).min(model.max_batch(gpu));
        let eval_losses = Tensor::zeros(gpu, &[test.len().div_ceil(eval_batch)], DType::F32)?;
        // Evaluation counts correct predictions, so it keeps the logits.
        let eval_pass = Batches::new(gpu, &model, &config, &test, eval_batch, None)?
            .evaluation(&correct, &eval_losses)?;
        // Every kernel above compiled side by side; the bind groups are made now, not in the
        // first epoch.
        train_pass.ready()?;
        eval_pass.ready()?;
        Ok(Trainer {
            gpu: gpu.clone(),
            model,
            rng: Rng::new(config.seed ^ 0x5348_5546_464c_4500),
            config,
            train,
            test,
            train_pass,
            eval_pass,
            loss_kernels,
            progress_losses: (0..3)
                .map(|_| Readback::new(gpu, &losses))
                .collect::<Result<_>>()?,
            losses: Readback::new(gpu, &losses)?,
            correct_readback: Readback::new(gpu, &correct)?,
            correct,
            eval_losses: Readback::new(gpu, &eval_losses)?,
            epoch: 0,
            optimizer,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &Sequential {
        &self.model
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// The program of one full-batch training step (for inspection and benchmarks).
    pub fn step_program(&self) -> &Program {
        &self.train_pass.full
    }

    /// Training steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.train_pass.steps()
    }

    /// Runs every prepared step once (training and evaluation) and undoes what they did, so
    /// that a driver that compiles kernels on first use (Mesa's CPU adapters compile each one
    /// when it is first dispatched) does so now rather than inside the first epoch. Returns the
    /// seconds it took; the run's numbers are the same with or without it.
    pub fn warm_up(&mut self) -> Result<f64> {
        let start = Instant::now();
        let state = self.state()?;
        let order: Vec<u32> = (0..self.train.len() as u32).collect();
        self.train.start_pass(&self.gpu, &order)?;
        self.train_pass.full.submit(&self.gpu, 1);
        if let Some(tail) = &self.train_pass.tail {
            tail.submit(&self.gpu, 1);
        }
        self.evaluate()?;
        for kernel in &self.loss_kernels {
            kernel.check_targets(&self.gpu)?;
        }
        self.restore(&state)?;
        self.gpu.wait()?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// Runs one epoch: every batch once, in a fresh shuffled order unless shuffling is off.
    pub fn epoch(&mut self) -> Result<EpochStats> {
        self.epoch_with_progress(None)
    }

    /// [`Trainer::epoch`], calling `progress` about ten times a second while the GPU works.
    /// Steps are counted from finished submits; the running loss comes from copies of the loss
    /// buffer queued at the epoch's quarters, read as they land. Nothing waits for them.
    pub fn epoch_with_progress(
        &mut self,
        mut progress: Option<&mut dyn FnMut(Progress)>,
    ) -> Result<EpochStats> {
        let start = Instant::now();
        if let Some(schedule) = &self.config.lr_schedule {
            let lr = schedule.lr(self.config.optimizer.lr(), self.epoch);
            self.optimizer.set_lr(&self.gpu, lr)?;
        }
        let n = self.train.len();
        let order = if self.config.shuffle {
            self.rng.permutation(n)
        } else {
            (0..n as u32).collect()
        };
        self.train.start_pass(&self.gpu, &order)?;
        let total = self.train_pass.steps();
        let done = Arc::new(AtomicUsize::new(0));
        let mut watch = Watch::new(self.progress_losses.len(), total);
        let (gpu, readbacks) = (&self.gpu, &self.progress_losses);
        let counter = progress.is_some().then_some(&done);
        // Reports after each submit (a CPU adapter runs the work inside it) and, below, while
        // waiting for a GPU that runs ahead.
        self.train_pass.submit(
            gpu,
            self.config.steps_per_submit,
            counter,
            &mut |submitted| {
                if let Some(report) = progress.as_mut() {
                    watch.queue_readbacks(gpu, readbacks, submitted);
                    watch.tick(gpu, readbacks, &done, &mut **report, None);
                }
            },
        );
        if let Some(report) = progress.as_mut() {
            // Returns as soon as the GPU is done, else redraws every 100 ms while it works.
            let redraw = Some(Duration::from_millis(100));
            while !watch.tick(gpu, readbacks, &done, &mut **report, redraw) {}
            watch.finish(gpu, readbacks)?;
        }
        let losses = self.losses.read(&self.gpu)?;
        for kernel in &self.loss_kernels {
            kernel.check_targets(&self.gpu)?;
        }
        self.epoch += 1;
        let first_bad = losses.iter().enumerate().find(|(_, l)| !l.is_finite());
        if let Some((step, &value)) = first_bad.filter(|_| self.config.stop_on_non_finite) {
            return Err(Error::NonFiniteLoss {
                epoch: self.epoch,
                step: step + 1,
                value,
            });
        }
        let mean = losses.iter().map(|&l| f64::from(l)).sum::<f64>() / losses.len() as f64;
        Ok(EpochStats {
            epoch: self.epoch,
            train_loss: mean as f32,
            steps: losses.len(),
            step_losses: losses,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Everything needed to continue this run exactly (see [`Trainer::restore`]).
    pub fn state(&self) -> Result<TrainingState> {
        let (optimizer_step, optimizer) = self.optimizer.state(&self.gpu)?;
        Ok(TrainingState {
            epoch: self.epoch,
            rng: self.rng.state(),
            params: self.model.params().state_dict(&self.gpu)?,
            optimizer_step,
            optimizer,
            model: Some(self.model.spec().clone()),
        })
    }

    /// Continues from a saved state: parameters, optimizer, epoch count and shuffle order.
    pub fn restore(&mut self, state: &TrainingState) -> Result<()> {
        if state
            .model
            .as_ref()
            .is_some_and(|spec| spec != self.model.spec())
        {
            return Err(Error::invalid(
                "the training state belongs to a model of another architecture",
            ));
        }
        self.model
            .params()
            .load_state_dict(&self.gpu, &state.params)?;
        self.optimizer
            .restore(&self.gpu, state.optimizer_step, &state.optimizer)?;
        self.epoch = state.epoch;
        self.rng = Rng::new(state.rng);
        Ok(())
    }

    /// Accuracy and mean cross-entropy on the test split.
    pub fn evaluate(&self) -> Result<Evaluation> {
        let order: Vec<u32> = (0..self.test.len() as u32).collect();
        self.test.start_pass(&self.gpu, &order)?;
        self.correct.write(&self.gpu, &[0u32])?;
        self.eval_pass
            .submit(&self.gpu, self.config.steps_per_submit, None, &mut |_| {});
        let correct = self.correct_readback.read(&self.gpu)?[0];
        let loss: f64 = self
            .eval_losses
            .read(&self.gpu)?
            .iter()
            .map(|&l| f64::from(l))
            .sum();
        let n = self.test.len() as f64;
        Ok(Evaluation {
            accuracy: f64::from(correct) / n,
            loss: loss / n,
        })
    }
}
