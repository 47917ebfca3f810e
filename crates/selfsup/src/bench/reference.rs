//! The PyTorch side of `selfsup bench`: `shared/bench/torch_reference.py` run through a wrapper
//! (device, precision, memory format), its RESULT lines parsed; and W2's gradients on the
//! reference's deterministic weights, compared with the script's `grad` output.
use super::Timing;
use crate::objectives::barlow_twins;
use crate::train::precision::Precision;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use tch::{Device, Kind, Tensor};

/// The PyTorch reference: `python torch_reference.py <work> <steps>`, its RESULT lines parsed,
/// peak memory from the child's rusage. The script is run through a wrapper that edits it at
/// named places, each checked to exist (a changed script is an error, not a silent fp32 run):
/// on a CUDA device with that device as torch's default (its random generator too) and a
/// synchronisation after every step; in bf16 with the loss's forward pass under
/// `torch.autocast(device, dtype=torch.bfloat16)` (the backward and Adam outside, as ours); with
/// `channels_last` W1's network and inputs in `torch.channels_last`.
pub(crate) const REFERENCE_WRAPPER: &str = "import resource, sys, torch
sys.argv = sys.argv[1:]
dev, precision, cl = sys.argv.pop(1), sys.argv.pop(1), sys.argv.pop(1) == '1'
src = open(sys.argv[0]).read()
def edit(old, new):
    global src
    if old not in src:
        sys.exit('the reference script has no ' + repr(old) + ' to edit')
    src = src.replace(old, new)
if dev != 'cpu':
    torch.set_default_device(dev)
    edit('torch.Generator()', 'torch.Generator(device=dev)')
    edit('last = f(); ts.append(', 'last = f(); torch.cuda.synchronize(); ts.append(')
if precision == 'bf16':
    edit('loss = lossf();', 'loss = _amp(lossf);')
if cl:
    edit('x2 = torch.randn(128, 3, 32, 32)\\n', 'x2 = torch.randn(128, 3, 32, 32); m = m.to(memory_format=torch.channels_last); x1, x2 = [t.contiguous(memory_format=torch.channels_last) for t in (x1, x2)]\\n')
def _amp(f):
    with torch.autocast(dev.split(':')[0], dtype=torch.bfloat16):
        return f()
exec(compile(src, sys.argv[0], 'exec'), {'__name__': '__main__', 'dev': dev, '_amp': _amp})
print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
";

pub(crate) fn reference(
    python: &Path,
    script: &Path,
    work: &str,
    steps: usize,
    device: Device,
    precision: Precision,
    channels_last: bool,
) -> Result<Vec<Timing>> {
    // "cpu" or "cuda:N", as torch names devices.
    let dev = crate::backend::device_name(device);
    let precision = match precision {
        Precision::Fp32 => "fp32",
        Precision::Bf16 => "bf16",
    };
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(REFERENCE_WRAPPER)
        .arg(script)
        .arg(dev)
        .arg(precision)
        .arg(if channels_last { "1" } else { "0" });
    let out = cmd
        .arg(work)
        .arg(steps.to_string())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} {} {work}: {}",
            python.display(),
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let peak = text
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_KB "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0);
    let field = |line: &str, key: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
    };
    let mut v = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("RESULT ")) {
        let median_s = field(line, "median_s").context("RESULT line without median_s")?;
        let rate = field(line, "samples_per_s")
            .or_else(|| field(line, "gflops"))
            .context("RESULT line without a rate")?;
        let n = field(line, "n").map_or(String::new(), |n| format!(" n={n}"));
        v.push(Timing {
            engine: format!("pytorch{n}"),
            median_s,
            p10_s: f64::NAN,
            p90_s: f64::NAN,
            samples_per_s: rate,
            peak_mib: peak,
        });
    }
    if v.is_empty() {
        bail!("the reference printed no RESULT line:\n{text}");
    }
    Ok(v)
}

