// What matmul.wgsl and matmul_subgroup.wgsl share: C = op(A) · op(B) (+ bias) (+ ReLU) with
// op(A) M×K and op(B) K×N, read through strides. Each of them declares its own A and B bindings
// (scalars or vec4s) and is compiled with this file in front.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_row: u32,   // stride of op(A)'s rows in a
    a_k: u32,     // stride of op(A)'s columns in a
    b_k: u32,     // stride of op(B)'s rows in b
    b_col: u32,   // stride of op(B)'s columns in b
    flags: u32,   // bit 0: add bias, bit 1: ReLU
    tiles_n: u32, // tiles along N
    tiles: u32,   // tiles in all
}

const BIAS: u32 = 1u;
const RELU: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
