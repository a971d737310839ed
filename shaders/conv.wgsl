// 2-D convolution over NCHW tensors (torch.nn.functional.conv2d, groups = 1) as matrix products
// around the matmul kernels. With P = N·OH·OW output positions and K = C·KH·KW taps:
//
//   forward        col = im2col(x)                      [K, P]
//                  y' = W · col                          [O, P]    (matmul)
//                  y  = to_nchw(y') + bias, ReLU         [N, O, OH, OW]
//   backward       dy' = from_nchw(dy)                   [O, P]
//                  db = row_sum(dy')                     [O]
//                  dW = dy' · colᵀ                       [O, K]    (matmul)
//                  col = Wᵀ · dy'                        [K, P]    (matmul, over the forward's col)
//                   or dy'ᵀ · W                          [P, K]    (POSITION_MAJOR: K ordered
//                                                                   (u, v, c), W reordered so)
//                  dx = col2im(col), ⊙ gate              [N, C, H, W]
//
// Where the sizes allow, the kernels move four values per access (the `*4` entries: on CPU
// adapters a storage access costs about the same whatever its width), and take coordinates
// from the workgroup grid rather than by dividing each invocation's index (integer division
// has no vector instruction on CPUs).
//
// Column p of col is output position (n, oh, ow) = (p / (OH·OW), …); row k is tap (c, u, v) =
// (k / (KH·KW), …). Every kernel here moves or sums values in a fixed order: no atomics, and
// runs are bit-identical.

struct Params {
    batch: u32,
    channels: u32,     // C, input channels
    height: u32,
    width: u32,
    out_channels: u32, // O
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

override BIAS: bool = false; // to_nchw adds bias[o]
override RELU: bool = false; // to_nchw applies max(·, 0) after the bias
override GATE: bool = false; // col2im zeroes dx where gate ≤ 0 (the backward of a ReLU before)
override UNIT_STRIDE: bool = false; // col2im: stride (1, 1), no division to find the window
override POSITION_MAJOR: bool = false; // col2im: col is [P, K], K ordered (u, v, c)

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>; // O
@group(0) @binding(4) var<storage, read> gate: array<f32>; // like dst
// The same tensors as src and dst, four values at a time.
@group(0) @binding(5) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dst4: array<vec4<f32>>;

fn linear_index(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * 256u + lid;
}

fn positions() -> u32 {
    return p.batch * p.out_height * p.out_width;
}

// src = x [N, C, H, W], dst = col [C·KH·KW, P]: one invocation per element of col.
@compute @workgroup_size(256)
fn im2col(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid);
    let cols = positions();
    let taps = p.kernel_h * p.kernel_w;
    if i >= p.channels * taps * cols {
        return;
    }
    let k = i / cols;
    let col = i % cols;
    let plane = p.out_height * p.out_width;
    let n = col / plane;
    let oh = (col % plane) / p.out_width;
    let ow = col % p.out_width;
    let c = k / taps;
    let u = (k % taps) / p.kernel_w;
    let v = k % p.kernel_w;
    // Signed: the window may start in the padding.
    let h = i32(oh * p.stride_h + u * p.dilation_h) - i32(p.pad_h);
    let w = i32(ow * p.stride_w + v * p.dilation_w) - i32(p.pad_w);
    let inside = h >= 0 && h < i32(p.height) && w >= 0 && w < i32(p.width);
    let at = ((n * p.channels + c) * p.height + u32(max(h, 0))) * p.width + u32(max(w, 0));
    dst[i] = select(0.0, src[min(at, arrayLength(&src) - 1u)], inside);
}

// im2col for P a multiple of 4: the grid's y is the tap row, x runs over its columns eight at a
// time (two vec4 stores); the positions advance along the output rows without dividing.
@compute @workgroup_size(64)
fn im2col4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let k = wg.y;
    let q = (wg.x * 64u + lid) * 2u;
    let cols = positions();
    if q * 4u >= cols {
        return;
    }
    let taps = p.kernel_h * p.kernel_w;
    let c = k / taps;
    let u = (k % taps) / p.kernel_w;
    let v = k % p.kernel_w;
    let plane = p.out_height * p.out_width;
    let first = q * 4u;
    var at = Position(first / plane, 0u, 0u);
    at.oh = (first - at.n * plane) / p.out_width;
    at.ow = first - at.n * plane - at.oh * p.out_width;
    var low: vec4<f32>;
    var high: vec4<f32>;
    for (var j = 0u; j < 4u; j++) {
        low[j] = tap(&at, c, u, v);
    }
    for (var j = 0u; j < 4u; j++) {
        high[j] = tap(&at, c, u, v);
    }
    dst4[k * (cols / 4u) + q] = low;
    if first + 4u < cols {
        dst4[k * (cols / 4u) + q + 1u] = high;
    }
}

