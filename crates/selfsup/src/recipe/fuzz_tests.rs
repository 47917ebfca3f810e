//! Property tests of the recipe parsers against malformed recipes: arbitrary text, valid recipes
//! with lines deleted, duplicated or swapped, values replaced by random TOML scalars, and random
//! `--set` overrides. Parsing must return `Ok` or a [`RecipeError`], never panic; and a recipe that
//! is accepted must hold no NaN or infinity (every float a run uses is checked by `validate`).
use super::{Recipe, RecipeError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};

const QUICKSTART: &str = include_str!("../../../../recipes/quickstart.toml");
const SCARF_ADULT: &str = include_str!("../../../../recipes/scarf-adult.toml");
const GRAPHMAE_CORA: &str = include_str!("../../../../recipes/graph/graphmae-cora.toml");
const GRAPHMAE_MUTAG: &str = include_str!("../../../../recipes/graph/graphmae-mutag.toml");
const GRACE_CORA: &str = include_str!("../../../../recipes/graph/grace-cora.toml");

/// Runs `test` on `cases` inputs (or `PROPTEST_CASES`); panics with the shrunk failing input.
fn check<S>(cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    if let Err(e) = TestRunner::new(config).run(&strategy, test) {
        panic!("{e}");
    }
}

/// TOML scalars and small compounds chosen to break things: wrong types, signs, overflow,
/// non-finite floats, empty collections, huge counts.
fn toml_value() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        "0",
        "-1",
        "1",
        "3",
        "0.0",
        "-0.5",
        "1.5",
        "1e-300",
        "1e300",
        "nan",
        "-nan",
        "inf",
        "-inf",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551616",
        "true",
        "false",
        "\"\"",
        "\"x\"",
        "\"simclr\"",
        "\"gat\"",
        "\"tu\"",
        "\"idx\"",
        "\"csv\"",
        "[]",
        "[0]",
        "[1, -2]",
        "[0.2, 1.0]",
        "[1.0, 0.2]",
        "[nan, 1.0]",
        "[[1]]",
        "{}",
        "{ dim = 0 }",
        "{ name = \"sgd\", lr = 0.1 }",
        "1979-05-27",
        "'''x'''",
        "[",
        "\"",
    ]);
    prop_oneof![
        8 => fixed.prop_map(str::to_string),
        1 => any::<i64>().prop_map(|v| v.to_string()),
        1 => any::<f64>().prop_map(|v| format!("{v:?}")),
        1 => "[a-z_ .=\"\\[\\]{},0-9-]{0,12}",
    ]
}

/// One line-level edit of a recipe's text.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    /// Replace the value of the `key = value` line (or the whole line) with a TOML scalar.
    Value(usize, String),
    Insert(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::Duplicate),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        5 => (any::<usize>(), toml_value()).prop_map(|(i, v)| Mutation::Value(i, v)),
        1 => (any::<usize>(), "[a-z\\[\\]=. \"0-9]{0,20}").prop_map(|(i, l)| Mutation::Insert(i, l)),
    ]
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in mutations {
        let n = lines.len();
        if n == 0 {
            break;
        }
        match m {
            Mutation::Delete(i) => {
                lines.remove(i % n);
            }
            Mutation::Duplicate(i) => lines.insert(i % n, lines[i % n].clone()),
            Mutation::Swap(a, b) => lines.swap(a % n, b % n),
            Mutation::Value(i, v) => {
                let line = &mut lines[i % n];
                *line = match line.split_once('=') {
                    Some((key, _)) => format!("{key}= {v}"),
                    None => v.clone(),
                };
            }
            Mutation::Insert(i, l) => lines.insert(i % (n + 1), l.clone()),
        }
    }
    lines.join("\n")
}

/// `--set` overrides over the recipe's own keys (and a few that are not), with hostile values.
fn overrides() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec![
        "name",
        "seed",
        "data.format",
        "data.options.max_pixels",
        "data.options.delimiter",
        "views.image.crop_scale",
        "views.image.mean",
        "views.image.std",
        "views.image.blur_kernel",
        "views.table.corruption_rate",
        "encoder.kind",
        "encoder.widths",
        "encoder.dims",
        "encoder.layers",
        "method.name",
        "method.temperature",
        "method.projector",
        "method.projector.0.dim",
        "method.projector.9.dim",
        "method.mask_rate",
        "method.alpha",
        "train.epochs",
        "train.batch_size",
        "train.optimizer",
        "train.optimizer.lr",
        "train.optimizer.name",
        "train.warmup_epochs",
        "train.grad_clip",
        "eval.knn_k",
        "eval.knn_temperature",
        "eval.protocol",
        "seeds",
        "seeds.0",
        "name.x",
        "",
        "a..b",
    ]);
    let spec = prop_oneof![
        8 => (key, toml_value()).prop_map(|(k, v)| format!("{k}={v}")),
        1 => "[a-z.=0-9 \\[\\]]{0,16}",
    ];
    prop::collection::vec(spec, 0..3)
}

/// Every float reachable from `v` is finite.
fn all_finite(v: &toml::Value, at: &str) -> Result<(), String> {
    match v {
        toml::Value::Float(f) if !f.is_finite() => Err(format!("{at} = {f}")),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| all_finite(x, &format!("{at}.{i}"))),
        toml::Value::Table(t) => t
            .iter()
            .try_for_each(|(k, x)| all_finite(x, &format!("{at}.{k}"))),
        _ => Ok(()),
    }
}

