//! SimSiam's loss (Chen & He 2021, eq. 1): the negative cosine similarity of the predictor output
//! p and the (stop-gradient) projection z,
//!   D(p, z) = −(1/N) Σ_i p_i·z_i / (‖p_i‖ ‖z_i‖).
//! The symmetrised loss ½D(p1, z2) + ½D(p2, z1) and the stop-gradient on z are the method's
//! business; z is not detached here.
use super::info_nce::l2_normalize_rows;
use tch::{Kind, Tensor};

pub fn negative_cosine(p: &Tensor, z: &Tensor) -> Tensor {
    let kind = p.kind();
    -(l2_normalize_rows(p) * l2_normalize_rows(z))
        .sum_dim_intlist([1i64].as_slice(), false, kind)
        .mean(None::<Kind>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::scalar;
    use tch::Device;

    /// Hand-worked: cosines 24/25, 0 and −1 (rows (3,4)·(4,3), (1,0)·(0,5), (1,1)·(−2,−2)),
    /// so D = −(0.96 + 0 − 1)/3 = 0.04/3.
    #[test]
    fn hand_worked_case() {
        for kind in [Kind::Float, Kind::Double] {
            let p = Tensor::from_slice(&[3.0, 4.0, 1.0, 0.0, 1.0, 1.0])
                .view([3, 2])
                .to_kind(kind);
            let z = Tensor::from_slice(&[4.0, 3.0, 0.0, 5.0, -2.0, -2.0])
                .view([3, 2])
                .to_kind(kind);
            let got = scalar(&negative_cosine(&p, &z));
            assert!((got - 0.04 / 3.0).abs() < 1e-6, "{got}");
        }
    }

    /// Bounds: −1 for parallel rows (any positive scale), +1 for opposite rows.
    #[test]
    fn extremes() {
        let p = Tensor::randn([4, 6], (Kind::Double, Device::Cpu));
        assert!((scalar(&negative_cosine(&p, &(&p * 0.3))) + 1.0).abs() < 1e-12);
        assert!((scalar(&negative_cosine(&p, &(-&p))) - 1.0).abs() < 1e-12);
        assert_eq!(negative_cosine(&p, &p).kind(), Kind::Double);
    }
}