// An output position (sample, row, column).
struct Position {
    n: u32,
    oh: u32,
    ow: u32,
}

// x at tap (c, u, v) of output position `at` (0 in the padding), then `at` moves one column on.
fn tap(at: ptr<function, Position>, c: u32, u: u32, v: u32) -> f32 {
    let h = i32((*at).oh * p.stride_h + u * p.dilation_h) - i32(p.pad_h);
    let w = i32((*at).ow * p.stride_w + v * p.dilation_w) - i32(p.pad_w);
    let inside = h >= 0 && h < i32(p.height) && w >= 0 && w < i32(p.width);
    let i = (((*at).n * p.channels + c) * p.height + u32(max(h, 0))) * p.width + u32(max(w, 0));
    (*at).ow += 1u;
    if (*at).ow == p.out_width {
        (*at).ow = 0u;
        (*at).oh += 1u;
        if (*at).oh == p.out_height {
            (*at).oh = 0u;
            (*at).n += 1u;
        }
    }
    return select(0.0, src[min(i, arrayLength(&src) - 1u)], inside);
}

// The output coordinate whose window reads input coordinate x at tap t along one axis (oh·stride
// = x + pad − t·dilation, when that is a whole step inside the output), or −1.
fn window_of(x: u32, t: u32, pad: u32, dilation: u32, stride: u32, size: u32) -> i32 {
    let step = i32(x + pad) - i32(t * dilation);
    var at = u32(step);
    if !UNIT_STRIDE {
        at = u32(step) / stride;
        if u32(step) % stride != 0u {
            return -1;
        }
    }
    return select(i32(at), -1, step < 0 || at >= size);
}

// The output position whose window reads input (n, ·, h, w) at tap (u, v), or −1.
fn tap_position(n: u32, h: u32, w: u32, u: u32, v: u32) -> i32 {
    let oh = window_of(h, u, p.pad_h, p.dilation_h, p.stride_h, p.out_height);
    let ow = window_of(w, v, p.pad_w, p.dilation_w, p.stride_w, p.out_width);
    if oh < 0 || ow < 0 {
        return -1;
    }
    return i32((n * p.out_height + u32(oh)) * p.out_width + u32(ow));
}

// Σ of col over the taps that read input (n, c, h, w), in tap order. col is [K, P], or with
// POSITION_MAJOR [P, K] with each tap's channels side by side (K ordered (u, v, c)).
fn taps_sum(n: u32, c: u32, h: u32, w: u32) -> f32 {
    let k = p.channels * p.kernel_h * p.kernel_w;
    var sum = 0.0;
    for (var u = 0u; u < p.kernel_h; u++) {
        for (var v = 0u; v < p.kernel_w; v++) {
            let at = tap_position(n, h, w, u, v);
            if at >= 0 {
                let tap = u * p.kernel_w + v;
                let position_major = u32(at) * k + tap * p.channels + c;
                let taps_major = (c * p.kernel_h * p.kernel_w + tap) * positions() + u32(at);
                sum += src[select(taps_major, position_major, POSITION_MAJOR)];
            }
        }
    }
    return sum;
}

// src = col [C·KH·KW, P] (or [P, KH·KW·C]), dst = dx [N, C, H, W]: one invocation per input
// element. (Four per invocation with one vec4 store measured no faster: the nine loads per
// input dominate.)
@compute @workgroup_size(256)
fn col2im(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid);
    let image = p.height * p.width;
    if i >= p.batch * p.channels * image {
        return;
    }
    var sum = taps_sum(i / (p.channels * image), (i / image) % p.channels, (i % image) / p.width, i % p.width);
    if GATE {
        sum = select(0.0, sum, gate[i] > 0.0);
    }
    dst[i] = sum;
}

