// C = op(A) · op(B), then the epilogue, for adapters with 8-lane subgroups and 64-bit integers
// (CPU adapters: one subgroup is one SIMD register of 8 floats). Same parameters as matmul.wgsl.
//
// On such adapters a storage load is a loop over the lanes, so its cost barely depends on how
// much each lane loads: 32 bytes (a vec4<u64> holding eight f32, int64.wgsl) cost little more
// than 4. This layout therefore loads eight f32 at a time wherever the operand allows it, four
// where it does not, and shares A through subgroup broadcasts, which cost a register shuffle:
//
//   - a subgroup owns 16, 32 or 64 rows (GROUPS groups of 16) × 32 columns of C; each lane owns
//     4 adjacent columns (one vec4) of all the rows, so it keeps a vec4 accumulator per row;
//   - K is walked 8 at a time. Each lane gets 4 columns of B at those 8 k: one 8-wide load
//     per column when B is contiguous along K (K % 8 = 0); else, when B's rows hold whole
//     groups of 8 (N % 8 = 0), four 8-wide loads along N shared out by subgroup shuffles
//     (which cost one permute per component); else one vec4 per k. Of each 16×8 block of A
//     it loads an eighth (two 8-wide loads along K or along M, or 16 scalars when neither
//     dimension holds whole groups of 8), which the other lanes read by broadcast;
//   - so 6 to 24 loads feed one group's 512 FMAs per lane, and each further group adds 2 to 16
//     (B's loads serve every group). FMAs are taken a row at a time so that few values need
//     registers at once; C leaves as 8-wide stores of two rows paired by shuffles (N % 8 = 0),
//     else as vec4 stores (scalar ones when N % 4 ≠ 0).
//
// The host picks this layout only when B's contiguous dimension is a multiple of 4. Override
// constants fix how A and B are read and how C is written.
//
// The host prepends matmul_common.wgsl and int64.wgsl.

// How op(A) is read: eight at a time along K (A untransposed, K % 8 = 0) or along M (A
// transposed, M % 8 = 0), or as scalars.
const A_ALONG_K: u32 = 0u;
const A_ALONG_M: u32 = 1u;
const A_SCALAR: u32 = 2u;
override A_READ: u32 = A_ALONG_K;
// How op(B) is read: a vec4 along N per k (B untransposed, N % 4 = 0), two vec4s per column
// along K (B transposed, K % 4 = 0), eight at a time along K (B transposed, K % 8 = 0), or
// eight at a time along N and handed to the lanes that need them by shuffles (B
// untransposed, N % 8 = 0).
const B_ALONG_N: u32 = 0u;
const B_ALONG_K: u32 = 1u;
const B_ALONG_K8: u32 = 2u;
const B_ALONG_N8: u32 = 3u;
override B_READ: u32 = B_ALONG_N;

@group(0) @binding(1) var<storage, read> a8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> a_scalar: array<f32>; // A again, for A_SCALAR
@group(0) @binding(7) var<storage, read_write> c_scalar: array<f32>; // C again, for N % 4 ≠ 0
@group(0) @binding(8) var<storage, read> gate4: array<vec4<f32>>; // the gate again
@group(0) @binding(9) var<storage, read> b8: array<vec4<u64>>; // B again, for B_ALONG_K8 / N8
@group(0) @binding(10) var<storage, read_write> c8: array<vec4<u64>>; // C again, for N % 8 = 0

// C's rows hold whole vec4s (N % 4 = 0): the epilogue works on vec4s.
override C_VEC4: bool = true;
// C's rows hold whole groups of 8 (N % 8 = 0): shuffles pair two rows' columns so that each
// lane stores 8 adjacent ones, half the stores.
override C_VEC8: bool = true;

// Groups of 16 rows per subgroup: 1, 2 or 4. Each load of B feeds FMAs in proportion, for as
// many accumulators (and a slower compile on CPU adapters).
override GROUPS: u32 = 1u;

const LANES: u32 = 8u;
const COLS: u32 = 32u; // per subgroup: 4 per lane

// Elements e..e+7 of A (e a multiple of 8), and e..e+3 of B (e a multiple of 4).
fn a_eight(e: u32) -> Eight {
    return unpack(a8[e / 8u]);
}
fn b4(e: u32) -> vec4<f32> {
    return b[e / 4u];
}

