// Batches from a GPU-resident dataset. A training step's gather, its first dispatch, also
// advances the step's optimizer count (counter.wgsl, which the host appends).
//
// The dataset stays as packed u8 (four pixels per u32 word, little-endian): uploaded once, it is a
// quarter the size of f32. Each step gathers its rows through a per-epoch permutation.

struct Params {
    rows: u32,     // rows in this batch
    features: u32, // bytes per sample
    stride: u32,   // samples per full batch: batch b starts at b · stride in the permutation
    scale: f32,    // x = byte · scale + shift
    shift: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cursor: array<u32>;   // [batch index]
@group(0) @binding(2) var<storage, read> order: array<u32>;    // permutation of sample indices
@group(0) @binding(3) var<storage, read> pixels: array<u32>;   // packed u8, samples × features
@group(0) @binding(4) var<storage, read> labels: array<i32>;   // samples
@group(0) @binding(5) var<storage, read_write> x: array<f32>;  // rows × features, or features × rows
@group(0) @binding(6) var<storage, read_write> y: array<i32>;  // rows
// The same pixels and x, 16 bytes at a time (each entry point binds one view of each).
@group(0) @binding(8) var<storage, read> pixels4: array<vec4<u32>>;
@group(0) @binding(9) var<storage, read_write> x4: array<vec4<f32>>;

// gather writes x feature-major (features × rows): each feature contiguous across the batch.
override COLUMNS: bool = false;

// The sample in row r of the batch at the cursor. A cursor past the last batch (a program
// recorded too often) rereads the last sample instead of reading out of bounds; the host
// checks every value of `order`.
fn sample_of(r: u32) -> u32 {
    return order[min(cursor[0] * p.stride + r, arrayLength(&order) - 1u)];
}

// The sample of invocation i, one of `units` per row; the row's first also writes its label.
fn labelled_sample(i: u32, units: u32) -> u32 {
    let r = i / units;
    let sample = sample_of(r);
    if i % units == 0u {
        y[r] = labels[sample];
    }
    return sample;
}

// The invocation's index in the dispatch; the dispatch's first also advances the step's counter.
fn invocation(wg: vec3<u32>, groups: vec3<u32>, lid: u32) -> u32 {
    advance_counter_once(wg, lid);
    return (wg.x + wg.y * groups.x) * 256u + lid;
}

// x[r, j] (x[j, r] with COLUMNS) = pixels[order[b·stride + r], j] · scale + shift ;
// y[r] = labels[order[b·stride + r]], one invocation per byte.
@compute @workgroup_size(256)
fn gather(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wg, groups, lid);
    if i >= p.rows * p.features {
        return;
    }
    let r = i / p.features;
    let j = i % p.features;
    let sample = labelled_sample(i, p.features);
    let byte = sample * p.features + j;
    let v = (pixels[byte / 4u] >> ((byte % 4u) * 8u)) & 0xffu;
    x[select(i, j * p.rows + r, COLUMNS)] = f32(v) * p.scale + p.shift;
}

// gather for rows of a multiple of 4 bytes: every row starts on a word, so one invocation
// unpacks one word into one vec4 of x.
@compute @workgroup_size(256)
fn gather_words(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let units = p.features / 4u; // words per row
    let i = invocation(wg, groups, lid);
    if i >= p.rows * units {
        return;
    }
    let sample = labelled_sample(i, units);
    x4[i] = unpack(pixels[sample * units + i % units]);
}

// gather_words for rows of a multiple of 16 bytes, four words per invocation: CPU adapters pay
// per load and store instruction, whatever its width.
@compute @workgroup_size(256)
fn gather_quads(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let units = p.features / 16u; // 16-byte units per row
    let i = invocation(wg, groups, lid);
    if i >= p.rows * units {
        return;
    }
    let sample = labelled_sample(i, units);
    let words = pixels4[sample * units + i % units];
    x4[4u * i] = unpack(words.x);
    x4[4u * i + 1u] = unpack(words.y);
    x4[4u * i + 2u] = unpack(words.z);
    x4[4u * i + 3u] = unpack(words.w);
}

// gather, feature-major, for rows of a multiple of 16 bytes and batches of a multiple of 4 rows:
// one invocation reads 16 bytes of each of 4 samples (4 loads) and writes them as 16 vec4s,
// one per feature, each spanning the 4 rows.
@compute @workgroup_size(256)
fn gather_columns(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let units = p.features / 16u; // 16-byte units per row
    let quads = p.rows / 4u; // 4-row groups
    let i = invocation(wg, groups, lid);
    if i >= units * quads {
        return;
    }
    // Neighbouring invocations take neighbouring rows of one unit: their stores are adjacent.
    let u = i / quads;
    let r = (i % quads) * 4u;
    let s0 = sample_of(r);
    let s1 = sample_of(r + 1u);
    let s2 = sample_of(r + 2u);
    let s3 = sample_of(r + 3u);
    let w0 = pixels4[s0 * units + u];
    let w1 = pixels4[s1 * units + u];
    let w2 = pixels4[s2 * units + u];
    let w3 = pixels4[s3 * units + u];
    // Feature 16u + j is column j % 4 of word j / 4; x4 holds rows / 4 vec4s per feature.
    let out = u * 16u * quads + r / 4u;
    store_column_quad(out, quads, unpack(w0.x), unpack(w1.x), unpack(w2.x), unpack(w3.x));
    store_column_quad(out + 4u * quads, quads, unpack(w0.y), unpack(w1.y), unpack(w2.y), unpack(w3.y));
    store_column_quad(out + 8u * quads, quads, unpack(w0.z), unpack(w1.z), unpack(w2.z), unpack(w3.z));
    store_column_quad(out + 12u * quads, quads, unpack(w0.w), unpack(w1.w), unpack(w2.w), unpack(w3.w));
    if u == 0u {
        y[r] = labels[s0];
        y[r + 1u] = labels[s1];
        y[r + 2u] = labels[s2];
        y[r + 3u] = labels[s3];
    }
}

// Four features (the components) of four rows (the arguments), as one vec4 per feature at x4[at],
// x4[at + step], …
fn store_column_quad(at: u32, step: u32, r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>) {
    x4[at] = vec4(r0.x, r1.x, r2.x, r3.x);
    x4[at + step] = vec4(r0.y, r1.y, r2.y, r3.y);
    x4[at + 2u * step] = vec4(r0.z, r1.z, r2.z, r3.z);
    x4[at + 3u * step] = vec4(r0.w, r1.w, r2.w, r3.w);
}

// Four packed bytes, scaled and shifted.
fn unpack(word: u32) -> vec4<f32> {
    let bytes = (vec4(word) >> vec4(0u, 8u, 16u, 24u)) & vec4(0xffu);
    return vec4<f32>(bytes) * p.scale + p.shift;
}
