//! Reading PyTorch `torch.save` zip archives without Python.
//!
//! The archive holds `<top>/data.pkl` (a pickle; `<top>` is not always `archive/`) and raw
//! storages `<top>/data/<key>`. A small pickle machine rebuilds the object tree: tensors from
//! `torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` over fp32/fp16/bf16/f64/integer
//! storages, `collections.OrderedDict`; every other global (NumPy objects in training
//! checkpoints, `_codecs.encode`, …) stays an opaque value and is never evaluated. A `BUILD`
//! that sets a state dict's `_metadata` is accepted and ignored.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use glace_nn::WeightsError;

/// A tensor read from a checkpoint, converted to f32 (the networks' in-memory tensor).
pub use glace_nn::tensor::Tensor as PtTensor;

/// A value of the unpickled object tree.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// A str.
    Str(String),
    /// bytes.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict (insertion order kept).
    Dict(Vec<(Value, Value)>),
    /// A global reference `module.name`.
    Global(String, String),
    /// The result of calling something we do not evaluate.
    Opaque(String),
    /// A tensor.
    Tensor(PtTensor),
    /// A storage reference (key, dtype) before tensors are rebuilt.
    Storage(String, &'static str),
    /// The pickle MARK.
    Mark,
}

impl Value {
    /// Dict lookup by string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == key)).map(|(_, v)| v),
            _ => None,
        }
    }
    /// The `name → tensor` entries of a dict whose values are tensors, in file order.
    pub fn tensors(&self) -> Vec<(String, PtTensor)> {
        match self {
            Value::Dict(items) => items
                .iter()
                .filter_map(|(k, v)| match (k, v) {
                    (Value::Str(k), Value::Tensor(t)) => Some((k.clone(), t.clone())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn storage_dtype(name: &str) -> Option<(&'static str, usize)> {
    Some(match name {
        "FloatStorage" => ("float32", 4),
        "HalfStorage" => ("float16", 2),
        "BFloat16Storage" => ("bfloat16", 2),
        "DoubleStorage" => ("float64", 8),
        "LongStorage" => ("int64", 8),
        "IntStorage" => ("int32", 4),
        "ShortStorage" => ("int16", 2),
        "CharStorage" => ("int8", 1),
        "ByteStorage" => ("uint8", 1),
        "BoolStorage" => ("bool", 1),
        _ => return None,
    })
}

fn decode(dtype: &str, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        "float32" => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        "float16" => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        "bfloat16" => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        "float64" => bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
        "int64" => bytes.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
        "int32" => bytes.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as f32).collect(),
        "int16" => bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32).collect(),
        "int8" => bytes.iter().map(|&b| b as i8 as f32).collect(),
        _ => bytes.iter().map(|&b| b as f32).collect(),
    }
}

/// The storages of a checkpoint: `(key, dtype)` → values, shared by the tensors that view them.
pub type Storages<'a> = dyn FnMut(&str, &'static str) -> Result<std::rc::Rc<Vec<f32>>, WeightsError> + 'a;

/// Deepest nesting of values a pickle may build (state dicts nest a few levels; a file that
/// nests thousands deep would exhaust the stack when its values are dropped).
const MAX_DEPTH: u16 = 200;
/// What a pickle may copy through its memo or `DUP`, in units of 4 bytes (a tensor element is 1,
/// any other value [`NODE_WEIGHT`]): copies can double a value with each opcode, so they are
/// budgeted, to about 512 MB.
const COPY_BUDGET: usize = 1 << 27;
/// The weight of a value other than a tensor element: about the memory it takes.
const NODE_WEIGHT: usize = 16;
/// Largest storage read from an archive, in bytes (a compressed entry may claim more).
const MAX_STORAGE_BYTES: u64 = 16 << 30;

struct Machine<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
    /// Values and the depth of their nesting.
    stack: Vec<(Value, u16)>,
    memo: HashMap<u32, (Value, u16)>,
    copy_budget: usize,
    storages: &'a mut Storages<'a>,
}

