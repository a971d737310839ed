//! Benchmarks behind `wgml bench`: matmul throughput by shape, convolution throughput beside
//! the matmuls it stands on, the epoch time of a model, and where a training step's time goes,
//! kernel by kernel.
//!
//! Every figure is wall time around submits of many repetitions followed by one wait, so the
//! per-submit overhead is amortised the way training amortises it.

use crate::data::{Mnist, Split};
use crate::error::{Error, Result};
use crate::gpu::{DType, Dispatch, Gpu, Program, Tensor};
use crate::kernels::conv::{
    conv2d_backward, conv2d_forward, Conv2dGrads, Conv2dOptions, Conv2dScratch, Conv2dShape,
    TapsGradLayout,
};
use crate::kernels::cross_entropy::{CrossEntropyKernel, CrossEntropyOptions, Targets};
use crate::kernels::linear_cross_entropy::{
    LinearCrossEntropyGrads, LinearCrossEntropyKernel, LinearCrossEntropyOptions,
};
use crate::kernels::matmul::{fuse_row_sums, matmul_dispatch, MatmulKernel, MatmulOptions};
use crate::kernels::reduce::column_sum_dispatch;
use crate::nn::Sequential;
use crate::rng::Rng;
use crate::train::{TrainConfig, Trainer};
use std::time::Instant;

/// Throughput of one matmul shape.
#[derive(Clone, Debug)]
pub struct MatmulResult {
    /// Output rows.
    pub m: usize,
    /// Output columns.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Read A transposed.
    pub trans_a: bool,
    /// Read B transposed.
    pub trans_b: bool,
    /// 2·M·N·K / seconds, in 10⁹.
    pub gflops: f64,
    /// The layout that ran.
    pub layout: MatmulKernel,
}

/// Mean time of one dispatch of a training step.
#[derive(Clone, Debug)]
pub struct KernelTime {
    /// Position in the step.
    pub index: usize,
    /// Entry point name.
    pub name: &'static str,
    /// Microseconds per run, wall clock, the dispatch repeated on its own.
    pub micros: f64,
    /// Microseconds on the GPU's own clock within whole steps (timestamp queries), where the
    /// adapter offers them.
    pub gpu_micros: Option<f64>,
}

/// Time and memory of a cross-entropy over a Linear layer's outputs, forward and backward.
#[derive(Clone, Debug)]
pub struct LinearCrossEntropyTime {
    /// Rows.
    pub n: usize,
    /// Features.
    pub d: usize,
    /// Classes.
    pub v: usize,
    /// Classes per chunk of the fused op.
    pub chunk: usize,
    /// The fused op's cost.
    pub fused: LossCost,
    /// The same through matmul + cross-entropy + matmuls, where its N × V logits fit.
    pub unfused: Option<LossCost>,
}

/// What one way of computing a loss and its gradients costs.
#[derive(Clone, Copy, Debug)]
pub struct LossCost {
    /// Milliseconds per loss + gradients.
    pub ms: f64,
    /// Bytes of the buffers it creates beyond inputs and outputs.
    pub extra_bytes: u64,
    /// Dispatches per loss + gradients.
    pub dispatches: usize,
}

/// Shapes `wgml bench` times the fused linear cross-entropy at: the unfused path fits the
/// first; the second's logits take 2 GiB (and on GPUs a third's 8 GiB).
pub fn linear_cross_entropy_shapes(gpu: &Gpu) -> Vec<(usize, usize, usize)> {
    let mut shapes = vec![(2048, 256, 16384), (4096, 32, 131_072)];
    if !gpu.profile().cpu {
        shapes.push((16384, 2048, 131_072));
    }
    shapes
}

