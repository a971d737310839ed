// C = op(A) · op(B), then the epilogue, for adapters with 8-lane subgroups and 64-bit integers
// (CPU adapters: one subgroup is one SIMD register of 8 floats). Same parameters as matmul.wgsl.
//
// On such adapters a storage load is a loop over the lanes, so its cost barely depends on how
// much each lane loads: 32 bytes (a vec4<u64> holding eight f32, int64.wgsl) cost little more
// than 4. This layout therefore loads eight f32 at a time wherever the operand allows it, four
// where it does not, and shares A through subgroup broadcasts, which cost a register shuffle:
//
//   - a subgroup owns 16, 32 or 64 rows (GROUPS groups of 16; `matmul_subgroup128`: 128) × 64
//     columns of C; each lane owns 8 adjacent columns (one Eight) of all the rows, so it keeps
//     an Eight accumulator per row. With LANE_EIGHTS = 2 the tile is 128 columns wide and each
//     lane also owns the 8 columns 64 further, so each broadcast of A feeds twice the FMAs
//     (a broadcast is itself a loop over the lanes on CPU adapters);
//   - K is walked 8 at a time. Each lane gets its 8 columns of B at those 8 k: one 8-wide load
//     per k when B's rows hold whole groups of 8 (N % 8 = 0), one per column when its columns
//     do (B transposed, K % 8 = 0), else two vec4s per k or per column. Of each 16×8 block of
//     A it loads an eighth (two 8-wide loads along K or along M, or 16 scalars when neither
//     dimension holds whole groups of 8), which the other lanes read by broadcast;
//   - so 10 to 32 loads feed one group's 1024 FMAs per lane, and each further group adds 2 to
//     16 (B's loads serve every group). FMAs are taken a row at a time, all 8 k of it, so that
//     each accumulator is read and written once per step and few values need registers at
//     once; C leaves as one 8-wide store per row (N % 8 = 0), else as vec4 or scalar stores.
//
// With ROW_SUMS, each lane also adds up the values of A it loads (read as columns, the 16 rows
// at its own k; along K, its own two rows), and C's first column of tiles writes the sums.
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
// How op(B) is read: two vec4s along N per k (B untransposed, N % 4 = 0), two vec4s per column
// along K (B transposed, K % 4 = 0), eight at a time along K per column (B transposed,
// K % 8 = 0), or eight at a time along N per k (B untransposed, N % 8 = 0).
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
@group(0) @binding(8) var<storage, read> gate8: array<vec4<u64>>; // the gate again, N % 8 = 0
@group(0) @binding(9) var<storage, read> b8: array<vec4<u64>>; // B again, for B_ALONG_K8 / N8
@group(0) @binding(10) var<storage, read_write> c8: array<vec4<u64>>; // C again, for N % 8 = 0

// C's rows hold whole vec4s (N % 4 = 0): the epilogue works on vec4s.
override C_VEC4: bool = true;
// C's rows hold whole groups of 8 (N % 8 = 0): each row of a lane's columns is one store.
override C_VEC8: bool = true;

// Groups of 16 rows per block of 64: 1, 2 or 4. Each load of B feeds FMAs in proportion, for as
// many accumulators (and a slower compile on CPU adapters).
override GROUPS: u32 = 1u;
// Eights of columns per lane: 1, or 2 (lane l also owns columns 64 + 8l..+7 of the tile). Each
// broadcast of A feeds FMAs in proportion; broadcasts are loops over the lanes on CPU adapters.
override LANE_EIGHTS: u32 = 1u;

override COLS: u32 = 64u * LANE_EIGHTS; // per subgroup

// A's stored matrix (A_PLANES) or C (C_PLANES) is a batch of planes, as an NCHW tensor
// [B, R, G] is the R × B·G matrix of its channels: column x lies in plane x / G at x % G, and
// the host passes G as the stride of the rows. Runs of 8 never straddle planes (G % 8 = 0).
override A_PLANES: bool = false;
override C_PLANES: bool = false;
// The bias is per row of C (length M) instead of per column.
override BIAS_ROWS: bool = false;

