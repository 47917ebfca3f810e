//! Views: stochastic transforms that turn one sample into the views a method needs.
//! Randomness is keyed by (seed, epoch, sample index, view), never by thread, so results do not
//! depend on how many workers build them.

pub mod image_aug;
