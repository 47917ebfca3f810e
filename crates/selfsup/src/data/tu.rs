//! TU graph-classification sets (Morris et al. 2020, "TUDataset"): MUTAG, PROTEINS, ...
//!
//! A set `DS` is a handful of comma-separated text files: `DS_A.txt` (one `row, col` line per
//! directed edge, 1-based node ids over the whole set), `DS_graph_indicator.txt` (the 1-based graph
//! of node i, on line i), `DS_graph_labels.txt` (one label per graph), and optionally
//! `DS_node_labels.txt` and `DS_node_attributes.txt` (one line per node). They are read from a
//! folder or, in-process, from a `.tar.xz` (or plain `.tar`) archive holding `DS/DS_A.txt`, ....
//!
//! Node features follow PyTorch Geometric's `TUDataset`, which GraphMAE, InfoGraph and GraphCL
//! use, so that input widths match the papers:
//! * with node labels: each label column one-hot over `min..=max` of that column across the set
//!   (MUTAG: 7 atom types, PROTEINS: 3 structure types);
//! * without node labels: the node degree one-hot, width `max degree + 1` over the set;
//! * with `with_attributes`, the float node attributes appended after the one-hot block.

use crate::data::graph::{CsrMatrix, Graph, GraphSet};
use crate::error::DataError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The files of a set, `<name>_<suffix>.txt`.
const SUFFIXES: [&str; 5] = [
    "A",
    "graph_indicator",
    "graph_labels",
    "node_labels",
    "node_attributes",
];

/// What an integer field is called in errors.
const INT: &str = "an integer";

/// Widest one-hot block accepted for one node-label column (label values are ids, not numbers:
/// a span wider than this is a corrupt file, not a vocabulary).
const MAX_ONE_HOT: i128 = 1 << 20;