// op(B) at 8 consecutive k for this lane's 4 columns: one vec4 per k.
struct BBlock {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
    k3: vec4<f32>,
    k4: vec4<f32>,
    k5: vec4<f32>,
    k6: vec4<f32>,
    k7: vec4<f32>,
}

// Columns col..col+3 (col = col0 + 4 lane) at k0..k0+7; columns past N read ones inside (never
// stored). `masked` (the last, partial step) zeroes the k past K, whose loads are clamped
// inside B.
fn load_b(k0: u32, col0: u32, lane: u32, masked: bool) -> BBlock {
    let col = col0 + 4u * lane;
    // The last k that row-wise reads may touch.
    let last = select(k0 + 7u, p.k - 1u, masked);
    var out = BBlock();
    if B_READ == B_ALONG_N8 {
        // The subgroup's 32 columns at 8 k in four rounds of 8-wide loads along N: in round j
        // lane l reads k0 + 2j + l / 4 at columns col0 + 8 (l % 4)..+7. Lane t's columns at
        // k0 + 2j + h then sit in lane 4h + t / 2: the low half for even t, the high for odd.
        let at = min(col0 + 8u * (lane % 4u), p.n - 8u);
        let z0 = unpack(b8[(min(k0 + lane / 4u, last) * p.b_k + at) / 8u]);
        let z1 = unpack(b8[(min(k0 + 2u + lane / 4u, last) * p.b_k + at) / 8u]);
        let z2 = unpack(b8[(min(k0 + 4u + lane / 4u, last) * p.b_k + at) / 8u]);
        let z3 = unpack(b8[(min(k0 + 6u + lane / 4u, last) * p.b_k + at) / 8u]);
        let from_even = lane / 2u;
        let from_odd = 4u + lane / 2u;
        out = BBlock(
            half_of(z0, from_even, lane),
            half_of(z0, from_odd, lane),
            half_of(z1, from_even, lane),
            half_of(z1, from_odd, lane),
            half_of(z2, from_even, lane),
            half_of(z2, from_odd, lane),
            half_of(z3, from_even, lane),
            half_of(z3, from_odd, lane),
        );
    } else if B_READ == B_ALONG_K8 {
        // Four columns, each contiguous along K: one 8-wide load per column (K % 8 = 0, so
        // the block never passes K).
        let last = p.n - 1u;
        let z0 = unpack(b8[(min(col, last) * p.b_col + k0) / 8u]);
        let z1 = unpack(b8[(min(col + 1u, last) * p.b_col + k0) / 8u]);
        let z2 = unpack(b8[(min(col + 2u, last) * p.b_col + k0) / 8u]);
        let z3 = unpack(b8[(min(col + 3u, last) * p.b_col + k0) / 8u]);
        out = BBlock(
            vec4(z0.low.x, z1.low.x, z2.low.x, z3.low.x),
            vec4(z0.low.y, z1.low.y, z2.low.y, z3.low.y),
            vec4(z0.low.z, z1.low.z, z2.low.z, z3.low.z),
            vec4(z0.low.w, z1.low.w, z2.low.w, z3.low.w),
            vec4(z0.high.x, z1.high.x, z2.high.x, z3.high.x),
            vec4(z0.high.y, z1.high.y, z2.high.y, z3.high.y),
            vec4(z0.high.z, z1.high.z, z2.high.z, z3.high.z),
            vec4(z0.high.w, z1.high.w, z2.high.w, z3.high.w),
        );
    } else if B_READ == B_ALONG_K {
        // Four columns, each contiguous along K: 2 vec4s per column (K % 4 = 0, so the second
        // lies wholly past K or not at all).
        let second = select(k0 + 4u, k0, masked && k0 + 4u >= p.k);
        let last = p.n - 1u;
        let c0 = min(col, last) * p.b_col;
        let c1 = min(col + 1u, last) * p.b_col;
        let c2 = min(col + 2u, last) * p.b_col;
        let c3 = min(col + 3u, last) * p.b_col;
        let x0 = b4(c0 + k0);
        let x1 = b4(c1 + k0);
        let x2 = b4(c2 + k0);
        let x3 = b4(c3 + k0);
        let y0 = b4(c0 + second);
        let y1 = b4(c1 + second);
        let y2 = b4(c2 + second);
        let y3 = b4(c3 + second);
        out = BBlock(
            vec4(x0.x, x1.x, x2.x, x3.x),
            vec4(x0.y, x1.y, x2.y, x3.y),
            vec4(x0.z, x1.z, x2.z, x3.z),
            vec4(x0.w, x1.w, x2.w, x3.w),
            vec4(y0.x, y1.x, y2.x, y3.x),
            vec4(y0.y, y1.y, y2.y, y3.y),
            vec4(y0.z, y1.z, y2.z, y3.z),
            vec4(y0.w, y1.w, y2.w, y3.w),
        );
    } else {
        // One row of B per k, contiguous along N (N % 4 = 0): one vec4 per k.
        let col = min(col, p.n - 4u);
        out = BBlock(
            b4(min(k0, last) * p.b_k + col),
            b4(min(k0 + 1u, last) * p.b_k + col),
            b4(min(k0 + 2u, last) * p.b_k + col),
            b4(min(k0 + 3u, last) * p.b_k + col),
            b4(min(k0 + 4u, last) * p.b_k + col),
            b4(min(k0 + 5u, last) * p.b_k + col),
            b4(min(k0 + 6u, last) * p.b_k + col),
            b4(min(k0 + 7u, last) * p.b_k + col),
        );
    }
    if masked {
        let z = vec4(0.0);
        let k = vec4(k0) + vec4(0u, 1u, 2u, 3u);
        let live = k < vec4(p.k);
        let live_high = k + vec4(4u) < vec4(p.k);
        out = BBlock(
            select(z, out.k0, live.x),
            select(z, out.k1, live.y),
            select(z, out.k2, live.z),
            select(z, out.k3, live.w),
            select(z, out.k4, live_high.x),
            select(z, out.k5, live_high.y),
            select(z, out.k6, live_high.z),
            select(z, out.k7, live_high.w),
        );
    }
    return out;
}

