// Reductions: column sums (bias gradients), row argmax, and the count of correct predictions.
// Every sum runs in a fixed order, so results are bit-identical from run to run.

struct Params {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;         // rows × cols
@group(0) @binding(2) var<storage, read_write> sums: array<f32>; // column_sum: cols
@group(0) @binding(3) var<storage, read_write> argmax_out: array<u32>; // argmax: rows
@group(0) @binding(4) var<storage, read> targets: array<i32>;   // count_correct: rows
@group(0) @binding(5) var<storage, read_write> correct: array<atomic<u32>>; // count_correct: 1
// column_sum4: x and sums four columns at a time.
@group(0) @binding(6) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> sums4: array<vec4<f32>>;

fn linear_id(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * 64u + lid;
}

// Index of the first largest element of `row` (NaN counts as largest, as in PyTorch).
fn row_argmax(row: u32) -> u32 {
    let base = row * p.cols;
    var best = 0u;
    var best_v = x[base];
    for (var j = 1u; j < p.cols; j++) {
        let v = x[base + j];
        if (v > best_v || v != v) && best_v == best_v {
            best = j;
            best_v = v;
        }
    }
    return best;
}

// sums[j] = Σ_i x[i, j], one invocation per column, rows added in order.
@compute @workgroup_size(64)
fn column_sum(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = linear_id(wg, groups, lid);
    if j >= p.cols {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < p.rows; i++) {
        s += x[i * p.cols + j];
    }
    sums[j] = s;
}

// column_sum four adjacent columns per invocation (cols % 4 = 0): a quarter of the loads,
// which CPU adapters pay per instruction whatever its width. Same order, same sums.
@compute @workgroup_size(64)
fn column_sum4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = linear_id(wg, groups, lid);
    let quads = p.cols / 4u;
    if j >= quads {
        return;
    }
    var s = vec4(0.0);
    for (var i = 0u; i < p.rows; i++) {
        s += x4[i * quads + j];
    }
    sums4[j] = s;
}

// argmax_out[i] = argmax_j x[i, j]
@compute @workgroup_size(64)
fn argmax(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_id(wg, groups, lid);
    if i < p.rows {
        argmax_out[i] = row_argmax(i);
    }
}

// correct[0] += #{i : argmax_j x[i, j] == targets[i]} (integer atomics: order-independent).
@compute @workgroup_size(64)
fn count_correct(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_id(wg, groups, lid);
    if i < p.rows && i32(row_argmax(i)) == targets[i] {
        atomicAdd(&correct[0], 1u);
    }
}
