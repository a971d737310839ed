//! Forward and backward passes planned as explicit steps over a model's modules: which buffers
//! each step reads and writes, and which neighbours it fuses. Plans depend only on the modules
//! (and on training or evaluation), so they are decided once, before any dispatch is built.
//!
//! Buffers are named by module index: module i's output buffer, and the gradient buffer of
//! module i's output (a Flatten has neither: it shares its input's).

use super::Module;
use crate::error::{Error, Result};

/// Where a step reads its input: the model's input, or a module's output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Input,
    Output(usize),
}

/// One step of a forward pass, planned from the modules: which buffers it reads and writes,
/// and which epilogue it fuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Forward {
    /// Linear or Conv2d module `module` from `input` into buffer `output`: the module's own, or
    /// the next module's when that module is a ReLU fused into the epilogue.
    Weighted {
        module: usize,
        input: Slot,
        output: usize,
        relu: bool,
    },
    /// A ReLU module on its own.
    Relu { module: usize, input: Slot },
    /// Max pooling, keeping the maxima's indices for backward.
    Pool { module: usize, input: Slot },
    /// Dropout in training (in evaluation it is no step: its output is its input).
    Dropout { module: usize, input: Slot },
}

/// One step of a backward pass, the mirror of the forward plan: gradients flow from gradient
/// buffer `dy` into gradient buffer `dx`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Backward {
    /// Linear or Conv2d module `module`: its parameters' gradients and, when some module before
    /// needs it, dx; a ReLU just before it is done here too, as the gate on dx (`gate`: that
    /// ReLU's output buffer).
    Weighted {
        module: usize,
        input: Slot,
        dy: usize,
        dx: Option<usize>,
        gate: Option<usize>,
    },
    /// A ReLU no weighted module's gate covers.
    Relu { module: usize, dy: usize, dx: usize },
    /// Max pooling's gradient, routed through the forward's indices; a ReLU just before it is
    /// done here too, as the gate (`gate`: that ReLU's output buffer).
    Pool {
        module: usize,
        dy: usize,
        dx: usize,
        gate: Option<usize>,
    },
    /// Dropout's gradient: the forward's mask, drawn again.
    Dropout { module: usize, dy: usize, dx: usize },
}

/// The forward steps of `modules`, and where the last one's output lies.
/// A Linear or Conv2d module fuses a ReLU that follows it (writing into the ReLU's buffer);
/// a Flatten, and dropout outside training, are no step: their output is their input.
pub(super) fn forward(modules: &[Module], training: bool) -> (Vec<Forward>, Slot) {
    let mut plan = Vec::new();
    let mut input = Slot::Input;
    let mut i = 0;
    while i < modules.len() {
        let (step, last) = match modules[i] {
            Module::Linear(_) | Module::Conv2d(_) => {
                let relu = matches!(modules.get(i + 1), Some(Module::Relu(_)));
                let output = if relu { i + 1 } else { i };
                let step = Forward::Weighted {
                    module: i,
                    input,
                    output,
                    relu,
                };
                (Some(step), output)
            }
            Module::Relu(_) => (Some(Forward::Relu { module: i, input }), i),
            Module::MaxPool2d(_) => (Some(Forward::Pool { module: i, input }), i),
            Module::Dropout(_) if training => (Some(Forward::Dropout { module: i, input }), i),
            Module::Dropout(_) | Module::Flatten => (None, i),
        };
        if let Some(step) = step {
            plan.push(step);
            input = Slot::Output(last);
        }
        i = last + 1;
    }
    (plan, input)
}

/// The backward steps of `modules`, last module first, from the gradient of the last one's
/// output; `forward` is the training forward plan of those modules
/// (where each module's input lies). Modules before the first with weights need no
/// gradient. A weighted module or a pooling after a ReLU (for a weighted module, a Flatten
/// may sit between) writes the gradient before that ReLU, gated by the ReLU's output, and
/// the ReLU needs no step.
pub(super) fn backward(modules: &[Module], forward: &[Forward]) -> Result<Vec<Backward>> {
    let input_slot = |module: usize| -> Slot {
        // The slot the forward plan reads for `module`'s first step at or after it.
        (forward.iter())
            .find_map(|step| match *step {
                Forward::Weighted {
                    module: m, input, ..
                }
                | Forward::Relu { module: m, input }
                | Forward::Pool { module: m, input }
                | Forward::Dropout { module: m, input }
                    if m == module =>
                {
                    Some(input)
                }
                _ => None,
            })
            .unwrap_or(Slot::Input)
    };
    let weighted_before = |i: usize| modules[..i].iter().any(Module::weighted);
    let grad = |i: usize| -> Result<usize> {
        grad_of(modules, i)
            .ok_or_else(|| Error::invalid(format!("module {i}'s output gradient has no buffer")))
    };
    let mut plan = Vec::new();
    let mut i = modules.len();
    while i > 0 {
        i -= 1;
        if !weighted_before(i + 1) {
            break;
        }
        // The module before i, looking through a Flatten.
        let previous = (0..i)
            .rev()
            .find(|&j| !matches!(modules[j], Module::Flatten));
        match modules[i] {
            Module::Flatten => {}
            Module::Linear(_) | Module::Conv2d(_) => {
                let relu_before = previous.filter(|&j| matches!(modules[j], Module::Relu(_)));
                let below = relu_before.unwrap_or(i);
                let dx = if weighted_before(below) {
                    Some(grad(below - 1)?)
                } else {
                    None
                };
                plan.push(Backward::Weighted {
                    module: i,
                    input: input_slot(i),
                    dy: grad(i)?,
                    dx,
                    gate: relu_before.filter(|_| dx.is_some()),
                });
                if let Some(j) = relu_before {
                    i = j;
                }
            }
            Module::Relu(_) => plan.push(Backward::Relu {
                module: i,
                dy: grad(i)?,
                dx: grad(i - 1)?,
            }),
            Module::MaxPool2d(_) => {
                // A ReLU before it whose gradient some weighted module needs: gated here.
                let relu_before = (i.checked_sub(1))
                    .filter(|&j| matches!(modules[j], Module::Relu(_)) && weighted_before(j));
                let below = relu_before.unwrap_or(i);
                plan.push(Backward::Pool {
                    module: i,
                    dy: grad(i)?,
                    dx: grad(below - 1)?,
                    gate: relu_before,
                });
                if let Some(j) = relu_before {
                    i = j;
                }
            }
            Module::Dropout(_) => plan.push(Backward::Dropout {
                module: i,
                dy: grad(i)?,
                dx: grad(i - 1)?,
            }),
        }
    }
    Ok(plan)
}

