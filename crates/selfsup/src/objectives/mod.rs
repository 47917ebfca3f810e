//! Losses as pure functions of tensors, one file each.
pub mod barlow_twins;
pub mod byol;
pub mod clip;
pub mod dino;
pub mod dsla;
pub mod graph;
pub mod hierarchical;
pub mod homologous;
pub mod info_nce;
pub mod masked;
pub mod min_norm;
pub mod nt_xent;
pub mod obow;
pub mod ps_kd;
pub mod simsiam;
pub mod sla;
pub mod supcon;
pub mod swav;
pub mod vicreg;

#[cfg(test)]
pub(crate) mod test_util;

pub use barlow_twins::barlow_twins;
pub use byol::normalized_mse;
pub use clip::clip_loss;
pub use dino::{dino_loss, teacher_temperature, updated_center};
pub use info_nce::{info_nce_in_batch, moco_queue_loss};
pub use nt_xent::nt_xent;
pub use simsiam::negative_cosine;
pub use supcon::supcon;
pub use swav::{sinkhorn, swav_loss};
pub use vicreg::{vicreg, vicreg_terms, VicregTerms};

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
    fn graph_decorrelation_gradient_matches_finite_differences() {
        check(|a, b| graph::decorrelation(a, b, 0.3));
        check(|a, b| dsla_like_margin(a, b));
    }

    /// D-SLA's margin on `a` as originals and `b` as one perturbed copy each.
    fn dsla_like_margin(a: &Tensor, b: &Tensor) -> Tensor {
        dsla::margin_to_other_graphs(a, &b.unsqueeze(1), 1.0)
    }

    #[test]
    fn nt_xent_gradient_matches_finite_differences() {
        check(|a, b| nt_xent(a, b, 0.5));
    }

    #[test]
    fn barlow_twins_gradient_matches_finite_differences() {
        check(|a, b| barlow_twins(a, b, 5e-3));
    }

    #[test]
    fn byol_gradient_matches_finite_differences() {
        check(normalized_mse);
        check(|a, b| normalized_mse(b, a));
    }

    #[test]
    fn simsiam_gradient_matches_finite_differences() {
        check(negative_cosine);
        check(|a, b| negative_cosine(b, a));
    }

    #[test]
    fn clip_gradient_matches_finite_differences() {
        let scale = Tensor::from(7.0f64);
        check(|a, b| clip_loss(a, b, &scale));
        check(|a, b| clip_loss(b, a, &scale));
    }

    #[test]
    fn info_nce_gradient_matches_finite_differences() {
        check(|a, b| info_nce_in_batch(a, b, 0.2));
        check(|a, b| info_nce_in_batch(b, a, 0.2));
    }

    #[test]
    fn moco_queue_gradient_matches_finite_differences() {
        tch::manual_seed(8);
        let queue = Tensor::randn([7, 4], (Kind::Double, Device::Cpu));
        let queue = &queue / queue.norm_scalaropt_dim(2, [1i64].as_slice(), true);
        check(|a, b| moco_queue_loss(a, b, &queue, 0.2));
        check(|a, b| moco_queue_loss(b, a, &queue, 0.2));
    }

    #[test]
    fn vicreg_gradient_matches_finite_differences() {
        check(|a, b| vicreg(a, b, 25.0, 25.0, 1.0));
        // Shrunk inputs: the variance hinge is active in every dimension.
        check(|a, b| vicreg(&(a * 0.3), &(b * 0.3), 25.0, 25.0, 1.0));
    }

    #[test]
    fn dino_gradient_matches_finite_differences() {
        // `a` is a global crop and a local crop of the student; the teacher does not depend on it.
        let center = Tensor::from_slice(&[0.1, -0.2, 0.0, 0.3]).view([1, 4]);
        check(|a, b| {
            let student = [a.shallow_clone(), b * 0.5, a * 0.7 - b, a.tanh()];
            let teacher = [b.shallow_clone(), b.flip([0i64].as_slice())];
            dino_loss(&student, &teacher, &center, 0.1, 0.04)
        });
    }

    #[test]
    fn swav_gradient_matches_finite_differences() {
        // `a` only enters through predicted crops: the codes are detached by design.
        check(|a, b| {
            let scores = [
                b.shallow_clone(),
                b.flip([1i64].as_slice()),
                a.shallow_clone(),
                a * 0.5 + b,
            ];
            swav_loss(&scores, 2, 0.1, 0.05, 3)
        });
    }

    #[test]
    fn supcon_gradient_matches_finite_differences() {
        let labels = Tensor::from_slice(&[0i64, 1, 0, 2, 1]);
        check(|a, b| supcon(&[a.shallow_clone(), b.shallow_clone()], &labels, 0.5, 0.7));
        check(|a, b| {
            supcon(
                &[b.shallow_clone(), a.shallow_clone(), a * 0.5 + b],
                &labels,
                0.1,
                0.07,
            )
        });
    }
}
