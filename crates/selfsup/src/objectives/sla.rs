//! Self-supervised label augmentation (SLA; Lee, Hwang & Shin, ICML 2020): one classifier over
//! joint labels (class i, transformation j), trained on every transformed copy of an input, so the
//! transformation is a label to predict rather than an invariance to learn. At test time either
//! the identity copy's joint logits of each class (single inference, SLA+SI) or the average over
//! the copies of the logit each copy gives its own transformation (aggregation, SLA+AG).
//!
//! Layout used throughout: a batch of B inputs under M transformations is stacked
//! transformation-major, row `j·B + b` is input b under transformation j; joint label of class i
//! under transformation j is `i·M + j`.
use tch::{Kind, Tensor};

/// The four rotations by multiples of 90° of `[B, C, H, W]` images (the paper's default
/// transformation set), stacked transformation-major: `[4B, C, H, W]`. Rotation 0 is the input.
pub fn rotations(x: &Tensor, m: usize) -> Tensor {
    let copies: Vec<Tensor> = (0..m as i64).map(|k| x.rot90(k, [2, 3])).collect();
    Tensor::cat(&copies, 0)
}

/// Joint labels of `y` (`[B]`, classes) under `m` transformations, transformation-major: `[mB]`.
pub fn joint_labels(y: &Tensor, m: usize) -> Tensor {
    let m = m as i64;
    let copies: Vec<Tensor> = (0..m).map(|j| y * m + j).collect();
    Tensor::cat(&copies, 0)
}

/// Single inference: the identity copy's logits `[B, N·M]` restricted to transformation 0 —
/// `[B, N]`, class i's logit is joint logit `i·M`.
pub fn single_logits(identity_logits: &Tensor, m: usize) -> Tensor {
    let (b, nm) = identity_logits.size2().expect("joint logits are [B, N·M]");
    identity_logits
        .view([b, nm / m as i64, m as i64])
        .select(2, 0)
}

/// Aggregated inference: from the joint logits of all copies (`[mB, N·M]`, transformation-major),
/// class i's logit is the mean over j of the logit of joint label (i, j) on copy j — `[B, N]`.
pub fn aggregated_logits(joint_logits: &Tensor, m: usize) -> Tensor {
    let (mb, nm) = joint_logits.size2().expect("joint logits are [mB, N·M]");
    let (m, b) = (m as i64, mb / m as i64);
    let n = nm / m;
    let per_copy = joint_logits.view([m, b, n, m]);
    let own: Vec<Tensor> = (0..m).map(|j| per_copy.select(0, j).select(2, j)).collect();
    Tensor::stack(&own, 0).mean_dim(0, false, Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn joint_labels_are_class_times_m_plus_transformation() {
        let y = Tensor::from_slice(&[2i64, 0, 1]);
        let j = joint_labels(&y, 4);
        assert_eq!(
            Vec::<i64>::try_from(j).unwrap(),
            vec![8, 0, 4, 9, 1, 5, 10, 2, 6, 11, 3, 7]
        );
    }

    #[test]
    fn rotations_stack_the_four_quarter_turns() {
        // A 2×2 image [[1, 2], [3, 4]]; a quarter turn counter-clockwise is [[2, 4], [1, 3]].
        let x = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 1, 2, 2]);
        let r = rotations(&x, 4);
        assert_eq!(r.size(), vec![4, 1, 2, 2]);
        let flat = Vec::<f32>::try_from(r.flatten(0, -1)).unwrap();
        assert_eq!(&flat[0..4], &[1., 2., 3., 4.]);
        assert_eq!(&flat[4..8], &[2., 4., 1., 3.]);
        assert_eq!(&flat[8..12], &[4., 3., 2., 1.]);
        assert_eq!(&flat[12..16], &[3., 1., 4., 2.]);
    }

    #[test]
    fn single_inference_reads_the_identity_joint_logits() {
        // B = 1, N = 2, M = 2: joint logits (i, j) = [(0,0), (0,1), (1,0), (1,1)].
        let z = Tensor::from_slice(&[5f32, 1., 3., 7.]).view([1, 4]);
        let s = Vec::<f32>::try_from(single_logits(&z, 2).flatten(0, -1)).unwrap();
        assert_eq!(s, vec![5., 3.]);
    }

    #[test]
    fn aggregation_averages_each_copy_own_transformation() {
        // B = 2, N = 2, M = 2. Rows: copy 0 of inputs 0 and 1, then copy 1 of inputs 0 and 1.
        // Input 0: class 0 gets (z[0][(0,0)] + z[2][(0,1)]) / 2 = (1 + 6) / 2 and class 1
        // gets (z[0][(1,0)] + z[2][(1,1)]) / 2 = (3 + 8) / 2.
        let z = Tensor::from_slice(&[
            1f32, 2., 3., 4., // copy 0, input 0
            10., 20., 30., 40., // copy 0, input 1
            5., 6., 7., 8., // copy 1, input 0
            50., 60., 70., 80., // copy 1, input 1
        ])
        .view([4, 4]);
        let a = Vec::<f32>::try_from(aggregated_logits(&z, 2).flatten(0, -1)).unwrap();
        assert_eq!(a, vec![3.5, 5.5, 35.0, 55.0]);
        // With one transformation, aggregation is single inference.
        let z1 = Tensor::randn([3, 5], (Kind::Float, Device::Cpu));
        let d = (aggregated_logits(&z1, 1) - single_logits(&z1, 1))
            .abs()
            .max();
        assert_eq!(d.double_value(&[]), 0.0);
    }
}
