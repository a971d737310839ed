// C = op(A) · op(B), then the epilogue (bias, ReLU, gate; see matmul_common.wgsl), with op =
// identity or transpose; all but matmul_wide also write op(A)'s row sums when asked (ROW_SUMS).
//
// op(A) is M×K and op(B) is K×N. The host passes strides, so a transpose is only a different
// stride: op(A)[i, k] = a[i·a_row + k·a_k] and op(B)[k, j] = b[k·b_k + j·b_col]. Inner loops hold
// no branches: indices past the edge are clamped to the last row or column, and the store masks
// them out. Four entry points compute the same thing with different work layouts; the host picks
// one by adapter and shape (matmul_subgroup.wgsl holds a fifth, for CPU adapters):
//
//   matmul        GPUs. A 64×64 tile of C per workgroup: 16×16 invocations each own a 4×4
//                 register tile, and K is walked in steps of 16 through workgroup memory.
//   matmul_wide   GPUs, large products. The same with 128×128 tiles and 8×8 per invocation, read
//                 from workgroup memory as vec4s; K in steps of 8.
//   matmul_rows   CPU adapters, B read along its rows. No barriers: a workgroup owns 8 rows × 256
//                 columns; its 32 invocations run along the columns (8 each, 32 apart), so B is
//                 read in contiguous runs across invocations and A's element is the same for all.
//   matmul_dot    A workgroup owns an 8×8 block of C; its DOT_LANES invocations (32, or up to
//                 256 on GPUs for a long K) split K between them, and their partial results are
//                 summed in a fixed order, 32 at a time between barriers. For CPU adapters
//                 computing A·Bᵀ (both operands read along their contiguous K), and for GPUs
//                 when C is too small to occupy them.
//
// On a CPU adapter every storage load is a loop over the SIMD lanes, whatever its address, so
// speed follows FMAs per load: the 8×8 blocks of matmul_rows and matmul_dot do 64 for 16.
//
// The host prepends matmul_common.wgsl (parameters, epilogue).

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

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// op(A)[min(i, M-1), kk] and op(B)[kk, min(j, N-1)]: always in bounds for kk < K.
fn a_at(i: u32, kk: u32) -> f32 {
    return a[min(i, p.m - 1u) * p.a_row + kk * p.a_k];
}
fn b_at(kk: u32, j: u32) -> f32 {
    return b[kk * p.b_k + min(j, p.n - 1u) * p.b_col];
}

// Writes C[row, col] = epilogue(v) when inside C.
fn store(row: u32, col: u32, v: f32) {
    if row >= p.m || col >= p.n {
        return;
    }
    let i = row * p.n + col;
    c[i] = epilogue(i, col, v);
}

fn tile_index(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    return wg.x + wg.y * groups.x;
}

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TILE]: a_tile[kk * TILE + row]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TILE]: b_tile[kk * TILE + col]

@compute @workgroup_size(16, 16)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let tile = tile_index(wg, groups);
    if tile >= p.tiles {
        return;
    }
    let row0 = (tile / p.tiles_n) * TILE;
    let col0 = (tile % p.tiles_n) * TILE;
    let tr = local.y * 4u; // this invocation's first row within the tile
    let tc = local.x * 4u; // and first column

    var acc: array<array<f32, 4>, 4>;
    var sums: array<f32, 4>; // ROW_SUMS: this invocation's rows of op(A), summed over K
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // 256 invocations load 1024 elements of each tile, four each; past K they load zeros.
        for (var r = 0u; r < 4u; r++) {
            let e = lid + r * 256u;
            let kk = k0 + e / TILE;
            let inside = kk < p.k;
            let kc = min(kk, p.k - 1u);
            a_tile[e] = select(0.0, a_at(row0 + e % TILE, kc), inside);
            b_tile[e] = select(0.0, b_at(kc, col0 + e % TILE), inside);
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
                if ROW_SUMS && col0 == 0u {
                    sums[i] += av[i];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store(row0 + tr + i, col0 + tc + j, acc[i][j]);
        }
        if ROW_SUMS && col0 == 0u && tc == 0u && row0 + tr + i < p.m {
            row_sums[row0 + tr + i] = sums[i];
        }
    }
}

const WIDE: u32 = 128u;
const WK: u32 = 8u;

// matmul_wide: like matmul with 128×128 tiles, 8×8 per invocation (for large products on GPUs).
// [WK][WIDE / 4]: four consecutive rows (or columns) of one k per element.
var<workgroup> a_wide: array<vec4<f32>, 256>;
var<workgroup> b_wide: array<vec4<f32>, 256>;

// acc[i] (rows r0..r0+3 of one column group) += a ⊗ b, as four vec4 rows.
fn outer4(acc: ptr<function, array<vec4<f32>, 16>>, base: u32, a: vec4<f32>, b: vec4<f32>) {
    (*acc)[base] = fma(vec4(a.x), b, (*acc)[base]);
    (*acc)[base + 1u] = fma(vec4(a.y), b, (*acc)[base + 1u]);
    (*acc)[base + 2u] = fma(vec4(a.z), b, (*acc)[base + 2u]);
    (*acc)[base + 3u] = fma(vec4(a.w), b, (*acc)[base + 3u]);
}

