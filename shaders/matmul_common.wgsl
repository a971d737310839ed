// What matmul.wgsl and matmul_subgroup.wgsl share: C = op(A) · op(B) (+ bias) (+ ReLU) with
// op(A) M×K and op(B) K×N, read through strides. Each of them declares its own A and B bindings
// (scalars, vec4s, vec4<u64>s) and its output, and is compiled with this file in front. Both
// accumulate in 4×4 register blocks (Block): matmul.wgsl an outer product at a time (outer),
// matmul_subgroup.wgsl a row at a time.

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
}

// The epilogue, in this order; fixed per pipeline, so no kernel tests them per element.
override BIAS: bool = false; // adds bias[j] (binding 3)
override RELU: bool = false; // max(·, 0)
override GATE: bool = false; // zero where gate[i, j] ≤ 0 (binding 5): ReLU's backward, fused

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> bias: array<f32>; // N
@group(0) @binding(5) var<storage, read> gate: array<f32>; // M × N

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

// Four rows of a 4×4 block as vectors: explicit registers, no indexed locals (which CPU
// adapters would keep in memory).
struct Block {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

// acc += a ⊗ bv for four rows of A already loaded.
fn outer(acc: ptr<function, Block>, a: vec4<f32>, bv: vec4<f32>) {
    (*acc).r0 = fma(vec4(a.x), bv, (*acc).r0);
    (*acc).r1 = fma(vec4(a.y), bv, (*acc).r1);
    (*acc).r2 = fma(vec4(a.z), bv, (*acc).r2);
    (*acc).r3 = fma(vec4(a.w), bv, (*acc).r3);
}
