//! Writes a state dict as a PyTorch zip checkpoint (what `torch.save(state_dict, f)` produces):
//! a protocol-2 pickle of an `OrderedDict` of tensors rebuilt by `torch._utils._rebuild_tensor_v2`
//! from fp16 storages, stored uncompressed and 64-byte aligned as torch's own writer does.

use std::io::Write;
use std::path::Path;

use half::f16;

use glace_nn::WeightsError;

/// One tensor to save: name, shape and values (converted to fp16).
pub struct SaveTensor<'a> {
    /// State-dict key.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: &'a [f32],
}

impl<'a> SaveTensor<'a> {
    /// The tensors of a state dict as `Head::reference_state_dict` lists them (name, shape,
    /// values), borrowed for saving.
    pub fn from_state_dict(state_dict: &'a [(String, Vec<usize>, Vec<f32>)]) -> Vec<SaveTensor<'a>> {
        state_dict
            .iter()
            .map(|(name, shape, data)| SaveTensor { name: name.clone(), shape: shape.clone(), data })
            .collect()
    }
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: u8) {
        self.0.push(b);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn string(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: usize) {
        self.0.push(b'J');
        self.0.extend_from_slice(&(v as i32).to_le_bytes());
    }
    fn tuple_of_ints(&mut self, v: &[usize]) {
        self.op(b'(');
        for &x in v {
            self.int(x);
        }
        self.op(b't');
    }
}

/// Writes `tensors` (fp16) as a `torch.save` archive whose top folder is `archive/`. The file
/// appears under `path` only when complete.
pub fn save_fp16_state_dict(path: &Path, tensors: &[SaveTensor]) -> Result<(), WeightsError> {
    let mut p = Pickle(Vec::new());
    p.0.extend_from_slice(&[0x80, 2]);
    p.global("collections", "OrderedDict");
    p.op(b')');
    p.op(b'R');
    p.op(b'(');
    for (i, t) in tensors.iter().enumerate() {
        let numel: usize = t.shape.iter().product();
        assert_eq!(numel, t.data.len(), "{}: shape and data disagree", t.name);
        p.string(&t.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        // Persistent id: ('storage', HalfStorage, key, location, numel).
        p.op(b'(');
        p.string("storage");
        p.global("torch", "HalfStorage");
        p.string(&i.to_string());
        p.string("cpu");
        p.int(numel);
        p.op(b't');
        p.op(b'Q');
        p.int(0);
        p.tuple_of_ints(&t.shape);
        let mut strides = vec![1usize; t.shape.len()];
        for d in (0..t.shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * t.shape[d + 1];
        }
        p.tuple_of_ints(&strides);
        p.op(0x89); // NEWFALSE: requires_grad
        p.global("collections", "OrderedDict");
        p.op(b')');
        p.op(b'R');
        p.op(b't');
        p.op(b'R');
    }
    p.op(b'u');
    p.op(b'.');

    glace_outputs::remove_stale(path);
    let tmp = glace_outputs::temp_sibling(path);
    let io = |e: std::io::Error| WeightsError::Io { path: path.to_path_buf(), source: e };
    let zerr = |e: zip::result::ZipError| WeightsError::format(path, format!("writing the archive: {e}"));
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let record = |zip: &mut zip::ZipWriter<std::fs::File>, name: &str, bytes: &[u8]| -> Result<(), WeightsError> {
        zip.start_file_aligned(format!("archive/{name}"), opts, 64).map_err(zerr)?;
        zip.write_all(bytes).map_err(io)
    };
    record(&mut zip, "data.pkl", &p.0)?;
    record(&mut zip, "byteorder", b"little")?;
    for (i, t) in tensors.iter().enumerate() {
        let bytes: Vec<u8> = t.data.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
        record(&mut zip, &format!("data/{i}"), &bytes)?;
    }
    record(&mut zip, "version", b"3\n")?;
    record(&mut zip, ".data/serialization_id", format!("{:020}", tensors.len()).as_bytes())?;
    zip.finish().map_err(zerr)?;
    glace_outputs::replace(&tmp, path).map_err(io)
}
