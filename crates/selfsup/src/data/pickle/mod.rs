//! A small, safe reader for Python pickles (protocols 0–2, plus a few cheap later opcodes).
//!
//! The Planetoid citation benchmarks ship as Python-2 pickles of scipy/numpy objects. Python's own
//! unpickler runs arbitrary code named by the stream; this reader never does: `GLOBAL` only records
//! a name, and `REDUCE`/`NEWOBJ`/`BUILD` only build a generic [`Value::Object`] tree. Separate
//! functions then recognise the few shapes we need — a numpy array ([`ndarray`]), a scipy CSR
//! matrix ([`csr_matrix`]) and a dict of int → list of int ([`int_list_dict`]).
//!
//! Pickle memo entries are references, not copies (an object can be stored, fetched, and then
//! mutated by `BUILD`/`APPEND`/`SETITEMS`), so the machine keeps every object in an arena and the
//! stack and memo hold arena ids; the tree is materialised at `STOP` with a depth limit (cycles are
//! refused) and a size budget (a stream that re-uses one object a million times cannot blow up).

use crate::error::DataError;
use std::collections::HashMap;
use std::path::Path;

/// A decoded pickle value. Python-2 `str` is kept as [`Value::Bytes`] (interpret as latin-1).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Python-2 `str` / Python-3 `bytes`.
    Bytes(Vec<u8>),
    /// Python-2 `unicode` / Python-3 `str`.
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Entries in stream order (keys may repeat; the last one wins, as in Python).
    Dict(Vec<(Value, Value)>),
    /// A class or function named by `GLOBAL`, as `module.name`; never looked up.
    Global(String),
    /// The result of calling `class(*args)` (`REDUCE`/`NEWOBJ`/`INST`/`OBJ`), never executed.
    Object {
        class: String,
        args: Vec<Value>,
        /// What `BUILD` passed to `__setstate__`.
        state: Option<Box<Value>>,
        /// Entries added with `SETITEM(S)` (dict subclasses such as `collections.defaultdict`).
        dict_items: Vec<(Value, Value)>,
        /// Entries added with `APPEND(S)` (list subclasses).
        list_items: Vec<Value>,
    },
}

impl Value {
    /// The text of a `Str`, or of a `Bytes` read as latin-1 (how Python 2 `str` decodes).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bytes(b) => Some(b.iter().map(|&c| c as char).collect()),
            _ => None,
        }
    }

    /// The raw bytes of a `Bytes`, or of a `Str` whose characters are all ≤ U+00FF (a Python-2
    /// `str` that was loaded with `encoding='latin1'` and pickled again).
    pub fn as_bytes(&self) -> Option<Vec<u8>> {
        match self {
            Value::Bytes(b) => Some(b.clone()),
            Value::Str(s) => s.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect(),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The value stored under the text key `key` of a dict (last occurrence wins).
    pub fn get(&self, key: &str) -> Option<&Value> {
        let items = match self {
            Value::Dict(items) => items,
            Value::Object { dict_items, .. } => dict_items,
            _ => return None,
        };
        items
            .iter()
            .rev()
            .find(|(k, _)| k.as_text().as_deref() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name of the kind of value, for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Str(_) => "str".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::List(_) => "list".into(),
            Value::Dict(_) => "dict".into(),
            Value::Global(g) => format!("global {g}"),
            Value::Object { class, .. } => format!("{class} object"),
        }
    }
}

/// Reads and decodes the pickle file at `path`.
pub fn read_pickle(path: &Path) -> Result<Value, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse(&bytes, path)
}

/// Decodes one pickle from `bytes` (bytes after its `STOP` are ignored, as Python does).
/// `path` only names the source in errors, which also give the byte offset and opcode.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Value, DataError> {
    let mut m = Machine {
        path,
        data: bytes,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.run()?;
    // Legitimate pickles share only small objects (dtypes, classes); the budget bounds what a
    // hostile stream that re-uses one large object many times could expand to.
    let mut budget = 2 * bytes.len() + 4096;
    m.materialise(root, 0, &mut budget)
}

/// Nesting deeper than this is refused (it is how a self-referencing object shows up).
const MAX_DEPTH: usize = 256;

type Id = usize;

/// One object of the unpickling arena; containers refer to other objects by id.
enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Str(String),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(String),
    Object {
        class: String,
        args: Vec<Id>,
        state: Option<Id>,
        dict_items: Vec<(Id, Id)>,
        list_items: Vec<Id>,
    },
}

struct Machine<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    /// Stack heights at each open `MARK` (Python's "metastack").
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

/// An error inside the machine: message only; the caller adds file, offset and opcode.
type Step<T> = Result<T, String>;