// Where column x of A's stored matrix lies, from the start of its row.
fn a_column_at(x: u32) -> u32 {
    if A_PLANES {
        return (x / p.a_plane) * p.a_plane_stride + x % p.a_plane;
    }
    return x;
}

// Where C[row, col] lies.
fn c_at(row: u32, col: u32) -> u32 {
    if C_PLANES {
        return (col / p.c_plane) * p.c_plane_stride + row * p.c_plane + col % p.c_plane;
    }
    return row * p.n + col;
}

// A row's accumulators in this lane: its first eight columns, and with LANE_EIGHTS = 2 the eight
// 64 columns further.
struct Cols {
    e0: Eight,
    e1: Eight,
}

// Elements e..e+7 of A or B (e a multiple of 8), and e..e+3 of B (e a multiple of 4).
fn a_eight(e: u32) -> Eight {
    return unpack(a8[e / 8u]);
}
fn b_eight(e: u32) -> Eight {
    return unpack(b8[e / 8u]);
}
fn b4(e: u32) -> vec4<f32> {
    return b[e / 4u];
}

// op(B) at 8 consecutive k for this lane's 8 columns: one Eight per k.
struct BBlock {
    k0: Eight,
    k1: Eight,
    k2: Eight,
    k3: Eight,
    k4: Eight,
    k5: Eight,
    k6: Eight,
    k7: Eight,
}

// op(B)'s blocks at a step for this lane's columns: e0's, and e1's with LANE_EIGHTS = 2.
struct BPair {
    b0: BBlock,
    b1: BBlock,
}

// load_b for each of the lane's eights of columns.
fn load_bs(k0: u32, col: u32, masked: bool) -> BPair {
    var out = BPair(load_b(k0, col, masked), BBlock());
    if LANE_EIGHTS == 2u {
        out.b1 = load_b(k0, col + 64u, masked);
    }
    return out;
}

