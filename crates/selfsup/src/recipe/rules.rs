//! The value rules a recipe field can be held to, one function each, shared by the recipe's own
//! checks and by every method's and encoder's `validate`.
use super::RecipeError;

pub type R = Result<(), RecipeError>;

pub fn finite(field: &'static str, value: f64) -> R {
    if value.is_finite() {
        Ok(())
    } else {
        Err(RecipeError::NotFinite { field, value })
    }
}
pub fn probability(field: &'static str, value: f64) -> R {
    finite(field, value)?;
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(RecipeError::ProbabilityOutOfRange { field, value })
    }
}
pub fn non_negative(field: &'static str, value: f64) -> R {
    finite(field, value)?;
    if value >= 0.0 {
        Ok(())
    } else {
        Err(RecipeError::Negative { field, value })
    }
}
/// An ordered range of fractions: 0 < lo <= hi <= 1 (or < 1 when `one_allowed` is false).
pub fn fraction_range(field: &'static str, [lo, hi]: [f64; 2], one_allowed: bool) -> R {
    let hi_ok = if one_allowed { hi <= 1.0 } else { hi < 1.0 };
    if lo > 0.0 && lo <= hi && hi_ok {
        Ok(())
    } else {
        Err(RecipeError::BadRange {
            field,
            lo,
            hi,
            rule: if one_allowed {
                "need 0 < lo <= hi <= 1"
            } else {
                "need 0 < lo <= hi < 1"
            },
        })
    }
}
pub fn open_fraction(field: &'static str, value: f64) -> R {
    if value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(RecipeError::NotOpenFraction { field, value })
    }
}
pub fn positive(field: &'static str, value: f64) -> R {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(RecipeError::NotPositive { field, value })
    }
}
pub fn temperature(field: &'static str, value: f64) -> R {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(RecipeError::TemperatureNotPositive { field, value })
    }
}
pub fn widths(field: &'static str, dims: impl IntoIterator<Item = i64>) -> R {
    let mut any = false;
    for d in dims {
        any = true;
        if d <= 0 {
            return Err(RecipeError::NonPositiveWidth { field, value: d });
        }
    }
    if any {
        Ok(())
    } else {
        Err(RecipeError::NoLayers { field })
    }
}

/// A momentum (EMA coefficient, centre momentum): in [0, 1].
pub fn momentum(field: &'static str, m: f64) -> R {
    if (0.0..=1.0).contains(&m) {
        Ok(())
    } else {
        Err(RecipeError::BadRange {
            field,
            lo: m,
            hi: m,
            rule: "a momentum must be in [0, 1]",
        })
    }
}
/// A head's blocks: at least one, every width positive.
pub fn head(field: &'static str, blocks: &[crate::heads::Block]) -> R {
    widths(field, blocks.iter().map(|b| b.dim))
}