impl<'a> Machine<'a> {
    fn run(&mut self) -> Result<Id, DataError> {
        loop {
            let at = self.pos;
            let Some(&op) = self.data.get(at) else {
                return Err(DataError::format(
                    self.path,
                    format!("pickle truncated at byte {at}: no STOP opcode"),
                ));
            };
            self.pos += 1;
            match self.step(op) {
                Ok(Some(root)) => return Ok(root),
                Ok(None) => {}
                Err(msg) => {
                    return Err(DataError::format(
                        self.path,
                        format!("pickle byte {at}, opcode {}: {msg}", opcode_name(op)),
                    ))
                }
            }
        }
    }

    /// Executes one opcode; returns the root at `STOP`.
    fn step(&mut self, op: u8) -> Step<Option<Id>> {
        match op {
            0x80 => {
                // PROTO: the version only tells which opcodes may follow; unknown ones fail below.
                let v = self.u8()?;
                if v > 5 {
                    return Err(format!("unsupported protocol {v}"));
                }
            }
            0x95 => {
                // FRAME (protocol 4): framing only; the opcodes inside are read as usual.
                self.take(8)?;
            }
            b'.' => {
                let root = self.pop()?;
                if !self.marks.is_empty() || !self.stack.is_empty() {
                    return Err(format!(
                        "{} unclosed MARK(s) and {} extra stack item(s) at STOP",
                        self.marks.len(),
                        self.stack.len()
                    ));
                }
                return Ok(Some(root));
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let top = self.top()?;
                self.stack.push(top);
            }
            b'N' => self.push(Node::None),
            0x88 => self.push(Node::Bool(true)),
            0x89 => self.push(Node::Bool(false)),
            b'I' => {
                let line = self.line()?;
                let node = match line.as_str() {
                    "00" => Node::Bool(false),
                    "01" => Node::Bool(true),
                    t => Node::Int(parse_text_int(t)?),
                };
                self.push(node);
            }
            b'L' => {
                let line = self.line()?;
                let t = line.strip_suffix('L').unwrap_or(&line);
                let v = parse_text_int(t)?;
                self.push(Node::Int(v));
            }
            b'J' => {
                let v = i32::from_le_bytes(self.array()?);
                self.push(Node::Int(i64::from(v)));
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Node::Int(i64::from(v)));
            }
            b'M' => {
                let v = u16::from_le_bytes(self.array()?);
                self.push(Node::Int(i64::from(v)));
            }
            0x8a => {
                let n = usize::from(self.u8()?);
                let v = long_from_le(self.take(n)?)?;
                self.push(Node::Int(v));
            }
            0x8b => {
                let n = self.len_i32()?;
                let v = long_from_le(self.take(n)?)?;
                self.push(Node::Int(v));
            }
            b'F' => {
                let line = self.line()?;
                let v: f64 = line
                    .trim()
                    .parse()
                    .map_err(|_| format!("not a float: {line:?}"))?;
                self.push(Node::Float(v));
            }
            b'G' => {
                let v = f64::from_be_bytes(self.array()?);
                self.push(Node::Float(v));
            }
            b'T' => {
                let n = self.len_i32()?;
                let b = self.take(n)?.to_vec();
                self.push(Node::Bytes(b));
            }
            b'U' | b'C' => {
                let n = usize::from(self.u8()?);
                let b = self.take(n)?.to_vec();
                self.push(Node::Bytes(b));
            }
            b'B' => {
                let n = self.len_u32()?;
                let b = self.take(n)?.to_vec();
                self.push(Node::Bytes(b));
            }
            b'X' => {
                let n = self.len_u32()?;
                let s = utf8(self.take(n)?)?;
                self.push(Node::Str(s));
            }
            0x8c => {
                let n = usize::from(self.u8()?);
                let s = utf8(self.take(n)?)?;
                self.push(Node::Str(s));
            }
            b')' => self.push(Node::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Node::Tuple(items));
            }
            b']' => self.push(Node::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items));
            }
            b'a' => {
                let v = self.pop()?;
                let target = self.top()?;
                self.append(target, vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                let target = self.top()?;
                self.append(target, items)?;
            }
            b'}' => self.push(Node::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark()?;
                let pairs = pairs(&items)?;
                self.push(Node::Dict(pairs));
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?;
                self.set_items(target, vec![(k, v)])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                let pairs = pairs(&items)?;
                let target = self.top()?;
                self.set_items(target, pairs)?;
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.push(Node::Global(format!("{module}.{name}")));
            }
            0x93 => {
                // STACK_GLOBAL (protocol 4): module and name come from the stack.
                let name = self.pop()?;
                let module = self.pop()?;
                let (m, n) = (self.text_of(module)?, self.text_of(name)?);
                self.push(Node::Global(format!("{m}.{n}")));
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let class = self.global_name(callable)?;
                let args = match self.node(args)? {
                    Node::Tuple(items) => items.clone(),
                    _ => return Err("arguments are not a tuple".into()),
                };
                self.push(object(class, args));
            }
            b'i' => {
                // INST (protocol 0): class named inline, arguments above the mark.
                let module = self.line()?;
                let name = self.line()?;
                let args = self.pop_mark()?;
                self.push(object(format!("{module}.{name}"), args));
            }
            b'o' => {
                // OBJ (protocol 1): class and arguments above the mark.
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err("no class above the MARK".into());
                }
                let callable = items.remove(0);
                let class = self.global_name(callable)?;
                self.push(object(class, items));
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?;
                match self.node_mut(target)? {
                    Node::Object { state: s, .. } => *s = Some(state),
                    _ => return Err("BUILD on something that is not an object".into()),
                }
            }
            b'p' => {
                let key = parse_text_int(&self.line()?)?;
                let key = u64::try_from(key).map_err(|_| format!("negative memo key {key}"))?;
                self.put(key)?;
            }
            b'q' => {
                let key = u64::from(self.u8()?);
                self.put(key)?;
            }
            b'r' => {
                let key = u64::from(u32::from_le_bytes(self.array()?));
                self.put(key)?;
            }
            0x94 => {
                let key = self.memo.len() as u64;
                self.put(key)?;
            }
            b'g' => {
                let key = parse_text_int(&self.line()?)?;
                let key = u64::try_from(key).map_err(|_| format!("negative memo key {key}"))?;
                self.get(key)?;
            }
            b'h' => {
                let key = u64::from(self.u8()?);
                self.get(key)?;
            }
            b'j' => {
                let key = u64::from(u32::from_le_bytes(self.array()?));
                self.get(key)?;
            }
            _ => return Err("unsupported or invalid opcode".into()),
        }
        Ok(None)
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    /// The bottom of the current MARK frame: items below it are out of reach until the mark closes.
    fn frame_base(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Step<Id> {
        if self.stack.len() <= self.frame_base() {
            return Err("stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&self) -> Step<Id> {
        if self.stack.len() <= self.frame_base() {
            return Err("stack underflow".into());
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "stack underflow".into())
    }

    /// Pops everything above the innermost MARK, and the mark.
    fn pop_mark(&mut self) -> Step<Vec<Id>> {
        let mark = self.marks.pop().ok_or("no MARK to close")?;
        if mark > self.stack.len() {
            return Err("MARK lies above the stack top".into());
        }
        Ok(self.stack.split_off(mark))
    }

    fn put(&mut self, key: u64) -> Step<()> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn get(&mut self, key: u64) -> Step<()> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| format!("memo key {key} was never stored"))?;
        self.stack.push(id);
        Ok(())
    }

    fn node(&self, id: Id) -> Step<&Node> {
        self.nodes
            .get(id)
            .ok_or_else(|| "dangling reference".into())
    }

    fn node_mut(&mut self, id: Id) -> Step<&mut Node> {
        self.nodes
            .get_mut(id)
            .ok_or_else(|| "dangling reference".into())
    }

    fn append(&mut self, target: Id, items: Vec<Id>) -> Step<()> {
        match self.node_mut(target)? {
            Node::List(v) | Node::Object { list_items: v, .. } => {
                v.extend(items);
                Ok(())
            }
            _ => Err("APPEND to something that is not a list".into()),
        }
    }

    fn set_items(&mut self, target: Id, items: Vec<(Id, Id)>) -> Step<()> {
        match self.node_mut(target)? {
            Node::Dict(v) | Node::Object { dict_items: v, .. } => {
                v.extend(items);
                Ok(())
            }
            _ => Err("SETITEM on something that is not a dict".into()),
        }
    }

    fn global_name(&self, id: Id) -> Step<String> {
        match self.node(id)? {
            Node::Global(name) => Ok(name.clone()),
            _ => Err("the callable is not a GLOBAL class reference".into()),
        }
    }

    fn text_of(&self, id: Id) -> Step<String> {
        match self.node(id)? {
            Node::Str(s) => Ok(s.clone()),
            Node::Bytes(b) => Ok(b.iter().map(|&c| c as char).collect()),
            _ => Err("expected a string".into()),
        }
    }

    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "truncated: needs {n} byte(s), {} left",
                    self.data.len() - self.pos.min(self.data.len())
                )
            })?;
        let data: &'a [u8] = self.data;
        let s = &data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Step<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Step<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn len_i32(&mut self) -> Step<usize> {
        let n = i32::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| format!("negative length {n}"))
    }

    fn len_u32(&mut self) -> Step<usize> {
        let n = u32::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| format!("length {n} does not fit in memory"))
    }

    /// A newline-terminated argument of the text opcodes (latin-1, newline dropped).
    fn line(&mut self) -> Step<String> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or("truncated: no newline after a text argument")?;
        let s = self.take(n + 1)?;
        Ok(s[..n].iter().map(|&c| c as char).collect())
    }

    /// Turns arena object `id` into a [`Value`] tree.
    fn materialise(&self, id: Id, depth: usize, budget: &mut usize) -> Result<Value, DataError> {
        let fail = |msg: &str| DataError::format(self.path, format!("pickle: {msg}"));
        if depth > MAX_DEPTH {
            return Err(fail(&format!(
                "objects nested deeper than {MAX_DEPTH} (a self-referencing object?)"
            )));
        }
        let node = self
            .nodes
            .get(id)
            .ok_or_else(|| fail("dangling reference"))?;
        let cost = 1 + match node {
            Node::Bytes(b) => b.len(),
            Node::Str(s) => s.len(),
            _ => 0,
        };
        *budget = budget.checked_sub(cost).ok_or_else(|| {
            fail("shared objects expand to far more data than the file holds (refused)")
        })?;
        let list = |ids: &[Id], budget: &mut usize| -> Result<Vec<Value>, DataError> {
            ids.iter()
                .map(|&i| self.materialise(i, depth + 1, budget))
                .collect()
        };
        let dict = |pairs: &[(Id, Id)], budget: &mut usize| -> Result<_, DataError> {
            pairs
                .iter()
                .map(|&(k, v)| {
                    Ok((
                        self.materialise(k, depth + 1, budget)?,
                        self.materialise(v, depth + 1, budget)?,
                    ))
                })
                .collect::<Result<Vec<_>, DataError>>()
        };
        Ok(match node {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::Float(f) => Value::Float(*f),
            Node::Bytes(b) => Value::Bytes(b.clone()),
            Node::Str(s) => Value::Str(s.clone()),
            Node::Tuple(ids) => Value::Tuple(list(ids, budget)?),
            Node::List(ids) => Value::List(list(ids, budget)?),
            Node::Dict(pairs) => Value::Dict(dict(pairs, budget)?),
            Node::Global(g) => Value::Global(g.clone()),
            Node::Object {
                class,
                args,
                state,
                dict_items,
                list_items,
            } => Value::Object {
                class: class.clone(),
                args: list(args, budget)?,
                state: match state {
                    Some(s) => Some(Box::new(self.materialise(*s, depth + 1, budget)?)),
                    None => None,
                },
                dict_items: dict(dict_items, budget)?,
                list_items: list(list_items, budget)?,
            },
        })
    }
}