/// The reference's deterministic vector: sin(0.7·i + 1.3·k)·scale, i = 0..n, in f32.
fn detv(k: f64, n: usize, scale: f64) -> Vec<f32> {
    (0..n)
        .map(|i| ((0.7 * i as f64 + 1.3 * k).sin() as f32) * scale as f32)
        .collect()
}

/// Loss and the first 16 gradient entries of the first and last weight of W2's network on the
/// reference's deterministic weights and inputs, in `kind`.
pub fn w2_gradients(kind: Kind) -> (f64, Vec<f64>, Vec<f64>) {
    let dims = [(64usize, 512usize), (512, 512), (512, 256), (256, 128)];
    let ws: Vec<(Tensor, Tensor)> = dims
        .iter()
        .enumerate()
        .map(|(i, &(din, dout))| {
            let k = (i + 1) as f64;
            let s = 1.0 / (din as f64).sqrt();
            let w = Tensor::from_slice(&detv(k, din * dout, s))
                .view([dout as i64, din as i64])
                .to_kind(kind)
                .set_requires_grad(true);
            let b = Tensor::from_slice(&detv(k + 100.0, dout, s))
                .to_kind(kind)
                .set_requires_grad(true);
            (w, b)
        })
        .collect();
    let fwd = |x: &Tensor| {
        let mut x = x.shallow_clone();
        for (i, (w, b)) in ws.iter().enumerate() {
            x = x.matmul(&w.tr()) + b;
            if i < 3 {
                x = x.relu();
            }
        }
        x
    };
    let x1 = Tensor::from_slice(&detv(11.0, 1024 * 64, 1.0))
        .view([1024, 64])
        .to_kind(kind);
    let x2 = Tensor::from_slice(&detv(12.0, 1024 * 64, 1.0))
        .view([1024, 64])
        .to_kind(kind);
    let loss = barlow_twins(&fwd(&x1), &fwd(&x2), 5e-3);
    loss.backward();
    let first16 = |t: &Tensor| -> Vec<f64> {
        Vec::<f64>::try_from(
            t.grad()
                .flatten(0, -1)
                .narrow(0, 0, 16)
                .to_kind(Kind::Double),
        )
        .unwrap_or_default()
    };
    (
        f64::try_from(&loss).unwrap_or(f64::NAN),
        first16(&ws[0].0),
        first16(&ws[3].0),
    )
}

/// Relative difference of two vectors, ‖a − b‖₂ / ‖b‖₂ (per-entry ratios would be dominated by
/// the rounding of entries near zero).
pub(crate) fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    diff / norm.max(1e-300)
}

/// Compares [`w2_gradients`] with `torch_reference.py grad`, f32 against f32 and f64 against f64;
/// returns lines to print and whether every relative difference is within `tol`.
pub fn grad_check(python: &Path, script: &Path, tol: f64) -> Result<(Vec<String>, bool)> {
    let out = Command::new(python)
        .arg(script)
        .arg("grad")
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("the reference's grad output is not JSON")?;
    let list = |k: &str| -> Result<Vec<f64>> {
        v[k].as_array()
            .with_context(|| format!("no {k} in the reference output"))?
            .iter()
            .map(|x| x.as_f64().context("not a number"))
            .collect()
    };
    let mut lines = Vec::new();
    let mut ok = true;
    for (kind, suffix) in [(Kind::Float, "f32"), (Kind::Double, "f64")] {
        let (loss, g1, g4) = w2_gradients(kind);
        let rl = rel_diff(
            &[loss],
            &[v[format!("loss_{suffix}")].as_f64().context("no loss")?],
        );
        let r1 = rel_diff(&g1, &list(&format!("grad_w1_{suffix}"))?);
        let r4 = rel_diff(&g4, &list(&format!("grad_w4_{suffix}"))?);
        ok &= rl <= tol && r1 <= tol && r4 <= tol;
        lines.push(format!(
            "grad {suffix}: loss {loss:.6} (rel diff {rl:.2e}), first-layer grad rel diff {r1:.2e}, last-layer {r4:.2e} (tolerance {tol:.0e})"
        ));
    }
    Ok((lines, ok))
}
