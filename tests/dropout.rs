//! Dropout: masks from (seed, step, element) exactly as the host computes them, PyTorch's
//! scaling and edge probabilities, and the same mask for the backward.

mod common;
use common::{gpu, random};
use wgml::gpu::{DType, Program, Tensor};
use wgml::kernels::counter::{advance_dispatch, Advance};
use wgml::kernels::dropout::{dropout_dispatch, philox, Dropout};

fn run(x: &[f32], step: &Tensor, drop: &Dropout) -> Vec<f32> {
    let g = gpu();
    let xt = Tensor::from_slice(g, x, &[x.len()]).unwrap();
    let y = Tensor::zeros(g, &[x.len()], DType::F32).unwrap();
    dropout_dispatch(g, &xt, &y, step, drop)
        .unwrap()
        .run(g)
        .unwrap();
    y.to_vec(g).unwrap()
}

#[test]
fn philox_matches_its_published_known_answers() {
    // Random123's kat_vectors for philox4x32_10.
    assert_eq!(
        philox([0; 4], [0; 2]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        philox([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    assert_eq!(
        philox(
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0]
        ),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

#[test]
fn masks_are_the_hosts_scaled_and_drawn_per_step() {
    // Odd (one element per invocation), and a multiple of four (four per invocation); neither a
    // multiple of the workgroup size.
    for n in [70_001, 70_004] {
        masks_of(n);
    }
}

fn masks_of(n: usize) {
    let g = gpu();
    let x = random(n, 0.5, 2.0, 1);
    let step = Tensor::zeros(g, &[1], DType::U32).unwrap();
    let drop = Dropout {
        p: 0.3,
        seed: 0x1234_5678_9abc,
    };
    let mut masks = Vec::new();
    for t in 0..3u32 {
        let y = run(&x, &step, &drop);
        for (i, (&xi, &yi)) in x.iter().zip(&y).enumerate() {
            let expected = if drop.keeps(i as u32, t) {
                xi * (1.0 / 0.7)
            } else {
                0.0
            };
            assert_eq!(yi, expected, "step {t}, element {i}");
        }
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        assert!((kept - 0.7).abs() < 0.01, "step {t}: kept {kept}");
        masks.push(y.iter().map(|&v| v != 0.0).collect::<Vec<_>>());
        Program::from(advance_dispatch(g, Advance::of(&step)).unwrap())
            .run(g)
            .unwrap();
    }
    assert_ne!(masks[0], masks[1], "each step draws a new mask");
    // The same step again (a resumed run): the same mask.
    step.write(g, &[1u32]).unwrap();
    let again: Vec<bool> = run(&x, &step, &drop).iter().map(|&v| v != 0.0).collect();
    assert_eq!(again, masks[1]);
    // Another seed, another mask.
    let other = Dropout { seed: 1, ..drop };
    let other: Vec<bool> = run(&x, &step, &other).iter().map(|&v| v != 0.0).collect();
    assert_ne!(other, masks[1]);
}

#[test]
fn edge_probabilities_and_values() {
    let g = gpu();
    let step = Tensor::zeros(g, &[1], DType::U32).unwrap();
    let x = [1.0f32, -2.0, f32::INFINITY, 0.0, 3.5];
    assert_eq!(
        run(&x, &step, &Dropout { p: 0.0, seed: 3 }),
        x,
        "p = 0 keeps all"
    );
    assert_eq!(
        run(&x, &step, &Dropout { p: 1.0, seed: 3 }),
        [0.0; 5],
        "p = 1 drops all"
    );
    let bad = Tensor::zeros(g, &[5], DType::F32).unwrap();
    let err = dropout_dispatch(g, &bad, &bad, &step, &Dropout { p: 1.5, seed: 0 });
    assert_eq!(
        err.err().unwrap().to_string(),
        "dropout probability has to be between 0 and 1, but got 1.5"
    );
}