/// Loads TU set `name` from `path`: a folder holding `<name>/<name>_A.txt`, `<name>_A.txt` or
/// `<name>/raw/<name>_A.txt` (PyG's layout), or a `.tar.xz`/`.tar` archive containing the files.
///
/// Each graph's nodes are numbered from 0 in file order and its edges made symmetric, unique and
/// free of self-loops. Graph labels are mapped to `0..C` in the sorted order of their distinct
/// values (`label_values` keeps the originals, e.g. MUTAG's -1 and 1). Node features: see the
/// module docs; `with_attributes` appends `DS_node_attributes.txt` (an error if it is absent).
/// Each graph's `node_labels` hold its first node-label column (offset to start at 0), or -1.
pub fn load_tu(path: &Path, name: &str, with_attributes: bool) -> Result<GraphSet, DataError> {
    if name.is_empty() || name.contains(['/', '\\']) {
        return Err(DataError::format(
            path,
            format!("{name:?} is not a TU data set name"),
        ));
    }
    let mut files = if path.is_dir() {
        read_folder(path, name)?
    } else {
        read_archive(path, name)?
    };
    let mut take = |suffix: &str| files.remove(suffix);
    let (Some(a), Some(indicator), Some(graph_labels)) =
        (take("A"), take("graph_indicator"), take("graph_labels"))
    else {
        return Err(DataError::format(
            path,
            format!(
                "TU set {name:?} needs {name}_A.txt, {name}_graph_indicator.txt and \
                 {name}_graph_labels.txt; not all of them are there"
            ),
        ));
    };
    let node_labels = take("node_labels");
    let attributes = match (with_attributes, take("node_attributes")) {
        (true, None) => {
            return Err(DataError::format(
                path,
                format!("node attributes were asked for, but {name}_node_attributes.txt is absent"),
            ))
        }
        (true, Some(f)) => Some(f),
        (false, _) => None,
    };

    // Graph labels → class ids in sorted order of the original values.
    let raw_labels: Vec<i64> = single_column(&graph_labels, parse_rows(&graph_labels, INT)?)?;
    if raw_labels.is_empty() {
        return Err(DataError::Empty {
            path: graph_labels.path.clone(),
            message: "no graph labels".into(),
        });
    }
    let mut label_values = raw_labels.clone();
    label_values.sort_unstable();
    label_values.dedup();
    let labels: Vec<i64> = raw_labels
        .iter()
        .map(|v| label_values.partition_point(|x| x < v) as i64)
        .collect();
    let num_graphs = raw_labels.len();

    // Node → graph; nodes of one graph must be consecutive and graphs in increasing order.
    let ind_rows = parse_rows::<i64>(&indicator, INT)?;
    let num_nodes = ind_rows.len();
    let mut graph_of = Vec::with_capacity(num_nodes);
    let mut start = vec![0usize; num_graphs + 1];
    let mut prev = 1usize;
    for row in &ind_rows {
        let [g] = row.values[..] else {
            return Err(row.width_error(&indicator, 1));
        };
        let g = usize::try_from(g)
            .ok()
            .filter(|g| (1..=num_graphs).contains(g))
            .ok_or_else(|| {
                row.error(
                    &indicator,
                    0,
                    format!(
                        "graph id {g} is outside 1..={num_graphs} ({} has {num_graphs} lines)",
                        file_name(&graph_labels.path)
                    ),
                )
            })?;
        if g < prev {
            return Err(row.error(
                &indicator,
                0,
                format!(
                    "graph id {g} after {prev}: nodes must be listed graph by graph, in \
                     increasing graph order"
                ),
            ));
        }
        prev = g;
        graph_of.push(g - 1);
        start[g] += 1;
    }
    for g in 0..num_graphs {
        start[g + 1] += start[g];
    }

    // Edges, re-indexed within their graph.
    let mut edges: Vec<Vec<[u32; 2]>> = vec![Vec::new(); num_graphs];
    for row in parse_rows::<i64>(&a, INT)? {
        let [r, c] = row.values[..] else {
            return Err(row.width_error(&a, 2));
        };
        let node = |k: usize, id: i64| {
            usize::try_from(id)
                .ok()
                .filter(|&v| (1..=num_nodes).contains(&v))
                .map(|v| v - 1)
                .ok_or_else(|| {
                    row.error(
                        &a,
                        k,
                        format!(
                            "node {id} does not exist: {} lists {num_nodes} nodes (ids 1..={num_nodes})",
                            file_name(&indicator.path)
                        ),
                    )
                })
        };
        let (r, c) = (node(0, r)?, node(1, c)?);
        let (gr, gc) = (graph_of[r], graph_of[c]);
        if gr != gc {
            return Err(row.line_error(
                &a,
                format!(
                    "edge joins node {} of graph {} and node {} of graph {}",
                    r + 1,
                    gr + 1,
                    c + 1,
                    gc + 1
                ),
            ));
        }
        let base = start[gr];
        edges[gr].push([(r - base) as u32, (c - base) as u32]);
    }
    let mut graphs: Vec<Graph> = edges
        .into_iter()
        .enumerate()
        .map(|(g, edges)| {
            let n = start[g + 1] - start[g];
            let mut graph = Graph {
                name: format!("{name}[{g}]"),
                num_nodes: n,
                features: CsrMatrix::zeros(n, 0),
                edges,
                node_labels: vec![-1; n],
                num_classes: 0,
                split: None,
            };
            graph.canonicalise_edges();
            graph
        })
        .collect();

    // Node features: one-hot blocks, then attributes.
    let one_hot = match &node_labels {
        Some(f) => OneHot::from_labels(f, num_nodes)?,
        None => OneHot::from_degrees(&graphs),
    };
    let attrs = match &attributes {
        Some(f) => Some(float_table(f, num_nodes)?),
        None => None,
    };
    let num_attrs = attrs.as_ref().map_or(0, |(_, w)| *w);
    let num_features = one_hot.width + num_attrs;
    for (g, graph) in graphs.iter_mut().enumerate() {
        let mut degree = vec![0usize; graph.num_nodes];
        for &[s, _] in &graph.edges {
            degree[s as usize] += 1;
        }
        let mut m = CsrMatrix::zeros(graph.num_nodes, num_features);
        for (i, &deg) in degree.iter().enumerate() {
            let v = start[g] + i;
            one_hot.push_row(v, deg, &mut m);
            if let Some((values, w)) = &attrs {
                for (k, &x) in values[v * w..(v + 1) * w].iter().enumerate() {
                    if x != 0.0 {
                        m.indices.push((one_hot.width + k) as i64);
                        m.values.push(x);
                    }
                }
            }
            m.indptr[i + 1] = m.indices.len() as i64;
            if let Some(cls) = one_hot.first_label(v) {
                graph.node_labels[i] = cls;
            }
        }
        graph.features = m;
        graph.num_classes = one_hot.first_width();
    }
    Ok(GraphSet {
        name: name.to_string(),
        graphs,
        labels,
        num_classes: label_values.len(),
        label_values,
        num_features,
    })
}