/// The gradient buffer of module `i`'s output: its own, or for a Flatten its input's
/// (`None` when that is the model's input).
pub(super) fn grad_of(modules: &[Module], i: usize) -> Option<usize> {
    let mut i = i;
    loop {
        match modules.get(i)? {
            Module::Flatten => i = i.checked_sub(1)?,
            _ => return Some(i),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::kernels::conv::Conv2dOptions;
    use crate::kernels::dropout::Dropout;
    use crate::kernels::pool::MaxPool2d;
    use crate::nn::{Conv2d, Linear, Relu};

    /// examples/mnist's Net as modules.
    fn net() -> Vec<Module> {
        let conv = |i: usize, c, o| {
            Module::Conv2d(Conv2d::new(
                &i.to_string(),
                c,
                o,
                (3, 3),
                Conv2dOptions::default(),
            ))
        };
        let dropout = |p| Module::Dropout(Dropout { p, seed: 0 });
        vec![
            conv(0, 1, 32),
            Module::Relu(Relu),
            conv(2, 32, 64),
            Module::Relu(Relu),
            Module::MaxPool2d(MaxPool2d::default()),
            dropout(0.25),
            Module::Flatten,
            Module::Linear(Linear::new("7", 9216, 128)),
            Module::Relu(Relu),
            dropout(0.5),
            Module::Linear(Linear::new("10", 128, 10)),
        ]
    }

    fn weighted(module: usize, input: Slot, output: usize, relu: bool) -> Forward {
        Forward::Weighted {
            module,
            input,
            output,
            relu,
        }
    }

    #[test]
    fn net_trains_in_seven_forward_steps_and_evaluates_in_five() {
        use Slot::{Input, Output};
        let (plan, out) = forward(&net(), true);
        assert_eq!(
            plan,
            [
                weighted(0, Input, 1, true),
                weighted(2, Output(1), 3, true),
                Forward::Pool {
                    module: 4,
                    input: Output(3)
                },
                Forward::Dropout {
                    module: 5,
                    input: Output(4)
                },
                weighted(7, Output(5), 8, true),
                Forward::Dropout {
                    module: 9,
                    input: Output(8)
                },
                weighted(10, Output(9), 10, false),
            ]
        );
        assert_eq!(out, Output(10));
        // Without dropout, the Flatten and dropouts are views of the pooling's output.
        let (plan, out) = forward(&net(), false);
        assert_eq!(plan.len(), 5);
        assert_eq!(plan[3], weighted(7, Output(4), 8, true));
        assert_eq!(plan[4], weighted(10, Output(8), 10, false));
        assert_eq!(out, Output(10));
    }

    #[test]
    fn net_backward_fuses_relus_into_the_pooling_and_the_convolution() {
        use Slot::{Input, Output};
        let modules = net();
        let (fwd, _) = forward(&modules, true);
        let weighted = |module, input, dy, dx, gate| Backward::Weighted {
            module,
            input,
            dy,
            dx,
            gate,
        };
        assert_eq!(
            backward(&modules, &fwd).unwrap(),
            [
                weighted(10, Output(9), 10, Some(9), None),
                Backward::Dropout {
                    module: 9,
                    dy: 9,
                    dx: 8
                },
                Backward::Relu {
                    module: 8,
                    dy: 8,
                    dx: 7
                },
                // The Flatten shares the dropout's gradient buffer.
                weighted(7, Output(5), 7, Some(5), None),
                Backward::Dropout {
                    module: 5,
                    dy: 5,
                    dx: 4
                },
                Backward::Pool {
                    module: 4,
                    dy: 4,
                    dx: 2,
                    gate: Some(3)
                },
                weighted(2, Output(1), 2, Some(0), Some(1)),
                // The first layer's input needs no gradient.
                weighted(0, Input, 0, None, None),
            ]
        );
    }

    #[test]
    fn layers_before_the_first_weights_get_no_backward_step() {
        let modules = vec![
            Module::MaxPool2d(MaxPool2d::default()),
            Module::Relu(Relu),
            Module::Flatten,
            Module::Linear(Linear::new("3", 4, 2)),
        ];
        let (fwd, _) = forward(&modules, true);
        let plan = backward(&modules, &fwd).unwrap();
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(matches!(
            plan[0],
            Backward::Weighted {
                dx: None,
                gate: None,
                ..
            }
        ));
    }
}
