//! `Sequential`: layers applied in order, with PyTorch's `nn.Sequential` parameter names.

use super::{Linear, LinearParams, NamedTensor, Parameters, Relu};
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::kernels::data::BatchLayout;
use crate::kernels::policy;
use crate::rng::Rng;

/// The most parameter bytes a model may have on the host, where they are initialised.
const HOST_PARAM_BYTES: u64 = 16 << 30;

/// An error unless the parameters of `layers` fit one buffer and binding of the device (they
/// live in one flat buffer) and the host budget, checked before anything is allocated.
fn check_size(gpu: &Gpu, layers: &[Layer]) -> Result<()> {
    let count = layers.iter().try_fold(0u64, |total, layer| match *layer {
        Layer::Linear {
            in_features,
            out_features,
        } => (in_features as u64)
            .checked_add(1)
            .and_then(|fan_in| fan_in.checked_mul(out_features as u64))
            .and_then(|n| total.checked_add(n)),
        Layer::Relu => Some(total),
    });
    let needed = count.and_then(|c| c.checked_mul(4)).unwrap_or(u64::MAX);
    let limits = gpu.limits();
    let (limit, max) = [
        ("max_buffer_size", limits.max_buffer_size),
        (
            "max_storage_buffer_binding_size",
            limits.max_storage_buffer_binding_size,
        ),
        ("host parameter budget (16 GiB)", HOST_PARAM_BYTES),
    ]
    .into_iter()
    .min_by_key(|&(_, max)| max)
    .unwrap_or(("max_buffer_size", limits.max_buffer_size));
    if needed > max {
        return Err(Error::Limit {
            what: format!("the model's parameters ({} floats)", needed / 4),
            needed,
            limit,
            max,
        });
    }
    Ok(())
}

/// A layer as the user describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// `nn.Linear(in_features, out_features)`.
    Linear {
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
    /// `nn.ReLU()`.
    Relu,
}

/// A built layer of a [`Sequential`].
#[derive(Clone, Debug)]
pub enum Module {
    /// A fully connected layer.
    Linear(Linear),
    /// A rectifier.
    Relu(Relu),
}

/// Layers applied in order. Parameters are named as PyTorch's `nn.Sequential` names them: the
/// layer's index, then `weight` or `bias` (`0.weight`, `0.bias`, `2.weight`, …).
pub struct Sequential {
    modules: Vec<Module>,
    /// Each Linear module's parameters, resolved once (`None` for other modules).
    bound: Vec<Option<LinearParams>>,
    widths: Vec<usize>,
    params: Parameters,
}

/// Where a step reads its input: the model's input, or a module's output in the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Input,
    Output(usize),
}

/// One step of a forward pass, planned from the modules: which buffers it reads and writes,
/// and which epilogue it fuses.
#[derive(Clone, Copy, Debug)]
enum Forward {
    /// Linear module `module` from `input` into `output`: the module's own slot, or the next
    /// module's when that module is a ReLU fused into the matmul's epilogue.
    Linear {
        module: usize,
        input: Slot,
        output: usize,
        relu: bool,
    },
    /// A ReLU module on its own.
    Relu { module: usize, input: Slot },
}

/// One step of a backward pass, the mirror of the forward plan: gradients flow from slot `dy`
/// into slot `dx`.
#[derive(Clone, Copy, Debug)]
enum Backward {
    /// Linear module `module`: its parameters' gradients and, when some module needs it, dx;
    /// a ReLU just before it is done here too, as the gate on dx (`gate`: that ReLU's output).
    Linear {
        module: usize,
        input: Slot,
        dy: usize,
        dx: Option<usize>,
        gate: Option<usize>,
    },
    /// A ReLU module no Linear module's gate covers.
    Relu { module: usize, dy: usize, dx: usize },
}

/// Per-layer outputs and their gradients for batches of up to `rows` rows, allocated once.
pub struct Workspace {
    outputs: Vec<Tensor>,
    grads: Vec<Tensor>,
    rows: usize,
}

impl Workspace {
    /// Where the loss writes d(loss)/d(model output) for the first `rows` rows.
    pub fn output_grad(&self, rows: usize) -> Result<Tensor> {
        match self.grads.last() {
            Some(g) => g.rows(rows),
            None => Err(Error::shape("an empty model has no output gradient")),
        }
    }

    /// d(loss)/d(output of module `index`) for the first `rows` rows: where the backward pass
    /// of the modules after it writes, and the backward pass of the modules up to it reads.
    pub fn grad(&self, index: usize, rows: usize) -> Result<Tensor> {
        match self.grads.get(index) {
            Some(g) => g.rows(rows),
            None => Err(Error::shape(format!("the model has no module {index}"))),
        }
    }