/// Nodes and tensor elements in a value, stopping once `limit` is passed.
fn weight(v: &Value, limit: usize) -> usize {
    let mut total = 0usize;
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        total += NODE_WEIGHT;
        match v {
            Value::List(x) | Value::Tuple(x) => todo.extend(x.iter()),
            Value::Dict(x) => x.iter().for_each(|(k, v)| todo.extend([k, v])),
            Value::Tensor(t) => total += t.data.len(),
            Value::Str(s) | Value::Opaque(s) => total += s.len() / 8,
            Value::Bytes(b) => total += b.len() / 8,
            _ => {}
        }
        if total > limit {
            break;
        }
    }
    total
}

impl Machine<'_> {
    fn err(&self, m: impl Into<String>) -> WeightsError {
        WeightsError::format(self.path, format!("data.pkl at byte {}: {}", self.pos, m.into()))
    }
    fn take(&mut self, n: usize) -> Result<&[u8], WeightsError> {
        if n > self.data.len() - self.pos {
            return Err(self.err(format!(
                "{n} bytes asked for, {} left (truncated or corrupt file?)",
                self.data.len() - self.pos
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, WeightsError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, WeightsError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<usize, WeightsError> {
        let b = self.take(8)?;
        // Lengths past the data are refused by `take`; past usize they cannot be read at all.
        Ok(usize::try_from(u64::from_le_bytes(b.try_into().expect("8 bytes"))).unwrap_or(usize::MAX))
    }
    fn line(&mut self) -> Result<String, WeightsError> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("unterminated GLOBAL"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }
    fn push(&mut self, v: Value, depth: u16) -> Result<(), WeightsError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("values nested more than {MAX_DEPTH} deep")));
        }
        self.stack.push((v, depth));
        Ok(())
    }
    fn pop(&mut self) -> Result<(Value, u16), WeightsError> {
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }
    fn pop_mark(&mut self) -> Result<(Vec<Value>, u16), WeightsError> {
        let at = self
            .stack
            .iter()
            .rposition(|(v, _)| matches!(v, Value::Mark))
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        let depth = items.iter().map(|(_, d)| *d).max().unwrap_or(0);
        Ok((items.into_iter().map(|(v, _)| v).collect(), depth))
    }
    /// A copy of `v` (for GET and DUP), paid from the copy budget.
    fn copy(&mut self, v: &Value) -> Result<Value, WeightsError> {
        let w = weight(v, self.copy_budget);
        if w > self.copy_budget {
            return Err(
                self.err("the pickle copies more values than any checkpoint holds (a recursive or hostile file?)")
            );
        }
        self.copy_budget -= w;
        Ok(v.clone())
    }
    /// Adds to the container on top of the stack, whose depth grows with what it receives.
    fn extend_top(&mut self, items: Vec<Value>, depth: u16) -> Result<(), WeightsError> {
        let pos = self.pos;
        let path = self.path;
        let (top, top_depth) = self
            .stack
            .last_mut()
            .ok_or_else(|| WeightsError::format(path, format!("data.pkl at byte {pos}: empty stack")))?;
        let new_depth = (*top_depth).max(depth.saturating_add(1));
        match top {
            Value::List(l) => l.extend(items),
            Value::Dict(d) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k, v));
                }
            }
            _ => return Ok(()),
        }
        *top_depth = new_depth;
        if new_depth > MAX_DEPTH {
            return Err(WeightsError::format(
                path,
                format!("data.pkl at byte {pos}: values nested more than {MAX_DEPTH} deep"),
            ));
        }
        Ok(())
    }
    fn sized_str(&mut self, n: usize) -> Result<Value, WeightsError> {
        let b = self.take(n)?;
        Ok(Value::Str(String::from_utf8_lossy(b).into_owned()))
    }

    fn rebuild_tensor(&mut self, args: Vec<Value>) -> Result<Value, WeightsError> {
        let (
            Some(Value::Storage(key, dtype)),
            Some(Value::Int(offset)),
            Some(Value::Tuple(size)),
            Some(Value::Tuple(stride)),
        ) = (args.first(), args.get(1), args.get(2), args.get(3))
        else {
            return Err(self.err("malformed _rebuild_tensor_v2 arguments"));
        };
        let ints = |v: &[Value]| -> Option<Vec<usize>> {
            v.iter().map(|v| if let Value::Int(i) = v { usize::try_from(*i).ok() } else { None }).collect()
        };
        let (Some(shape), Some(strides), Ok(offset)) = (ints(size), ints(stride), usize::try_from(*offset)) else {
            return Err(self.err("tensor with a negative or non-integer size, stride or offset"));
        };
        if shape.len() != strides.len() {
            return Err(self.err(format!("tensor of {} dimensions with {} strides", shape.len(), strides.len())));
        }
        let dtype = *dtype;
        let storage = (self.storages)(key, dtype)?;
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        // The last element read lies at offset + Σ (size − 1)·stride; it must be in the storage.
        let last = shape
            .iter()
            .zip(&strides)
            .try_fold(offset, |a, (&d, &s)| a.checked_add(d.saturating_sub(1).checked_mul(s)?));
        let (Some(n), Some(last)) = (n, last) else {
            return Err(self.err(format!("tensor of shape {shape:?} does not fit in memory")));
        };
        if n > 0 && last >= storage.len() {
            return Err(self.err(format!(
                "tensor of shape {shape:?} (strides {strides:?}, offset {offset}) reads past the {} values of storage {key}",
                storage.len()
            )));
        }
        // Zero strides repeat storage values: materialising more than is stored is paid for.
        if n > storage.len() {
            if n > self.copy_budget {
                return Err(self.err(format!(
                    "tensor of shape {shape:?} repeats its {} stored values beyond any checkpoint",
                    storage.len()
                )));
            }
            self.copy_budget -= n;
        }
        let mut data = Vec::with_capacity(n);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..n {
            let off = offset + idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>();
            data.push(storage[off]);
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(Value::Tensor(PtTensor { shape, data, dtype }))
    }

    fn call(&mut self, callable: Value, args: Value) -> Result<Value, WeightsError> {
        let args = match args {
            Value::Tuple(a) => a,
            other => vec![other],
        };
        match &callable {
            Value::Global(m, n) if m == "torch._utils" && n == "_rebuild_tensor_v2" => self.rebuild_tensor(args),
            Value::Global(m, n) if m == "torch._utils" && n == "_rebuild_parameter" => {
                args.into_iter().next().ok_or_else(|| self.err("_rebuild_parameter without data"))
            }
            Value::Global(m, n) if m == "collections" && n == "OrderedDict" => Ok(Value::Dict(Vec::new())),
            Value::Global(m, n) => Ok(Value::Opaque(format!("{m}.{n}(…)"))),
            _ => Ok(Value::Opaque("call".into())),
        }
    }

    fn run(mut self) -> Result<Value, WeightsError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                }
                0x95 => {
                    self.u64()?;
                }
                b'.' => return Ok(self.pop()?.0),
                b'(' => self.push(Value::Mark, 0)?,
                b'}' => self.push(Value::Dict(Vec::new()), 1)?,
                b']' | 0x8f => self.push(Value::List(Vec::new()), 1)?,
                b')' => self.push(Value::Tuple(Vec::new()), 1)?,
                b'q' | b'r' | 0x94 => {
                    let k = match op {
                        b'q' => self.u8()? as u32,
                        b'r' => self.u32()?,
                        _ => self.memo.len() as u32,
                    };
                    let (v, d) = self.stack.last().cloned().ok_or_else(|| self.err("PUT on an empty stack"))?;
                    let v = self.copy(&v)?;
                    self.memo.insert(k, (v, d));
                }
                b'h' | b'j' => {
                    let k = if op == b'h' { self.u8()? as u32 } else { self.u32()? };
                    let (v, d) = self.memo.get(&k).cloned().ok_or_else(|| self.err(format!("memo {k} not set")))?;
                    // The memo's copy was made when it was PUT; GET's copy is paid for.
                    let v = self.copy(&v)?;
                    self.push(v, d)?;
                }
                b'X' | b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.sized_str(n)?;
                    self.push(v, 0)?;
                }
                0x8c | b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.sized_str(n)?;
                    self.push(v, 0)?;
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.sized_str(n)?;
                    self.push(v, 0)?;
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.u64()?,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b), 0)?;
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Value::Int(v), 0)?;
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v), 0)?;
                }
                b'M' => {
                    let b = self.take(2)?;
                    let v = u16::from_le_bytes([b[0], b[1]]) as i64;
                    self.push(Value::Int(v), 0)?;
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?.to_vec();
                    let mut v: i64 = 0;
                    for (i, byte) in b.iter().enumerate().take(8) {
                        v |= (*byte as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(v), 0)?;
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                    self.push(Value::Float(v), 0)?;
                }
                0x88 => self.push(Value::Bool(true), 0)?,
                0x89 => self.push(Value::Bool(false), 0)?,
                b'N' => self.push(Value::None, 0)?,
                b't' => {
                    let (items, d) = self.pop_mark()?;
                    self.push(Value::Tuple(items), d + 1)?;
                }
                b'l' | 0x91 => {
                    let (items, d) = self.pop_mark()?;
                    self.push(Value::List(items), d + 1)?;
                }
                b'd' => {
                    let (items, d) = self.pop_mark()?;
                    let mut it = items.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    self.push(Value::Dict(pairs), d + 1)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err("stack underflow in TUPLE"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let d = items.iter().map(|(_, d)| *d).max().unwrap_or(0);
                    self.push(Value::Tuple(items.into_iter().map(|(v, _)| v).collect()), d + 1)?;
                }
                b'a' => {
                    let (v, d) = self.pop()?;
                    self.extend_top(vec![v], d)?;
                }
                b'e' | 0x90 => {
                    let (items, d) = self.pop_mark()?;
                    self.extend_top(items, d)?;
                }
                b's' => {
                    let (v, dv) = self.pop()?;
                    let (k, dk) = self.pop()?;
                    self.extend_top(vec![k, v], dv.max(dk))?;
                }
                b'u' => {
                    let (items, d) = self.pop_mark()?;
                    self.extend_top(items, d)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module, name), 0)?;
                }
                0x93 => {
                    let (name, _) = self.pop()?;
                    let (module, _) = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.push(Value::Global(m, n), 0)?,
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let (args, _) = self.pop()?;
                    let (callable, _) = self.pop()?;
                    let v = self.call(callable, args)?;
                    self.push(v, 1)?;
                }
                0x81 => {
                    let _args = self.pop()?;
                    let (cls, _) = self.pop()?;
                    let name = match cls {
                        Value::Global(m, n) => format!("{m}.{n}"),
                        _ => "object".into(),
                    };
                    self.push(Value::Opaque(name), 0)?;
                }
                b'b' => {
                    // BUILD: state applied to the object below; for state dicts it is `_metadata`.
                    self.pop()?;
                }
                b'Q' => {
                    let (pid, _) = self.pop()?;
                    let Value::Tuple(t) = pid else { return Err(self.err("persistent id is not a tuple")) };
                    let (Some(Value::Str(kind)), Some(Value::Global(_, ty)), Some(Value::Str(key))) =
                        (t.first(), t.get(1), t.get(2))
                    else {
                        return Err(self.err("unexpected persistent id"));
                    };
                    if kind != "storage" {
                        return Err(self.err(format!("unsupported persistent id '{kind}'")));
                    }
                    let (dtype, _) =
                        storage_dtype(ty).ok_or_else(|| self.err(format!("unsupported storage type {ty}")))?;
                    self.push(Value::Storage(key.clone(), dtype), 0)?;
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let (v, d) = self.stack.last().cloned().ok_or_else(|| self.err("DUP on an empty stack"))?;
                    let v = self.copy(&v)?;
                    self.push(v, d)?;
                }
                other => return Err(self.err(format!("unsupported pickle opcode 0x{other:02x}"))),
            }
        }
    }
}

