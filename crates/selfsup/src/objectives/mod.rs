//! Losses as pure functions of tensors, one file each.
pub mod barlow_twins;
pub mod nt_xent;

pub use barlow_twins::barlow_twins;
pub use nt_xent::nt_xent;

#[cfg(test)]
mod gradient_checks {
    //! Autograd gradients of the objectives against central finite differences, in double
    //! precision: catches a non-differentiable step (masking, clamping) that breaks the gradient.
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn check(f: impl Fn(&Tensor, &Tensor) -> Tensor) {
        tch::manual_seed(3);
        let a = Tensor::randn([5, 4], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let b = Tensor::randn([5, 4], (Kind::Double, Device::Cpu));
        f(&a, &b).backward();
        let analytic = Vec::<f64>::try_from(a.grad().flatten(0, -1)).unwrap();
        let base = a.detach();
        let h = 1e-6;
        for (i, g) in analytic.iter().enumerate() {
            let e = Tensor::zeros([20], (Kind::Double, Device::Cpu))
                .index_fill(0, &Tensor::from_slice(&[i as i64]), h)
                .view([5, 4]);
            let up = f64::try_from(f(&(&base + &e), &b)).unwrap();
            let down = f64::try_from(f(&(&base - &e), &b)).unwrap();
            let numeric = (up - down) / (2.0 * h);
            assert!(
                (numeric - g).abs() < 1e-6 * (1.0 + g.abs()),
                "component {i}: autograd {g}, finite difference {numeric}"
            );
        }
    }

    #[test]
    fn nt_xent_gradient_matches_finite_differences() {
        check(|a, b| nt_xent(a, b, 0.5));
    }

    #[test]
    fn barlow_twins_gradient_matches_finite_differences() {
        check(|a, b| barlow_twins(a, b, 5e-3));
    }
}