/// Times loss + gradients of `cross_entropy(x·Wᵀ + b, y)` at N × D inputs and V classes,
/// fused and (where its logits fit the device's limits) unfused, each for about `budget_s`.
pub fn linear_cross_entropy(
    gpu: &Gpu,
    (n, d, v): (usize, usize, usize),
    budget_s: f64,
) -> Result<LinearCrossEntropyTime> {
    let mut rng = Rng::new(2);
    let mut random = |len: usize, scale: f32| -> Vec<f32> {
        (0..len).map(|_| rng.uniform(-scale, scale)).collect()
    };
    let bound = 1.0 / (d as f32).sqrt();
    let x = Tensor::from_slice(gpu, &random(n * d, 1.0), &[n, d])?;
    let w = Tensor::from_slice(gpu, &random(v * d, bound), &[v, d])?;
    let b = Tensor::from_slice(gpu, &random(v, bound), &[v])?;
    let labels: Vec<i32> = (0..n).map(|_| rng.below(v as u64) as i32).collect();
    let y = Tensor::from_slice(gpu, &labels, &[n])?;
    let dx = Tensor::zeros(gpu, &[n, d], DType::F32)?;
    let dw = Tensor::zeros(gpu, &[v, d], DType::F32)?;
    let db = Tensor::zeros(gpu, &[v], DType::F32)?;
    let out = Tensor::zeros(gpu, &[1], DType::F32)?;
    let cursor = Tensor::zeros(gpu, &[1], DType::U32)?;

    let before = gpu.creations().buffer_bytes;
    let opts = LinearCrossEntropyOptions {
        bias: Some(&b),
        ..Default::default()
    };
    let grads = LinearCrossEntropyGrads {
        dx: Some(&dx),
        dweight: &dw,
        dbias: Some(&db),
    };
    let fused = LinearCrossEntropyKernel::new(gpu, &x, &w, &y, opts, Some(grads), &out, &cursor)?;
    let extra_bytes = gpu.creations().buffer_bytes - before;
    let mut program = fused.forward.clone();
    program.append(fused.backward.clone().unwrap_or_default());
    let fused_cost = LossCost {
        ms: time_program(gpu, &program, budget_s)? * 1e3,
        extra_bytes,
        dispatches: program.dispatches().len(),
    };

    let max = gpu.limits().max_storage_buffer_binding_size;
    let unfused = if (n * v * 4) as u64 <= max {
        let before = gpu.creations().buffer_bytes;
        let logits = Tensor::zeros(gpu, &[n, v], DType::F32)?;
        let grad = Tensor::zeros(gpu, &[n, v], DType::F32)?;
        let forward = MatmulOptions {
            trans_b: true,
            bias: Some(&b),
            ..Default::default()
        };
        let mut program = Program::from(matmul_dispatch(gpu, &x, &w, &logits, forward)?);
        let ce = CrossEntropyKernel::new(
            gpu,
            &logits,
            Targets::Classes(&y),
            CrossEntropyOptions::default(),
            &grad,
            &out,
            &cursor,
        )?;
        program.append(ce.program);
        let mut trans_a = MatmulOptions {
            trans_a: true,
            ..Default::default()
        };
        if !fuse_row_sums(gpu, &grad, &x, &mut trans_a, &db)? {
            program.push(column_sum_dispatch(gpu, &grad, &db)?);
        }
        program.push(matmul_dispatch(gpu, &grad, &x, &dw, trans_a)?);
        program.push(matmul_dispatch(gpu, &grad, &w, &dx, Default::default())?);
        let extra_bytes = gpu.creations().buffer_bytes - before;
        Some(LossCost {
            ms: time_program(gpu, &program, budget_s)? * 1e3,
            extra_bytes,
            dispatches: program.dispatches().len(),
        })
    } else {
        None
    };
    Ok(LinearCrossEntropyTime {
        n,
        d,
        v,
        chunk: fused.chunk_classes(),
        fused: fused_cost,
        unfused,
    })
}

