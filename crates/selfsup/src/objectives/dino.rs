//! DINO (Caron et al. 2021, Alg. 1, with the multi-crop loss of the authors' code): the student's
//! distribution on every crop should match the centred, sharpened teacher distribution on each
//! global crop of the same images.
//!
//! With s_v the student logits of crop v (global crops first) and t_g the teacher logits of global
//! crop g, all [N,K]:
//!   P_g = softmax((t_g − c)/τ_t),  log S_v = log_softmax(s_v/τ_s),
//!   L = (1/|pairs|) Σ_{(g,v), v≠g} (1/N) Σ_n Σ_k −P_g[n,k] · log S_v[n,k],
//! over all G·V − G pairs of a global crop g and a different crop v.
use tch::{Kind, Tensor};

/// `student[v]`: student logits [N,K] of crop v, the global crops first; `teacher[g]`: teacher
/// logits [N,K] of global crop g (g < `student.len()`); `center` [K] or [1,K]. The teacher logits
/// and the center are detached here: no gradient reaches the teacher.
pub fn dino_loss(
    student: &[Tensor],
    teacher: &[Tensor],
    center: &Tensor,
    student_temp: f64,
    teacher_temp: f64,
) -> Tensor {
    assert!(
        !teacher.is_empty() && teacher.len() <= student.len() && student.len() >= 2,
        "DINO needs at least one global crop and two crops in all \
         (got {} teacher and {} student crops)",
        teacher.len(),
        student.len()
    );
    let log_student: Vec<Tensor> = student
        .iter()
        .map(|s| (s / student_temp).log_softmax(-1, None::<Kind>))
        .collect();
    let center = center.detach();
    let mut terms = Vec::new();
    for (g, t) in teacher.iter().enumerate() {
        let p = ((t.detach() - &center) / teacher_temp).softmax(-1, None::<Kind>);
        for (v, log_s) in log_student.iter().enumerate() {
            if v == g {
                continue;
            }
            let cross_entropy = -(&p * log_s).sum_dim_intlist([-1i64].as_slice(), false, p.kind());
            terms.push(cross_entropy.mean(None::<Kind>));
        }
    }
    let count = terms.len() as f64;
    terms.into_iter().reduce(|a, b| a + b).unwrap() / count
}

/// Teacher temperature at a (possibly fractional) epoch: linear from `start` at epoch 0 to `end`
/// at `warmup_epochs`, then constant (the paper: 0.04 → 0.07 over the first 30 epochs).
/// The authors' code evaluates `linspace(start, end, warmup_epochs)` at integer epochs, which
/// reaches `end` one epoch earlier; this is the continuous schedule of the paper's description.
pub fn teacher_temperature(epoch: f64, warmup_epochs: f64, start: f64, end: f64) -> f64 {
    if warmup_epochs <= 0.0 || epoch >= warmup_epochs {
        end
    } else {
        start + (end - start) * epoch.max(0.0) / warmup_epochs
    }
}

