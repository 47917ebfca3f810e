//! Embeddings out of a run: NPY (numpy) or safetensors, chosen by the file extension.
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::Tensor;

pub fn write_embeddings(path: &Path, embeddings: &Tensor, labels: Option<&Tensor>) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => {
            embeddings
                .write_npy(path)
                .with_context(|| format!("writing {}", path.display()))?;
            if let Some(l) = labels {
                let lp = path.with_extension("labels.npy");
                l.write_npy(&lp)
                    .with_context(|| format!("writing {}", lp.display()))?;
            }
        }
        Some("safetensors") => {
            let mut named = vec![("embeddings", embeddings.shallow_clone())];
            if let Some(l) = labels {
                named.push(("labels", l.shallow_clone()));
            }
            Tensor::write_safetensors(&named, path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        _ => bail!("{}: use a .npy or .safetensors file name", path.display()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_and_safetensors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let e = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([3, 2]);
        let l = Tensor::from_slice(&[0i64, 1, 1]);
        let p = dir.path().join("e.npy");
        write_embeddings(&p, &e, Some(&l)).unwrap();
        assert!(Tensor::read_npy(&p).unwrap().equal(&e));
        assert!(Tensor::read_npy(dir.path().join("e.labels.npy"))
            .unwrap()
            .equal(&l));
        let p = dir.path().join("e.safetensors");
        write_embeddings(&p, &e, Some(&l)).unwrap();
        let back = Tensor::read_safetensors(&p).unwrap();
        assert!(back.iter().any(|(n, t)| n == "embeddings" && t.equal(&e)));
        assert!(write_embeddings(&dir.path().join("e.txt"), &e, None).is_err());
    }
}
