//! `Sequential`: layers applied in order, with PyTorch's `nn.Sequential` parameter names.
//!
//! Samples flow as tensors of any shape: `(features)` rows for Linear layers, `(C, H, W)` images
//! for Conv2d and MaxPool2d; each layer's shape is inferred and checked when the model is built.
//! Forward and backward are planned once as explicit steps, where a ReLU after a Linear or
//! Conv2d layer joins that layer's epilogue and its backward joins the next layer's gradient.

use super::layer::{build, check_size, Layer, Module};
use super::plan::{self, Backward, Forward, Slot};
use super::{Conv2dParams, LinearParams, ModelSpec, NamedTensor, Parameters, Relu};
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::kernels::conv::{Conv2dScratch, Conv2dShape};
use crate::kernels::data::BatchLayout;
use crate::kernels::dropout::dropout_dispatch;
use crate::kernels::policy;
use crate::kernels::pool::{max_pool2d_backward_dispatch, max_pool2d_dispatch};
use crate::rng::Rng;

/// A module's parameters, resolved once.
#[derive(Clone, Debug)]
enum Bound {
    None,
    Linear(LinearParams),
    Conv2d(Conv2dParams),
}

/// Layers applied in order. Parameters are named as PyTorch's `nn.Sequential` names them: the
/// layer's index, then `weight` or `bias` (`0.weight`, `0.bias`, `2.weight`, …).
pub struct Sequential {
    spec: ModelSpec,
    modules: Vec<Module>,
    bound: Vec<Bound>,
    /// Per-sample shapes: `shapes[0]` the input's, `shapes[i + 1]` module i's output's.
    shapes: Vec<Vec<usize>>,
    params: Parameters,
}

/// Per-module outputs, gradients and scratch for batches of up to `rows` samples, allocated
/// once. A training workspace holds every gradient and applies dropout; an evaluation one
/// ([`Sequential::eval_workspace`]) holds only the output's gradient (for a loss) and skips
/// dropout.
pub struct Workspace {
    outputs: Vec<Option<Tensor>>,
    grads: Vec<Option<Tensor>>,
    /// Each pooling module's maxima indices (u32).
    indices: Vec<Option<Tensor>>,
    /// Each convolution's scratch: backward reads the taps its forward pass gathered there.
    scratch: Vec<Option<Conv2dScratch>>,
    /// The step counter dropout masks are keyed by; `None` in evaluation.
    dropout_step: Option<Tensor>,
    /// Which gradient buffer holds d(loss)/d(output of module i) (a Flatten shares its input's).
    grad_buffer: Vec<Option<usize>>,
    /// Features per sample of each module's output.
    sizes: Vec<usize>,
    rows: usize,
}

impl Workspace {
    /// Where the loss writes d(loss)/d(model output) for the first `rows` rows (`[rows, out]`).
    pub fn output_grad(&self, rows: usize) -> Result<Tensor> {
        match self.sizes.len().checked_sub(1) {
            Some(last) => self.grad(last, rows),
            None => Err(Error::shape("an empty model has no output gradient")),
        }
    }

    /// d(loss)/d(output of module `index`) for the first `rows` rows, as `[rows, features]`:
    /// where the backward pass of the modules after it writes, and the backward pass of the
    /// modules up to it reads.
    pub fn grad(&self, index: usize, rows: usize) -> Result<Tensor> {
        let buffer = (self.grad_buffer.get(index).copied().flatten())
            .and_then(|b| self.grads.get(b).cloned().flatten());
        match (buffer, self.sizes.get(index)) {
            (Some(g), Some(&size)) => g.view(0, &[rows, size]),
            _ => Err(Error::shape(format!(
                "the workspace holds no gradient of module {index}'s output"
            ))),
        }
    }

    /// The largest batch this workspace holds.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Keys the dropout masks of training steps by `step` (a 1-element u32 counter, usually
    /// the optimizer's, which advances once per step) instead of the workspace's own counter,
    /// which nothing advances.
    pub fn key_dropout_by(&mut self, step: &Tensor) -> Result<()> {
        step.expect_dtype(DType::U32)?;
        crate::kernels::expect_len_of(step, 1, "a dropout step counter")?;
        match &mut self.dropout_step {
            Some(counter) => *counter = step.clone(),
            None => return Err(Error::invalid("an evaluation workspace applies no dropout")),
        }
        Ok(())
    }