/// Reads a `torch.save` archive into its object tree, with every tensor materialised.
pub fn load(path: &Path) -> Result<Value, WeightsError> {
    let file = std::fs::File::open(path).map_err(|e| WeightsError::Io { path: path.to_path_buf(), source: e })?;
    load_from(file, path)
}

/// [`load`] from bytes in memory; `path` names them in errors.
pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<Value, WeightsError> {
    load_from(std::io::Cursor::new(bytes), path)
}

fn read_entry<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    path: &Path,
) -> Result<Vec<u8>, WeightsError> {
    let bad = |m: String| WeightsError::format(path, format!("{name}: {m} (truncated or corrupt file?)"));
    let entry = zip.by_name(name).map_err(|e| bad(e.to_string()))?;
    let size = entry.size();
    // Deflate expands at most about 1032:1; a claim beyond that (or beyond any checkpoint) is a lie.
    if size > MAX_STORAGE_BYTES || size > entry.compressed_size().saturating_mul(1100).saturating_add(4096) {
        return Err(bad(format!("claims {size} bytes from {} compressed", entry.compressed_size())));
    }
    let mut bytes = Vec::with_capacity((size as usize).min(1 << 24));
    // Never more than the entry claims, whatever its compressed data expands to.
    entry.take(size).read_to_end(&mut bytes).map_err(|e| bad(e.to_string()))?;
    Ok(bytes)
}

