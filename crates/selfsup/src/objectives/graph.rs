//! Losses of the graph methods, as pure functions of tensors.
use tch::{Kind, Reduction, Tensor};

/// Scaled cosine error (GraphMAE, Hou et al. 2022, eq. 4): `mean_i (1 − cos(x̂_i, x_i))^α`, with
/// rows L2-normalised (ε = 1e-12, so an all-zero row has cosine 0 and costs 1).
///
/// Written as `(x̂_i · x_i/‖x_i‖) / max(‖x̂_i‖, ε)`, the same function as normalising both rows:
/// the target carries no gradient, so its normalised rows are a constant, and the reconstruction
/// is never divided out as a whole matrix (on GraphMAE's Cora step, 1,354 × 1,433 rows, forward
/// and backward take a third of the time). Sums in fp32 (or fp64) whatever the inputs' kind.
pub fn scaled_cosine_error(reconstruction: &Tensor, target: &Tensor, alpha: f64) -> Tensor {
    let kind = match reconstruction.kind() {
        Kind::Double => Kind::Double,
        _ => Kind::Float,
    };
    let x = reconstruction.to_kind(kind);
    let unit_target = l2_normalise(&target.detach().to_kind(kind));
    let norm = x
        .norm_scalaropt_dim(2.0, [-1i64].as_slice(), false)
        .clamp_min(1e-12);
    let cos = (&x * unit_target).sum_dim_intlist(-1, false, kind) / norm;
    let err: Tensor = 1.0 - cos;
    err.pow_tensor_scalar(alpha).mean(kind)
}

/// Rows divided by `max(‖row‖, 1e-12)` (PyTorch's `F.normalize`). The norm is libtorch's, whose
/// gradient at an all-zero row is 0 rather than the NaN a hand-written `sqrt(Σx²)` gives — such
/// rows occur (GraphMAE's decoder output of a masked node whose neighbours are all masked is
/// exactly its bias, zero at the start).
pub fn l2_normalise(x: &Tensor) -> Tensor {
    x / x
        .norm_scalaropt_dim(2.0, [-1i64].as_slice(), true)
        .clamp_min(1e-12)
}

/// DGI's objective (Veličković et al. 2019, eq. 1): binary cross-entropy of the discriminator's
/// logits, real nodes labelled 1 and corrupted nodes 0, averaged over all 2N scores.
pub fn dgi_bce(real_logits: &Tensor, fake_logits: &Tensor) -> Tensor {
    let logits = Tensor::cat(&[real_logits, fake_logits], 0);
    let labels = Tensor::cat(&[real_logits.ones_like(), fake_logits.zeros_like()], 0);
    logits.binary_cross_entropy_with_logits::<Tensor>(&labels, None, None, Reduction::Mean)
}

/// GRACE's loss (Zhu et al. 2020, eq. 1–2): for node i with projections u_i (view 1), v_i (view 2),
/// `ℓ(u_i, v_i) = −log e^{s(u_i,v_i)/τ} / (Σ_k e^{s(u_i,v_k)/τ} + Σ_{k≠i} e^{s(u_i,u_k)/τ})`,
/// `s` the cosine similarity; the loss is `mean_i ½[ℓ(u_i,v_i) + ℓ(v_i,u_i)]`.
pub fn grace_loss(u: &Tensor, v: &Tensor, tau: f64) -> Tensor {
    let (u, v) = (l2_normalise(u), l2_normalise(v));
    // s(u_i, v_k)/τ once; the other direction is its transpose.
    let uv = u.matmul(&v.transpose(0, 1)) / tau;
    let half = |a: &Tensor, inter: &Tensor| -> Tensor {
        let n = a.size()[0];
        let intra = a.matmul(&a.transpose(0, 1)) / tau; // s(a_i, a_k)/τ
                                                        // Leave s(a_i, a_i) out of the denominator with a -inf on the diagonal.
        let eye = Tensor::eye(n, (Kind::Bool, a.device()));
        let intra = intra.masked_fill(&eye, f64::NEG_INFINITY);
        let denom = Tensor::cat(&[inter, &intra], 1).logsumexp([1i64].as_slice(), false);
        (denom - inter.diagonal(0, 0, 1)).mean(a.kind())
    };
    (half(&u, &uv) + half(&v, &uv.transpose(0, 1))) * 0.5
}