// Columns col..col+7 at k0..k0+7; columns past N read ones inside (never stored). `masked`
// (the last, partial step) zeroes the k past K, whose loads are clamped inside B.
fn load_b(k0: u32, col: u32, masked: bool) -> BBlock {
    // The last k that row-wise reads may touch.
    let last = select(k0 + 7u, p.k - 1u, masked);
    var out = BBlock();
    if B_READ == B_ALONG_N8 {
        // One row of B per k, eight at a time along N.
        let at = min(col, p.n - 8u);
        out = BBlock(
            b_eight(min(k0, last) * p.b_k + at),
            b_eight(min(k0 + 1u, last) * p.b_k + at),
            b_eight(min(k0 + 2u, last) * p.b_k + at),
            b_eight(min(k0 + 3u, last) * p.b_k + at),
            b_eight(min(k0 + 4u, last) * p.b_k + at),
            b_eight(min(k0 + 5u, last) * p.b_k + at),
            b_eight(min(k0 + 6u, last) * p.b_k + at),
            b_eight(min(k0 + 7u, last) * p.b_k + at),
        );
    } else if B_READ == B_ALONG_N {
        // Two vec4s along N per k (N % 4 = 0).
        let at = min(col, p.n - 4u);
        let high = min(col + 4u, p.n - 4u);
        out = BBlock(
            b_row_pair(min(k0, last), at, high),
            b_row_pair(min(k0 + 1u, last), at, high),
            b_row_pair(min(k0 + 2u, last), at, high),
            b_row_pair(min(k0 + 3u, last), at, high),
            b_row_pair(min(k0 + 4u, last), at, high),
            b_row_pair(min(k0 + 5u, last), at, high),
            b_row_pair(min(k0 + 6u, last), at, high),
            b_row_pair(min(k0 + 7u, last), at, high),
        );
    } else {
        // Eight columns, each contiguous along K: one 8-wide load per column (K % 8 = 0, so
        // the step never passes K) or two vec4s (K % 4 = 0, so the second lies wholly past K
        // or not at all). Each holds one column at the 8 k; the block wants the reverse.
        let second = select(k0 + 4u, k0, masked && k0 + 4u >= p.k);
        let z0 = b_column(col, k0, second);
        let z1 = b_column(col + 1u, k0, second);
        let z2 = b_column(col + 2u, k0, second);
        let z3 = b_column(col + 3u, k0, second);
        let z4 = b_column(col + 4u, k0, second);
        let z5 = b_column(col + 5u, k0, second);
        let z6 = b_column(col + 6u, k0, second);
        let z7 = b_column(col + 7u, k0, second);
        out = BBlock(
            Eight(vec4(z0.low.x, z1.low.x, z2.low.x, z3.low.x), vec4(z4.low.x, z5.low.x, z6.low.x, z7.low.x)),
            Eight(vec4(z0.low.y, z1.low.y, z2.low.y, z3.low.y), vec4(z4.low.y, z5.low.y, z6.low.y, z7.low.y)),
            Eight(vec4(z0.low.z, z1.low.z, z2.low.z, z3.low.z), vec4(z4.low.z, z5.low.z, z6.low.z, z7.low.z)),
            Eight(vec4(z0.low.w, z1.low.w, z2.low.w, z3.low.w), vec4(z4.low.w, z5.low.w, z6.low.w, z7.low.w)),
            Eight(vec4(z0.high.x, z1.high.x, z2.high.x, z3.high.x), vec4(z4.high.x, z5.high.x, z6.high.x, z7.high.x)),
            Eight(vec4(z0.high.y, z1.high.y, z2.high.y, z3.high.y), vec4(z4.high.y, z5.high.y, z6.high.y, z7.high.y)),
            Eight(vec4(z0.high.z, z1.high.z, z2.high.z, z3.high.z), vec4(z4.high.z, z5.high.z, z6.high.z, z7.high.z)),
            Eight(vec4(z0.high.w, z1.high.w, z2.high.w, z3.high.w), vec4(z4.high.w, z5.high.w, z6.high.w, z7.high.w)),
        );
    }
    if masked {
        let k = vec4(k0) + vec4(0u, 1u, 2u, 3u);
        let live = k < vec4(p.k);
        let live_high = k + vec4(4u) < vec4(p.k);
        out = BBlock(
            live_or_zero(out.k0, live.x),
            live_or_zero(out.k1, live.y),
            live_or_zero(out.k2, live.z),
            live_or_zero(out.k3, live.w),
            live_or_zero(out.k4, live_high.x),
            live_or_zero(out.k5, live_high.y),
            live_or_zero(out.k6, live_high.z),
            live_or_zero(out.k7, live_high.w),
        );
    }
    return out;
}

// Row k of B at columns at..at+3 and high..high+3.
fn b_row_pair(k: u32, at: u32, high: u32) -> Eight {
    return Eight(b4(k * p.b_k + at), b4(k * p.b_k + high));
}

// Column col of B (clamped inside N) at k0..k0+7: one 8-wide load, or two vec4s (the second
// from `second`, which the last step points back at k0 when it lies past K).
fn b_column(col: u32, k0: u32, second: u32) -> Eight {
    let at = min(col, p.n - 1u) * p.b_col;
    if B_READ == B_ALONG_K8 {
        return b_eight(at + k0);
    }
    return Eight(b4(at + k0), b4(at + second));
}

// x, or zeros for a k past K.
fn live_or_zero(x: Eight, live: bool) -> Eight {
    return Eight(select(vec4(0.0), x.low, live), select(vec4(0.0), x.high, live));
}

// acc + a.x b0 + a.y b1 + a.z b2 + a.w b3, in that order, for each of the 8 columns.
fn row_fmas(acc: Eight, a: vec4<f32>, b0: Eight, b1: Eight, b2: Eight, b3: Eight) -> Eight {
    return Eight(
        fma(vec4(a.w), b3.low, fma(vec4(a.z), b2.low, fma(vec4(a.y), b1.low, fma(vec4(a.x), b0.low, acc.low)))),
        fma(vec4(a.w), b3.high, fma(vec4(a.z), b2.high, fma(vec4(a.y), b1.high, fma(vec4(a.x), b0.high, acc.high)))),
    );
}

