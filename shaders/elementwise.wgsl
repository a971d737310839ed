// Elementwise kernels: ReLU forward and backward. One invocation per element.

struct Params {
    len: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// relu_backward's upstream gradient.
@group(0) @binding(3) var<storage, read> dy: array<f32>;

fn index(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * 256u + lid;
}

// y = max(x, 0)
@compute @workgroup_size(256)
fn relu_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wg, groups, lid);
    if i < p.len {
        y[i] = max(x[i], 0.0);
    }
}

// y = dy · [x > 0], with x ReLU's forward output and y receiving dx (the gradient at 0 is 0).
@compute @workgroup_size(256)
fn relu_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = index(wg, groups, lid);
    if i < p.len {
        y[i] = select(0.0, dy[i], x[i] > 0.0);
    }
}