/// The node one-hot encoding: label columns (value - min of the column) or degrees.
struct OneHot {
    /// Per node, per label column: the offset value (empty for the degree encoding).
    values: Vec<usize>,
    columns: usize,
    /// Width of each label column's block.
    widths: Vec<usize>,
    /// Total width of the one-hot part.
    width: usize,
}

impl OneHot {
    fn from_labels(file: &TextFile, num_nodes: usize) -> Result<OneHot, DataError> {
        let rows = parse_rows::<i64>(file, INT)?;
        if rows.len() != num_nodes {
            return Err(DataError::format(
                &file.path,
                format!(
                    "{} lines, but the graph indicator lists {num_nodes} nodes",
                    rows.len()
                ),
            ));
        }
        let columns = rows.first().map_or(1, |r| r.values.len());
        let mut mins = vec![i64::MAX; columns];
        let mut maxs = vec![i64::MIN; columns];
        for row in &rows {
            if row.values.len() != columns {
                return Err(row.width_error(file, columns));
            }
            for (j, &x) in row.values.iter().enumerate() {
                mins[j] = mins[j].min(x);
                maxs[j] = maxs[j].max(x);
            }
        }
        let mut widths = Vec::with_capacity(columns);
        for j in 0..columns {
            let span = i128::from(maxs[j]) - i128::from(mins[j]) + 1;
            if span > MAX_ONE_HOT {
                return Err(DataError::format(
                    &file.path,
                    format!(
                        "column {}: node label values span {}..={}, too wide for a one-hot \
                         encoding (at most {MAX_ONE_HOT})",
                        j + 1,
                        mins[j],
                        maxs[j]
                    ),
                ));
            }
            widths.push(span.max(0) as usize);
        }
        let values = rows
            .iter()
            .flat_map(|r| r.values.iter().zip(&mins).map(|(&x, &m)| (x - m) as usize))
            .collect();
        Ok(OneHot {
            values,
            columns,
            width: widths.iter().sum(),
            widths,
        })
    }

    fn from_degrees(graphs: &[Graph]) -> OneHot {
        let mut max_degree = 0;
        for g in graphs {
            let mut degree = vec![0usize; g.num_nodes];
            for &[s, _] in &g.edges {
                degree[s as usize] += 1;
            }
            max_degree = degree.into_iter().fold(max_degree, usize::max);
        }
        OneHot {
            values: Vec::new(),
            columns: 0,
            widths: Vec::new(),
            width: max_degree + 1,
        }
    }

    /// Appends the one-hot entries of global node `v` (of degree `degree`) to the last row of `m`.
    fn push_row(&self, v: usize, degree: usize, m: &mut CsrMatrix) {
        if self.columns == 0 {
            m.indices.push(degree as i64);
            m.values.push(1.0);
            return;
        }
        let mut offset = 0;
        for j in 0..self.columns {
            m.indices
                .push((offset + self.values[v * self.columns + j]) as i64);
            m.values.push(1.0);
            offset += self.widths[j];
        }
    }

    /// The first label column's value of node `v`, as a class id.
    fn first_label(&self, v: usize) -> Option<i64> {
        (self.columns > 0).then(|| self.values[v * self.columns] as i64)
    }

    fn first_width(&self) -> usize {
        self.widths.first().copied().unwrap_or(0)
    }
}

