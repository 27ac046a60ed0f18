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
use std::path::{Path, PathBuf};

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

struct Machine<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    storages: &'a mut dyn FnMut(&str, &'static str) -> Result<Vec<f32>, WeightsError>,
}

impl Machine<'_> {
    fn err(&self, m: impl Into<String>) -> WeightsError {
        WeightsError::format(self.path, format!("data.pkl at byte {}: {}", self.pos, m.into()))
    }
    fn take(&mut self, n: usize) -> Result<&[u8], WeightsError> {
        if self.pos + n > self.data.len() {
            return Err(self.err("unexpected end of the pickle (truncated file?)"));
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
    fn u64(&mut self) -> Result<u64, WeightsError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String, WeightsError> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("unterminated GLOBAL"))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }
    fn pop(&mut self) -> Result<Value, WeightsError> {
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, WeightsError> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn top(&mut self) -> Result<&mut Value, WeightsError> {
        let pos = self.pos;
        self.stack
            .last_mut()
            .ok_or_else(|| WeightsError::format(self.path, format!("data.pkl at byte {pos}: empty stack")))
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
        let shape: Vec<usize> = size.iter().map(|v| if let Value::Int(i) = v { *i as usize } else { 0 }).collect();
        let strides: Vec<usize> = stride.iter().map(|v| if let Value::Int(i) = v { *i as usize } else { 0 }).collect();
        let dtype = *dtype;
        let storage = (self.storages)(key, dtype)?;
        let n: usize = shape.iter().product();
        let mut data = Vec::with_capacity(n);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..n {
            let off = *offset as usize + idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>();
            data.push(
                *storage.get(off).ok_or_else(|| self.err(format!("tensor reads past the end of storage {key}")))?,
            );
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
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                0x8f => self.stack.push(Value::List(Vec::new())),
                b'q' | b'r' | 0x94 => {
                    let k = match op {
                        b'q' => self.u8()? as u32,
                        b'r' => self.u32()?,
                        _ => self.memo.len() as u32,
                    };
                    let v = self.stack.last().cloned().ok_or_else(|| self.err("PUT on an empty stack"))?;
                    self.memo.insert(k, v);
                }
                b'h' | b'j' => {
                    let k = if op == b'h' { self.u8()? as u32 } else { self.u32()? };
                    let v = self.memo.get(&k).cloned().ok_or_else(|| self.err(format!("memo {k} not set")))?;
                    self.stack.push(v);
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.sized_str(n)?;
                    self.stack.push(v);
                }
                0x8c | b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.sized_str(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.u64()? as usize;
                    let v = self.sized_str(n)?;
                    self.stack.push(v);
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.sized_str(n)?;
                    self.stack.push(v);
                }
                b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'B' => self.u32()? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.u64()? as usize,
                    };
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.stack.push(Value::Int(v));
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.stack.push(Value::Int(v));
                }
                b'M' => {
                    let b = self.take(2)?;
                    let v = u16::from_le_bytes([b[0], b[1]]) as i64;
                    self.stack.push(Value::Int(v));
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
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().unwrap());
                    self.stack.push(Value::Float(v));
                }
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'N' => self.stack.push(Value::None),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs =
                        items.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect();
                    self.stack.push(Value::Dict(pairs));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err("stack underflow in TUPLE"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.push(v),
                        _ => {}
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    if let Value::List(l) = self.top()? {
                        l.extend(items);
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let Value::Dict(d) = self.top()? {
                        d.push((k, v));
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if let Value::Dict(d) = self.top()? {
                        for c in items.chunks(2).filter(|c| c.len() == 2) {
                            d.push((c[0].clone(), c[1].clone()));
                        }
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.call(callable, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    self.stack.push(Value::Opaque(format!("{cls:?}")));
                }
                b'b' => {
                    // BUILD: state applied to the object below; for state dicts it is `_metadata`.
                    self.pop()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
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
                    self.stack.push(Value::Storage(key.clone(), dtype));
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                other => return Err(self.err(format!("unsupported pickle opcode 0x{other:02x}"))),
            }
        }
    }
}

/// Reads a `torch.save` archive into its object tree, with every tensor materialised.
pub fn load(path: &Path) -> Result<Value, WeightsError> {
    let file = std::fs::File::open(path).map_err(|e| WeightsError::Io { path: path.to_path_buf(), source: e })?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
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
    if let Ok(mut f) = zip.by_name(&format!("{top}byteorder")) {
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        if s.trim() == "big" {
            return Err(WeightsError::format(path, "big-endian checkpoints are not supported"));
        }
    }
    let mut pkl = Vec::new();
    zip.by_name(&pkl_name)
        .and_then(|mut f| f.read_to_end(&mut pkl).map_err(zip::result::ZipError::Io))
        .map_err(|e| WeightsError::format(path, format!("{pkl_name}: {e}")))?;
    let p: PathBuf = path.to_path_buf();
    let mut cache: HashMap<String, Vec<f32>> = HashMap::new();
    let mut storages = |key: &str, dtype: &'static str| -> Result<Vec<f32>, WeightsError> {
        if let Some(v) = cache.get(key) {
            return Ok(v.clone());
        }
        let name = format!("{top}data/{key}");
        let mut bytes = Vec::new();
        zip.by_name(&name)
            .and_then(|mut f| f.read_to_end(&mut bytes).map_err(zip::result::ZipError::Io))
            .map_err(|e| WeightsError::format(&p, format!("storage {name}: {e} (truncated or corrupt file?)")))?;
        let v = decode(dtype, &bytes);
        cache.insert(key.to_string(), v.clone());
        Ok(v)
    };
    Machine { path, data: &pkl, pos: 0, stack: Vec::new(), memo: HashMap::new(), storages: &mut storages }.run()
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
