//! The run folder's chart: axes labelled at round numbers, as plotters places them.

use wgml::plot::{chart, epoch_ticks, value_ticks};

/// Whether the ticks are evenly spaced by 1, 2 or 5 times a power of ten and sit on
/// multiples of that step.
fn round(ticks: &[f64]) -> bool {
    let Some(step) = ticks.windows(2).map(|w| w[1] - w[0]).next() else {
        return true;
    };
    let power = 10f64.powf(step.log10().floor());
    let mantissa = step / power;
    let nice = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 1e-9);
    let even = ticks
        .windows(2)
        .all(|w| ((w[1] - w[0]) - step).abs() < step * 1e-9);
    let on_grid = ticks
        .iter()
        .all(|t| ((t / step) - (t / step).round()).abs() < 1e-6);
    nice && even && on_grid
}

#[test]
fn chart_axes_are_labelled_at_round_numbers() {
    let series: [(&[f64], bool); 6] = [
        (&[0.8216, 0.3341, 0.2668, 0.2203], true),
        (&[88.3, 90.15, 90.8, 91.7, 92.4, 92.95], false),
        (&[0.41531881713867186], true),
        (&[88.3], false),
        (&[2.302, 2.301, 2.3015], true),
        (&[97.123, 97.124], false),
    ];
    for (values, from_zero) in series {
        let ticks = value_ticks(values, from_zero);
        assert!(ticks.len() >= 3, "{values:?}: ticks {ticks:?}");
        assert!(round(&ticks), "{values:?}: ticks {ticks:?}");
    }
    for epochs in [1, 2, 3, 6, 10, 37, 100] {
        let ticks = epoch_ticks(epochs);
        assert!(!ticks.is_empty(), "{epochs} epochs");
        assert!(
            ticks.iter().all(|&t| t >= 1 && t as usize <= epochs),
            "{ticks:?}"
        );
        assert!(round(
            &ticks.iter().map(|&t| f64::from(t)).collect::<Vec<_>>()
        ));
    }
    let picture = chart(&[1.0, 0.5], &[0.9, 0.6], &[0.8, 0.9]).unwrap();
    assert_eq!((picture.width(), picture.height()), (860, 400));
}