    fn output(&self, module: usize, rows: usize, shape: &[usize]) -> Result<Tensor> {
        match self.outputs.get(module) {
            Some(Some(t)) => t.view(0, &batch_shape(rows, shape)),
            _ => Err(Error::shape(format!("module {module} keeps no output"))),
        }
    }

    fn grad_buffer(&self, buffer: usize, rows: usize, shape: &[usize]) -> Result<Tensor> {
        match self.grads.get(buffer) {
            Some(Some(t)) => t.view(0, &batch_shape(rows, shape)),
            _ => Err(Error::shape(format!("no gradient buffer {buffer}"))),
        }
    }

    fn scratch(&self, module: usize) -> Result<&Conv2dScratch> {
        (self.scratch.get(module).and_then(Option::as_ref))
            .ok_or_else(|| Error::invalid(format!("module {module} is not a convolution")))
    }
}

/// `[rows, shape…]`.
fn batch_shape(rows: usize, shape: &[usize]) -> Vec<usize> {
    std::iter::once(rows).chain(shape.iter().copied()).collect()
}

impl Sequential {
    /// Builds `layers` over flat samples on `gpu` with PyTorch's default initialisation drawn
    /// from `seed`. The first layer must be Linear (it gives the input's width); models of
    /// images start from [`Sequential::with_input`].
    pub fn new(gpu: &Gpu, layers: &[Layer], seed: u64) -> Result<Self> {
        let Some(Layer::Linear { in_features, .. }) = layers.first() else {
            return Err(Error::invalid(
                "a Sequential model must start with a Linear layer, or be built with \
                 Sequential::with_input and its input's shape",
            ));
        };
        Self::with_input(gpu, &[*in_features], layers, seed)
    }

    /// Builds `layers` over samples of `input` shape (`[features]`, or `[C, H, W]` for images),
    /// inferring and checking each layer's shape, with PyTorch's default initialisation drawn
    /// from `seed`.
    pub fn with_input(gpu: &Gpu, input: &[usize], layers: &[Layer], seed: u64) -> Result<Self> {
        if input.is_empty() || input.contains(&0) {
            return Err(Error::shape(format!(
                "a model's input shape needs positive dimensions, got {input:?}"
            )));
        }
        check_size(gpu, layers)?;
        let mut shapes = vec![input.to_vec()];
        let mut modules = Vec::with_capacity(layers.len());
        let mut init = Vec::new();
        let mut rng = Rng::new(seed);
        for (i, layer) in layers.iter().enumerate() {
            let shape = shapes.last().cloned().unwrap_or_default();
            let (module, out) = build(i, layer, &shape, seed)?;
            match &module {
                Module::Linear(linear) => init.extend(linear.init(&mut rng)),
                Module::Conv2d(conv) => init.extend(conv.init(&mut rng)),
                _ => {}
            }
            modules.push(module);
            shapes.push(out);
        }
        let params = Parameters::new(gpu, init)?;
        let bound = (modules.iter())
            .map(|m| match m {
                Module::Linear(linear) => linear.bind(&params).map(Bound::Linear),
                Module::Conv2d(conv) => conv.bind(&params).map(Bound::Conv2d),
                _ => Ok(Bound::None),
            })
            .collect::<Result<_>>()?;
        Ok(Sequential {
            spec: ModelSpec {
                input: input.to_vec(),
                layers: layers.to_vec(),
            },
            modules,
            bound,
            shapes,
            params,
        })
    }