// col2im from a position-major col [P, KH·KW·C] with C a multiple of 4: one invocation per four
// channels of one input position, whose taps lie side by side: one vec4 load per tap instead of
// four scalar ones. Neighbouring invocations take neighbouring columns w.
@compute @workgroup_size(256)
fn col2im_channels4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid);
    let image = p.height * p.width;
    let quads = p.channels / 4u;
    if i >= p.batch * quads * image {
        return;
    }
    let n = i / (quads * image);
    let c = (i / image) % quads * 4u;
    let h = (i % image) / p.width;
    let w = i % p.width;
    let k = p.channels * p.kernel_h * p.kernel_w;
    var sum = vec4(0.0);
    for (var u = 0u; u < p.kernel_h; u++) {
        for (var v = 0u; v < p.kernel_w; v++) {
            let at = tap_position(n, h, w, u, v);
            if at >= 0 {
                sum += src4[(u32(at) * k + (u * p.kernel_w + v) * p.channels + c) / 4u];
            }
        }
    }
    let first = ((n * p.channels + c) * p.height + h) * p.width + w;
    for (var j = 0u; j < 4u; j++) {
        let at = first + j * image;
        var value = sum[j];
        if GATE {
            value = select(0.0, value, gate[at] > 0.0);
        }
        dst[at] = value;
    }
}

// W [O, C·KH·KW] → [O, KH·KW·C], the tap order of a position-major col (each tap's channels
// side by side), for its product dy'ᵀ·W.
@compute @workgroup_size(256)
fn weight_channels_inner(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid);
    let taps = p.kernel_h * p.kernel_w;
    let k = p.channels * taps;
    if i >= p.out_channels * k {
        return;
    }
    let r = i % k;
    dst[i] = src[i - r + (r % p.channels) * taps + r / p.channels];
}

// src = y' [O, P], dst = y [N, O, OH, OW]: one invocation per element of y, then the bias and
// the ReLU.
@compute @workgroup_size(256)
fn to_nchw(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid);
    let plane = p.out_height * p.out_width;
    if i >= p.batch * p.out_channels * plane {
        return;
    }
    let n = i / (p.out_channels * plane);
    let o = (i / plane) % p.out_channels;
    let s = i % plane;
    var v = src[o * positions() + n * plane + s];
    if BIAS {
        v += bias[o];
    }
    if RELU {
        v = max(v, 0.0);
    }
    dst[i] = v;
}

// to_nchw for OH·OW a multiple of 4: four positions of one plane per invocation; the grid's y
// is the sample.
@compute @workgroup_size(64)
fn to_nchw4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = wg.y;
    let i = wg.x * 64u + lid; // o · OH·OW/4 + s/4 within the sample
    let quads = p.out_height * p.out_width / 4u;
    if i >= p.out_channels * quads {
        return;
    }
    let o = i / quads;
    let s = i - o * quads;
    var v = src4[(o * positions()) / 4u + n * quads + s];
    if BIAS {
        v += vec4(bias[o]);
    }
    if RELU {
        v = max(v, vec4(0.0));
    }
    dst4[n * p.out_channels * quads + i] = v;
}

// from_nchw for OH·OW a multiple of 4: the grid's y is the sample.
@compute @workgroup_size(64)
fn from_nchw4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n = wg.y;
    let i = wg.x * 64u + lid;
    let quads = p.out_height * p.out_width / 4u;
    if i >= p.out_channels * quads {
        return;
    }
    let o = i / quads;
    let s = i - o * quads;
    dst4[(o * positions()) / 4u + n * quads + s] = src4[n * p.out_channels * quads + i];
}

// src = dy [N, O, OH, OW], dst = dy' [O, P]: one invocation per element of dy'.
@compute @workgroup_size(256)
fn from_nchw(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid);
    let cols = positions();
    if i >= p.out_channels * cols {
        return;
    }
    let o = i / cols;
    let col = i % cols;
    let plane = p.out_height * p.out_width;
    let n = col / plane;
    dst[i] = src[(n * p.out_channels + o) * plane + col % plane];
}

const SUM_LANES: u32 = 64u;

var<workgroup> partial: array<f32, 64>;

// src = dy' [O, P], dst = db [O]: a workgroup per row; each lane sums every 64th value, then
// lane 0 adds the 64 partial sums in lane order.
@compute @workgroup_size(64)
fn row_sum(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let row = wg.x + wg.y * groups.x;
    if row >= p.out_channels {
        return;
    }
    let cols = positions();
    var sum = 0.0;
    for (var j = lane; j < cols; j += SUM_LANES) {
        sum += src[row * cols + j];
    }
    partial[lane] = sum;
    workgroupBarrier();
    if lane == 0u {
        var total = 0.0;
        for (var l = 0u; l < SUM_LANES; l++) {
            total += partial[l];
        }
        dst[row] = total;
    }
}