/// A `num_nodes × w` table of finite floats, row-major, and `w`.
fn float_table(file: &TextFile, num_nodes: usize) -> Result<(Vec<f32>, usize), DataError> {
    let rows = parse_rows::<f32>(file, "a number")?;
    if rows.len() != num_nodes {
        return Err(DataError::format(
            &file.path,
            format!(
                "{} lines, but the graph indicator lists {num_nodes} nodes",
                rows.len()
            ),
        ));
    }
    let w = rows.first().map_or(0, |r| r.values.len());
    let mut out = Vec::with_capacity(num_nodes * w);
    for row in &rows {
        if row.values.len() != w {
            return Err(row.width_error(file, w));
        }
        if let Some(k) = row.values.iter().position(|x| !x.is_finite()) {
            return Err(row.error(file, k, "value is not finite".into()));
        }
        out.extend(&row.values);
    }
    Ok((out, w))
}

/// One file's bytes and the path that names it in errors (inside an archive:
/// `archive.tar.xz/DS/DS_A.txt`).
struct TextFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// One parsed line: values with the 1-based column where each starts.
struct Row<T> {
    line: usize,
    values: Vec<T>,
    columns: Vec<usize>,
}

impl<T> Row<T> {
    /// An error about value `k` of this row (`k` past the end → the whole line).
    fn error(&self, file: &TextFile, k: usize, message: String) -> DataError {
        let column = self.columns.get(k).copied().unwrap_or(0);
        DataError::record(&file.path, self.line, column, message)
    }

    /// An error about the line as a whole (column 0).
    fn line_error(&self, file: &TextFile, message: String) -> DataError {
        DataError::record(&file.path, self.line, 0, message)
    }

    fn width_error(&self, file: &TextFile, want: usize) -> DataError {
        let at = want.min(self.values.len());
        let column = self.columns.get(at).copied().unwrap_or(0);
        DataError::record(
            &file.path,
            self.line,
            column,
            format!(
                "expected {want} comma-separated value(s), found {}",
                self.values.len()
            ),
        )
    }
}

/// Splits a file into comma-separated values. Trailing blank lines are ignored; a blank line
/// before the last value is an error (line numbers carry meaning in the positional files).
/// `kind` names the expected value in errors ("an integer").
fn parse_rows<T: std::str::FromStr>(file: &TextFile, kind: &str) -> Result<Vec<Row<T>>, DataError> {
    let lines: Vec<&[u8]> = file.bytes.split(|&b| b == b'\n').collect();
    let is_blank = |l: &[u8]| l.iter().all(|b| b.is_ascii_whitespace());
    let used = lines
        .iter()
        .rposition(|l| !is_blank(l))
        .map_or(0, |i| i + 1);
    let mut rows = Vec::with_capacity(used);
    for (i, raw) in lines[..used].iter().enumerate() {
        let line = i + 1;
        let text = std::str::from_utf8(raw)
            .map_err(|_| DataError::record(&file.path, line, 0, "line is not valid UTF-8"))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            return Err(DataError::record(&file.path, line, 0, "empty line"));
        }
        let mut values = Vec::new();
        let mut columns = Vec::new();
        let mut offset = 0;
        for field in text.split(',') {
            let lead = field.len() - field.trim_start().len();
            let token = field.trim();
            let column = offset + lead + 1;
            offset += field.len() + 1;
            let value = token.parse::<T>().map_err(|_| {
                DataError::record(
                    &file.path,
                    line,
                    column,
                    format!("expected {kind}, found {token:?}"),
                )
            })?;
            values.push(value);
            columns.push(column);
        }
        rows.push(Row {
            line,
            values,
            columns,
        });
    }
    Ok(rows)
}