    /// A multilayer perceptron: Linear layers between consecutive `sizes`, ReLU between them.
    /// `mlp(&gpu, &[784, 128, 10], seed)` is PyTorch's MNIST tutorial model.
    pub fn mlp(gpu: &Gpu, sizes: &[usize], seed: u64) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::invalid(
                "an MLP needs at least input and output sizes",
            ));
        }
        ModelSpec::mlp(sizes).build(gpu, seed)
    }

    /// The MLP a state_dict describes (`0.weight` `[out, in]`, `0.bias`, then the next Linear
    /// two indices on, a ReLU between), with those weights loaded.
    pub fn from_state_dict(gpu: &Gpu, tensors: &[NamedTensor]) -> Result<Self> {
        let mut sizes = Vec::new();
        for index in (0..).step_by(2) {
            let Some((_, shape, _)) = tensors
                .iter()
                .find(|(n, _, _)| *n == format!("{index}.weight"))
            else {
                break;
            };
            let [out_f, in_f] = shape[..] else {
                return Err(Error::shape(format!(
                    "{index}.weight must be 2-D, got {shape:?}"
                )));
            };
            if sizes.is_empty() {
                sizes.push(in_f);
            }
            sizes.push(out_f);
        }
        if sizes.is_empty() {
            return Err(Error::invalid(
                "no 0.weight: not the state_dict of an nn.Sequential of Linear and ReLU layers",
            ));
        }
        let model = Self::mlp(gpu, &sizes, 0)?;
        model.params.load_state_dict(gpu, tensors)?;
        Ok(model)
    }

    /// The architecture it was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The layers.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// The parameters, in one flat buffer.
    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// The shape of one input sample (`[features]`, or `[C, H, W]`).
    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[0]
    }

    /// The shape of module `index`'s output for a batch of `rows` (`[rows, …]`).
    pub fn output_shape(&self, index: usize, rows: usize) -> Vec<usize> {
        batch_shape(
            rows,
            self.shapes.get(index + 1).map_or(&[][..], Vec::as_slice),
        )
    }

    /// Values per input sample.
    pub fn in_features(&self) -> usize {
        self.shapes[0].iter().product()
    }

    /// Values per output sample.
    pub fn out_features(&self) -> usize {
        self.shapes.last().map_or(0, |s| s.iter().product())
    }

    /// The shapes of the convolutions for batches of `rows`.
    fn conv_shapes(&self, rows: usize) -> Result<Vec<Conv2dShape>> {
        let mut shapes = Vec::new();
        for (i, bound) in self.bound.iter().enumerate() {
            if let Bound::Conv2d(conv) = bound {
                let input = batch_shape(rows, &self.shapes[i]);
                let weight = conv.weight.shape();
                shapes.push(Conv2dShape::new(&input, weight, &conv.options)?);
            }
        }
        Ok(shapes)
    }

    /// The largest batch whose every tensor fits one binding of `gpu` (convolutions' scratch
    /// grows with the batch: a few hundred samples for `examples/mnist`'s CNN on lavapipe).
    pub fn max_batch(&self, gpu: &Gpu) -> usize {
        let per_sample = self.shapes.iter().map(|s| s.iter().product::<usize>());
        let scratch = (self.conv_shapes(1).unwrap_or_default().into_iter())
            .flat_map(|s| [s.taps() * s.positions(), s.out_channels * s.positions()]);
        let largest = per_sample.chain(scratch).max().unwrap_or(1).max(1) as u64 * 4;
        let limit = gpu.limits().max_storage_buffer_binding_size;
        usize::try_from(limit / largest)
            .unwrap_or(usize::MAX)
            .max(1)
    }

    /// Allocates every intermediate tensor of training for batches of up to `rows` samples.
    pub fn workspace(&self, gpu: &Gpu, rows: usize) -> Result<Workspace> {
        self.allocate(gpu, rows, true)
    }

    /// Allocates the tensors of evaluation (no dropout, no gradients but the output's) for
    /// batches of up to `rows` samples.
    pub fn eval_workspace(&self, gpu: &Gpu, rows: usize) -> Result<Workspace> {
        self.allocate(gpu, rows, false)
    }

    fn allocate(&self, gpu: &Gpu, rows: usize, training: bool) -> Result<Workspace> {
        let sizes: Vec<usize> = (self.shapes[1..].iter())
            .map(|s| s.iter().product())
            .collect();
        let grad_buffer: Vec<Option<usize>> = (0..self.modules.len())
            .map(|i| plan::grad_of(&self.modules, i))
            .collect();
        let flat = |size: usize| Tensor::zeros(gpu, &[rows * size], DType::F32);
        let last_grad = grad_buffer.last().copied().flatten();
        let mut outputs = Vec::new();
        let mut grads = Vec::new();
        let mut indices = Vec::new();
        for (i, module) in self.modules.iter().enumerate() {
            let own = !matches!(module, Module::Flatten);
            outputs.push(own.then(|| flat(sizes[i])).transpose()?);
            let grad = own && (training || Some(i) == last_grad);
            grads.push(grad.then(|| flat(sizes[i])).transpose()?);
            indices.push(match module {
                Module::MaxPool2d(_) => Some(Tensor::zeros(gpu, &[rows * sizes[i]], DType::U32)?),
                _ => None,
            });
        }
        // Each convolution's backward pass, in training: whether it computes dx.
        let backward = if training {
            let (forward, _) = plan::forward(&self.modules, true);
            plan::backward(&self.modules, &forward)?
        } else {
            Vec::new()
        };
        let wants_dx = |i: usize| {
            backward.iter().find_map(|step| match *step {
                Backward::Weighted { module, dx, .. } if module == i => Some(dx.is_some()),
                _ => None,
            })
        };
        let mut convs = self.conv_shapes(rows)?.into_iter();
        let scratch = (self.modules.iter().enumerate())
            .map(|(i, m)| match m {
                Module::Conv2d(_) => match convs.next() {
                    Some(shape) => {
                        Conv2dScratch::for_convolution(gpu, &shape, wants_dx(i)).map(Some)
                    }
                    None => Err(Error::invalid("a convolution without its shape")),
                },
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        let dropout_step = training
            .then(|| Tensor::zeros(gpu, &[1], DType::U32))
            .transpose()?;
        Ok(Workspace {
            outputs,
            grads,
            indices,
            scratch,
            dropout_step,
            grad_buffer,
            sizes,
            rows,
        })
    }

    /// The layout of input batches of `rows` samples that `gpu` computes the first layer from
    /// fastest: feature-major when the subgroup matmul takes both of its products that way.
    pub fn input_layout(&self, gpu: &Gpu, rows: usize) -> BatchLayout {
        match self.modules.first() {
            Some(Module::Linear(first))
                if policy::feature_major_input(
                    gpu.profile(),
                    rows,
                    first.in_features,
                    first.out_features,
                ) =>
            {
                BatchLayout::Columns
            }
            _ => BatchLayout::Rows,
        }
    }

    /// The batch's rows: x must be `[rows, features]` or `[rows, …input shape]` (`[features,
    /// rows]` feature-major).
    fn check_input(&self, (x, layout): (&Tensor, BatchLayout), ws: &Workspace) -> Result<usize> {
        x.expect_dtype(DType::F32)?;
        let features = self.in_features();
        let rows = match (x.shape(), layout) {
            (&[rows, f], BatchLayout::Rows) | (&[f, rows], BatchLayout::Columns)
                if f == features =>
            {
                Some(rows)
            }
            ([rows, rest @ ..], BatchLayout::Rows) if rest == self.input_shape() => Some(*rows),
            _ => None,
        };
        match rows {
            Some(rows) if rows <= ws.rows => Ok(rows),
            _ => Err(Error::shape(format!(
                "model input ({layout:?}) must be {:?} with rows ≤ {}, got {:?}",
                layout.shape(ws.rows, features),
                ws.rows,
                x.shape()
            ))),
        }
    }

    /// The index of the last module when it is a Linear layer: a classifier head that
    /// [`LinearParams::fused_loss`] can compute together with its cross-entropy.
    pub fn classifier_head(&self) -> Option<(usize, &LinearParams)> {
        let last = self.modules.len().checked_sub(1)?;
        self.linear_params(last).ok().map(|params| (last, params))
    }

    /// The forward pass over x (rows samples, laid out as its layout says) as dispatches, and
    /// the output view (`[rows, out_features]`). A Linear or Conv2d layer followed by a ReLU
    /// runs with the ReLU fused in; dropout applies in a training workspace only.
    pub fn forward_program(
        &self,
        gpu: &Gpu,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
    ) -> Result<(Program, Tensor)> {
        self.forward_until(gpu, x, ws, self.modules.len())
    }

    /// [`Sequential::forward_program`] through the modules before `end` only, and the output
    /// of the last of them as `[rows, features]` (x itself when `end` is 0).
    pub fn forward_until(
        &self,
        gpu: &Gpu,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
        end: usize,
    ) -> Result<(Program, Tensor)> {
        let rows = self.check_input(x, ws)?;
        let (plan, output) = plan::forward(self.modules_before(end)?, ws.dropout_step.is_some());
        let mut program = Program::new();
        for step in &plan {
            program.append(self.forward_step(gpu, x, ws, rows, *step)?);
        }
        let size = self.shapes[end].iter().product();
        let output = match output {
            Slot::Input => self.input_view(x, rows, &[size])?,
            Slot::Output(i) => ws.output(i, rows, &[size])?,
        };
        Ok((program, output))
    }

    /// x viewed as `[rows, shape…]` (a feature-major x stays as it is: only a first Linear
    /// layer reads it).
    fn input_view(
        &self,
        (x, layout): (&Tensor, BatchLayout),
        rows: usize,
        shape: &[usize],
    ) -> Result<Tensor> {
        match layout {
            BatchLayout::Rows => x.view(0, &batch_shape(rows, shape)),
            BatchLayout::Columns => Ok(x.clone()),
        }
    }

    /// The buffer `slot` viewed as module `module`'s input.
    fn input_of(
        &self,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
        rows: usize,
        slot: Slot,
        module: usize,
    ) -> Result<Tensor> {
        let shape = &self.shapes[module];
        match slot {
            Slot::Input => self.input_view(x, rows, shape),
            Slot::Output(i) => ws.output(i, rows, shape),
        }
    }

    fn forward_step(
        &self,
        gpu: &Gpu,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
        rows: usize,
        step: Forward,
    ) -> Result<Program> {
        let out_shape = |module: usize| &self.shapes[module + 1];
        Ok(match step {
            Forward::Weighted {
                module,
                input,
                output,
                relu,
            } => {
                let y = ws.output(output, rows, out_shape(module))?;
                let input_tensor = self.input_of(x, ws, rows, input, module)?;
                match &self.bound[module] {
                    Bound::Linear(params) => {
                        let layout = if input == Slot::Input {
                            x.1
                        } else {
                            BatchLayout::Rows
                        };
                        params.forward(gpu, (&input_tensor, layout), &y, relu)?
                    }
                    Bound::Conv2d(params) => {
                        params.forward(gpu, &input_tensor, &y, relu, ws.scratch(module)?)?
                    }
                    Bound::None => return Err(Error::invalid("planned a layer with no weights")),
                }
            }
            Forward::Relu { module, input } => {
                let x = self.input_of(x, ws, rows, input, module)?;
                let y = ws.output(module, rows, out_shape(module))?;
                Relu.forward(gpu, &x, &y)?
            }
            Forward::Pool { module, input } => {
                let Module::MaxPool2d(pool) = &self.modules[module] else {
                    return Err(Error::invalid("planned pooling for another layer"));
                };
                let x = self.input_of(x, ws, rows, input, module)?;
                let y = ws.output(module, rows, out_shape(module))?;
                let indices = self.pool_indices(ws, module, rows)?;
                max_pool2d_dispatch(gpu, &x, &y, &indices, pool)?.into()
            }
            Forward::Dropout { module, input } => {
                let Module::Dropout(dropout) = &self.modules[module] else {
                    return Err(Error::invalid("planned dropout for another layer"));
                };
                let x = self.input_of(x, ws, rows, input, module)?;
                let y = ws.output(module, rows, out_shape(module))?;
                let step = (ws.dropout_step.as_ref())
                    .ok_or_else(|| Error::invalid("dropout in an evaluation workspace"))?;
                dropout_dispatch(gpu, &x, &y, step, dropout)?.into()
            }
        })
    }

    fn pool_indices(&self, ws: &Workspace, module: usize, rows: usize) -> Result<Tensor> {
        match ws.indices.get(module) {
            Some(Some(t)) => t.view(0, &batch_shape(rows, &self.shapes[module + 1])),
            _ => Err(Error::invalid(format!(
                "module {module} keeps no pooling indices"
            ))),
        }
    }

    /// The backward pass as dispatches: from d(loss)/d(output) in [`Workspace::output_grad`]
    /// to every parameter's gradient. `x` is the forward pass's input. A ReLU followed by a
    /// Linear or Conv2d layer runs its backward inside that layer's input gradient.
    pub fn backward_program(
        &self,
        gpu: &Gpu,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
    ) -> Result<Program> {
        self.backward_until(gpu, x, ws, self.modules.len())
    }

    /// [`Sequential::backward_program`] through the modules before `end` only, from the
    /// gradient of their output in [`Workspace::grad`]`(end - 1)`.
    pub fn backward_until(
        &self,
        gpu: &Gpu,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
        end: usize,
    ) -> Result<Program> {
        let rows = self.check_input(x, ws)?;
        if ws.dropout_step.is_none() {
            return Err(Error::invalid(
                "backward needs a training workspace (Sequential::workspace)",
            ));
        }
        let modules = self.modules_before(end)?;
        let (forward, _) = plan::forward(modules, true);
        let plan = plan::backward(modules, &forward)?;
        let mut program = Program::new();
        for step in plan {
            program.append(self.backward_step(gpu, x, ws, rows, step)?);
        }
        Ok(program)
    }

    fn backward_step(
        &self,
        gpu: &Gpu,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
        rows: usize,
        step: Backward,
    ) -> Result<Program> {
        let in_shape = |module: usize| &self.shapes[module];
        let out_shape = |module: usize| &self.shapes[module + 1];
        Ok(match step {
            Backward::Weighted {
                module,
                input,
                dy,
                dx,
                gate,
            } => {
                let input_tensor = self.input_of(x, ws, rows, input, module)?;
                let dy = ws.grad_buffer(dy, rows, out_shape(module))?;
                let dx = dx
                    .map(|b| ws.grad_buffer(b, rows, in_shape(module)))
                    .transpose()?;
                let gate = gate
                    .map(|b| ws.output(b, rows, in_shape(module)))
                    .transpose()?;
                match &self.bound[module] {
                    Bound::Linear(params) => {
                        let layout = if input == Slot::Input {
                            x.1
                        } else {
                            BatchLayout::Rows
                        };
                        let input = (&input_tensor, layout);
                        params.backward(gpu, input, &dy, dx.as_ref(), gate.as_ref())?
                    }
                    Bound::Conv2d(params) => params.backward(
                        gpu,
                        &input_tensor,
                        &dy,
                        dx.as_ref(),
                        gate.as_ref(),
                        ws.scratch(module)?,
                    )?,
                    Bound::None => return Err(Error::invalid("planned a layer with no weights")),
                }
            }
            Backward::Relu { module, dy, dx } => {
                let y = ws.output(module, rows, out_shape(module))?;
                let dy = ws.grad_buffer(dy, rows, out_shape(module))?;
                let dx = ws.grad_buffer(dx, rows, in_shape(module))?;
                Relu.backward(gpu, &y, &dy, &dx)?
            }
            Backward::Pool {
                module,
                dy,
                dx,
                gate,
            } => {
                let Module::MaxPool2d(pool) = &self.modules[module] else {
                    return Err(Error::invalid("planned pooling for another layer"));
                };
                let indices = self.pool_indices(ws, module, rows)?;
                let dy = ws.grad_buffer(dy, rows, out_shape(module))?;
                let dx = ws.grad_buffer(dx, rows, in_shape(module))?;
                let gate = gate
                    .map(|b| ws.output(b, rows, in_shape(module)))
                    .transpose()?;
                max_pool2d_backward_dispatch(gpu, &dy, &indices, &dx, gate.as_ref(), pool)?.into()
            }
            Backward::Dropout { module, dy, dx } => {
                let Module::Dropout(dropout) = &self.modules[module] else {
                    return Err(Error::invalid("planned dropout for another layer"));
                };
                let step = (ws.dropout_step.as_ref())
                    .ok_or_else(|| Error::invalid("dropout in an evaluation workspace"))?;
                let dy = ws.grad_buffer(dy, rows, out_shape(module))?;
                let dx = ws.grad_buffer(dx, rows, in_shape(module))?;
                dropout_dispatch(gpu, &dy, &dx, step, dropout)?.into()
            }
        })
    }

    fn modules_before(&self, end: usize) -> Result<&[Module]> {
        self.modules.get(..end).ok_or_else(|| {
            Error::shape(format!(
                "the model has {} modules, not {end}",
                self.modules.len()
            ))
        })
    }

    /// The resolved parameters of Linear module `index`.
    pub fn linear_params(&self, index: usize) -> Result<&LinearParams> {
        match self.bound.get(index) {
            Some(Bound::Linear(params)) => Ok(params),
            _ => Err(Error::invalid(format!(
                "module {index} is not a Linear layer"
            ))),
        }
    }

    /// Runs the model on x (`[rows, features]` or `[rows, …input shape]`) once in evaluation
    /// mode and returns its output (allocates; for inference and tests).
    pub fn forward(&self, gpu: &Gpu, x: &Tensor) -> Result<Tensor> {
        let rows = x.shape().first().copied().unwrap_or(0);
        let ws = self.eval_workspace(gpu, rows)?;
        let (program, output) = self.forward_program(gpu, (x, BatchLayout::Rows), &ws)?;
        program.run(gpu)?;
        Ok(output)
    }
}
