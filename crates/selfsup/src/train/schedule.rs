//! Learning-rate schedule: linear warm-up, then constant or cosine decay (Loshchilov & Hutter 2017),
//! evaluated per optimiser step.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    #[default]
    Constant,
    Cosine,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    pub base_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub decay: Decay,
    /// Learning rate at the last step of a cosine schedule.
    pub final_lr: f64,
}

impl LrSchedule {
    /// Learning rate for optimiser step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            // Warm-up reaches base_lr at the end of its last step, never 0 on the first.
            return self.base_lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.decay {
            Decay::Constant => self.base_lr,
            Decay::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let t = ((step - self.warmup_steps) as f64 / span).min(1.0);
                self.final_lr
                    + 0.5
                        * (self.base_lr - self.final_lr)
                        * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let s = LrSchedule {
            base_lr: 1.0,
            warmup_steps: 10,
            total_steps: 110,
            decay: Decay::Cosine,
            final_lr: 0.0,
        };
        assert!((s.lr_at(0) - 0.1).abs() < 1e-12);
        assert!((s.lr_at(9) - 1.0).abs() < 1e-12);
        assert!((s.lr_at(10) - 1.0).abs() < 1e-12);
        assert!((s.lr_at(60) - 0.5).abs() < 1e-12);
        assert!(s.lr_at(110).abs() < 1e-12);
        assert!(s.lr_at(500).abs() < 1e-12);
        for k in 10..110 {
            assert!(s.lr_at(k + 1) <= s.lr_at(k));
        }
    }

    #[test]
    fn constant_without_warmup() {
        let s = LrSchedule {
            base_lr: 0.3,
            warmup_steps: 0,
            total_steps: 5,
            decay: Decay::Constant,
            final_lr: 0.0,
        };
        assert_eq!(s.lr_at(0), 0.3);
        assert_eq!(s.lr_at(100), 0.3);
    }
}