/// The center's EMA update, without gradient: m·c + (1 − m)·(mean over all rows of all teacher
/// logits). The result has the center's shape.
pub fn updated_center(center: &Tensor, teacher: &[Tensor], momentum: f64) -> Tensor {
    tch::no_grad(|| {
        let all = Tensor::cat(&teacher.iter().map(|t| t.detach()).collect::<Vec<_>>(), 0);
        let batch_center = all
            .mean_dim([0i64].as_slice(), false, all.kind())
            .reshape(center.size());
        center.detach() * momentum + batch_center * (1.0 - momentum)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objectives::test_util::{scalar, tensor};
    use tch::Device;

    fn softmax(x: &[f64]) -> Vec<f64> {
        let total: f64 = x.iter().map(|v| v.exp()).sum();
        x.iter().map(|v| v.exp() / total).collect()
    }

    /// The loss from its definition, pair by pair, row by row.
    fn reference(
        student: &[Vec<Vec<f64>>],
        teacher: &[Vec<Vec<f64>>],
        center: &[f64],
        ts: f64,
        tt: f64,
    ) -> f64 {
        let mut total = 0.0;
        let mut pairs = 0;
        for (g, t) in teacher.iter().enumerate() {
            for (v, s) in student.iter().enumerate() {
                if v == g {
                    continue;
                }
                let mut pair = 0.0;
                for (trow, srow) in t.iter().zip(s) {
                    let p = softmax(
                        &trow
                            .iter()
                            .zip(center)
                            .map(|(x, c)| (x - c) / tt)
                            .collect::<Vec<_>>(),
                    );
                    let q = softmax(&srow.iter().map(|x| x / ts).collect::<Vec<_>>());
                    pair -= p.iter().zip(&q).map(|(a, b)| a * b.ln()).sum::<f64>();
                }
                total += pair / t.len() as f64;
                pairs += 1;
            }
        }
        assert_eq!(pairs, teacher.len() * student.len() - teacher.len());
        total / pairs as f64
    }

    /// Logits of each crop, row by row.
    type Crops = Vec<Vec<Vec<f64>>>;

    fn crops() -> (Crops, Crops) {
        let student = vec![
            vec![
                vec![0.2, -0.1, 0.4, 0.0],
                vec![1.0, 0.3, -0.5, 0.2],
                vec![-0.3, 0.6, 0.1, 0.9],
            ],
            vec![
                vec![0.5, 0.1, -0.2, 0.3],
                vec![0.0, 0.8, 0.2, -0.4],
                vec![0.4, -0.6, 0.7, 0.1],
            ],
            vec![
                vec![-0.2, 0.9, 0.0, 0.1],
                vec![0.3, 0.3, 0.6, -0.9],
                vec![0.1, 0.2, -0.3, 0.5],
            ],
            vec![
                vec![0.7, -0.4, 0.2, 0.2],
                vec![-0.5, 0.1, 0.1, 0.6],
                vec![0.0, 0.0, 0.9, -0.2],
            ],
        ];
        let teacher = vec![
            vec![
                vec![0.3, 0.1, 0.2, -0.1],
                vec![0.6, 0.2, -0.3, 0.1],
                vec![-0.1, 0.4, 0.0, 0.5],
            ],
            vec![
                vec![0.2, 0.0, 0.1, 0.3],
                vec![0.1, 0.5, 0.1, -0.2],
                vec![0.2, -0.3, 0.4, 0.0],
            ],
        ];
        (student, teacher)
    }

    /// Two global and two local crops: the 2·4 − 2 = 6 pairs of the reference loop.
    #[test]
    fn matches_an_independent_computation_with_multi_crop() {
        let (student, teacher) = crops();
        let center = [0.05, -0.02, 0.1, 0.0];
        let want = reference(&student, &teacher, &center, 0.1, 0.04);
        for kind in [Kind::Float, Kind::Double] {
            let s: Vec<Tensor> = student.iter().map(|c| tensor(c, kind)).collect();
            let t: Vec<Tensor> = teacher.iter().map(|c| tensor(c, kind)).collect();
            let c = Tensor::from_slice(&center).view([1, 4]).to_kind(kind);
            let got = scalar(&dino_loss(&s, &t, &c, 0.1, 0.04));
            assert!((got - want).abs() < 1e-5 * want.max(1.0), "{got} vs {want}");
        }
    }

    /// A uniform teacher (constant logits) makes each pair's term the student crop's own
    /// c_v = logsumexp(s_v/τ) − mean_k(s_v/τ) (one row per crop, logits (x_v, 0, 0, 0)), so with
    /// crops 0, 1 global and 2, 3 local the six pairs give (c0 + c1 + 2c2 + 2c3)/6: the local
    /// crops are counted once per global crop, each global crop once (not against itself).
    #[test]
    fn uniform_teacher_counts_the_pairs() {
        let (k, ts) = (4.0f64, 0.5);
        let xs = [0.3, -1.0, 2.0, 0.7];
        let c = |x: f64| ((x / ts).exp() + k - 1.0).ln() - x / ts / k;
        let want = (c(xs[0]) + c(xs[1]) + 2.0 * c(xs[2]) + 2.0 * c(xs[3])) / 6.0;
        let student: Vec<Tensor> = xs
            .iter()
            .map(|&x| Tensor::from_slice(&[x, 0.0, 0.0, 0.0]).view([1, 4]))
            .collect();
        let teacher = vec![
            Tensor::full([1, 4], 3.0, (Kind::Double, Device::Cpu)),
            Tensor::full([1, 4], -1.0, (Kind::Double, Device::Cpu)),
        ];
        let center = Tensor::zeros([4], (Kind::Double, Device::Cpu));
        let got = scalar(&dino_loss(&student, &teacher, &center, ts, 0.04));
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // Constant student logits as well: every term is the entropy of the uniform, log K.
        let flat: Vec<Tensor> = (0..4)
            .map(|_| Tensor::zeros([3, 4], (Kind::Double, Device::Cpu)))
            .collect();
        let teacher: Vec<Tensor> = (0..2)
            .map(|_| Tensor::zeros([3, 4], (Kind::Double, Device::Cpu)))
            .collect();
        let got = scalar(&dino_loss(&flat, &teacher, &center, ts, 0.04));
        assert!((got - k.ln()).abs() < 1e-12, "{got}");
    }

    /// A very low teacher temperature makes P one-hot on the teacher's argmax, so each term is
    /// −log softmax(s_v/τ_s)[argmax]. One global crop, one local crop: a single pair.
    #[test]
    fn sharp_teacher_gives_cross_entropy_on_its_argmax() {
        let s = [0.2, 1.0, -0.4];
        let student = vec![
            Tensor::zeros([1, 3], (Kind::Double, Device::Cpu)),
            Tensor::from_slice(&s).view([1, 3]),
        ];
        let teacher = vec![Tensor::from_slice(&[0.1, 0.0, 0.5]).view([1, 3])];
        let center = Tensor::zeros([1, 3], (Kind::Double, Device::Cpu));
        let got = scalar(&dino_loss(&student, &teacher, &center, 0.1, 1e-4));
        let q = softmax(&s.map(|x| x / 0.1));
        assert!((got + q[2].ln()).abs() < 1e-9, "{got}");
    }

    #[test]
    fn center_is_subtracted_from_the_teacher() {
        let (student, teacher) = crops();
        let s: Vec<Tensor> = student.iter().map(|c| tensor(c, Kind::Double)).collect();
        let t: Vec<Tensor> = teacher.iter().map(|c| tensor(c, Kind::Double)).collect();
        let c = Tensor::from_slice(&[0.3, -0.2, 0.1, 0.0]).view([1, 4]);
        let shifted: Vec<Tensor> = t.iter().map(|x| x - &c).collect();
        let zero = Tensor::zeros([1, 4], (Kind::Double, Device::Cpu));
        let a = scalar(&dino_loss(&s, &t, &c, 0.1, 0.05));
        let b = scalar(&dino_loss(&s, &shifted, &zero, 0.1, 0.05));
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        assert!((a - scalar(&dino_loss(&s, &t, &zero, 0.1, 0.05))).abs() > 1e-6);
    }

    #[test]
    fn no_gradient_reaches_the_teacher() {
        let student: Vec<Tensor> = (0..3)
            .map(|_| Tensor::randn([2, 5], (Kind::Double, Device::Cpu)).set_requires_grad(true))
            .collect();
        let teacher: Vec<Tensor> = (0..2)
            .map(|_| Tensor::randn([2, 5], (Kind::Double, Device::Cpu)).set_requires_grad(true))
            .collect();
        let center = Tensor::zeros([5], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        dino_loss(&student, &teacher, &center, 0.1, 0.04).backward();
        assert!(student.iter().all(|s| s.grad().defined()));
        assert!(teacher.iter().all(|t| !t.grad().defined()));
        assert!(!center.grad().defined());
    }

    #[test]
    fn teacher_temperature_warms_up_linearly_then_stays() {
        let t = |e| teacher_temperature(e, 30.0, 0.04, 0.07);
        assert!((t(0.0) - 0.04).abs() < 1e-15);
        assert!((t(15.0) - 0.055).abs() < 1e-15);
        assert!((t(10.0) - 0.05).abs() < 1e-15);
        assert_eq!(t(30.0), 0.07);
        assert_eq!(t(250.0), 0.07);
        assert_eq!(teacher_temperature(0.0, 0.0, 0.04, 0.07), 0.07);
    }

    /// Hand-worked: teacher rows (1,2), (3,4) and (5,0) have mean (3, 2); with c = (1, 1) and
    /// m = 0.9 the new center is 0.9·(1,1) + 0.1·(3,2) = (1.2, 1.1).
    #[test]
    fn center_update_hand_worked() {
        let teacher = vec![
            Tensor::from_slice(&[1.0, 2.0, 3.0, 4.0])
                .view([2, 2])
                .set_requires_grad(true),
            Tensor::from_slice(&[5.0, 0.0]).view([1, 2]),
        ];
        for shape in [vec![2i64], vec![1, 2]] {
            let c = Tensor::ones(shape.as_slice(), (Kind::Double, Device::Cpu));
            let got = updated_center(&c, &teacher, 0.9);
            assert_eq!(got.size(), shape);
            assert!(!got.requires_grad());
            let got = Vec::<f64>::try_from(got.flatten(0, -1)).unwrap();
            assert!(
                (got[0] - 1.2).abs() < 1e-12 && (got[1] - 1.1).abs() < 1e-12,
                "{got:?}"
            );
        }
    }
}
