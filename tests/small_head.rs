//! The fused small classifier head against the f64 reference (Linear, cross-entropy, their
//! gradients) over odd shapes and edge values.

mod common;
use common::{assert_close, gpu, random};
use wgml::gpu::{DType, Tensor};
use wgml::kernels::cross_entropy::{CrossEntropyOptions, Reduction};
use wgml::kernels::policy;
use wgml::kernels::small_head::{fits, supported, SmallHeadGrads, SmallHeadKernel};
use wgml::reference::{self, Targets};

struct Case {
    rows: usize,
    features: usize,
    classes: usize,
    smoothing: f32,
    /// Every this-many-th target is ignored (0: none).
    ignore_every: usize,
    /// Inputs in ±scale.
    scale: f32,
    gated: bool,
    /// Whether dx is asked for (not for a first layer).
    dx: bool,
}

/// The MNIST tutorial's head: 64 rows × 128 features → 10 classes after a ReLU.
const TUTORIAL: Case = Case {
    rows: 64,
    features: 128,
    classes: 10,
    smoothing: 0.0,
    ignore_every: 0,
    scale: 1.0,
    gated: true,
    dx: true,
};

fn check(case: &Case, seed: u64) {
    let g = gpu();
    let Case {
        rows,
        features,
        classes,
        ..
    } = *case;
    let xs = random(rows * features, -case.scale, case.scale, seed);
    let ws = random(classes * features, -1.0, 1.0, seed + 1);
    let bs = random(classes, -1.0, 1.0, seed + 2);
    let targets: Vec<i32> = (0..rows)
        .map(|r| {
            if case.ignore_every > 0 && r % case.ignore_every == 0 {
                -100
            } else {
                ((r * 7 + 3) % classes) as i32
            }
        })
        .collect();
    let tensor = |v: &[f32], shape: &[usize]| Tensor::from_slice(g, v, shape).unwrap();
    let (x, w, b) = (
        tensor(&xs, &[rows, features]),
        tensor(&ws, &[classes, features]),
        tensor(&bs, &[classes]),
    );
    let y = Tensor::from_slice(g, &targets, &[rows]).unwrap();
    let zeros = |shape: &[usize]| Tensor::zeros(g, shape, DType::F32).unwrap();
    let (dx, dw, db) = (
        zeros(&[rows, features]),
        zeros(&[classes, features]),
        zeros(&[classes]),
    );
    let (loss, cursor) = (zeros(&[1]), Tensor::zeros(g, &[1], DType::U32).unwrap());
    let grads = SmallHeadGrads {
        dx: case.dx.then_some(&dx),
        gate: case.gated,
        dweight: &dw,
        dbias: &db,
    };
    let opts = CrossEntropyOptions {
        label_smoothing: case.smoothing,
        ..Default::default()
    };
    let head = SmallHeadKernel::new(g, (&x, &w, &b), &y, &opts, grads, &loss, &cursor).unwrap();
    // The variant this adapter takes for these sizes is the one tested.
    let lanes = policy::small_head_lanes(g.profile(), rows, features, classes);
    assert_eq!(head.dispatch.label() == "small_head_lanes", lanes);
    head.run(g).unwrap();

    let logits = reference::matmul(
        &xs,
        &ws,
        rows,
        classes,
        features,
        false,
        true,
        Some(&bs),
        false,
    );
    let (want_loss, dz) = reference::cross_entropy(
        &logits,
        Targets::Classes(&targets),
        classes,
        1,
        None,
        -100,
        Reduction::Mean,
        case.smoothing,
    );
    let mut want_dx = if case.dx {
        reference::matmul(&dz, &ws, rows, features, classes, false, false, None, false)
    } else {
        vec![0.0; rows * features]
    };
    if case.gated {
        for (d, &x) in want_dx.iter_mut().zip(&xs) {
            if x <= 0.0 {
                *d = 0.0;
            }
        }
    }
    let want_dw = reference::matmul(&dz, &xs, classes, features, rows, true, false, None, false);
    let want_db = reference::column_sum(&dz, rows, classes);
    let what = format!(
        "{rows} rows × {features} → {classes}, ε {}, ignore every {}, scale {}, gated {}, dx {} \
         ({})",
        case.smoothing,
        case.ignore_every,
        case.scale,
        case.gated,
        case.dx,
        head.dispatch.label()
    );
    let read = |t: &Tensor| t.to_vec::<f32>(g).unwrap();
    let got_loss = read(&loss)[0];
    if want_loss[0].is_nan() {
        assert!(got_loss.is_nan(), "{what}: loss {got_loss}, expected NaN");
    } else {
        assert_close(
            &[got_loss],
            &want_loss,
            1e-5,
            1e-5,
            &format!("{what}: loss"),
        );
    }
    // Sums of up to 129 products of inputs within ±scale.
    let tol = 1e-5 * case.scale.max(1.0);
    assert_close(&read(&dx), &want_dx, tol, 1e-4, &format!("{what}: dx"));
    assert_close(&read(&dw), &want_dw, tol, 1e-4, &format!("{what}: dw"));
    assert_close(&read(&db), &want_db, 1e-6, 1e-4, &format!("{what}: db"));
}