/// Seconds per run of `program`, from as many runs as fit `budget_s` in one submit, after one
/// run that warms the pipelines.
fn time_program(gpu: &Gpu, program: &Program, budget_s: f64) -> Result<f64> {
    let start = Instant::now();
    program.run(gpu)?;
    let once = start.elapsed().as_secs_f64();
    let reps = ((budget_s / once.max(1e-6)) as usize).clamp(1, 100);
    let start = Instant::now();
    program.submit(gpu, reps);
    gpu.wait()?;
    Ok(start.elapsed().as_secs_f64() / reps as f64)
}

/// The MNIST tutorial's matmuls (batch 64, 784-128-10) with the transposes training uses, then
/// square sizes.
pub fn default_shapes(large: bool) -> Vec<(usize, usize, usize, bool, bool)> {
    let mut shapes = vec![
        (64, 128, 784, false, true), // fc1 forward: x·W1ᵀ
        (64, 10, 128, false, true),  // fc2 forward
        (10, 128, 64, true, false),  // fc2 weight gradient: dyᵀ·h
        (64, 128, 10, false, false), // fc2 input gradient: dy·W2
        (128, 784, 64, true, false), // fc1 weight gradient: dyᵀ·x
        (256, 256, 256, false, false),
        (1024, 1024, 1024, false, false),
    ];
    if large {
        shapes.push((4096, 4096, 4096, false, false));
    }
    shapes
}

/// Seconds per run of `dispatch`, from `reps` runs recorded into one submit (after a warm-up).
pub fn time_dispatch(gpu: &Gpu, dispatch: &Dispatch, reps: usize) -> Result<f64> {
    dispatch.run(gpu)?;
    let program = crate::gpu::Program::from(dispatch.clone());
    let start = Instant::now();
    program.submit(gpu, reps);
    gpu.wait()?;
    Ok(start.elapsed().as_secs_f64() / reps as f64)
}

/// GFLOP/s of op(A)·op(B) for M×N output and inner dimension K with `layout`, run for about
/// `budget_s`; `None` when the layout cannot compute this product on `gpu`.
pub fn matmul_gflops(
    gpu: &Gpu,
    (m, n, k, trans_a, trans_b): (usize, usize, usize, bool, bool),
    layout: MatmulKernel,
    budget_s: f64,
) -> Result<Option<MatmulResult>> {
    let opts = MatmulOptions {
        trans_a,
        trans_b,
        kernel: layout,
        ..Default::default()
    };
    if !layout.supports(gpu, (m, n, k), &opts) {
        return Ok(None);
    }
    let mut rng = Rng::new(1);
    let mut random =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect() };
    let a_shape = if trans_a { [k, m] } else { [m, k] };
    let b_shape = if trans_b { [n, k] } else { [k, n] };
    let a = Tensor::from_slice(gpu, &random(m * k), &a_shape)?;
    let b = Tensor::from_slice(gpu, &random(k * n), &b_shape)?;
    let c = Tensor::zeros(gpu, &[m, n], DType::F32)?;
    let dispatch = matmul_dispatch(gpu, &a, &b, &c, opts)?;
    let once = time_dispatch(gpu, &dispatch, 1)?;
    let reps = ((budget_s / once.max(1e-6)) as usize).clamp(1, 2000);
    let seconds = time_dispatch(gpu, &dispatch, reps)?;
    Ok(Some(MatmulResult {
        m,
        n,
        k,
        trans_a,
        trans_b,
        gflops: 2.0 * (m * n * k) as f64 / seconds / 1e9,
        layout: layout.resolve(gpu, (m, n, k), &opts),
    }))
}

/// Random bytes and labels shaped like MNIST: `samples` 28×28 images.
pub fn synthetic_mnist(samples: usize, seed: u64) -> Mnist {
    let mut rng = Rng::new(seed);
    let mut split = |n: usize| Split {
        images: (0..n * 784).map(|_| rng.below(256) as u8).collect(),
        labels: (0..n).map(|_| rng.below(10) as u8).collect(),
        features: 784,
    };
    let train = split(samples);
    let test = split(samples.div_ceil(6));
    Mnist { train, test }
}

