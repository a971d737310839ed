// 2-D max pooling over NCHW tensors, as torch.nn.functional.max_pool2d (ceil_mode = False).
//   max_pool_forward   one invocation per output: the window's maximum and its flat input index
//                      (row-major over H × W). Padding counts as −∞; the first maximum in scan
//                      order wins, and a NaN is taken as the maximum (as PyTorch's CPU kernel).
//   max_pool_backward  one invocation per input: dx = Σ dy over the outputs whose index is this
//                      input, visited in a fixed order (overlapping windows add up, no atomics).
//   max_pool_backward_tiled
//                      when the windows tile the input exactly (stride = kernel, no padding or
//                      dilation, sizes multiples of the kernel): one invocation per output
//                      writes its whole window, dy at the maximum and zeros elsewhere.
//   max_pool_forward_2x2, max_pool_backward_2x2
//                      the common 2×2 windows at stride 2 (no padding or dilation) over rows of
//                      a multiple of 4: one invocation per two neighbouring windows, reading
//                      and writing vectors (CPU adapters pay per access, whatever its width).
// With GATE, the backward entries also zero dx where gate (the input, a ReLU's output) ≤ 0:
// the ReLU's backward, fused.

struct Params {
    planes: u32,     // N · C
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dilation_h: u32,
    dilation_w: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;           // planes × H × W
@group(0) @binding(2) var<storage, read_write> y: array<f32>;     // planes × OH × OW
@group(0) @binding(3) var<storage, read_write> index: array<u32>; // planes × OH × OW
@group(0) @binding(4) var<storage, read> dy: array<f32>;          // planes × OH × OW
@group(0) @binding(5) var<storage, read> index_in: array<u32>;    // planes × OH × OW
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;    // planes × H × W
@group(0) @binding(7) var<storage, read> gate: array<f32>;        // planes × H × W
// The same, as vectors, for the 2×2 entries.
@group(0) @binding(8) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> y2: array<vec2<f32>>;
@group(0) @binding(10) var<storage, read_write> index2: array<vec2<u32>>;
@group(0) @binding(11) var<storage, read> dy2: array<vec2<f32>>;
@group(0) @binding(12) var<storage, read> index_in2: array<vec2<u32>>;
@group(0) @binding(13) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(14) var<storage, read> gate4: array<vec4<f32>>;

override GATE: bool = false;

// dx[i] = v, or 0 where the gate is closed.
fn store_dx(i: u32, v: f32) {
    if GATE {
        dx[i] = select(0.0, v, gate[i] > 0.0);
    } else {
        dx[i] = v;
    }
}

// By its bits: comparisons with NaN are not reliable across back ends.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn linear_index(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * 256u + lid;
}

// Output o's (plane, row, column).
fn output_at(o: u32) -> vec3<u32> {
    let outputs = p.out_height * p.out_width;
    return vec3(o / outputs, (o % outputs) / p.out_width, o % p.out_width);
}

@compute @workgroup_size(256)
fn max_pool_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = linear_index(wg, groups, lid);
    let outputs = p.out_height * p.out_width;
    if o >= p.planes * outputs {
        return;
    }
    let coords = output_at(o);
    let plane = coords.x;
    let oh = coords.y;
    let ow = coords.z;
    let base = plane * p.height * p.width;
    var best = bitcast<f32>(0xff800000u); // −∞
    var at = 0u;
    var found = false;
    for (var u = 0u; u < p.kernel_h; u++) {
        // Signed arithmetic: the window may start in the padding.
        let h = i32(oh * p.stride_h + u * p.dilation_h) - i32(p.pad_h);
        if h < 0 || h >= i32(p.height) {
            continue;
        }
        for (var v = 0u; v < p.kernel_w; v++) {
            let w = i32(ow * p.stride_w + v * p.dilation_w) - i32(p.pad_w);
            if w < 0 || w >= i32(p.width) {
                continue;
            }
            let i = u32(h) * p.width + u32(w);
            let value = x[base + i];
            if !found || value > best || is_nan(value) {
                best = value;
                at = i;
                found = true;
            }
        }
    }
    y[o] = best;
    index[o] = at;
}

