//! Shared by the binary's crash and numerics tests.

/// A checkpoint's variables as `f32` values, in name order.
pub fn sorted_values(model: Vec<(String, tch::Tensor)>) -> Vec<(String, Vec<f32>)> {
    let mut m: Vec<(String, Vec<f32>)> = model
        .into_iter()
        .map(|(k, t)| {
            let v = Vec::<f32>::try_from(t.flatten(0, -1).to_kind(tch::Kind::Float)).unwrap();
            (k, v)
        })
        .collect();
    m.sort_by(|a, b| a.0.cmp(&b.0));
    m
}