// Lane `source`'s eight values, the half this lane's columns need: low for even lanes, high for
// odd ones.
fn half_of(z: Eight, source: u32, lane: u32) -> vec4<f32> {
    let low = subgroupShuffle(z.low, source);
    let high = subgroupShuffle(z.high, source);
    return select(low, high, lane % 2u == 1u);
}

// Four rows += their values at four k (one vec4 per row) ⊗ op(B)'s 4 values at those k, a row
// at a time: each row's accumulator takes its four FMAs in turn, so that only one row's
// accumulator and A values need registers next to B's.
fn quad_rows(
    q: Block,
    a0: vec4<f32>,
    a1: vec4<f32>,
    a2: vec4<f32>,
    a3: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
    b2: vec4<f32>,
    b3: vec4<f32>,
) -> Block {
    let r0 = row_fmas(q.r0, a0, b0, b1, b2, b3);
    let r1 = row_fmas(q.r1, a1, b0, b1, b2, b3);
    let r2 = row_fmas(q.r2, a2, b0, b1, b2, b3);
    let r3 = row_fmas(q.r3, a3, b0, b1, b2, b3);
    return Block(r0, r1, r2, r3);
}

// acc + a.x b0 + a.y b1 + a.z b2 + a.w b3, in that order.
fn row_fmas(acc: vec4<f32>, a: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) -> vec4<f32> {
    return fma(vec4(a.w), b3, fma(vec4(a.z), b2, fma(vec4(a.y), b1, fma(vec4(a.x), b0, acc))));
}

// Four k of op(A) read along K: lane l holds rows row0 + l (u) and row0 + 8 + l (w) at k..k+3,
// which broadcasts hand to every lane a row at a time.
fn steps_along_k(
    g: ptr<function, Rows16>,
    u: vec4<f32>,
    w: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
    b2: vec4<f32>,
    b3: vec4<f32>,
) {
    (*g).q0 = quad_rows((*g).q0, subgroupBroadcast(u, 0u), subgroupBroadcast(u, 1u), subgroupBroadcast(u, 2u), subgroupBroadcast(u, 3u), b0, b1, b2, b3);
    (*g).q1 = quad_rows((*g).q1, subgroupBroadcast(u, 4u), subgroupBroadcast(u, 5u), subgroupBroadcast(u, 6u), subgroupBroadcast(u, 7u), b0, b1, b2, b3);
    (*g).q2 = quad_rows((*g).q2, subgroupBroadcast(w, 0u), subgroupBroadcast(w, 1u), subgroupBroadcast(w, 2u), subgroupBroadcast(w, 3u), b0, b1, b2, b3);
    (*g).q3 = quad_rows((*g).q3, subgroupBroadcast(w, 4u), subgroupBroadcast(w, 5u), subgroupBroadcast(w, 6u), subgroupBroadcast(w, 7u), b0, b1, b2, b3);
}