// One row += its values of op(A) at the step's 8 k (low: the first four, high: the last four)
// ⊗ op(B)'s block: the whole step in one visit to the row's accumulator.
fn eight_step(acc: Eight, low: vec4<f32>, high: vec4<f32>, bb: BBlock) -> Eight {
    return row_fmas(row_fmas(acc, low, bb.k0, bb.k1, bb.k2, bb.k3), high, bb.k4, bb.k5, bb.k6, bb.k7);
}

// eight_step for each of the lane's eights of columns, from the same values of op(A).
fn row_step(acc: Cols, low: vec4<f32>, high: vec4<f32>, bb: BPair) -> Cols {
    var out = Cols(eight_step(acc.e0, low, high, bb.b0), acc.e1);
    if LANE_EIGHTS == 2u {
        out.e1 = eight_step(acc.e1, low, high, bb.b1);
    }
    return out;
}

// A subgroup's rows in groups of 16: this lane's columns of each.
struct Rows16 {
    r0: Cols,
    r1: Cols,
    r2: Cols,
    r3: Cols,
    r4: Cols,
    r5: Cols,
    r6: Cols,
    r7: Cols,
    r8: Cols,
    r9: Cols,
    r10: Cols,
    r11: Cols,
    r12: Cols,
    r13: Cols,
    r14: Cols,
    r15: Cols,
}

// Eight k of op(A) read along K into one group of 16 rows: lane l reads rows row0 + l (at
// offset u_row) and row0 + 8 + l (w_row), which broadcasts hand to every lane a row at a time.
// Returns this lane's share of the step's row sums: its two rows, four partial sums each.
fn steps_rows_along_k(g: ptr<function, Rows16>, u_row: u32, w_row: u32, k0: u32, bb: BPair) -> AColumn {
    let at = a_column_at(k0);
    let u = a_eight(u_row + at);
    let w = a_eight(w_row + at);
    (*g).r0 = row_step((*g).r0, subgroupBroadcast(u.low, 0u), subgroupBroadcast(u.high, 0u), bb);
    (*g).r1 = row_step((*g).r1, subgroupBroadcast(u.low, 1u), subgroupBroadcast(u.high, 1u), bb);
    (*g).r2 = row_step((*g).r2, subgroupBroadcast(u.low, 2u), subgroupBroadcast(u.high, 2u), bb);
    (*g).r3 = row_step((*g).r3, subgroupBroadcast(u.low, 3u), subgroupBroadcast(u.high, 3u), bb);
    (*g).r4 = row_step((*g).r4, subgroupBroadcast(u.low, 4u), subgroupBroadcast(u.high, 4u), bb);
    (*g).r5 = row_step((*g).r5, subgroupBroadcast(u.low, 5u), subgroupBroadcast(u.high, 5u), bb);
    (*g).r6 = row_step((*g).r6, subgroupBroadcast(u.low, 6u), subgroupBroadcast(u.high, 6u), bb);
    (*g).r7 = row_step((*g).r7, subgroupBroadcast(u.low, 7u), subgroupBroadcast(u.high, 7u), bb);
    (*g).r8 = row_step((*g).r8, subgroupBroadcast(w.low, 0u), subgroupBroadcast(w.high, 0u), bb);
    (*g).r9 = row_step((*g).r9, subgroupBroadcast(w.low, 1u), subgroupBroadcast(w.high, 1u), bb);
    (*g).r10 = row_step((*g).r10, subgroupBroadcast(w.low, 2u), subgroupBroadcast(w.high, 2u), bb);
    (*g).r11 = row_step((*g).r11, subgroupBroadcast(w.low, 3u), subgroupBroadcast(w.high, 3u), bb);
    (*g).r12 = row_step((*g).r12, subgroupBroadcast(w.low, 4u), subgroupBroadcast(w.high, 4u), bb);
    (*g).r13 = row_step((*g).r13, subgroupBroadcast(w.low, 5u), subgroupBroadcast(w.high, 5u), bb);
    (*g).r14 = row_step((*g).r14, subgroupBroadcast(w.low, 6u), subgroupBroadcast(w.high, 6u), bb);
    (*g).r15 = row_step((*g).r15, subgroupBroadcast(w.low, 7u), subgroupBroadcast(w.high, 7u), bb);
    return AColumn(u.low + u.high, w.low + w.high, vec4(0.0), vec4(0.0));
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
        let first = a_eight(kc * p.a_k + a_column_at(min(row0, p.m - 8u)));
        let second = a_eight(kc * p.a_k + a_column_at(min(row0 + 8u, p.m - 8u)));
        x = AColumn(first.low, first.high, second.low, second.high);
    } else {
        x = AColumn(a_quad(row0, 0u, kc), a_quad(row0, 1u, kc), a_quad(row0, 2u, kc), a_quad(row0, 3u, kc));
    }
    if k >= p.k {
        x = AColumn();
    }
    return x;
}

