//! BYOL's regression loss (Grill et al. 2020, eq. 2): the normalised prediction p̂ = p/‖p‖ should
//! match the normalised target projection ẑ = z/‖z‖:
//!   L = (1/N) Σ_i ‖p̂_i − ẑ_i‖² = (1/N) Σ_i (2 − 2·cos(p_i, z_i)).
//! Computed in the 2 − 2·cos form, as in the paper's code. The target is not detached here.
use super::info_nce::l2_normalize_rows;
use tch::{Kind, Tensor};

pub fn normalized_mse(p: &Tensor, z: &Tensor) -> Tensor {
    let kind = p.kind();
    let cos = (l2_normalize_rows(p) * l2_normalize_rows(z)).sum_dim_intlist(
        [1i64].as_slice(),
        false,
        kind,
    );
    (cos * -2.0 + 2.0).mean(None::<Kind>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::{scalar, tensor};
    use tch::Device;

    /// The identity ‖p̂ − ẑ‖² = 2 − 2cos: the squared distance of the normalised rows, computed
    /// element by element in f64, equals the loss.
    #[test]
    fn equals_mean_squared_distance_of_normalised_rows() {
        let p = vec![
            vec![1.0, 2.0, -0.5, 0.3],
            vec![0.3, -1.0, 0.8, 2.0],
            vec![-2.0, 0.1, 0.4, -0.7],
        ];
        let z = vec![
            vec![0.9, 2.2, -0.1, 1.0],
            vec![0.0, -1.5, 1.0, -0.2],
            vec![-1.0, -0.3, 0.9, 0.4],
        ];
        let unit = |v: &Vec<f64>| {
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter().map(|x| x / n).collect::<Vec<_>>()
        };
        let want = p
            .iter()
            .zip(&z)
            .map(|(a, b)| {
                unit(a)
                    .iter()
                    .zip(unit(b))
                    .map(|(x, y)| (x - y).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / 3.0;
        for kind in [Kind::Float, Kind::Double] {
            let got = scalar(&normalized_mse(&tensor(&p, kind), &tensor(&z, kind)));
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    /// Hand-worked: row 1, p = (3, 4), z = (4, 3): cos = 24/25, term = 2 − 48/25 = 2/25.
    /// Row 2, p = (1, 0), z = (0, 5): cos = 0, term = 2. Row 3, p = (1, 1), z = (−2, −2):
    /// cos = −1, term = 4. Mean = (0.08 + 2 + 4)/3 = 6.08/3.
    #[test]
    fn hand_worked_case() {
        let p = tensor(
            &[vec![3.0, 4.0], vec![1.0, 0.0], vec![1.0, 1.0]],
            Kind::Float,
        );
        let z = tensor(
            &[vec![4.0, 3.0], vec![0.0, 5.0], vec![-2.0, -2.0]],
            Kind::Float,
        );
        let got = scalar(&normalized_mse(&p, &z));
        assert!((got - 6.08 / 3.0).abs() < 1e-6, "{got}");
    }

    #[test]
    fn scale_invariant_and_zero_for_parallel_rows() {
        let p = Tensor::randn([4, 6], (Kind::Double, Device::Cpu));
        assert!(scalar(&normalized_mse(&p, &(&p * 7.0))).abs() < 1e-12);
        assert_eq!(normalized_mse(&p, &p).kind(), Kind::Double);
    }
}
