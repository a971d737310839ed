// What matmul.wgsl and matmul_subgroup.wgsl share: C = op(A) · op(B) (+ bias) (+ ReLU) with
// op(A) M×K and op(B) K×N, read through strides. Each of them declares its own A and B bindings
// (scalars, vec4s, vec4<u64>s) and its output, and is compiled with this file in front.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_row: u32,   // stride of op(A)'s rows in a
    a_k: u32,     // stride of op(A)'s columns in a
    b_k: u32,     // stride of op(B)'s rows in b
    b_col: u32,   // stride of op(B)'s columns in b
    tiles_n: u32, // tiles along N
    tiles: u32,   // tiles in all
    // matmul_subgroup with A_PLANES / C_PLANES: values per plane, and the distance between the
    // starts of consecutive planes.
    a_plane: u32,
    a_plane_stride: u32,
    c_plane: u32,
    c_plane_stride: u32,
}

// The epilogue, in this order; fixed per pipeline, so no kernel tests them per element.
override BIAS: bool = false; // adds bias[j] (binding 3; matmul_subgroup's BIAS_ROWS: bias[i])
override RELU: bool = false; // max(·, 0)
override GATE: bool = false; // zero where gate[i, j] ≤ 0 (binding 5): ReLU's backward, fused
// Also writes Σ_k op(A)[i, k] into row_sums[i] (binding 11): a linear layer's bias gradient
// beside its weight gradient (op(A) = dzᵀ). The workgroups of C's first column of tiles write it.
override ROW_SUMS: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> bias: array<f32>; // N
@group(0) @binding(5) var<storage, read> gate: array<f32>; // M × N
@group(0) @binding(11) var<storage, read_write> row_sums: array<f32>; // M

// The epilogue of C[i] = v, in column col.
fn epilogue(i: u32, col: u32, v: f32) -> f32 {
    var out = v;
    if BIAS {
        out += bias[col];
    }
    if RELU {
        out = max(out, 0.0);
    }
    if GATE {
        out = select(0.0, out, gate[i] > 0.0);
    }
    return out;
}