/// The tutorial MLP's trainer over `data`.
pub fn tutorial_trainer(gpu: &Gpu, data: &Mnist) -> Result<Trainer> {
    let model = Sequential::mlp(gpu, &[data.train.features, 128, 10], 0)?;
    Trainer::new(gpu, model, data, TrainConfig::default())
}

/// Throughput of one convolution's passes beside the matmuls they stand on.
#[derive(Clone, Debug)]
pub struct ConvTime {
    /// The convolution.
    pub shape: Conv2dShape,
    /// Its options.
    pub options: Conv2dOptions,
    /// GFLOP/s of the forward pass (2 · multiply-adds / seconds): im2col, product, NCHW store.
    pub forward: f64,
    /// GFLOP/s of the backward pass with every gradient (twice the forward's FLOPs), reading
    /// the taps the forward left.
    pub backward: f64,
    /// GFLOP/s of the forward's product alone, W · col.
    pub gemm_forward: f64,
    /// GFLOP/s of the backward's two products alone, dy·colᵀ and Wᵀ·dy.
    pub gemm_backward: f64,
}

/// Times each convolution of `model` at batch `batch` (random values), for about `budget_s`
/// per measurement.
pub fn conv_gflops(
    gpu: &Gpu,
    model: &Sequential,
    batch: usize,
    budget_s: f64,
) -> Result<Vec<ConvTime>> {
    let mut rng = Rng::new(2);
    let mut random = |shape: &[usize]| -> Result<Tensor> {
        let len = shape.iter().product::<usize>();
        let values: Vec<f32> = (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
        Tensor::from_slice(gpu, &values, shape)
    };
    let mut times = Vec::new();
    let mut input = vec![batch];
    input.extend(model.input_shape());
    let mut shape_now = input;
    for (i, module) in model.modules().iter().enumerate() {
        let out = model.output_shape(i, batch);
        if let crate::nn::Module::Conv2d(conv) = module {
            let (x, w, b) = (
                random(&shape_now)?,
                random(&[
                    conv.out_channels,
                    conv.in_channels,
                    conv.kernel.0,
                    conv.kernel.1,
                ])?,
                random(&[conv.out_channels])?,
            );
            let shape = Conv2dShape::new(x.shape(), w.shape(), &conv.options)?;
            let (y, dy) = (random(&shape.output())?, random(&shape.output())?);
            let (dx, dw, db) = (random(x.shape())?, random(w.shape())?, random(b.shape())?);
            let scratch = Conv2dScratch::for_shapes(gpu, &[shape])?;
            let opts = &conv.options;
            let forward = conv2d_forward(gpu, &x, &w, Some(&b), true, &y, &scratch, opts)?;
            let grads = Conv2dGrads {
                dx: Some(&dx),
                gate: Some(&x),
                dweight: &dw,
                dbias: Some(&db),
                taps_kept: true,
                taps_grad: TapsGradLayout::Auto,
            };
            let backward = conv2d_backward(gpu, &x, &w, &dy, grads, &scratch, opts)?;
            let flops = 2.0 * shape.macs() as f64 / 1e9;
            let (o, k, p) = (shape.out_channels, shape.taps(), shape.positions());
            let gemm = |dims, trans_a, trans_b| -> Result<f64> {
                let (m, n, kk) = dims;
                let r = matmul_gflops(
                    gpu,
                    (m, n, kk, trans_a, trans_b),
                    MatmulKernel::Auto,
                    budget_s,
                )?;
                Ok(r.map_or(0.0, |r| r.gflops))
            };
            let dw_gemm = gemm((o, k, p), false, true)?;
            let dcol_gemm = match TapsGradLayout::Auto.resolve(gpu, &shape) {
                TapsGradLayout::PositionMajor => gemm((p, k, o), true, false)?,
                _ => gemm((k, p, o), true, false)?,
            };
            times.push(ConvTime {
                shape,
                options: *opts,
                forward: flops / time_program(gpu, &forward, budget_s)?,
                backward: 2.0 * flops / time_program(gpu, &backward, budget_s)?,
                gemm_forward: gemm((o, p, k), false, false)?,
                // Equal FLOPs each: their combined rate is the harmonic mean.
                gemm_backward: 2.0 / (1.0 / dw_gemm + 1.0 / dcol_gemm),
            });
        }
        shape_now = out;
    }
    Ok(times)
}

/// Seconds of the fastest of `epochs` epochs (after the first, which warms caches).
pub fn epoch_seconds(trainer: &mut Trainer, epochs: usize) -> Result<f64> {
    trainer.epoch()?;
    let mut best = f64::INFINITY;
    for _ in 0..epochs.max(1) {
        best = best.min(trainer.epoch()?.seconds);
    }
    Ok(best)
}

/// Time of each dispatch of one full training step, each repeated `reps` times. The trainer's
/// state is meaningless afterwards.
pub fn step_breakdown(gpu: &Gpu, trainer: &Trainer, reps: usize) -> Result<Vec<KernelTime>> {
    trainer
        .step_program()
        .dispatches()
        .iter()
        .enumerate()
        .map(|(index, d)| {
            Ok(KernelTime {
                index,
                name: d.label(),
                micros: time_dispatch(gpu, d, reps)? * 1e6,
                gpu_micros: None,
            })
        })
        .collect::<Result<Vec<_>>>()
        .and_then(|mut times| {
            if let Some(gpu_times) = step_timestamps(gpu, trainer.step_program(), 20)? {
                for (t, g) in times.iter_mut().zip(gpu_times) {
                    t.gpu_micros = Some(g);
                }
            }
            Ok(times)
        })
}

/// Mean GPU time of each dispatch over `steps` consecutive runs of `program`, from timestamps
/// written around each dispatch; `None` when the device has no timestamp queries.
pub fn step_timestamps(
    gpu: &Gpu,
    program: &crate::gpu::Program,
    steps: usize,
) -> Result<Option<Vec<f64>>> {
    if !gpu
        .device()
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        return Ok(None);
    }
    let dispatches = program.dispatches();
    let count = (2 * dispatches.len() * steps) as u32;
    let queries = gpu.device().create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("step timestamps"),
        ty: wgpu::QueryType::Timestamp,
        count,
    });
    let bytes = u64::from(count) * 8;
    let resolved = gpu.create_buffer(&wgpu::BufferDescriptor {
        label: Some("timestamps"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readable = gpu.create_buffer(&wgpu::BufferDescriptor {
        label: Some("timestamps readback"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = gpu
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    let mut index = 0;
    for _ in 0..steps {
        for d in dispatches {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(d.label()),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some(index),
                    end_of_pass_write_index: Some(index + 1),
                }),
            });
            d.record(&mut pass);
            index += 2;
        }
    }
    encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
    encoder.copy_buffer_to_buffer(&resolved, 0, &readable, 0, bytes);
    gpu.submit([encoder.finish()]);
    let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
    readable.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = sender.send(r);
    });
    gpu.wait()?;
    pollster::block_on(receiver.receive())
        .ok_or_else(|| Error::Readback("no timestamps came back".into()))?
        .map_err(|e| Error::Readback(e.to_string()))?;
    let ticks: Vec<u64> = {
        let view = readable
            .get_mapped_range(..)
            .map_err(|e| Error::Readback(e.to_string()))?;
        bytemuck::cast_slice(&view).to_vec()
    };
    readable.unmap();
    let period_ns = f64::from(gpu.queue().get_timestamp_period());
    let mut totals = vec![0.0; dispatches.len()];
    for (i, pair) in ticks.chunks_exact(2).enumerate() {
        totals[i % dispatches.len()] += pair[1].saturating_sub(pair[0]) as f64 * period_ns / 1e3;
    }
    Ok(Some(totals.into_iter().map(|t| t / steps as f64).collect()))
}
