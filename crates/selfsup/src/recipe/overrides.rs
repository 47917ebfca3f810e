//! `--set a.b.c=value`: edits the parsed TOML before it is turned into a [`Recipe`](super::Recipe).
use super::RecipeError;
use toml::Value;

/// Applies one `path=value` override. The value is read as a TOML value (`5`, `1e-3`, `true`,
/// `[0.2, 1.0]`, `"text"`); anything that does not parse as one is taken as a string.
pub fn apply(root: &mut Value, spec: &str) -> Result<(), RecipeError> {
    let bad = |message: &str| RecipeError::Override {
        spec: spec.into(),
        message: message.into(),
    };
    let (path, raw) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected key.path=value"))?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(bad("empty key in the path"));
    }
    let value = parse_value(raw.trim());
    let mut node = root;
    for (i, key) in keys.iter().enumerate() {
        let last = i + 1 == keys.len();
        node = match node {
            Value::Table(t) => {
                if last {
                    t.insert((*key).to_string(), value);
                    return Ok(());
                }
                t.entry((*key).to_string())
                    .or_insert_with(|| Value::Table(Default::default()))
            }
            Value::Array(a) => {
                let idx: usize = key
                    .parse()
                    .map_err(|_| bad(&format!("{key:?} indexes a list: use a number")))?;
                let len = a.len();
                let slot = a.get_mut(idx).ok_or_else(|| {
                    bad(&format!("index {idx} is past the end of a list of {len}"))
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => return Err(bad(&format!("{} is not a table", keys[..i].join(".")))),
        };
    }
    Ok(())
}

fn parse_value(raw: &str) -> Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.into())),
        Err(_) => Value::String(raw.into()),
    }
}
