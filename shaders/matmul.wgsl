// C = op(A) · op(B) (+ bias) (+ ReLU), with op = identity or transpose.
//
// op(A) is M×K and op(B) is K×N, all row-major. With TRANS_A, A is stored K×M; with TRANS_B, B is
// stored N×K. Each workgroup computes one 64×64 tile of C: its 16×16 invocations each own a 4×4
// register tile, and the K dimension is walked in steps of 16 through workgroup memory.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,   // bit 0: TRANS_A, bit 1: TRANS_B, bit 2: add bias, bit 3: ReLU
    tiles_n: u32, // tiles along N
    tiles: u32,   // tiles in all
}

const TRANS_A: u32 = 1u;
const TRANS_B: u32 = 2u;
const BIAS: u32 = 4u;
const RELU: u32 = 8u;

const TILE: u32 = 64u;
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TILE]: a_tile[kk * TILE + row]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TILE]: b_tile[kk * TILE + col]

// op(A)[row, kk], zero outside the matrix.
fn load_a(row: u32, kk: u32) -> f32 {
    if row >= p.m || kk >= p.k {
        return 0.0;
    }
    if (p.flags & TRANS_A) != 0u {
        return a[kk * p.m + row];
    }
    return a[row * p.k + kk];
}

// op(B)[kk, col], zero outside the matrix.
fn load_b(kk: u32, col: u32) -> f32 {
    if kk >= p.k || col >= p.n {
        return 0.0;
    }
    if (p.flags & TRANS_B) != 0u {
        return b[col * p.k + kk];
    }
    return b[kk * p.n + col];
}

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let tile = wg.x + wg.y * groups.x;
    if tile >= p.tiles {
        return;
    }
    let row0 = (tile / p.tiles_n) * TILE;
    let col0 = (tile % p.tiles_n) * TILE;
    let tr = local.y * 4u; // this invocation's first row within the tile
    let tc = local.x * 4u; // and first column

    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // 256 invocations load 1024 elements of each tile, four each, walking the stored
        // matrix along its contiguous dimension.
        for (var r = 0u; r < 4u; r++) {
            let e = lid + r * 256u;
            if (p.flags & TRANS_A) != 0u {
                a_tile[(e / TILE) * TILE + e % TILE] = load_a(row0 + e % TILE, k0 + e / TILE);
            } else {
                a_tile[(e % TK) * TILE + e / TK] = load_a(row0 + e / TK, k0 + e % TK);
            }
            if (p.flags & TRANS_B) != 0u {
                b_tile[(e % TK) * TILE + e / TK] = load_b(k0 + e % TK, col0 + e / TK);
            } else {
                b_tile[(e / TILE) * TILE + e % TILE] = load_b(k0 + e / TILE, col0 + e % TILE);
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                av[i] = a_tile[kk * TILE + tr + i];
                bv[i] = b_tile[kk * TILE + tc + i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let row = row0 + tr + i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + tc + j;
            if row < p.m && col < p.n {
                var v = acc[i][j];
                if (p.flags & BIAS) != 0u {
                    v += bias[col];
                }
                if (p.flags & RELU) != 0u {
                    v = max(v, 0.0);
                }
                c[row * p.n + col] = v;
            }
        }
    }
}