// op(A)'s 16 rows at one k, as four quads.
struct AColumn {
    x0: vec4<f32>,
    x1: vec4<f32>,
    x2: vec4<f32>,
    x3: vec4<f32>,
}

// Rows row0 + 4i..4i+3 at k, as scalars.
fn a_quad(row0: u32, i: u32, k: u32) -> vec4<f32> {
    let last = p.m - 1u;
    let r = row0 + 4u * i;
    let at = k * p.a_k;
    return vec4(
        a_scalar[min(r, last) * p.a_row + at],
        a_scalar[min(r + 1u, last) * p.a_row + at],
        a_scalar[min(r + 2u, last) * p.a_row + at],
        a_scalar[min(r + 3u, last) * p.a_row + at],
    );
}

// The 16 rows at k (zero past K): two 8-wide loads along M, or 16 scalars.
fn load_a_column(row0: u32, k: u32) -> AColumn {
    let kc = min(k, p.k - 1u);
    var x: AColumn;
    if A_READ == A_ALONG_M {
        // M % 8 = 0: rows past M repeat the last eight (never stored).
        let first = a_eight(kc * p.a_k + min(row0, p.m - 8u));
        let second = a_eight(kc * p.a_k + min(row0 + 8u, p.m - 8u));
        x = AColumn(first.low, first.high, second.low, second.high);
    } else {
        x = AColumn(a_quad(row0, 0u, kc), a_quad(row0, 1u, kc), a_quad(row0, 2u, kc), a_quad(row0, 3u, kc));
    }
    if k >= p.k {
        x = AColumn();
    }
    return x;
}

// Lane l holds the 16 rows at k0 + l: broadcasts from lanes 0..3 give a row at the first four
// k (steps_column_low), from lanes 4..7 at the last four (steps_column_high).
fn steps_column_low(
    g: ptr<function, Rows16>,
    x: AColumn,
    b0: vec4<f32>,
    b1: vec4<f32>,
    b2: vec4<f32>,
    b3: vec4<f32>,
) {
    (*g).q0 = quad_rows((*g).q0, k_low(x.x0.x), k_low(x.x0.y), k_low(x.x0.z), k_low(x.x0.w), b0, b1, b2, b3);
    (*g).q1 = quad_rows((*g).q1, k_low(x.x1.x), k_low(x.x1.y), k_low(x.x1.z), k_low(x.x1.w), b0, b1, b2, b3);
    (*g).q2 = quad_rows((*g).q2, k_low(x.x2.x), k_low(x.x2.y), k_low(x.x2.z), k_low(x.x2.w), b0, b1, b2, b3);
    (*g).q3 = quad_rows((*g).q3, k_low(x.x3.x), k_low(x.x3.y), k_low(x.x3.z), k_low(x.x3.w), b0, b1, b2, b3);
}

fn steps_column_high(
    g: ptr<function, Rows16>,
    x: AColumn,
    b4: vec4<f32>,
    b5: vec4<f32>,
    b6: vec4<f32>,
    b7: vec4<f32>,
) {
    (*g).q0 = quad_rows((*g).q0, k_high(x.x0.x), k_high(x.x0.y), k_high(x.x0.z), k_high(x.x0.w), b4, b5, b6, b7);
    (*g).q1 = quad_rows((*g).q1, k_high(x.x1.x), k_high(x.x1.y), k_high(x.x1.z), k_high(x.x1.w), b4, b5, b6, b7);
    (*g).q2 = quad_rows((*g).q2, k_high(x.x2.x), k_high(x.x2.y), k_high(x.x2.z), k_high(x.x2.w), b4, b5, b6, b7);
    (*g).q3 = quad_rows((*g).q3, k_high(x.x3.x), k_high(x.x3.y), k_high(x.x3.z), k_high(x.x3.w), b4, b5, b6, b7);
}