/// The single value of each row.
fn single_column(file: &TextFile, rows: Vec<Row<i64>>) -> Result<Vec<i64>, DataError> {
    rows.into_iter()
        .map(|r| match r.values[..] {
            [v] => Ok(v),
            _ => Err(r.width_error(file, 1)),
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads the set's files from the first of `path/name`, `path`, `path/name/raw` that holds
/// `<name>_A.txt`.
fn read_folder(path: &Path, name: &str) -> Result<HashMap<String, TextFile>, DataError> {
    let a = format!("{name}_A.txt");
    let candidates = [
        path.join(name),
        path.to_path_buf(),
        path.join(name).join("raw"),
    ];
    let dir = candidates
        .iter()
        .find(|d| d.join(&a).is_file())
        .ok_or_else(|| {
            DataError::format(path, format!("no {a} here, in {name}/ or in {name}/raw/"))
        })?;
    let mut files = HashMap::new();
    for suffix in SUFFIXES {
        let p = dir.join(format!("{name}_{suffix}.txt"));
        if p.is_file() {
            let bytes = std::fs::read(&p).map_err(|e| DataError::io(&p, e))?;
            files.insert(suffix.to_string(), TextFile { path: p, bytes });
        }
    }
    Ok(files)
}

/// Reads the set's files out of a `.tar.xz` (recognised by its magic bytes) or plain `.tar`.
fn read_archive(path: &Path, name: &str) -> Result<HashMap<String, TextFile>, DataError> {
    let files = super::archive::read_members(path, |file| {
        SUFFIXES
            .iter()
            .find(|s| file == format!("{name}_{s}.txt"))
            .map(|s| s.to_string())
    })?;
    if !files.contains_key("A") {
        return Err(DataError::format(
            path,
            format!("the archive holds no {name}_A.txt"),
        ));
    }
    Ok(files
        .into_iter()
        .map(|(k, m)| {
            (
                k,
                TextFile {
                    path: m.path,
                    bytes: m.bytes,
                },
            )
        })
        .collect())
}

/// A `Write` into memory that refuses to grow past `cap` bytes.
#[cfg(test)]
mod tests {
    use super::*;

    /// `$SELFSUP_SHARED_DATA`, else `shared/data` beside the checkout; `None` (and a message)
    /// when absent.
    fn shared_data(sub: &str) -> Option<PathBuf> {
        crate::data::shared_data(sub)
    }

    /// Two graphs: nodes 1–3 (a path, one edge listed twice) and nodes 4–5 (one edge and a
    /// self-loop); graph labels 1 and -1.
    fn tiny() -> Vec<(&'static str, String)> {
        vec![
            (
                "A",
                "1, 2\n2, 1\n2, 3\n3, 2\n2, 3\n4, 5\n5, 4\n5, 5\n".into(),
            ),
            ("graph_indicator", "1\n1\n1\n2\n2\n".into()),
            ("graph_labels", "1\n-1\n".into()),
            ("node_labels", "0\n2\n0\n1\n1\n".into()),
            (
                "node_attributes",
                "1.5, 0\n0, 0\n-2, 3\n0.25, 0\n0, 1\n".into(),
            ),
        ]
    }

    fn write_dir(root: &Path, files: &[(&str, String)]) {
        let dir = root.join("TINY");
        std::fs::create_dir_all(&dir).unwrap();
        for (suffix, text) in files {
            std::fs::write(dir.join(format!("TINY_{suffix}.txt")), text).unwrap();
        }
    }

    fn with(
        files: &[(&'static str, String)],
        suffix: &str,
        text: &str,
    ) -> Vec<(&'static str, String)> {
        files
            .iter()
            .map(|(s, t)| {
                (
                    *s,
                    if *s == suffix {
                        text.to_string()
                    } else {
                        t.clone()
                    },
                )
            })
            .collect()
    }

    fn load_err(files: &[(&str, String)], with_attributes: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), files);
        load_tu(dir.path(), "TINY", with_attributes)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn tiny_folder_loads_with_node_label_one_hot() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &tiny());
        let set = load_tu(dir.path(), "TINY", false).unwrap();
        assert_eq!(set.graphs.len(), 2);
        assert_eq!(set.label_values, vec![-1, 1]);
        assert_eq!(set.labels, vec![1, 0]);
        assert_eq!(set.num_classes, 2);
        assert_eq!(set.num_features, 3);
        let (g0, g1) = (&set.graphs[0], &set.graphs[1]);
        assert_eq!(g0.num_nodes, 3);
        assert_eq!(g0.edges, vec![[0, 1], [1, 0], [1, 2], [2, 1]]);
        assert_eq!(g1.edges, vec![[0, 1], [1, 0]]);
        assert_eq!(
            g0.features.to_dense(),
            vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        );
        assert_eq!(g1.features.to_dense(), vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(g0.node_labels, vec![0, 2, 0]);
        assert_eq!(g0.num_classes, 3);
        // The set's own folder works too.
        assert_eq!(
            load_tu(&dir.path().join("TINY"), "TINY", false).unwrap(),
            set
        );
    }

    #[test]
    fn without_node_labels_degree_is_one_hot() {
        let files: Vec<_> = tiny()
            .into_iter()
            .filter(|(s, _)| *s != "node_labels")
            .collect();
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &files);
        let set = load_tu(dir.path(), "TINY", false).unwrap();
        // Degrees 1, 2, 1 and 1, 1 (the self-loop is dropped): width max degree + 1 = 3.
        assert_eq!(set.num_features, 3);
        assert_eq!(
            set.graphs[0].features.to_dense(),
            vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
        );
        assert_eq!(set.graphs[0].node_labels, vec![-1, -1, -1]);
        assert_eq!(set.graphs[0].num_classes, 0);
    }

    #[test]
    fn attributes_are_appended_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &tiny());
        let set = load_tu(dir.path(), "TINY", true).unwrap();
        assert_eq!(set.num_features, 5);
        assert_eq!(
            set.graphs[0].features.to_dense(),
            vec![
                1.0, 0.0, 0.0, 1.5, 0.0, //
                0.0, 0.0, 1.0, 0.0, 0.0, //
                1.0, 0.0, 0.0, -2.0, 3.0,
            ]
        );
        let files: Vec<_> = tiny()
            .into_iter()
            .filter(|(s, _)| *s != "node_attributes")
            .collect();
        let e = load_err(&files, true);
        assert!(e.contains("TINY_node_attributes.txt is absent"), "{e}");
    }

    #[test]
    fn tar_xz_archive_matches_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &tiny());
        let mut tar = tar::Builder::new(Vec::new());
        for (suffix, text) in tiny() {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(
                &mut header,
                format!("TINY/TINY_{suffix}.txt"),
                text.as_bytes(),
            )
            .unwrap();
        }
        let tar_bytes = tar.into_inner().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &tar_bytes[..], &mut xz).unwrap();
        let archive = dir.path().join("tiny.tar.xz");
        std::fs::write(&archive, &xz).unwrap();
        let from_archive = load_tu(&archive, "TINY", true).unwrap();
        assert_eq!(from_archive, load_tu(dir.path(), "TINY", true).unwrap());
        // Errors inside an archive name the member.
        let bad = with(&tiny(), "A", "1, 2\n1, 9\n");
        let mut tar = tar::Builder::new(Vec::new());
        for (suffix, text) in bad {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_cksum();
            tar.append_data(
                &mut header,
                format!("TINY/TINY_{suffix}.txt"),
                text.as_bytes(),
            )
            .unwrap();
        }
        let plain = dir.path().join("bad.tar");
        std::fs::write(&plain, tar.into_inner().unwrap()).unwrap();
        let e = load_tu(&plain, "TINY", false).unwrap_err().to_string();
        assert!(
            e.contains("bad.tar/TINY/TINY_A.txt:2:4: node 9 does not exist"),
            "{e}"
        );
        // Garbage and truncated archives are errors.
        std::fs::write(&plain, b"garbage").unwrap();
        assert!(load_tu(&plain, "TINY", false).is_err());
        std::fs::write(&archive, &xz[..xz.len() / 2]).unwrap();
        let e = load_tu(&archive, "TINY", false).unwrap_err().to_string();
        assert!(e.contains("tiny.tar.xz"), "{e}");
    }

    #[test]
    fn bad_records_name_file_line_and_column() {
        let t = tiny();
        let cases = [
            (
                with(&t, "A", "1, 2\n2, 9\n"),
                "TINY_A.txt:2:4: node 9 does not exist",
            ),
            (
                with(&t, "A", "1, 2\n0, 1\n"),
                "TINY_A.txt:2:1: node 0 does not exist",
            ),
            (
                with(&t, "A", "1, 2\n3, 4\n"),
                "TINY_A.txt:2:0: edge joins node 3 of graph 1 and node 4 of graph 2",
            ),
            (
                with(&t, "A", "1, 2\n1, x\n"),
                "TINY_A.txt:2:4: expected an integer, found \"x\"",
            ),
            (
                with(&t, "A", "1, 2\n1\n"),
                "TINY_A.txt:2:0: expected 2 comma-separated value(s), found 1",
            ),
            (
                with(&t, "A", "1, 2\n\n2, 1\n"),
                "TINY_A.txt:2:0: empty line",
            ),
            (
                with(&t, "graph_indicator", "1\n2\n1\n2\n2\n"),
                "TINY_graph_indicator.txt:3:1: graph id 1 after 2",
            ),
            (
                with(&t, "graph_indicator", "1\n1\n1\n2\n3\n"),
                "TINY_graph_indicator.txt:5:1: graph id 3 is outside 1..=2",
            ),
            (
                with(&t, "graph_indicator", "1\n1\n1\n2\n"),
                "TINY_A.txt:6:4: node 5 does not exist",
            ),
            (
                with(&t, "graph_labels", "1\n1.5\n"),
                "TINY_graph_labels.txt:2:1: expected an integer",
            ),
            (
                with(&t, "node_labels", "0\n2\n0\n1\n"),
                "TINY_node_labels.txt: 4 lines, but the graph indicator lists 5",
            ),
            (
                with(&t, "node_labels", "0\n2\n0\n1\n99999999999\n"),
                "too wide for a one-hot",
            ),
            (
                with(&t, "node_attributes", "1, 0\n0, 0\n-2, nan\n0, 0\n0, 1\n"),
                "TINY_node_attributes.txt:3:5: value is not finite",
            ),
            (
                with(&t, "node_attributes", "1, 0\n0\n-2, 3\n0, 0\n0, 1\n"),
                "TINY_node_attributes.txt:2:0: expected 2",
            ),
            (with(&t, "graph_labels", "\n\n"), "no usable samples"),
        ];
        for (files, want) in cases {
            let e = load_err(&files, true);
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        let files: Vec<_> = tiny().into_iter().filter(|(s, _)| *s != "A").collect();
        let e = load_err(&files, false);
        assert!(e.contains("no TINY_A.txt here"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &t);
        std::fs::write(dir.path().join("TINY/TINY_A.txt"), b"1, 2\n\xff\xfe\n").unwrap();
        let e = load_tu(dir.path(), "TINY", false).unwrap_err().to_string();
        assert!(e.contains("TINY_A.txt:2:0: line is not valid UTF-8"), "{e}");
    }

    #[test]
    fn real_mutag_and_proteins() {
        let Some(archive) = shared_data("tudataset/tu_mutag_proteins.tar.xz") else {
            return;
        };
        // (name, graphs, nodes, undirected edges, {label: count}, node-label values)
        type Expected = (
            &'static str,
            usize,
            usize,
            usize,
            &'static [(i64, usize)],
            usize,
        );
        let expected: [Expected; 2] = [
            ("MUTAG", 188, 3371, 3721, &[(-1, 63), (1, 125)], 7),
            ("PROTEINS", 1113, 43_471, 81_044, &[(1, 663), (2, 450)], 3),
        ];
        for (name, graphs, nodes, edges, counts, node_values) in expected {
            let set = load_tu(&archive, name, false).unwrap();
            let n: usize = set.graphs.iter().map(|g| g.num_nodes).sum();
            let e: usize = set.graphs.iter().map(|g| g.edges.len()).sum::<usize>() / 2;
            let got: Vec<(i64, usize)> = set
                .label_values
                .iter()
                .enumerate()
                .map(|(c, &v)| (v, set.labels.iter().filter(|&&l| l == c as i64).count()))
                .collect();
            println!(
                "{name}: {} graphs, {n} nodes, {e} undirected edges, labels {got:?}, {} features",
                set.graphs.len(),
                set.num_features
            );
            assert_eq!((set.graphs.len(), n, e), (graphs, nodes, edges));
            assert_eq!(got, counts);
            assert_eq!(set.num_features, node_values);
            if name == "PROTEINS" {
                let with_attrs = load_tu(&archive, name, true).unwrap();
                assert_eq!(with_attrs.num_features, node_values + 1);
                println!(
                    "{name} with attributes: {} features",
                    with_attrs.num_features
                );
            }
        }
    }
}