    /// The largest batch this workspace holds.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

impl Sequential {
    /// Builds `layers` on `gpu` with PyTorch's default initialisation drawn from `seed`.
    pub fn new(gpu: &Gpu, layers: &[Layer], seed: u64) -> Result<Self> {
        let Some(Layer::Linear { in_features, .. }) = layers.first() else {
            return Err(Error::invalid(
                "a Sequential model must start with a Linear layer",
            ));
        };
        check_size(gpu, layers)?;
        let mut widths = vec![*in_features];
        let mut modules = Vec::with_capacity(layers.len());
        let mut init = Vec::new();
        let mut rng = Rng::new(seed);
        for (i, layer) in layers.iter().enumerate() {
            let width = *widths.last().unwrap_or(&0);
            match *layer {
                Layer::Linear {
                    in_features,
                    out_features,
                } => {
                    if in_features != width || in_features == 0 || out_features == 0 {
                        return Err(Error::shape(format!(
                            "layer {i}: Linear({in_features}, {out_features}) follows a layer \
                             with {width} outputs"
                        )));
                    }
                    let linear = Linear::new(&i.to_string(), in_features, out_features);
                    init.extend(linear.init(&mut rng));
                    modules.push(Module::Linear(linear));
                    widths.push(out_features);
                }
                Layer::Relu => {
                    modules.push(Module::Relu(Relu));
                    widths.push(width);
                }
            }
        }
        let params = Parameters::new(gpu, init)?;
        let bound = (modules.iter())
            .map(|m| match m {
                Module::Linear(linear) => linear.bind(&params).map(Some),
                Module::Relu(_) => Ok(None),
            })
            .collect::<Result<_>>()?;
        Ok(Sequential {
            modules,
            bound,
            widths,
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
        let mut layers = Vec::new();
        for (i, pair) in sizes.windows(2).enumerate() {
            if i > 0 {
                layers.push(Layer::Relu);
            }
            layers.push(Layer::Linear {
                in_features: pair[0],
                out_features: pair[1],
            });
        }
        Self::new(gpu, &layers, seed)
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

    /// The layers.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// The parameters, in one flat buffer.
    pub fn params(&self) -> &Parameters {
        &self.params
    }

    /// Features the model takes.
    pub fn in_features(&self) -> usize {
        self.widths[0]
    }

    /// Features the model returns.
    pub fn out_features(&self) -> usize {
        *self.widths.last().unwrap_or(&0)
    }

    /// Allocates every intermediate tensor for batches of up to `rows` rows.
    pub fn workspace(&self, gpu: &Gpu, rows: usize) -> Result<Workspace> {
        let alloc = |w: &usize| Tensor::zeros(gpu, &[rows, *w], DType::F32);
        let widths = &self.widths[1..];
        Ok(Workspace {
            outputs: widths.iter().map(alloc).collect::<Result<_>>()?,
            grads: widths.iter().map(alloc).collect::<Result<_>>()?,
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

    fn check_input(&self, (x, layout): (&Tensor, BatchLayout), ws: &Workspace) -> Result<usize> {
        x.expect_dtype(DType::F32)?;
        let rows = match (x.shape(), layout) {
            (&[rows, f], BatchLayout::Rows) | (&[f, rows], BatchLayout::Columns)
                if f == self.in_features() =>
            {
                Some(rows)
            }
            _ => None,
        };
        match rows {
            Some(rows) if rows <= ws.rows => Ok(rows),
            _ => Err(Error::shape(format!(
                "model input ({layout:?}) must be {:?} with rows ≤ {}, got {:?}",
                layout.shape(ws.rows, self.in_features()),
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

    /// The forward pass over x (rows samples of in_features, laid out as its layout says) as
    /// dispatches, and the output view (`[rows, out_features]`). A Linear layer followed by a
    /// ReLU runs as one matmul with the ReLU fused in.
    pub fn forward_program(
        &self,
        gpu: &Gpu,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
    ) -> Result<(Program, Tensor)> {
        self.forward_until(gpu, x, ws, self.modules.len())
    }

    /// [`Sequential::forward_program`] through the modules before `end` only, and the output
    /// of the last of them (x itself when `end` is 0).
    pub fn forward_until(
        &self,
        gpu: &Gpu,
        x: (&Tensor, BatchLayout),
        ws: &Workspace,
        end: usize,
    ) -> Result<(Program, Tensor)> {
        let rows = self.check_input(x, ws)?;
        let plan = self.forward_plan(end)?;
        let slot = |s: Slot| -> Result<(Tensor, BatchLayout)> {
            match s {
                Slot::Input => Ok((x.0.clone(), x.1)),
                Slot::Output(i) => Ok((ws.outputs[i].rows(rows)?, BatchLayout::Rows)),
            }
        };
        let mut program = Program::new();
        for step in &plan {
            match *step {
                Forward::Linear {
                    module,
                    input,
                    output,
                    relu,
                } => {
                    let (x, layout) = slot(input)?;
                    let y = ws.outputs[output].rows(rows)?;
                    let params = self.linear_params(module)?;
                    program.append(params.forward(gpu, (&x, layout), &y, relu)?);
                }
                Forward::Relu { module, input } => {
                    let (x, _) = slot(input)?;
                    let y = ws.outputs[module].rows(rows)?;
                    program.append(Relu.forward(gpu, &x, &y)?);
                }
            }
        }
        let output = match end.checked_sub(1) {
            Some(last) => ws.outputs[last].rows(rows)?,
            None => x.0.clone(),
        };
        Ok((program, output))
    }

    /// The backward pass as dispatches: from d(loss)/d(output) in [`Workspace::output_grad`]
    /// to every parameter's gradient. `x` is the forward pass's input. A ReLU followed by a
    /// Linear layer runs its backward inside the Linear layer's input-gradient matmul.
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
        let plan = self.backward_plan(end)?;
        let grad = |i: usize| ws.grads[i].rows(rows);
        let output = |i: usize| ws.outputs[i].rows(rows);
        let mut program = Program::new();
        for step in &plan {
            match *step {
                Backward::Linear {
                    module,
                    input,
                    dy,
                    dx,
                    gate,
                } => {
                    let input = match input {
                        Slot::Input => (x.0.clone(), x.1),
                        Slot::Output(i) => (output(i)?, BatchLayout::Rows),
                    };
                    let dx = dx.map(grad).transpose()?;
                    let gate = gate.map(output).transpose()?;
                    let params = self.linear_params(module)?;
                    let (input, dy) = ((&input.0, input.1), grad(dy)?);
                    program.append(params.backward(gpu, input, &dy, dx.as_ref(), gate.as_ref())?);
                }
                Backward::Relu { module, dy, dx } => {
                    program.append(Relu.backward(gpu, &output(module)?, &grad(dy)?, &grad(dx)?)?);
                }
            }
        }
        Ok(program)
    }

    /// The forward steps of the modules before `end`: each Linear module fuses a ReLU that
    /// follows it (writing into the ReLU's slot); other ReLUs run alone.
    fn forward_plan(&self, end: usize) -> Result<Vec<Forward>> {
        let modules = self.modules_before(end)?;
        let mut plan = Vec::new();
        let mut input = Slot::Input;
        let mut i = 0;
        while i < modules.len() {
            let step = match modules[i] {
                Module::Linear(_) => {
                    let relu = matches!(modules.get(i + 1), Some(Module::Relu(_)));
                    let output = if relu { i + 1 } else { i };
                    Forward::Linear {
                        module: i,
                        input,
                        output,
                        relu,
                    }
                }
                Module::Relu(_) => Forward::Relu { module: i, input },
            };
            let output = match step {
                Forward::Linear { output, .. } => output,
                Forward::Relu { module, .. } => module,
            };
            plan.push(step);
            input = Slot::Output(output);
            i = output + 1;
        }
        Ok(plan)
    }

    /// The backward steps of the modules before `end`, last module first, from the gradient in
    /// slot `end - 1`. Slot i's gradient is with respect to module i's output; a Linear module
    /// with a ReLU before it writes the gradient before that ReLU (slot i − 2), its gate the
    /// ReLU's output, and the ReLU needs no step of its own.
    fn backward_plan(&self, end: usize) -> Result<Vec<Backward>> {
        let modules = self.modules_before(end)?;
        let mut plan = Vec::new();
        let mut i = modules.len();
        while i > 0 {
            i -= 1;
            match modules[i] {
                Module::Linear(_) => {
                    let relu_before = i > 0 && matches!(modules[i - 1], Module::Relu(_));
                    let input = if i == 0 {
                        Slot::Input
                    } else {
                        Slot::Output(i - 1)
                    };
                    let absorbed = if relu_before { i - 1 } else { i };
                    plan.push(Backward::Linear {
                        module: i,
                        input,
                        dy: i,
                        dx: absorbed.checked_sub(1),
                        gate: relu_before.then(|| i - 1),
                    });
                    i = absorbed;
                }
                Module::Relu(_) => {
                    if i > 0 {
                        plan.push(Backward::Relu {
                            module: i,
                            dy: i,
                            dx: i - 1,
                        });
                    }
                }
            }
        }
        Ok(plan)
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
            Some(Some(params)) => Ok(params),
            _ => Err(Error::invalid(format!(
                "module {index} is not a Linear layer"
            ))),
        }
    }

    /// Runs the model on x once and returns its output (allocates; for inference and tests).
    pub fn forward(&self, gpu: &Gpu, x: &Tensor) -> Result<Tensor> {
        let rows = x.shape().first().copied().unwrap_or(0);
        let ws = self.workspace(gpu, rows)?;
        let (program, output) = self.forward_program(gpu, (x, BatchLayout::Rows), &ws)?;
        program.run(gpu)?;
        Ok(output)
    }
}