@compute @workgroup_size(16, 16)
fn matmul_wide(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let tile = tile_index(wg, groups);
    if tile >= p.tiles {
        return;
    }
    let row0 = (tile / p.tiles_n) * WIDE;
    let col0 = (tile % p.tiles_n) * WIDE;
    // This invocation's rows: 4·ty.. and 64 + 4·ty..; columns likewise with tx. Reading them
    // from workgroup memory is one vec4 each.
    let ty = local.y;
    let tx = local.x;
    // acc[0..8]: rows 4·ty..+3 (then 64 + 4·ty..+3) × columns 4·tx..+3; acc[8..16]: columns
    // 64 + 4·tx..+3.
    var acc: array<vec4<f32>, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += WK) {
        // 256 invocations stage 1024 elements of each operand, four each; past K, zeros.
        // Consecutive invocations read along each operand's contiguous dimension.
        for (var r = 0u; r < 4u; r++) {
            let e = lid + r * 256u;
            var i = e % WIDE; // row of A
            var kk = e / WIDE;
            if p.a_k == 1u {
                i = e / WK;
                kk = e % WK;
            }
            let ka = k0 + kk;
            a_wide[kk * (WIDE / 4u) + i / 4u][i % 4u] = select(0.0, a_at(row0 + i, min(ka, p.k - 1u)), ka < p.k);
            var j = e % WIDE; // column of B
            var kb = e / WIDE;
            if p.b_k == 1u {
                j = e / WK;
                kb = e % WK;
            }
            let k = k0 + kb;
            b_wide[kb * (WIDE / 4u) + j / 4u][j % 4u] = select(0.0, b_at(min(k, p.k - 1u), col0 + j), k < p.k);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < WK; kk++) {
            let at = kk * (WIDE / 4u);
            let a_lo = a_wide[at + ty];
            let a_hi = a_wide[at + 16u + ty];
            let b_lo = b_wide[at + tx];
            let b_hi = b_wide[at + 16u + tx];
            outer4(&acc, 0u, a_lo, b_lo);
            outer4(&acc, 4u, a_hi, b_lo);
            outer4(&acc, 8u, a_lo, b_hi);
            outer4(&acc, 12u, a_hi, b_hi);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        store4(row0 + 4u * ty + i, col0 + 4u * tx, 1u, acc[i]);
        store4(row0 + 64u + 4u * ty + i, col0 + 4u * tx, 1u, acc[4u + i]);
        store4(row0 + 4u * ty + i, col0 + 64u + 4u * tx, 1u, acc[8u + i]);
        store4(row0 + 64u + 4u * ty + i, col0 + 64u + 4u * tx, 1u, acc[12u + i]);
    }
}

const LANES: u32 = 64u;

// Stores row `row` of a block to columns col0 + step·(0, 1, 2, 3).
fn store4(row: u32, col0: u32, step: u32, v: vec4<f32>) {
    store(row, col0, v.x);
    store(row, col0 + step, v.y);
    store(row, col0 + 2u * step, v.z);
    store(row, col0 + 3u * step, v.w);
}

fn store_block(row0: u32, col0: u32, step: u32, acc: Block) {
    store4(row0, col0, step, acc.r0);
    store4(row0 + 1u, col0, step, acc.r1);
    store4(row0 + 2u, col0, step, acc.r2);
    store4(row0 + 3u, col0, step, acc.r3);
}

// An 8×8 block of C as four 4×4 blocks (top/bottom × left/right) += op(A)[row0..row0+8, kk] ⊗
// op(B)[kk, col0 + step·(0..8)]: 16 loads, 64 FMAs. The blocks are separate locals: pointers
// into one struct trip naga's SPIR-V writer.
// One k of an 8×8 block: rows row0..row0+7, columns col0 + step·j. Returns the rows' values of
// op(A) at kk, the first four and the last four (for ROW_SUMS).
fn step8(
    tl: ptr<function, Block>,
    tr: ptr<function, Block>,
    bl: ptr<function, Block>,
    br: ptr<function, Block>,
    row0: u32,
    kk: u32,
    col0: u32,
    step: u32,
) -> array<vec4<f32>, 2> {
    let left = vec4(b_at(kk, col0), b_at(kk, col0 + step), b_at(kk, col0 + 2u * step), b_at(kk, col0 + 3u * step));
    let right = vec4(b_at(kk, col0 + 4u * step), b_at(kk, col0 + 5u * step), b_at(kk, col0 + 6u * step), b_at(kk, col0 + 7u * step));
    let top = vec4(a_at(row0, kk), a_at(row0 + 1u, kk), a_at(row0 + 2u, kk), a_at(row0 + 3u, kk));
    let bottom = vec4(a_at(row0 + 4u, kk), a_at(row0 + 5u, kk), a_at(row0 + 6u, kk), a_at(row0 + 7u, kk));
    outer(tl, top, left);
    outer(tr, top, right);
    outer(bl, bottom, left);
    outer(br, bottom, right);
    return array(top, bottom);
}