@compute @workgroup_size(256)
fn max_pool_backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid);
    let inputs = p.height * p.width;
    if i >= p.planes * inputs {
        return;
    }
    let plane = i / inputs;
    let at = i % inputs;
    let h = at / p.width;
    let w = at % p.width;
    // The outputs whose windows can reach (h, w): oh·s − pad ≤ h ≤ oh·s − pad + d·(k − 1).
    let reach_h = p.dilation_h * (p.kernel_h - 1u);
    let reach_w = p.dilation_w * (p.kernel_w - 1u);
    let top = h + p.pad_h;
    let left = w + p.pad_w;
    let oh0 = select(0u, (top - reach_h + p.stride_h - 1u) / p.stride_h, top > reach_h);
    let ow0 = select(0u, (left - reach_w + p.stride_w - 1u) / p.stride_w, left > reach_w);
    let oh1 = min(top / p.stride_h + 1u, p.out_height);
    let ow1 = min(left / p.stride_w + 1u, p.out_width);
    let outputs = p.out_height * p.out_width;
    var sum = 0.0;
    for (var oh = oh0; oh < oh1; oh++) {
        for (var ow = ow0; ow < ow1; ow++) {
            let o = plane * outputs + oh * p.out_width + ow;
            if index_in[o] == at {
                sum += dy[o];
            }
        }
    }
    store_dx(i, sum);
}

@compute @workgroup_size(256)
fn max_pool_backward_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = linear_index(wg, groups, lid);
    let outputs = p.out_height * p.out_width;
    if o >= p.planes * outputs {
        return;
    }
    let coords = output_at(o);
    let plane = coords.x;
    let oh = coords.y;
    let ow = coords.z;
    let at = index_in[o];
    let g = dy[o];
    let base = plane * p.height * p.width;
    for (var u = 0u; u < p.kernel_h; u++) {
        let row = (oh * p.kernel_h + u) * p.width + ow * p.kernel_w;
        for (var v = 0u; v < p.kernel_w; v++) {
            store_dx(base + row + v, select(0.0, g, row + v == at));
        }
    }
}

// A window's maximum so far and its flat index.
struct Best {
    value: f32,
    index: u32,
}

// `best`, or (value, index) where max_pool_forward's rule takes it.
fn consider(best: Best, value: f32, index: u32) -> Best {
    let take = (value > best.value) | is_nan(value);
    return Best(select(best.value, value, take), select(best.index, index, take));
}

// The 2×2 window of rows `top` and `bottom` (two values each) whose first value is at flat
// index `at`, scanned in max_pool_forward's order.
fn window_max(top: vec2<f32>, bottom: vec2<f32>, at: u32) -> Best {
    var best = Best(top.x, at);
    best = consider(best, top.y, at + 1u);
    best = consider(best, bottom.x, at + p.width);
    return consider(best, bottom.y, at + p.width + 1u);
}

// Pair q of 2×2 windows (two neighbouring windows, q < pairs()): the vec4 index of its top
// row in the input, and the flat index within the plane of its first value.
fn pair_rows(q: u32) -> vec2<u32> {
    let pairs = p.out_width / 2u;
    let per_plane = p.out_height * pairs;
    let plane = q / per_plane;
    let oh = (q % per_plane) / pairs;
    let j = q % pairs;
    let quads = p.width / 4u;
    return vec2((plane * p.height + 2u * oh) * quads + j, 2u * oh * p.width + 4u * j);
}

fn pairs() -> u32 {
    return p.planes * p.out_height * p.out_width / 2u;
}

@compute @workgroup_size(256)
fn max_pool_forward_2x2(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = linear_index(wg, groups, lid);
    if q >= pairs() {
        return;
    }
    let rows = pair_rows(q);
    let top = x4[rows.x];
    let bottom = x4[rows.x + p.width / 4u];
    let left = rows.y;
    let a = window_max(top.xy, bottom.xy, left);
    let b = window_max(top.zw, bottom.zw, left + 2u);
    y2[q] = vec2(a.value, b.value);
    index2[q] = vec2(a.index, b.index);
}

@compute @workgroup_size(256)
fn max_pool_backward_2x2(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = linear_index(wg, groups, lid);
    if q >= pairs() {
        return;
    }
    let rows = pair_rows(q);
    let row = rows.x;
    let quads = p.width / 4u;
    let g = dy2[q];
    let chosen = index_in2[q];
    // The flat indices of the four columns in the top row (the bottom row's are W on).
    let columns = vec4(rows.y) + vec4(0u, 1u, 2u, 3u);
    let routed = vec4(chosen.x, chosen.x, chosen.y, chosen.y);
    let value = vec4(g.x, g.x, g.y, g.y);
    var top = select(vec4(0.0), value, columns == routed);
    var bottom = select(vec4(0.0), value, columns + vec4(p.width) == routed);
    if GATE {
        top = select(vec4(0.0), top, gate4[row] > vec4(0.0));
        bottom = select(vec4(0.0), bottom, gate4[row + quads] > vec4(0.0));
    }
    dx4[row] = top;
    dx4[row + quads] = bottom;
}