fn object(class: String, args: Vec<Id>) -> Node {
    Node::Object {
        class,
        args,
        state: None,
        dict_items: Vec::new(),
        list_items: Vec::new(),
    }
}

fn pairs(items: &[Id]) -> Step<Vec<(Id, Id)>> {
    if !items.len().is_multiple_of(2) {
        return Err(format!(
            "odd number of items ({}) for key/value pairs",
            items.len()
        ));
    }
    Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

fn parse_text_int(t: &str) -> Step<i64> {
    t.trim()
        .parse()
        .map_err(|_| format!("not an integer: {t:?}"))
}

/// A little-endian two's-complement integer of `LONG1`/`LONG4`; more than 64 bits is refused.
fn long_from_le(b: &[u8]) -> Step<i64> {
    if b.is_empty() {
        return Ok(0);
    }
    if b.len() > 8 {
        return Err(format!(
            "integer of {} bytes does not fit in 64 bits",
            b.len()
        ));
    }
    let negative = b[b.len() - 1] & 0x80 != 0;
    let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
    buf[..b.len()].copy_from_slice(b);
    Ok(i64::from_le_bytes(buf))
}

fn utf8(b: &[u8]) -> Step<String> {
    String::from_utf8(b.to_vec()).map_err(|e| format!("invalid UTF-8: {e}"))
}

fn opcode_name(op: u8) -> String {
    let name = match op {
        0x80 => "PROTO",
        0x95 => "FRAME",
        b'.' => "STOP",
        b'(' => "MARK",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'N' => "NONE",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        b'I' => "INT",
        b'L' => "LONG",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'M' => "BININT2",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'F' => "FLOAT",
        b'G' => "BINFLOAT",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        b'X' => "BINUNICODE",
        0x8c => "SHORT_BINUNICODE",
        b')' => "EMPTY_TUPLE",
        b't' => "TUPLE",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        b']' => "EMPTY_LIST",
        b'l' => "LIST",
        b'a' => "APPEND",
        b'e' => "APPENDS",
        b'}' => "EMPTY_DICT",
        b'd' => "DICT",
        b's' => "SETITEM",
        b'u' => "SETITEMS",
        b'c' => "GLOBAL",
        0x93 => "STACK_GLOBAL",
        b'R' => "REDUCE",
        0x81 => "NEWOBJ",
        b'i' => "INST",
        b'o' => "OBJ",
        b'b' => "BUILD",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        0x94 => "MEMOIZE",
        b'g' => "GET",
        b'h' => "BINGET",
        b'j' => "LONG_BINGET",
        _ => return format!("0x{op:02x}"),
    };
    format!("{name} (0x{op:02x})")
}

mod numpy;
mod scipy;
pub use numpy::*;
pub use scipy::*;

/// Helpers shared by the tests of the graph sources: a tiny pickle writer that lays objects out the
/// way Python 2's `cPickle` (protocol 2) does in the Planetoid files, and the shared-data lookup.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;

    /// `$SELFSUP_SHARED_DATA`, else `shared/data` beside the checkout (as the other real-data
    /// tests find it); `None` when absent so that tests can skip.
    pub fn shared_data(sub: &str) -> Option<PathBuf> {
        crate::data::shared_data(sub)
    }

    /// Emits protocol-2 opcodes; memoises like cPickle (`BINPUT`, `LONG_BINPUT` past 255).
    #[derive(Default)]
    pub struct Writer {
        pub buf: Vec<u8>,
        memo: u32,
        /// Memo slots of the numpy globals and dtypes already written (cPickle re-uses them).
        reconstruct: Option<u32>,
        ndarray_cls: Option<u32>,
        dtype_cls: Option<u32>,
        dtypes: Vec<(String, u32)>,
    }

    impl Writer {
        pub fn new() -> Self {
            let mut w = Writer::default();
            w.buf.extend([0x80, 2]);
            w
        }
        pub fn finish(mut self) -> Vec<u8> {
            self.buf.push(b'.');
            self.buf
        }
        pub fn put(&mut self) -> u32 {
            self.memo += 1;
            let k = self.memo;
            if k < 256 {
                self.buf.extend([b'q', k as u8]);
            } else {
                self.buf.push(b'r');
                self.buf.extend(k.to_le_bytes());
            }
            k
        }
        pub fn get(&mut self, k: u32) {
            if k < 256 {
                self.buf.extend([b'h', k as u8]);
            } else {
                self.buf.push(b'j');
                self.buf.extend(k.to_le_bytes());
            }
        }
        pub fn int(&mut self, v: i64) {
            if (0..256).contains(&v) {
                self.buf.extend([b'K', v as u8]);
            } else if (0..65536).contains(&v) {
                self.buf.push(b'M');
                self.buf.extend((v as u16).to_le_bytes());
            } else {
                self.buf.push(b'J');
                self.buf.extend((v as i32).to_le_bytes());
            }
        }
        pub fn str(&mut self, s: &[u8]) {
            if s.len() < 256 {
                self.buf.extend([b'U', s.len() as u8]);
            } else {
                self.buf.push(b'T');
                self.buf.extend((s.len() as i32).to_le_bytes());
            }
            self.buf.extend(s);
        }
        pub fn global(&mut self, module: &str, name: &str) -> u32 {
            self.buf.push(b'c');
            self.buf.extend(format!("{module}\n{name}\n").bytes());
            self.put()
        }
        pub fn op(&mut self, op: u8) {
            self.buf.push(op);
        }

        /// A numpy array exactly as numpy 1.x pickles it under protocol 2.
        pub fn ndarray(&mut self, code: &str, shape: &[usize], fortran: bool, raw: &[u8]) {
            match self.reconstruct {
                Some(k) => self.get(k),
                None => {
                    self.reconstruct = Some(self.global("numpy.core.multiarray", "_reconstruct"))
                }
            }
            match self.ndarray_cls {
                Some(k) => self.get(k),
                None => self.ndarray_cls = Some(self.global("numpy", "ndarray")),
            }
            self.int(0);
            self.op(0x85);
            self.str(b"b");
            self.op(0x87);
            self.op(b'R');
            self.put();
            self.op(b'(');
            self.int(1);
            self.op(b'(');
            for &d in shape {
                self.int(d as i64);
            }
            self.op(b't');
            if let Some(&(_, k)) = self.dtypes.iter().find(|(c, _)| c == code) {
                self.get(k);
            } else {
                match self.dtype_cls {
                    Some(k) => self.get(k),
                    None => self.dtype_cls = Some(self.global("numpy", "dtype")),
                }
                self.str(code.as_bytes());
                self.int(0);
                self.int(1);
                self.op(0x87);
                self.op(b'R');
                // Memoised before BUILD, as cPickle does: later BINGETs must see the built state.
                let k = self.put();
                self.dtypes.push((code.to_string(), k));
                self.op(b'(');
                self.int(3);
                self.str(if code == "b1" || code == "u1" {
                    b"|"
                } else {
                    b"<"
                });
                self.op(b'N');
                self.op(b'N');
                self.op(b'N');
                self.int(-1);
                self.int(-1);
                self.int(0);
                self.op(b't');
                self.op(b'b');
            }
            self.op(if fortran { 0x88 } else { 0x89 });
            self.str(raw);
            self.op(b't');
            self.op(b'b');
        }

        /// A `scipy.sparse.csr.csr_matrix` with int32 index arrays and float32 data.
        pub fn csr(
            &mut self,
            rows: usize,
            cols: usize,
            indptr: &[i32],
            indices: &[i32],
            data: &[f32],
        ) {
            self.global("scipy.sparse.csr", "csr_matrix");
            self.op(b')');
            self.op(0x81);
            self.put();
            self.op(b'}');
            self.put();
            self.op(b'(');
            self.str(b"format");
            self.str(b"csr");
            self.str(b"_shape");
            self.int(rows as i64);
            self.int(cols as i64);
            self.op(0x86);
            self.str(b"indptr");
            self.ndarray("i4", &[indptr.len()], false, &le_i32(indptr));
            self.str(b"indices");
            self.ndarray("i4", &[indices.len()], false, &le_i32(indices));
            self.str(b"data");
            let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.ndarray("f4", &[data.len()], false, &raw);
            self.op(b'u');
            self.op(b'b');
        }

        /// A `collections.defaultdict(list)` of adjacency lists, batched like cPickle (SETITEMS of
        /// up to 1000 pairs, APPEND for one item, MARK..APPENDS for more).
        pub fn defaultdict(&mut self, entries: &[(i64, Vec<i64>)]) {
            self.global("collections", "defaultdict");
            self.global("__builtin__", "list");
            self.op(0x85);
            self.op(b'R');
            self.put();
            for chunk in entries.chunks(1000) {
                self.op(b'(');
                for (k, v) in chunk {
                    self.int(*k);
                    self.op(b']');
                    self.put();
                    match v.len() {
                        0 => {}
                        1 => {
                            self.int(v[0]);
                            self.op(b'a');
                        }
                        _ => {
                            self.op(b'(');
                            for &x in v {
                                self.int(x);
                            }
                            self.op(b'e');
                        }
                    }
                }
                self.op(b'u');
            }
        }
    }

    pub fn le_i32(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// A dense int32 one-hot matrix pickled as numpy does (`rows × classes`; `None` = all-zero row).
    pub fn one_hot(labels: &[Option<usize>], classes: usize) -> Vec<u8> {
        let mut dense = vec![0i32; labels.len() * classes];
        for (r, l) in labels.iter().enumerate() {
            if let Some(c) = l {
                dense[r * classes + c] = 1;
            }
        }
        let mut w = Writer::new();
        w.ndarray("i4", &[labels.len(), classes], false, &le_i32(&dense));
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn p() -> &'static Path {
        Path::new("t.pkl")
    }

    #[test]
    fn parses_scalars_and_containers() {
        let mut b = vec![0x80, 2, b'('];
        b.extend([b'K', 5]);
        b.extend([b'M', 0x2c, 0x01]); // 300
        b.push(b'J');
        b.extend((-7i32).to_le_bytes());
        b.extend([0x8a, 2, 0x00, 0x80]); // LONG1: -32768
        b.push(b'G');
        b.extend(1.5f64.to_be_bytes());
        b.extend([b'N', 0x88, 0x89]);
        b.extend([0x8c, 2, 0xc3, 0xa9]); // 'é'
        b.extend([b'U', 2, b'h', 0xe9]); // Python-2 str, latin-1
        b.extend([b')', b'}', b']']);
        b.extend(b"I01\nL12L\n");
        b.extend([b't', b'.']);
        let v = parse(&b, p()).unwrap();
        assert_eq!(
            v,
            Value::Tuple(vec![
                Value::Int(5),
                Value::Int(300),
                Value::Int(-7),
                Value::Int(-32768),
                Value::Float(1.5),
                Value::None,
                Value::Bool(true),
                Value::Bool(false),
                Value::Str("é".into()),
                Value::Bytes(vec![b'h', 0xe9]),
                Value::Tuple(vec![]),
                Value::Dict(vec![]),
                Value::List(vec![]),
                Value::Bool(true),
                Value::Int(12),
            ])
        );
        if let Value::Tuple(items) = &v {
            assert_eq!(items[9].as_text().as_deref(), Some("hé"));
        }
    }

    #[test]
    fn memo_entries_are_references_not_copies() {
        // EMPTY_LIST, BINPUT 0, BINGET 0, BININT1 1, APPEND, TUPLE2: the list is stored, fetched,
        // and then appended to: both tuple items are the one list [1].
        let b = [0x80, 2, b']', b'q', 0, b'h', 0, b'K', 1, b'a', 0x86, b'.'];
        let one = Value::List(vec![Value::Int(1)]);
        assert_eq!(
            parse(&b, p()).unwrap(),
            Value::Tuple(vec![one.clone(), one])
        );
    }

    #[test]
    fn global_reduce_build_only_describe_objects() {
        let b = b"\x80\x02cos\nsystem\nq\x00U\x02lsq\x01\x85R}U\x01aK\x07sb.";
        let v = parse(b, p()).unwrap();
        assert_eq!(
            v,
            Value::Object {
                class: "os.system".into(),
                args: vec![Value::Bytes(b"ls".to_vec())],
                state: Some(Box::new(Value::Dict(vec![(
                    Value::Bytes(b"a".to_vec()),
                    Value::Int(7)
                )]))),
                dict_items: vec![],
                list_items: vec![],
            }
        );
    }

    #[test]
    fn ndarrays_decode_dtypes_and_fortran_order() {
        let mut w = Writer::new();
        w.op(b'(');
        w.ndarray("i4", &[2, 3], false, &le_i32(&[1, 2, 3, 4, 5, 6]));
        w.ndarray("i4", &[2, 3], true, &le_i32(&[1, 4, 2, 5, 3, 6]));
        let f8: Vec<u8> = [0.5f64, -2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        w.ndarray("f8", &[2], false, &f8);
        w.ndarray("b1", &[3], false, &[1, 0, 1]);
        w.ndarray("i8", &[1], false, &(-3i64).to_le_bytes());
        w.op(b'l');
        let v = parse(&w.finish(), p()).unwrap();
        let Value::List(items) = v else { panic!() };
        let arrays: Vec<NdArray> = items
            .iter()
            .map(|a| ndarray(a, p(), "a").unwrap())
            .collect();
        assert_eq!(arrays[0].shape, vec![2, 3]);
        assert_eq!(arrays[0].data, ArrayData::I32(vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(arrays[1], arrays[0]);
        assert_eq!(arrays[2].data, ArrayData::F64(vec![0.5, -2.0]));
        assert_eq!(arrays[3].data, ArrayData::Bool(vec![true, false, true]));
        assert_eq!(arrays[4].as_i64(), Some(vec![-3]));
    }

    #[test]
    fn ndarray_with_wrong_byte_count_is_an_error() {
        let mut w = Writer::new();
        w.ndarray("i4", &[3], false, &le_i32(&[1, 2]));
        let v = parse(&w.finish(), p()).unwrap();
        let e = ndarray(&v, p(), "y").unwrap_err().to_string();
        assert!(
            e.contains("t.pkl") && e.contains("y:") && e.contains("12 bytes"),
            "{e}"
        );
    }

    #[test]
    fn csr_matrix_from_a_handmade_pickle() {
        let mut w = Writer::new();
        w.csr(3, 4, &[0, 2, 2, 3], &[0, 3, 1], &[1.0, 2.0, 0.5]);
        let v = parse(&w.finish(), p()).unwrap();
        let m = csr_matrix(&v, p(), "x").unwrap();
        assert_eq!((m.rows, m.cols, m.nnz()), (3, 4, 3));
        assert_eq!(
            m.to_dense(),
            vec![1.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0]
        );
    }

    #[test]
    fn csr_matrix_invariants_are_checked() {
        let cases: [(&[i32], &[i32], &str); 4] = [
            (&[0, 2, 1, 3], &[0, 3, 1], "decreases at row 1"),
            (&[0, 2, 2], &[0, 3, 1], "indptr has 3 entries"),
            (&[0, 2, 2, 3], &[0, 4, 1], "stored entry 1 has column 4"),
            (&[0, 2, 2, 2], &[0, 3, 1], "indptr ends at 2"),
        ];
        for (indptr, indices, want) in cases {
            let mut w = Writer::new();
            w.csr(3, 4, indptr, indices, &[1.0, 2.0, 0.5]);
            let v = parse(&w.finish(), p()).unwrap();
            let e = csr_matrix(&v, p(), "x").unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
    }

    #[test]
    fn defaultdict_of_int_lists() {
        let mut entries: Vec<(i64, Vec<i64>)> = (0..1200).map(|k| (k, vec![k + 1])).collect();
        entries[3].1 = vec![];
        entries[4].1 = vec![70_000, 2, 1];
        let mut w = Writer::new();
        w.defaultdict(&entries);
        let bytes = w.finish();
        // Enough memo slots to need LONG_BINPUT, and two SETITEMS batches.
        assert!(bytes.contains(&b'r'));
        let v = parse(&bytes, p()).unwrap();
        assert_eq!(int_list_dict(&v, p(), "graph").unwrap(), entries);
    }

    #[test]
    fn repeated_dict_keys_keep_the_last_value() {
        let b = b"\x80\x02}(K\x01]K\x02aK\x01]K\x03au.";
        let v = parse(b, p()).unwrap();
        assert_eq!(int_list_dict(&v, p(), "g").unwrap(), vec![(1, vec![3])]);
    }

    #[test]
    fn truncated_pickles_are_errors_not_panics() {
        let mut w = Writer::new();
        w.csr(3, 4, &[0, 2, 2, 3], &[0, 3, 1], &[1.0, 2.0, 0.5]);
        let full = w.finish();
        for n in 0..full.len() {
            let e = parse(&full[..n], p()).unwrap_err().to_string();
            assert!(e.starts_with("t.pkl: "), "{e}");
        }
        assert!(parse(&full, p()).is_ok());
    }

    #[test]
    fn malformed_streams_name_offset_and_opcode() {
        let cases: [(&[u8], &str); 10] = [
            (b"\x80\x02\xff.", "byte 2, opcode 0xff"),
            (b"\x80\x02a.", "APPEND (0x61): stack underflow"),
            (b"\x80\x02h\x05.", "memo key 5 was never stored"),
            (b"\x80\x02}K\x01K\x02u.", "no MARK to close"),
            (b"\x80\x02T\xff\xff\xff\xff.", "negative length -1"),
            (b"\x80\x02T\x00\x00\x00\x10.", "truncated"),
            (b"\x80\x02K\x01K\x02.", "extra stack item"),
            (b"\x80\x02(K\x01K\x02K\x03d.", "odd number of items"),
            (b"\x80\x02K\x01)R.", "not a GLOBAL"),
            (b"\x80\x02(N0.", "stack underflow"),
        ];
        for (bytes, want) in cases {
            let e = parse(bytes, p()).unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want})");
        }
    }

    #[test]
    fn self_referencing_list_is_refused() {
        // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND: a list that contains itself.
        let e = parse(b"\x80\x02]q\x00h\x00a.", p())
            .unwrap_err()
            .to_string();
        assert!(e.contains("self-referencing"), "{e}");
    }

    #[test]
    fn shared_objects_cannot_expand_without_bound() {
        // A 1000-byte string shared 30 times in a tuple, then that tuple 30 times, …
        let mut b = vec![0x80, 2, b'T'];
        b.extend(1000i32.to_le_bytes());
        b.extend([b'x'; 1000]);
        for level in 0..6u8 {
            b.extend([b'q', level, b'0', b'(']);
            b.extend(std::iter::repeat_n([b'h', level], 30).flatten());
            b.push(b't');
        }
        b.push(b'.');
        let e = parse(&b, p()).unwrap_err().to_string();
        assert!(e.contains("expand"), "{e}");
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut w = Writer::new();
        w.csr(3, 4, &[0, 2, 2, 3], &[0, 3, 1], &[1.0, 2.0, 0.5]);
        let valid = w.finish();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for i in 0..3000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let n = rng.gen_range(0..64);
                let mut b = vec![0x80, 2];
                b.extend((0..n).map(|_| rng.gen::<u8>()));
                b
            } else {
                let mut b = valid.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let k = rng.gen_range(0..b.len());
                    b[k] = rng.gen();
                }
                b
            };
            if let Ok(v) = parse(&bytes, p()) {
                // The interpreters must be just as robust on whatever did parse.
                let _ = csr_matrix(&v, p(), "x");
                let _ = ndarray(&v, p(), "x");
                let _ = int_list_dict(&v, p(), "x");
            }
        }
    }

    #[test]
    fn real_planetoid_pickles_parse() {
        let Some(dir) = shared_data("planetoid") else {
            return;
        };
        for name in ["cora", "citeseer", "pubmed"] {
            for part in ["x", "tx", "allx"] {
                let path = dir.join(format!("ind.{name}.{part}"));
                if !path.exists() {
                    println!("{} absent", path.display());
                    continue;
                }
                let m = csr_matrix(&read_pickle(&path).unwrap(), &path, part).unwrap();
                println!("{}: {}x{} nnz {}", path.display(), m.rows, m.cols, m.nnz());
            }
            for part in ["y", "ty", "ally"] {
                let path = dir.join(format!("ind.{name}.{part}"));
                let a = ndarray(&read_pickle(&path).unwrap(), &path, part).unwrap();
                assert_eq!(a.shape.len(), 2);
                assert!(matches!(a.data, ArrayData::I32(_)));
                println!("{}: {:?}", path.display(), a.shape);
            }
            let path = dir.join(format!("ind.{name}.graph"));
            let g = int_list_dict(&read_pickle(&path).unwrap(), &path, "graph").unwrap();
            let entries: usize = g.iter().map(|(_, v)| v.len()).sum();
            println!("{}: {} keys, {} entries", path.display(), g.len(), entries);
        }
        let cora_x = dir.join("ind.cora.x");
        let m = csr_matrix(&read_pickle(&cora_x).unwrap(), &cora_x, "x").unwrap();
        assert_eq!((m.rows, m.cols), (140, 1433));
        let g = dir.join("ind.cora.graph");
        let adj = int_list_dict(&read_pickle(&g).unwrap(), &g, "graph").unwrap();
        assert_eq!(adj.len(), 2708);
        assert_eq!(adj.iter().map(|(_, v)| v.len()).sum::<usize>(), 10_858);
    }
}