const ROW_LANES: u32 = 32u;

@compute @workgroup_size(32)
fn matmul_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let tile = tile_index(wg, groups);
    if tile >= p.tiles {
        return;
    }
    let row0 = (tile / p.tiles_n) * 8u;
    let col0 = (tile % p.tiles_n) * 8u * ROW_LANES + lane;
    var tl = Block();
    var tr = Block();
    var bl = Block();
    var br = Block();
    var sums = array(vec4(0.0), vec4(0.0)); // ROW_SUMS: the same in every lane
    let sum_rows = ROW_SUMS && tile % p.tiles_n == 0u; // the tiles that write them
    for (var kk = 0u; kk < p.k; kk++) {
        let a8 = step8(&tl, &tr, &bl, &br, row0, kk, col0, ROW_LANES);
        if sum_rows {
            sums[0] += a8[0];
            sums[1] += a8[1];
        }
    }
    if ROW_SUMS && col0 == 0u {
        store_row_sums8(row0, sums);
    }
    store_block(row0, col0, ROW_LANES, tl);
    store_block(row0, col0 + 4u * ROW_LANES, ROW_LANES, tr);
    store_block(row0 + 4u, col0, ROW_LANES, bl);
    store_block(row0 + 4u, col0 + 4u * ROW_LANES, ROW_LANES, br);
}

// Invocations per tile, splitting K between them: a multiple of DOT_GROUP, 256 at most (more on
// GPUs where few tiles and a long K would leave most of the chip idle).
override DOT_LANES: u32 = 32u;
// Invocations whose partial sums one round of the final reduction gathers.
const DOT_GROUP: u32 = 32u;

var<workgroup> partial: array<vec4<f32>, 512>; // [16 row-halves][DOT_GROUP lanes]
var<workgroup> partial_sums: array<vec4<f32>, 64>; // ROW_SUMS: [2 row-quads][DOT_GROUP lanes]

@compute @workgroup_size(DOT_LANES)
fn matmul_dot(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let tile = tile_index(wg, groups);
    if tile >= p.tiles {
        return;
    }
    let row0 = (tile / p.tiles_n) * 8u;
    let col0 = (tile % p.tiles_n) * 8u;
    var tl = Block();
    var tr = Block();
    var bl = Block();
    var br = Block();
    var sums = array(vec4(0.0), vec4(0.0)); // ROW_SUMS: this lane's share of K
    for (var kk = lane; kk < p.k; kk += DOT_LANES) {
        let a8 = step8(&tl, &tr, &bl, &br, row0, kk, col0, 1u);
        if ROW_SUMS && col0 == 0u {
            sums[0] += a8[0];
            sums[1] += a8[1];
        }
    }
    // Row r's left half at partial[(2r) · DOT_GROUP + l], its right half at
    // partial[(2r + 1) · DOT_GROUP + l], for lane l of the group handing in; lanes 0..15 add
    // the groups' halves in a fixed order, lane 16 the row sums.
    let halves = array(tl.r0, tr.r0, tl.r1, tr.r1, tl.r2, tr.r2, tl.r3, tr.r3, bl.r0, br.r0, bl.r1, br.r1, bl.r2, br.r2, bl.r3, br.r3);
    var s = vec4(0.0);
    var row_sums8 = array(vec4(0.0), vec4(0.0));
    for (var group = 0u; group < DOT_LANES / DOT_GROUP; group++) {
        if lane / DOT_GROUP == group {
            let l = lane % DOT_GROUP;
            for (var h = 0u; h < 16u; h++) {
                partial[h * DOT_GROUP + l] = halves[h];
            }
            if ROW_SUMS {
                partial_sums[l] = sums[0];
                partial_sums[DOT_GROUP + l] = sums[1];
            }
        }
        workgroupBarrier();
        if lane < 16u {
            for (var l = 0u; l < DOT_GROUP; l++) {
                s += partial[lane * DOT_GROUP + l];
            }
        }
        if ROW_SUMS && lane == 16u && col0 == 0u {
            for (var l = 0u; l < DOT_GROUP; l++) {
                row_sums8[0] += partial_sums[l];
                row_sums8[1] += partial_sums[DOT_GROUP + l];
            }
        }
        workgroupBarrier();
    }
    if lane < 16u {
        store4(row0 + lane / 2u, col0 + (lane % 2u) * 4u, 1u, s);
    }
    if ROW_SUMS && lane == 16u && col0 == 0u {
        store_row_sums8(row0, row_sums8);
    }
}

// ROW_SUMS: rows row0..row0+7 of op(A) summed over K (those inside M).
fn store_row_sums8(row0: u32, sums: array<vec4<f32>, 2>) {
    let rows = array(sums[0].x, sums[0].y, sums[0].z, sums[0].w, sums[1].x, sums[1].y, sums[1].z, sums[1].w);
    for (var i = 0u; i < 8u; i++) {
        if row0 + i < p.m {
            row_sums[row0 + i] = rows[i];
        }
    }
}