// v of lanes 0..3, and of lanes 4..7.
fn k_low(v: f32) -> vec4<f32> {
    return vec4(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
}
fn k_high(v: f32) -> vec4<f32> {
    return vec4(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

// A subgroup's rows in groups of 16: four 4×4 blocks per lane (its 4 columns of 16 rows).
struct Rows16 {
    q0: Block,
    q1: Block,
    q2: Block,
    q3: Block,
}

// Eight k of op(A) read along K into one group of 16 rows: lane l reads rows row0 + l (at
// offset u_row) and row0 + 8 + l (w_row).
fn steps_rows_along_k(g: ptr<function, Rows16>, u_row: u32, w_row: u32, k0: u32, bb: BBlock) {
    let u = a_eight(u_row + k0);
    let w = a_eight(w_row + k0);
    steps_along_k(g, u.low, w.low, bb.k0, bb.k1, bb.k2, bb.k3);
    steps_along_k(g, u.high, w.high, bb.k4, bb.k5, bb.k6, bb.k7);
}

// Eight k of op(A) read as columns (along M or as scalars; this lane's k is `k`) into one group
// of 16 rows, row0..row0+15.
fn steps_rows_columns(g: ptr<function, Rows16>, row0: u32, k: u32, bb: BBlock) {
    let x = load_a_column(row0, k);
    steps_column_low(g, x, bb.k0, bb.k1, bb.k2, bb.k3);
    steps_column_high(g, x, bb.k4, bb.k5, bb.k6, bb.k7);
}

// One tile per workgroup of one subgroup: a CPU adapter splits a dispatch's workgroups evenly
// between its threads, so the more (and smaller) they are, the better they balance.
@compute @workgroup_size(8)
fn matmul_subgroup(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    compute_tile(wg.x + wg.y * groups.x, lane);
}

fn compute_tile(tile: u32, lane: u32) {
    if tile >= p.tiles {
        return;
    }
    let row0 = (tile / p.tiles_n) * 16u * GROUPS;
    let col0 = (tile % p.tiles_n) * COLS;
    let col = col0 + 4u * lane;
    // Rows row0 + 16i..+15 in g_i (those past GROUPS unused).
    var g0 = Rows16();
    var g1 = Rows16();
    var g2 = Rows16();
    var g3 = Rows16();
    // Along K, lane l reads rows row0 + 8i + l (clamped inside M).
    let r0 = a_row_at(row0, lane);
    let r1 = a_row_at(row0 + 8u, lane);
    let r2 = a_row_at(row0 + 16u, lane);
    let r3 = a_row_at(row0 + 24u, lane);
    let r4 = a_row_at(row0 + 32u, lane);
    let r5 = a_row_at(row0 + 40u, lane);
    let r6 = a_row_at(row0 + 48u, lane);
    let r7 = a_row_at(row0 + 56u, lane);
    var k0 = 0u;
    for (; k0 + 8u <= p.k; k0 += 8u) {
        let bb = load_b(k0, col0, lane, false);
        if A_READ == A_ALONG_K {
            steps_rows_along_k(&g0, r0, r1, k0, bb);
            if GROUPS > 1u {
                steps_rows_along_k(&g1, r2, r3, k0, bb);
            }
            if GROUPS > 2u {
                steps_rows_along_k(&g2, r4, r5, k0, bb);
                steps_rows_along_k(&g3, r6, r7, k0, bb);
            }
        } else {
            steps_groups_columns(&g0, &g1, &g2, &g3, row0, k0 + lane, bb);
        }
    }
    // The last K % 8 (A is then read along M or as scalars).
    if k0 < p.k {
        let bb = load_b(k0, col0, lane, true);
        steps_groups_columns(&g0, &g1, &g2, &g3, row0, k0 + lane, bb);
    }
    var bias4 = vec4(0.0);
    if BIAS {
        let last = p.n - 1u;
        bias4 = vec4(bias[min(col, last)], bias[min(col + 1u, last)], bias[min(col + 2u, last)], bias[min(col + 3u, last)]);
    }
    store_rows16(row0, col0, lane, g0, bias4);
    if GROUPS > 1u {
        store_rows16(row0 + 16u, col0, lane, g1, bias4);
    }
    if GROUPS > 2u {
        store_rows16(row0 + 32u, col0, lane, g2, bias4);
        store_rows16(row0 + 48u, col0, lane, g3, bias4);
    }
}

// Where row first + lane of op(A) starts in a (clamped inside M).
fn a_row_at(first: u32, lane: u32) -> u32 {
    return min(first + lane, p.m - 1u) * p.a_row;
}

// Eight k of op(A) read as columns into every group of rows.
fn steps_groups_columns(
    g0: ptr<function, Rows16>,
    g1: ptr<function, Rows16>,
    g2: ptr<function, Rows16>,
    g3: ptr<function, Rows16>,
    row0: u32,
    k: u32,
    bb: BBlock,
) {
    steps_rows_columns(g0, row0, k, bb);
    if GROUPS > 1u {
        steps_rows_columns(g1, row0 + 16u, k, bb);
    }
    if GROUPS > 2u {
        steps_rows_columns(g2, row0 + 32u, k, bb);
        steps_rows_columns(g3, row0 + 48u, k, bb);
    }
}

// Writes rows row..row+15 of one group.
fn store_rows16(row: u32, col0: u32, lane: u32, g: Rows16, bias4: vec4<f32>) {
    store_quad(row, col0, lane, g.q0, bias4);
    store_quad(row + 4u, col0, lane, g.q1, bias4);
    store_quad(row + 8u, col0, lane, g.q2, bias4);
    store_quad(row + 12u, col0, lane, g.q3, bias4);
}

// This lane's 4 columns of one row after the bias (bias4, at those columns) and ReLU.
fn bias_relu(v: vec4<f32>, bias4: vec4<f32>) -> vec4<f32> {
    var out = v;
    if BIAS {
        out += bias4;
    }
    if RELU {
        out = max(out, vec4(0.0));
    }
    return out;
}

// Writes rows row..row+3 (this lane's columns col0 + 4 lane..+3) after the epilogue, skipping
// what lies outside C.
fn store_quad(row: u32, col0: u32, lane: u32, q: Block, bias4: vec4<f32>) {
    if C_VEC8 {
        store_pair(row, col0, lane, bias_relu(q.r0, bias4), bias_relu(q.r1, bias4));
        store_pair(row + 2u, col0, lane, bias_relu(q.r2, bias4), bias_relu(q.r3, bias4));
    } else {
        let col = col0 + 4u * lane;
        store_row(row, col, bias_relu(q.r0, bias4));
        store_row(row + 1u, col, bias_relu(q.r1, bias4));
        store_row(row + 2u, col, bias_relu(q.r2, bias4));
        store_row(row + 3u, col, bias_relu(q.r3, bias4));
    }
}

// Rows row and row + 1 (v0, v1: this lane's 4 columns of each) as 8-wide stores (N % 8 = 0):
// lane l stores row + l / 4 at columns col0 + 8 (l % 4)..+7, which lanes 2 (l % 4) and
// 2 (l % 4) + 1 hold.
fn store_pair(row: u32, col0: u32, lane: u32, v0: vec4<f32>, v1: vec4<f32>) {
    let source = 2u * (lane % 4u);
    let second = lane >= 4u;
    let low = select(subgroupShuffle(v0, source), subgroupShuffle(v1, source), second);
    let high = select(subgroupShuffle(v0, source + 1u), subgroupShuffle(v1, source + 1u), second);
    let r = row + lane / 4u;
    let col = col0 + 8u * (lane % 4u);
    if r >= p.m || col >= p.n {
        return;
    }
    let i = r * p.n + col;
    var out = Eight(low, high);
    if GATE {
        out.low = select(vec4(0.0), out.low, gate4[i / 4u] > vec4(0.0));
        out.high = select(vec4(0.0), out.high, gate4[i / 4u + 1u] > vec4(0.0));
    }
    c8[i / 8u] = pack(out);
}

// Row `row` at columns col..col+3 (after bias and ReLU), gated, skipping what lies outside C.
fn store_row(row: u32, col: u32, v: vec4<f32>) {
    if row >= p.m || col >= p.n {
        return;
    }
    let i = row * p.n + col;
    if C_VEC4 {
        var out = v;
        if GATE {
            out = select(vec4(0.0), out, gate4[i / 4u] > vec4(0.0));
        }
        c[i / 4u] = out;
    } else {
        c_scalar[i] = gated(i, v.x);
        if col + 1u < p.n {
            c_scalar[i + 1u] = gated(i + 1u, v.y);
        }
        if col + 2u < p.n {
            c_scalar[i + 2u] = gated(i + 2u, v.z);
        }
        if col + 3u < p.n {
            c_scalar[i + 3u] = gated(i + 3u, v.w);
        }
    }
}

// C[i] = v, or 0 where the gate is ≤ 0.
fn gated(i: u32, v: f32) -> f32 {
    if GATE {
        return select(0.0, v, gate[i] > 0.0);
    }
    return v;
}