/// BGRL's loss (Thakoor et al. 2022, eq. 4 symmetrised): `2 − mean cos(q1, y2) − mean cos(q2, y1)`
/// with the targets `y` carrying no gradient.
pub fn bgrl_loss(q1: &Tensor, y2: &Tensor, q2: &Tensor, y1: &Tensor) -> Tensor {
    let cos = |q: &Tensor, y: &Tensor| {
        (l2_normalise(q) * l2_normalise(&y.detach()))
            .sum_dim_intlist(-1, false, q.kind())
            .mean(q.kind())
    };
    2.0 - cos(q1, y2) - cos(q2, y1)
}

/// ParetoGNN's decorrelation task (Ju et al. 2023, after CCA-SSG, Zhang et al. 2021): with each
/// view's embeddings standardised per dimension (`z̃ = (z − mean) / std`, unbiased std) and
/// `C_k = z̃_kᵀ z̃_k / N`, the loss is `‖z̃_1 − z̃_2‖_F / N + λ (‖I − C_1‖_F + ‖I − C_2‖_F)` —
/// the authors' form, with norms, not CCA-SSG's squared norms.
pub fn decorrelation(z1: &Tensor, z2: &Tensor, lambda: f64) -> Tensor {
    let n = z1.size()[0] as f64;
    let standardise = |z: &Tensor| {
        let mean = z.mean_dim([0i64].as_slice(), true, z.kind());
        let std = z.std_dim([0i64].as_slice(), true, true);
        (z - mean) / std
    };
    let (a, b) = (standardise(z1), standardise(z2));
    let d = a.size()[1];
    let eye = Tensor::eye(d, (a.kind(), a.device()));
    let off = |z: &Tensor| {
        (&eye - z.transpose(0, 1).matmul(z) / n)
            .square()
            .sum(z.kind())
            .sqrt()
    };
    (&a - &b).square().sum(a.kind()).sqrt() / n + (off(&a) + off(&b)) * lambda
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f32], r: i64, c: i64) -> Tensor {
        Tensor::from_slice(v).reshape([r, c])
    }
    fn val(x: &Tensor) -> f64 {
        x.double_value(&[])
    }

    #[test]
    fn decorrelation_matches_a_direct_computation() {
        let z1 = [[1.0, 2.0], [3.0, -1.0], [0.0, 0.5], [2.0, 2.0]];
        let z2 = [[0.5, 1.0], [2.0, 0.0], [1.0, 1.0], [-1.0, 3.0]];
        let standardise = |z: &[[f64; 2]; 4]| {
            let mut out = [[0.0; 2]; 4];
            for c in 0..2 {
                let m = z.iter().map(|r| r[c]).sum::<f64>() / 4.0;
                let v = z.iter().map(|r| (r[c] - m).powi(2)).sum::<f64>() / 3.0;
                for r in 0..4 {
                    out[r][c] = (z[r][c] - m) / v.sqrt();
                }
            }
            out
        };
        let (a, b) = (standardise(&z1), standardise(&z2));
        let mut diff = 0.0;
        for r in 0..4 {
            for c in 0..2 {
                diff += (a[r][c] - b[r][c]).powi(2);
            }
        }
        let off = |z: &[[f64; 2]; 4]| {
            let mut s = 0.0;
            for i in 0..2 {
                for j in 0..2 {
                    let cij = (0..4).map(|r| z[r][i] * z[r][j]).sum::<f64>() / 4.0;
                    s += ((i == j) as i32 as f64 - cij).powi(2);
                }
            }
            s.sqrt()
        };
        let expected = diff.sqrt() / 4.0 + 0.1 * (off(&a) + off(&b));
        let t = |z: &[[f64; 2]; 4]| Tensor::from_slice(&z.concat()).view([4, 2]);
        assert!((val(&decorrelation(&t(&z1), &t(&z2), 0.1)) - expected).abs() < 1e-12);
    }

    #[test]
    fn sce_closed_forms() {
        let x = t(&[1., 0., 0., 1.], 2, 2);
        // Identical rows: cosine 1, loss 0.
        assert!(val(&scaled_cosine_error(&x, &(&x * 3.0), 3.0)).abs() < 1e-7);
        // Orthogonal rows cost 1 whatever α; opposite rows cost 2^α.
        let y = t(&[0., 1., 1., 0.], 2, 2);
        assert!((val(&scaled_cosine_error(&x, &y, 2.0)) - 1.0).abs() < 1e-6);
        assert!((val(&scaled_cosine_error(&x, &(-&x), 3.0)) - 8.0).abs() < 1e-5);
        // An independently computed case: cos 45° = 1/√2, α = 2 → (1 − 1/√2)².
        let a = t(&[1., 1.], 1, 2);
        let b = t(&[0., 5.], 1, 2);
        let expect = (1.0 - 0.5f64.sqrt()).powi(2);
        assert!((val(&scaled_cosine_error(&a, &b, 2.0)) - expect).abs() < 1e-6);
        // A zero target row costs 1.
        let z = t(&[0., 0.], 1, 2);
        assert!((val(&scaled_cosine_error(&a, &z, 3.0)) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn dgi_bce_closed_form() {
        // Logit 0 everywhere: BCE = ln 2.
        let z = Tensor::zeros([4], (Kind::Float, Device::Cpu));
        assert!((val(&dgi_bce(&z, &z)) - 2f64.ln()).abs() < 1e-6);
        // Real logit a, fake logit b: mean of softplus(-a) and softplus(b).
        let (a, b) = (1.5f64, -0.5f64);
        let expect = 0.5 * ((1.0 + (-a).exp()).ln() + (1.0 + b.exp()).ln());
        let r = Tensor::from_slice(&[a as f32]);
        let f = Tensor::from_slice(&[b as f32]);
        assert!((val(&dgi_bce(&r, &f)) - expect).abs() < 1e-6);
    }

    #[test]
    fn grace_loss_equals_a_direct_evaluation_of_its_formula() {
        tch::manual_seed(0);
        let u = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
        let v = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
        let tau = 0.5;
        let rows = |m: &Tensor| -> Vec<Vec<f64>> {
            (0..5)
                .map(|i| Vec::<f64>::try_from(&m.get(i)).unwrap())
                .collect()
        };
        let (uu, vv) = (rows(&u), rows(&v));
        let cos = |a: &[f64], b: &[f64]| {
            let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            d / (na * nb)
        };
        let ell = |a: &Vec<Vec<f64>>, b: &Vec<Vec<f64>>, i: usize| {
            let pos = (cos(&a[i], &b[i]) / tau).exp();
            let mut den = 0.0;
            for k in 0..5 {
                den += (cos(&a[i], &b[k]) / tau).exp();
                if k != i {
                    den += (cos(&a[i], &a[k]) / tau).exp();
                }
            }
            -(pos / den).ln()
        };
        let expect: f64 = (0..5)
            .map(|i| 0.5 * (ell(&uu, &vv, i) + ell(&vv, &uu, i)))
            .sum::<f64>()
            / 5.0;
        assert!((val(&grace_loss(&u, &v, tau)) - expect).abs() < 1e-9);
    }

    #[test]
    fn bgrl_loss_is_zero_when_aligned_and_has_no_target_gradient() {
        let q = t(&[1., 2., 3., 4.], 2, 2).set_requires_grad(true);
        let y = t(&[2., 4., 6., 8.], 2, 2).set_requires_grad(true);
        let l = bgrl_loss(&q, &y, &q, &y);
        assert!(val(&l).abs() < 1e-6);
        l.backward();
        assert!(!y.grad().defined() || val(&y.grad().abs().sum(Kind::Float)) == 0.0);
        // Orthogonal pairs: 2 − 0 − 0.
        let a = t(&[1., 0.], 1, 2);
        let b = t(&[0., 1.], 1, 2);
        assert!((val(&bgrl_loss(&a, &b, &a, &b)) - 2.0).abs() < 1e-6);
    }

    #[test]
    fn zero_rows_give_finite_gradients() {
        let x = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = t(&[1., 0., 0., 0., 1., 0.], 2, 3);
        scaled_cosine_error(&x, &y, 3.0).backward();
        assert!(val(&x.grad().isfinite().all()) == 1.0);
    }

    #[test]
    fn sce_gradient_matches_finite_differences() {
        let x = Tensor::from_slice(&[0.3f64, -0.2, 0.9, 0.1, 0.5, -0.7]).reshape([2, 3]);
        let y = Tensor::from_slice(&[0.1f64, 0.4, 0.2, -0.3, 0.8, 0.05]).reshape([2, 3]);
        let xg = x.copy().set_requires_grad(true);
        scaled_cosine_error(&xg, &y, 3.0).backward();
        let g: Vec<f64> = Vec::try_from(&xg.grad().flatten(0, 1)).unwrap();
        let base: Vec<f64> = Vec::try_from(&x.flatten(0, 1)).unwrap();
        let h = 1e-6;
        for i in 0..6 {
            let mut p = base.clone();
            p[i] += h;
            let mut m = base.clone();
            m[i] -= h;
            let f = |v: &Vec<f64>| {
                val(&scaled_cosine_error(
                    &Tensor::from_slice(v).reshape([2, 3]),
                    &y,
                    3.0,
                ))
            };
            let fd = (f(&p) - f(&m)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-6, "{i}: {fd} vs {}", g[i]);
        }
    }
}