fn recipe_property(text: &str, sets: &[String]) -> TestCaseResult {
    match Recipe::from_toml(text, "fuzz.toml", sets) {
        Ok(r) => {
            let value =
                toml::Value::try_from(&r).map_err(|e| TestCaseError::fail(e.to_string()))?;
            all_finite(&value, "recipe")
                .map_err(|e| TestCaseError::fail(format!("accepted a non-finite value: {e}")))?;
            // What was accepted can be written out and read back to the same recipe.
            let again = Recipe::from_toml(&r.to_toml(), "again.toml", &[])
                .map_err(|e| TestCaseError::fail(format!("round trip: {e}")))?;
            // (A written recipe holds the dataset's paths, not its name.)
            let written = Recipe {
                dataset: None,
                ..r.clone()
            };
            prop_assert_eq!(&again, &written);
            prop_assert_eq!(again.training_hash(), r.training_hash());
        }
        Err(e) => {
            // Parse errors name the origin; the others name the field or the --set spec.
            let text = e.to_string();
            prop_assert!(!text.is_empty());
            if let RecipeError::Parse { origin, .. } = &e {
                prop_assert_eq!(origin.as_str(), "fuzz.toml");
            }
        }
    }
    Ok(())
}

fn graph_property(text: &str, sets: &[String]) -> TestCaseResult {
    match Recipe::from_toml(text, "fuzz.toml", sets) {
        Ok(r) => {
            // Non-finite numbers are refused (`graph_recipes_refuse_non_finite_values`); here
            // an accepted recipe must describe its protocol and read back as itself.
            if r.data.is_graph() {
                prop_assert!(r
                    .eval
                    .graph
                    .as_ref()
                    .is_some_and(|p| !p.describe().is_empty()));
            }
            let again = Recipe::from_toml(&r.to_toml(), "again.toml", &[])
                .map_err(|e| TestCaseError::fail(format!("round trip: {e}")))?;
            prop_assert_eq!(&again, &Recipe { dataset: None, ..r });
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

#[test]
fn the_base_recipes_are_valid() {
    for text in [QUICKSTART, SCARF_ADULT] {
        Recipe::from_toml(text, "base.toml", &[]).unwrap();
    }
    for text in [GRAPHMAE_CORA, GRAPHMAE_MUTAG, GRACE_CORA] {
        let r = Recipe::from_toml(text, "base.toml", &[]).unwrap();
        assert!(r.data.is_graph());
    }
}

#[test]
fn arbitrary_text_never_panics_either_parser() {
    let text = prop_oneof![any::<String>(), "[a-z_ .=\"'\\[\\]{},#0-9\n-]{0,200}",];
    check(400, text, |text| {
        recipe_property(&text, &[])?;
        graph_property(&text, &[])
    });
}

#[test]
fn mutated_recipes_never_panic() {
    let base = prop::sample::select(vec![QUICKSTART, SCARF_ADULT]);
    let input = (base, prop::collection::vec(mutation(), 1..5), overrides());
    check(500, input, |(base, mutations, sets)| {
        recipe_property(&mutate(base, &mutations), &sets)
    });
}

#[test]
fn overrides_alone_never_panic() {
    let base = prop::sample::select(vec![QUICKSTART, SCARF_ADULT]);
    check(400, (base, overrides()), |(base, sets)| {
        recipe_property(base, &sets)
    });
}

#[test]
fn mutated_graph_recipes_never_panic() {
    let base = prop::sample::select(vec![GRAPHMAE_CORA, GRAPHMAE_MUTAG, GRACE_CORA]);
    let input = (base, prop::collection::vec(mutation(), 0..5), overrides());
    check(500, input, |(base, mutations, sets)| {
        graph_property(&mutate(base, &mutations), &sets)
    });
}

/// Every float leaf of `v` as a dotted `--set` path (array items by index).
fn float_paths(v: &toml::Value, at: &str, out: &mut Vec<String>) {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match v {
        toml::Value::Float(_) => out.push(at.to_string()),
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                float_paths(x, &join(&i.to_string()), out);
            }
        }
        toml::Value::Table(t) => {
            for (k, x) in t {
                float_paths(x, &join(k), out);
            }
        }
        _ => {}
    }
}

/// Each float of each base recipe set to NaN and to ±infinity with `--set`: every one must be
/// refused (`validate` checks every float a run uses).
#[test]
fn recipes_refuse_non_finite_values() {
    let mut accepted = Vec::new();
    for base in [QUICKSTART, SCARF_ADULT] {
        let mut paths = Vec::new();
        float_paths(&toml::from_str(base).unwrap(), "", &mut paths);
        assert!(!paths.is_empty());
        for p in paths {
            for v in ["nan", "inf", "-inf"] {
                if Recipe::from_toml(base, "base.toml", &[format!("{p}={v}")]).is_ok() {
                    accepted.push(format!("{p}={v}"));
                }
            }
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}

/// The same for graph recipes: every float they hold is refused when NaN or infinite.
#[test]
fn graph_recipes_refuse_non_finite_values() {
    let mut accepted = Vec::new();
    for base in [GRAPHMAE_CORA, GRAPHMAE_MUTAG, GRACE_CORA] {
        let mut value: toml::Value = toml::from_str(base).unwrap();
        // The paper's figure is printed beside ours, never used in a computation.
        value.as_table_mut().unwrap().remove("paper");
        let mut paths = Vec::new();
        float_paths(&value, "", &mut paths);
        let name = value["name"].as_str().unwrap().to_string();
        for p in paths {
            for v in ["nan", "inf", "-inf"] {
                if Recipe::from_toml(base, "base.toml", &[format!("{p}={v}")]).is_ok() {
                    accepted.push(format!("{name}: {p}={v}"));
                }
            }
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
}