fn load_from<R: Read + std::io::Seek>(reader: R, path: &Path) -> Result<Value, WeightsError> {
    let mut zip = zip::ZipArchive::new(reader).map_err(|e| {
        WeightsError::format(
            path,
            format!("not a PyTorch zip archive ({e}); legacy non-zip torch.save files are not supported"),
        )
    })?;
    let pkl_name = (0..zip.len())
        .filter_map(|i| zip.by_index(i).ok().map(|f| f.name().to_string()))
        .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
        .ok_or_else(|| WeightsError::format(path, "no data.pkl in the archive"))?;
    let top = pkl_name.trim_end_matches("data.pkl").to_string();
    if let Ok(b) = read_entry(&mut zip, &format!("{top}byteorder"), path) {
        if String::from_utf8_lossy(&b).trim() == "big" {
            return Err(WeightsError::format(path, "big-endian checkpoints are not supported"));
        }
    }
    let pkl = read_entry(&mut zip, &pkl_name, path)?;
    // Storages are decoded once and shared by every tensor that views them.
    let mut cache: HashMap<String, std::rc::Rc<Vec<f32>>> = HashMap::new();
    let mut storages = |key: &str, dtype: &'static str| -> Result<std::rc::Rc<Vec<f32>>, WeightsError> {
        if let Some(v) = cache.get(key) {
            return Ok(v.clone());
        }
        let bytes = read_entry(&mut zip, &format!("{top}data/{key}"), path)?;
        let v = std::rc::Rc::new(decode(dtype, &bytes));
        cache.insert(key.to_string(), v.clone());
        Ok(v)
    };
    unpickle(&pkl, path, &mut storages)
}

