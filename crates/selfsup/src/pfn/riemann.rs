//! The PFN's output for regression: a piecewise-constant density over fixed buckets (the
//! "Riemann distribution" of Müller et al. 2022, section 4.1). The network gives one logit per
//! bucket; the density inside bucket b is softmax(logits)_b / width_b. Bucket borders are
//! quantiles of targets drawn from the prior, so that every bucket is equally likely a priori.
use tch::{Kind, Tensor};

/// Bucket borders, ascending; `borders.len() - 1` buckets.
#[derive(Debug)]
pub struct Buckets {
    pub borders: Tensor,
}

impl Buckets {
    /// `n` buckets holding equal shares of `samples` (any shape), the outer two stretched to
    /// the samples' extremes widened by half their span, so that targets a little beyond the
    /// prior's draws still have a density.
    pub fn from_samples(samples: &Tensor, n: i64) -> Self {
        let y = samples.flatten(0, -1).to_kind(Kind::Double);
        let q = Tensor::linspace(0.0, 1.0, n + 1, (Kind::Double, y.device()));
        let borders = y.quantile(&q, None, false, "linear");
        let (lo, hi) = (y.min().double_value(&[]), y.max().double_value(&[]));
        let pad = 0.5 * (hi - lo);
        let _ = borders.get(0).fill_(lo - pad);
        let _ = borders.get(n).fill_(hi + pad);
        Buckets { borders }
    }

    pub fn len(&self) -> i64 {
        self.borders.size()[0] - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn widths(&self) -> Tensor {
        self.borders.narrow(0, 1, self.len()) - self.borders.narrow(0, 0, self.len())
    }

    /// The bucket of each target (targets outside the borders fall in the outer buckets).
    pub fn index(&self, y: &Tensor) -> Tensor {
        let inner = self.borders.narrow(0, 1, self.len() - 1).contiguous();
        Tensor::bucketize(&y.to_kind(Kind::Double).contiguous(), &inner, false, true)
    }

    /// −log density of `y` (`[..]`) under `logits` (`[.., buckets]`), elementwise.
    pub fn nll(&self, logits: &Tensor, y: &Tensor) -> Tensor {
        let b = self.index(y);
        let logp = logits.log_softmax(-1, Kind::Float);
        let chosen = logp.gather(-1, &b.unsqueeze(-1), false).squeeze_dim(-1);
        let log_width = self
            .widths()
            .to_kind(Kind::Float)
            .to_device(logits.device())
            .log()
            .index_select(0, &b.flatten(0, -1))
            .view_as(&chosen);
        log_width - chosen
    }

    /// The mean of each predicted density.
    pub fn mean(&self, logits: &Tensor) -> Tensor {
        let centres =
            (self.borders.narrow(0, 1, self.len()) + self.borders.narrow(0, 0, self.len())) * 0.5;
        logits
            .softmax(-1, Kind::Float)
            .to_kind(Kind::Double)
            .matmul(&centres.to_device(logits.device()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_logits_give_one_over_each_buckets_width_share() {
        let b = Buckets {
            borders: Tensor::from_slice(&[0.0f64, 1.0, 3.0, 7.0]),
        };
        let logits = Tensor::zeros([4, 3], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::from_slice(&[0.5f64, 2.0, 6.0, 100.0]);
        let nll = Vec::<f32>::try_from(b.nll(&logits, &y)).unwrap();
        // Density = (1/3) / width; a target beyond the last border counts in the last bucket.
        let expect = [
            3f32.ln(),
            (3.0f32 * 2.0).ln(),
            (3.0f32 * 4.0).ln(),
            (3.0f32 * 4.0).ln(),
        ];
        for (a, e) in nll.iter().zip(expect) {
            assert!((a - e).abs() < 1e-6, "{nll:?}");
        }
        // The mean of equal weights is the mean of the centres: (0.5 + 2 + 5) / 3.
        let m = b.mean(&logits).double_value(&[0]);
        assert!((m - 2.5).abs() < 1e-6, "{m}");
    }

    #[test]
    fn buckets_from_samples_hold_equal_shares() {
        let y = Tensor::linspace(0.0, 1.0, 1001, (Kind::Double, tch::Device::Cpu));
        let b = Buckets::from_samples(&y, 10);
        assert_eq!(b.len(), 10);
        let counts = b.index(&y).bincount::<Tensor>(None, 10);
        let counts = Vec::<i64>::try_from(counts).unwrap();
        assert!(
            counts.iter().all(|&c| (99..=102).contains(&c)),
            "{counts:?}"
        );
        // Outer borders widened by half the span.
        assert!((b.borders.double_value(&[0]) + 0.5).abs() < 1e-12);
        assert!((b.borders.double_value(&[10]) - 1.5).abs() < 1e-12);
    }
}