#[test]
fn small_head_matches_the_reference_over_odd_shapes() {
    if !supported(gpu()) {
        eprintln!("this adapter binds too few storage buffers for the small head");
        return;
    }
    let base = TUTORIAL;
    let cases = [
        Case { ..base },
        Case {
            rows: 1,
            features: 1,
            classes: 1,
            gated: false,
            ..base
        },
        Case {
            rows: 7,
            features: 5,
            classes: 7,
            smoothing: 0.1,
            ..base
        },
        Case {
            rows: 63,
            features: 129,
            classes: 16,
            ignore_every: 4,
            ..base
        },
        Case {
            rows: 65,
            features: 63,
            classes: 10,
            smoothing: 0.25,
            ignore_every: 3,
            gated: false,
            ..base
        },
        // More rows than a GPU's workgroup has invocations, logits near the held maximum.
        Case {
            rows: 300,
            features: 8,
            classes: 12,
            ignore_every: 5,
            ..base
        },
        // Logits in the thousands: the max is subtracted before exp.
        Case {
            rows: 33,
            features: 17,
            classes: 10,
            scale: 300.0,
            ..base
        },
        // Every target ignored: the mean is NaN and every gradient zero, as docs/semantics.md.
        Case {
            rows: 9,
            features: 4,
            classes: 3,
            ignore_every: 1,
            ..base
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        check(case, 40 + 3 * i as u64);
    }
}

/// Shapes the one-subgroup variant takes on CPU adapters (features a multiple of 8, up to 64
/// rows and 16 classes), checked wherever they run: rows short of a lane's eight, a class per
/// vec4 lane of its registers, every class quad, no dx, every target ignored.
#[test]
fn small_head_matches_the_reference_where_one_subgroup_holds_it() {
    if !supported(gpu()) {
        return;
    }
    let base = TUTORIAL;
    let cases = [
        Case {
            rows: 1,
            features: 8,
            classes: 1,
            gated: false,
            ..base
        },
        Case {
            rows: 7,
            features: 16,
            classes: 7,
            smoothing: 0.1,
            ..base
        },
        Case {
            rows: 63,
            features: 24,
            classes: 16,
            ignore_every: 4,
            ..base
        },
        Case {
            rows: 57,
            features: 136,
            classes: 13,
            smoothing: 0.25,
            ignore_every: 3,
            dx: false,
            gated: false,
            ..base
        },
        Case {
            rows: 33,
            features: 64,
            classes: 5,
            scale: 300.0,
            ..base
        },
        Case {
            rows: 9,
            features: 8,
            classes: 3,
            ignore_every: 1,
            ..base
        },
        // Past one subgroup's rows: the generic layout.
        Case { rows: 65, ..base },
    ];
    for (i, case) in cases.iter().enumerate() {
        check(case, 90 + 5 * i as u64);
    }
}

#[test]
fn out_of_range_targets_are_reported_and_large_heads_refused() {
    let g = gpu();
    if !supported(g) {
        return;
    }
    let zeros = |shape: &[usize]| Tensor::zeros(g, shape, DType::F32).unwrap();
    let cursor = Tensor::zeros(g, &[1], DType::U32).unwrap();
    let y = Tensor::from_slice(g, &[0i32, 12, 1, 2], &[4]).unwrap();
    let opts = CrossEntropyOptions::default();
    // 3 features: the generic layout; 8: one subgroup's, where the adapter has it.
    for features in [3, 8] {
        let (x, w, b) = (zeros(&[4, features]), zeros(&[5, features]), zeros(&[5]));
        let (dw, db, loss) = (zeros(&[5, features]), zeros(&[5]), zeros(&[1]));
        let grads = SmallHeadGrads {
            dx: None,
            gate: false,
            dweight: &dw,
            dbias: &db,
        };
        let head = SmallHeadKernel::new(g, (&x, &w, &b), &y, &opts, grads, &loss, &cursor).unwrap();
        let err = head.run(g).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Target 12 is out of bounds.",
            "{features} features"
        );
    }
    let (x, w, b) = (zeros(&[4, 3]), zeros(&[5, 3]), zeros(&[5]));
    let (dw, db, loss) = (zeros(&[5, 3]), zeros(&[5]), zeros(&[1]));
    let grads = SmallHeadGrads {
        dx: None,
        gate: false,
        dweight: &dw,
        dbias: &db,
    };
    assert!(
        !fits(g.profile(), 4000, 3, 2),
        "8000 logits fit no workgroup"
    );
    let weighted = CrossEntropyOptions {
        weight: Some(&b),
        ..Default::default()
    };
    let Err(err) = SmallHeadKernel::new(g, (&x, &w, &b), &y, &weighted, grads, &loss, &cursor)
    else {
        panic!("class weights were taken");
    };
    assert!(err.to_string().contains("without class weights"), "{err}");
}