/// Runs the pickle machine over `pkl` alone; `storages(key, dtype)` gives the values of the
/// storages it names. `path` names it in errors.
pub fn unpickle(pkl: &[u8], path: &Path, storages: &mut Storages<'_>) -> Result<Value, WeightsError> {
    Machine { path, data: pkl, pos: 0, stack: Vec::new(), memo: HashMap::new(), copy_budget: COPY_BUDGET, storages }
        .run()
}

/// Reads a state dict: the top-level dict of tensors, or the tensors under `entry`
/// (e.g. `model_state_dict`), keeping keys that start with `prefix` (stripped).
pub fn load_state_dict(
    path: &Path,
    entry: Option<&str>,
    prefix: &str,
) -> Result<Vec<(String, PtTensor)>, WeightsError> {
    let root = load(path)?;
    let dict = match entry {
        Some(e) => {
            root.get(e).ok_or_else(|| WeightsError::format(path, format!("the checkpoint has no '{e}' entry")))?
        }
        None => &root,
    };
    let tensors: Vec<(String, PtTensor)> =
        dict.tensors().into_iter().filter_map(|(k, t)| k.strip_prefix(prefix).map(|s| (s.to_string(), t))).collect();
    if tensors.is_empty() {
        return Err(WeightsError::format(
            path,
            format!("no tensors{} found", if prefix.is_empty() { String::new() } else { format!(" under '{prefix}'") }),
        ));
    }
    Ok(tensors)
}