// v of lanes 0..3, and of lanes 4..7.
fn k_low(v: f32) -> vec4<f32> {
    return vec4(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
}
fn k_high(v: f32) -> vec4<f32> {
    return vec4(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

// One row of a step from op(A) read as columns: lane l holds the row at k0 + l.
fn column_step(acc: Cols, v: f32, bb: BPair) -> Cols {
    return row_step(acc, k_low(v), k_high(v), bb);
}

// Eight k of op(A) read as columns (along M or as scalars; this lane's k is `k`) into one group
// of 16 rows, row0..row0+15. Returns this lane's share of the row sums: the 16 rows at its k.
fn steps_rows_columns(g: ptr<function, Rows16>, row0: u32, k: u32, bb: BPair) -> AColumn {
    let x = load_a_column(row0, k);
    (*g).r0 = column_step((*g).r0, x.x0.x, bb);
    (*g).r1 = column_step((*g).r1, x.x0.y, bb);
    (*g).r2 = column_step((*g).r2, x.x0.z, bb);
    (*g).r3 = column_step((*g).r3, x.x0.w, bb);
    (*g).r4 = column_step((*g).r4, x.x1.x, bb);
    (*g).r5 = column_step((*g).r5, x.x1.y, bb);
    (*g).r6 = column_step((*g).r6, x.x1.z, bb);
    (*g).r7 = column_step((*g).r7, x.x1.w, bb);
    (*g).r8 = column_step((*g).r8, x.x2.x, bb);
    (*g).r9 = column_step((*g).r9, x.x2.y, bb);
    (*g).r10 = column_step((*g).r10, x.x2.z, bb);
    (*g).r11 = column_step((*g).r11, x.x2.w, bb);
    (*g).r12 = column_step((*g).r12, x.x3.x, bb);
    (*g).r13 = column_step((*g).r13, x.x3.y, bb);
    (*g).r14 = column_step((*g).r14, x.x3.z, bb);
    (*g).r15 = column_step((*g).r15, x.x3.w, bb);
    return x;
}

// Where this lane's tile starts: rows row0.. (tile_rows of them) and this lane's 8 columns
// col..col+7; `live` is false for the workgroups past the last tile, `first` true for those
// of C's first column of tiles.
struct TileAt {
    row0: u32,
    col: u32,
    live: bool,
    first: bool,
}

fn tile_at(wg: vec3<u32>, groups: vec3<u32>, lane: u32, tile_rows: u32) -> TileAt {
    let tile = wg.x + wg.y * groups.x;
    let column = tile % p.tiles_n;
    return TileAt((tile / p.tiles_n) * tile_rows, column * COLS + 8u * lane, tile < p.tiles, column == 0u);
}

// One tile per workgroup of one subgroup: a CPU adapter splits a dispatch's workgroups evenly
// between its threads, so the more (and smaller) they are, the better they balance.
@compute @workgroup_size(8)
fn matmul_subgroup(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let at = tile_at(wg, groups, lane, 16u * GROUPS);
    if !at.live {
        return;
    }
    // Rows row0 + 16i..+15 in g_i (those past GROUPS unused).
    var g0 = Rows16();
    var g1 = Rows16();
    var g2 = Rows16();
    var g3 = Rows16();
    // ROW_SUMS: this lane's share of the row sums of each group.
    var s = RowSums64();
    for (var k0 = 0u; k0 < p.k; k0 += 8u) {
        rows_step(&g0, &g1, &g2, &g3, &s, at.first, at.row0, lane, k0, load_bs(k0, at.col, a_columns_past_k(k0)));
    }
    store_rows64(at.row0, at.col, g0, g1, g2, g3);
    if ROW_SUMS {
        store_row_sums64(at, lane, s);
    }
}

// 128 rows per tile (GROUPS = 4): two blocks of 64 rows share each load of B. A separate entry
// point, so that the other pipelines do not carry its code through the driver's compiler.
@compute @workgroup_size(8)
fn matmul_subgroup128(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let at = tile_at(wg, groups, lane, 128u);
    if !at.live {
        return;
    }
    var g0 = Rows16();
    var g1 = Rows16();
    var g2 = Rows16();
    var g3 = Rows16();
    var g4 = Rows16();
    var g5 = Rows16();
    var g6 = Rows16();
    var g7 = Rows16();
    var s = RowSums64();
    var s_high = RowSums64();
    for (var k0 = 0u; k0 < p.k; k0 += 8u) {
        let bb = load_bs(k0, at.col, a_columns_past_k(k0));
        rows_step(&g0, &g1, &g2, &g3, &s, at.first, at.row0, lane, k0, bb);
        rows_step(&g4, &g5, &g6, &g7, &s_high, at.first, at.row0 + 64u, lane, k0, bb);
    }
    store_rows64(at.row0, at.col, g0, g1, g2, g3);
    store_rows64(at.row0 + 64u, at.col, g4, g5, g6, g7);
    if ROW_SUMS {
        store_row_sums64(at, lane, s);
        store_row_sums64(TileAt(at.row0 + 64u, at.col, at.live, at.first), lane, s_high);
    }
}

// ROW_SUMS: a lane's partial row sums of a tile's groups of 16 rows (those past GROUPS unused).
struct RowSums64 {
    s0: AColumn,
    s1: AColumn,
    s2: AColumn,
    s3: AColumn,
}

// Writes the row sums of a tile's 16·GROUPS rows from each lane's partial sums, when the tile
// is in C's first column of tiles (the others hold the same sums).
fn store_row_sums64(at: TileAt, lane: u32, s: RowSums64) {
    store_row_sums16(at, at.row0, lane, s.s0);
    if GROUPS > 1u {
        store_row_sums16(at, at.row0 + 16u, lane, s.s1);
    }
    if GROUPS > 2u {
        store_row_sums16(at, at.row0 + 32u, lane, s.s2);
        store_row_sums16(at, at.row0 + 48u, lane, s.s3);
    }
}

// Lane l writes the sums of rows row0 + l and row0 + 8 + l. Read along K, it holds their four
// partial sums (s.x0, s.x1); read as columns, every lane holds the 16 rows at its k, which the
// subgroup adds up.
fn store_row_sums16(at: TileAt, row0: u32, lane: u32, s: AColumn) {
    var low = 0.0;
    var high = 0.0;
    if A_READ == A_ALONG_K {
        low = (s.x0.x + s.x0.y) + (s.x0.z + s.x0.w);
        high = (s.x1.x + s.x1.y) + (s.x1.z + s.x1.w);
    } else {
        let t = AColumn(subgroupAdd(s.x0), subgroupAdd(s.x1), subgroupAdd(s.x2), subgroupAdd(s.x3));
        low = select(t.x1, t.x0, lane < 4u)[lane % 4u];
        high = select(t.x3, t.x2, lane < 4u)[lane % 4u];
    }
    if at.first && row0 + lane < p.m {
        row_sums[row0 + lane] = low;
    }
    if at.first && row0 + 8u + lane < p.m {
        row_sums[row0 + 8u + lane] = high;
    }
}

// Whether the step at k0 is the last, partial one of A read as columns: A read along K has
// K % 8 = 0, so no step of it passes K, and one copy of the step serves the partial one too.
fn a_columns_past_k(k0: u32) -> bool {
    return A_READ != A_ALONG_K && k0 + 8u > p.k;
}

// The step at k0 (B's block `bb`) into rows row0.. of a tile, 16 to a group g_i (those past
// GROUPS untouched), and with ROW_SUMS into the lane's row sums s where `sum_rows` (the tiles
// that write them).
fn rows_step(
    g0: ptr<function, Rows16>,
    g1: ptr<function, Rows16>,
    g2: ptr<function, Rows16>,
    g3: ptr<function, Rows16>,
    s: ptr<function, RowSums64>,
    sum_rows: bool,
    row0: u32,
    lane: u32,
    k0: u32,
    bb: BPair,
) {
    // Each group's share of the row sums (ROW_SUMS; otherwise unused).
    var share = RowSums64();
    if A_READ == A_ALONG_K {
        // Lane l reads rows row0 + 8i + l (clamped inside M).
        share.s0 = steps_rows_along_k(g0, a_row_at(row0, lane), a_row_at(row0 + 8u, lane), k0, bb);
        if GROUPS > 1u {
            share.s1 = steps_rows_along_k(g1, a_row_at(row0 + 16u, lane), a_row_at(row0 + 24u, lane), k0, bb);
        }
        if GROUPS > 2u {
            share.s2 = steps_rows_along_k(g2, a_row_at(row0 + 32u, lane), a_row_at(row0 + 40u, lane), k0, bb);
            share.s3 = steps_rows_along_k(g3, a_row_at(row0 + 48u, lane), a_row_at(row0 + 56u, lane), k0, bb);
        }
    } else {
        let k = k0 + lane;
        share.s0 = steps_rows_columns(g0, row0, k, bb);
        if GROUPS > 1u {
            share.s1 = steps_rows_columns(g1, row0 + 16u, k, bb);
        }
        if GROUPS > 2u {
            share.s2 = steps_rows_columns(g2, row0 + 32u, k, bb);
            share.s3 = steps_rows_columns(g3, row0 + 48u, k, bb);
        }
    }
    if ROW_SUMS && sum_rows {
        (*s).s0 = add_columns((*s).s0, share.s0);
        (*s).s1 = add_columns((*s).s1, share.s1);
        (*s).s2 = add_columns((*s).s2, share.s2);
        (*s).s3 = add_columns((*s).s3, share.s3);
    }
}

fn add_columns(x: AColumn, y: AColumn) -> AColumn {
    return AColumn(x.x0 + y.x0, x.x1 + y.x1, x.x2 + y.x2, x.x3 + y.x3);
}

// Where row first + lane of op(A) starts in a (clamped inside M).
fn a_row_at(first: u32, lane: u32) -> u32 {
    return min(first + lane, p.m - 1u) * p.a_row;
}

// Writes rows row0.. of a tile, 16 to a group g_i, at this lane's columns col..col+7.
fn store_rows64(row0: u32, col: u32, g0: Rows16, g1: Rows16, g2: Rows16, g3: Rows16) {
    var bias8 = Cols(bias_at(col), Eight());
    if LANE_EIGHTS == 2u {
        bias8.e1 = bias_at(col + 64u);
    }
    store_rows16(row0, col, g0, bias8);
    if GROUPS > 1u {
        store_rows16(row0 + 16u, col, g1, bias8);
    }
    if GROUPS > 2u {
        store_rows16(row0 + 32u, col, g2, bias8);
        store_rows16(row0 + 48u, col, g3, bias8);
    }
}

// The bias at columns col..col+7 (clamped inside N), or zeros without a bias per column.
fn bias_at(col: u32) -> Eight {
    if !BIAS || BIAS_ROWS {
        return Eight();
    }
    let last = p.n - 1u;
    return Eight(
        vec4(bias[min(col, last)], bias[min(col + 1u, last)], bias[min(col + 2u, last)], bias[min(col + 3u, last)]),
        vec4(bias[min(col + 4u, last)], bias[min(col + 5u, last)], bias[min(col + 6u, last)], bias[min(col + 7u, last)]),
    );
}

// Writes rows row..row+15 of one group.
fn store_rows16(row: u32, col: u32, g: Rows16, bias8: Cols) {
    store_cols(row, col, g.r0, bias8);
    store_cols(row + 1u, col, g.r1, bias8);
    store_cols(row + 2u, col, g.r2, bias8);
    store_cols(row + 3u, col, g.r3, bias8);
    store_cols(row + 4u, col, g.r4, bias8);
    store_cols(row + 5u, col, g.r5, bias8);
    store_cols(row + 6u, col, g.r6, bias8);
    store_cols(row + 7u, col, g.r7, bias8);
    store_cols(row + 8u, col, g.r8, bias8);
    store_cols(row + 9u, col, g.r9, bias8);
    store_cols(row + 10u, col, g.r10, bias8);
    store_cols(row + 11u, col, g.r11, bias8);
    store_cols(row + 12u, col, g.r12, bias8);
    store_cols(row + 13u, col, g.r13, bias8);
    store_cols(row + 14u, col, g.r14, bias8);
    store_cols(row + 15u, col, g.r15, bias8);
}

// Writes a row's accumulators at the lane's columns (bias8: the bias at them).
fn store_cols(row: u32, col: u32, v: Cols, bias8: Cols) {
    store_row(row, col, v.e0, bias8.e0);
    if LANE_EIGHTS == 2u {
        store_row(row, col + 64u, v.e1, bias8.e1);
    }
}

// Four columns of a row after the bias (bias4, at those columns) and ReLU.
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

// Row `row` at columns col..col+7 after the epilogue, skipping what lies outside C: one 8-wide
// store (N % 8 = 0), two vec4s (N % 4 = 0), or scalars.
fn store_row(row: u32, col: u32, v: Eight, bias8: Eight) {
    if row >= p.m || col >= p.n {
        return;
    }
    let i = c_at(row, col);
    var b8 = bias8;
    if BIAS_ROWS {
        let b = bias[row];
        b8 = Eight(vec4(b), vec4(b));
    }
    var out = Eight(bias_relu(v.low, b8.low), bias_relu(v.high, b8.high));
    if C_VEC8 {
        if GATE {
            let gate_at = unpack(gate8[i / 8u]);
            out.low = select(vec4(0.0), out.low, gate_at.low > vec4(0.0));
            out.high = select(vec4(0.0), out.high, gate_at.high > vec4(0.0));
        }
        c8[i / 8u] = pack(out);
    } else if C_VEC4 {
        // N % 4 = 0: the second four lie wholly inside C or wholly past N.
        c[i / 4u] = gated4(i, out.low);
        if col + 4u < p.n {
            c[i / 4u + 1u] = gated4(i + 4u, out.high);
        }
    } else {
        store_scalars(i, p.n - col, out.low);
        if col + 4u < p.n {
            store_scalars(i + 4u, p.n - col - 4u, out.high);
        }
    }
}

// C[i..i+3] = v, zero where the gate is ≤ 0.
fn gated4(i: u32, v: vec4<f32>) -> vec4<f32> {
    if GATE {
        return vec4(gated(i, v.x), gated(i + 1u, v.y), gated(i + 2u, v.z), gated(i + 3u, v.w));
    }
    return v;
}

// C[i..] = v's first min(left, 4) values, gated.
fn store_scalars(i: u32, left: u32, v: vec4<f32>) {
    c_scalar[i] = gated(i, v.x);
    if left > 1u {
        c_scalar[i + 1u] = gated(i + 1u, v.y);
    }
    if left > 2u {
        c_scalar[i + 2u] = gated(i + 2u, v.z);
    }
    if left > 3u {
        c_scalar[i + 3u] = gated(i + 3u, v.w);
    }
}

// C[i] = v, or 0 where the gate is ≤ 0.
fn gated(i: u32, v: f32) -> f32 {
    if GATE {
        return select(0.0, v, gate[i] > 0.0);
    }
    return v;
}
