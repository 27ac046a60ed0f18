//! glace's map file: one self-describing safetensors file holding the head (fp16 weights),
//! the position-decoder centres and softplus β in fp32 (the reference rounds them to fp16, a
//! known error source at city scale), the built-in global encoder's codebook and projection,
//! and a JSON description (format version, architecture, encoder identities with weight sha256,
//! training metadata), and the points triangulated across the mapping views (`structure.*`:
//! fp32 points, fp16 unit features, view index, support and keypoint score per point, fp32 view
//! centres, where kept a u8 grey patch per point with fp32 pixel axes per view, and fp16 global
//! descriptors per view; readers that predate them ignore them). A sha256 over
//! all tensors is stored and verified on load.

use std::collections::HashMap;
use std::path::Path;

use glace_nn::global::VladPca;
use glace_nn::linalg::Linear;
use glace_nn::map::{GlaceMap, GlobalSource, MapInfo};
use glace_nn::{Head, Tensor, WeightsError};
use glace_structure::Structure;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

/// Format name in the metadata.
pub const MAP_FORMAT: &str = "glace-map";
/// Format version; bump on incompatible changes (2: the built-in global encoder gained a colour
/// histogram; 3: XFeat features reach the head scaled by √64; 4: the checksum covers the
/// description too). Version 3 maps are still read.
pub const MAP_VERSION: u32 = 4;

struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// sha256 over the tensors (sorted by name) and, from version 4, the description: every
/// metadata entry but the checksum itself, sorted by key.
fn checksum(tensors: &[(String, Owned)], metadata: Option<&HashMap<String, String>>) -> String {
    let mut sorted: Vec<&(String, Owned)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, t) in sorted {
        h.update(name.as_bytes());
        h.update(format!("{:?}{:?}", t.dtype, t.shape).as_bytes());
        h.update(&t.bytes);
    }
    if let Some(md) = metadata {
        let mut entries: Vec<(&String, &String)> = md.iter().filter(|(k, _)| *k != "checksum").collect();
        entries.sort();
        for (k, v) in entries {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn layers(head: &Head) -> Vec<(String, &Linear)> {
    let mut v: Vec<(String, &Linear)> = Vec::new();
    if let Some(s) = &head.skip {
        v.push(("head_skip".into(), s));
    }
    for (i, l) in head.res3.iter().enumerate() {
        v.push((format!("res3_conv{}", i + 1), l));
    }
    for (b, block) in head.blocks.iter().enumerate() {
        for (i, l) in block.iter().enumerate() {
            v.push((format!("{b}c{i}"), l));
        }
    }
    v.push(("fc1".into(), &head.fc1));
    v.push(("fc2".into(), &head.fc2));
    if let Some(f) = &head.fcc {
        v.push(("fcc".into(), f));
    }
    v.push(("fc3".into(), &head.fc3));
    v
}

fn tensors(map: &GlaceMap) -> Vec<(String, Owned)> {
    let mut t = Vec::new();
    for (name, l) in layers(&map.head) {
        t.push((
            format!("heads.{name}.weight"),
            Owned { dtype: Dtype::F16, shape: vec![l.outputs, l.inputs, 1, 1], bytes: f16_bytes(&l.weight) },
        ));
        t.push((
            format!("heads.{name}.bias"),
            Owned { dtype: Dtype::F16, shape: vec![l.outputs], bytes: f16_bytes(&l.bias) },
        ));
    }
    let centres: Vec<f32> = map.head.centres.iter().flatten().copied().collect();
    t.push((
        "heads.centres".into(),
        Owned { dtype: Dtype::F32, shape: vec![map.head.centres.len(), 3], bytes: f32_bytes(&centres) },
    ));
    t.push(("heads.h_beta".into(), Owned { dtype: Dtype::F32, shape: vec![1], bytes: f32_bytes(&[map.head.h_beta]) }));
    if let Some(g) = &map.global {
        t.push((
            "global.codebook".into(),
            Owned { dtype: Dtype::F32, shape: vec![g.words, g.dim], bytes: f32_bytes(&g.codebook) },
        ));
        t.push((
            "global.mean".into(),
            Owned { dtype: Dtype::F32, shape: vec![g.mean.len()], bytes: f32_bytes(&g.mean) },
        ));
        let kd = g.mean.len();
        t.push((
            "global.projection".into(),
            Owned { dtype: Dtype::F32, shape: vec![g.out_dim, kd], bytes: f32_bytes(&g.projection) },
        ));
    }
    if let Some(st) = &map.structure {
        let n = st.len();
        t.push((
            "structure.points".into(),
            Owned { dtype: Dtype::F32, shape: vec![n, 3], bytes: f32_bytes(st.points_n3.as_flattened()) },
        ));
        t.push((
            "structure.features".into(),
            Owned { dtype: Dtype::F16, shape: vec![n, st.dim], bytes: f16_bytes(&st.features_nd) },
        ));
        let views: Vec<f32> = st.view_of_point.iter().map(|&v| v as f32).collect();
        t.push(("structure.views".into(), Owned { dtype: Dtype::F32, shape: vec![n], bytes: f32_bytes(&views) }));
        let support: Vec<f32> = st.support.iter().map(|&s| s as f32).collect();
        t.push(("structure.support".into(), Owned { dtype: Dtype::F16, shape: vec![n], bytes: f16_bytes(&support) }));
        t.push(("structure.score".into(), Owned { dtype: Dtype::F16, shape: vec![n], bytes: f16_bytes(&st.score) }));
        t.push((
            "structure.centres".into(),
            Owned { dtype: Dtype::F32, shape: vec![st.views(), 3], bytes: f32_bytes(st.centres_v3.as_flattened()) },
        ));
        if st.global_dim() > 0 {
            t.push((
                "structure.view_globals".into(),
                Owned {
                    dtype: Dtype::F16,
                    shape: vec![st.views(), st.global_dim()],
                    bytes: f16_bytes(&st.view_globals_vg),
                },
            ));
        }
        if st.has_patches() {
            let (patches, axes) = (&st.patches_n, &st.pixel_axes_v23);
            t.push((
                "structure.patches".into(),
                Owned {
                    dtype: Dtype::U8,
                    shape: vec![patches.len(), Structure::PATCH_LEN],
                    bytes: patches.as_flattened().to_vec(),
                },
            ));
            t.push((
                "structure.pixel_axes".into(),
                Owned {
                    dtype: Dtype::F32,
                    shape: vec![axes.len(), 6],
                    bytes: f32_bytes(axes.as_flattened().as_flattened()),
                },
            ));
        }
        if let Some(h) = st.image_height {
            let h = [h as f32];
            t.push(("structure.height".into(), Owned { dtype: Dtype::F32, shape: vec![1], bytes: f32_bytes(&h) }));
        }
    }
    t
}

/// The map file's bytes.
pub fn to_bytes(map: &GlaceMap) -> Result<Vec<u8>, WeightsError> {
    let tensors = tensors(map);
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), MAP_FORMAT.to_string());
    meta.insert("version".to_string(), MAP_VERSION.to_string());
    meta.insert(
        "info".to_string(),
        serde_json::to_string(&map.info).map_err(|e| WeightsError::format("<map>", e.to_string()))?,
    );
    if let Some(g) = &map.global {
        meta.insert("global_colour_dim".to_string(), g.colour_dim.to_string());
    }
    let sum = checksum(&tensors, Some(&meta));
    meta.insert("checksum".to_string(), sum);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.bytes).expect("consistent sizes")))
        .collect();
    safetensors::serialize(views, Some(meta)).map_err(|e| WeightsError::format("<map>", e.to_string()))
}

/// A map file's bytes with its checksum recomputed over whatever it holds now: what someone who
/// edits a map on purpose produces. For tests and fuzzing of the checks behind the checksum.
pub fn reseal(bytes: &[u8]) -> Option<Vec<u8>> {
    let st = SafeTensors::deserialize(bytes).ok()?;
    let (_, meta) = SafeTensors::read_metadata(bytes).ok()?;
    let mut md = meta.metadata().clone().unwrap_or_default();
    let owned: Vec<(String, Owned)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, Owned { dtype: v.dtype(), shape: v.shape().to_vec(), bytes: v.data().to_vec() }))
        .collect();
    let version: u32 = md.get("version").and_then(|v| v.parse().ok()).unwrap_or(0);
    let sum = checksum(&owned, (version >= 4).then_some(&md));
    md.insert("checksum".into(), sum);
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .filter_map(|(n, t)| Some((n.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.bytes).ok()?)))
        .collect();
    safetensors::serialize(views, Some(md)).ok()
}

/// Range checks of the numbers in a map's description that localization relies on.
fn check_description(info: &MapInfo) -> Result<(), String> {
    let id = &info.local_encoder;
    let expected_dim = match id.kind.as_str() {
        "xfeat" => glace_nn::XFeat::DIM,
        "ace" => glace_nn::AceEncoder::DIM,
        other => return Err(format!("unknown local encoder '{other}'")),
    };
    if id.dim != expected_dim {
        return Err(format!(
            "the {} encoder gives {expected_dim}-d features, the description says {}",
            id.kind, id.dim
        ));
    }
    if id.weights_sha256.len() != 64 || !id.weights_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("local encoder sha256 '{}' is not 64 hex digits", id.weights_sha256));
    }
    let options = info.training.options.as_ref();
    if let Some(h) = options.and_then(|o| o.image_height) {
        if !(glace_nn::MIN_IMAGE_HEIGHT as u64..=glace_nn::MAX_IMAGE_HEIGHT as u64).contains(&h) {
            return Err(format!(
                "training image height {h} (expected {} to {})",
                glace_nn::MIN_IMAGE_HEIGHT,
                glace_nn::MAX_IMAGE_HEIGHT
            ));
        }
    }
    if let Some(n) = options.and_then(|o| o.noise_std) {
        if !(n.is_finite() && n >= 0.0) {
            return Err(format!("feature-diffusion σ {n} (expected a finite number ≥ 0)"));
        }
    }
    if let Some(l) = &info.training.query_turns {
        let valid =
            !l.is_empty() && l.len() <= 4 && l.iter().all(|&t| t < 4) && (1..l.len()).all(|i| !l[..i].contains(&l[i]));
        if !valid {
            return Err(format!("query turns {l:?}: expected one to four distinct quarter turns 0 to 3"));
        }
    }
    let c = &info.head;
    if c.clusters == 0 || c.channels == 0 || c.block_channels == 0 || c.c_in == 0 {
        return Err(format!("head architecture {c:?} has an empty layer"));
    }
    Ok(())
}

/// Writes the map file atomically (temporary name, then swapped in: [`glace_outputs::write_file`]).
pub fn write(map: &GlaceMap, path: &Path) -> Result<(), WeightsError> {
    let bytes = to_bytes(map)?;
    glace_outputs::write_file(path, &bytes).map_err(|e| WeightsError::Io { path: path.to_path_buf(), source: e })
}

/// Reads and verifies a map file.
pub fn read(path: &Path) -> Result<GlaceMap, WeightsError> {
    let bytes = std::fs::read(path).map_err(|e| WeightsError::Io { path: path.to_path_buf(), source: e })?;
    from_bytes(&bytes, path)
}

/// Parses and verifies a map file's bytes; `path` names it in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<GlaceMap, WeightsError> {
    let bad = |m: String| WeightsError::format(path, m);
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a glace map (safetensors: {e})")))?;
    let md = meta.metadata().clone().unwrap_or_default();
    if md.get("format").map(String::as_str) != Some(MAP_FORMAT) {
        return Err(bad(
            "not a glace map (no 'glace-map' format tag); official GLACE heads are read from .pt or .pth files".into(),
        ));
    }
    let version: u32 = md.get("version").and_then(|v| v.parse().ok()).unwrap_or(0);
    if version != MAP_VERSION && version != 3 {
        return Err(bad(format!(
            "map format version {version}, this glace reads version {MAP_VERSION}: map the scene again with this glace"
        )));
    }
    let info: MapInfo = serde_json::from_str(md.get("info").map(String::as_str).unwrap_or(""))
        .map_err(|e| bad(format!("map description: {e}")))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("truncated or corrupt map: {e}")))?;
    let mut owned = Vec::new();
    for (name, view) in st.tensors() {
        owned.push((name, Owned { dtype: view.dtype(), shape: view.shape().to_vec(), bytes: view.data().to_vec() }));
    }
    let sum = checksum(&owned, (version >= 4).then_some(&md));
    if md.get("checksum") != Some(&sum) {
        return Err(bad("checksum mismatch: the map (its tensors or its description) is corrupt".into()));
    }
    check_description(&info).map_err(|m| bad(format!("map description: {m}")))?;
    let as_f32 = |name: &str, t: &Owned| -> Result<Vec<f32>, WeightsError> {
        let v: Vec<f32> = match t.dtype {
            Dtype::F16 => t.bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::F32 => t.bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            other => return Err(bad(format!("tensor '{name}' is {other:?}; maps hold F16 and F32"))),
        };
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("tensor '{name}' holds NaN or infinite values")));
        }
        Ok(v)
    };
    let mut sd: Vec<(String, Tensor)> = Vec::new();
    let mut centres = None;
    let mut h_beta = None;
    let mut global: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    let mut structure: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    let mut patches = None;
    for (name, t) in &owned {
        if name == "structure.patches" {
            if t.dtype != Dtype::U8 || t.shape.len() != 2 || t.shape[1] != Structure::PATCH_LEN {
                return Err(bad(format!(
                    "tensor 'structure.patches' is {:?} {:?}; expected U8 [points, {}]",
                    t.dtype,
                    t.shape,
                    Structure::PATCH_LEN
                )));
            }
            patches = Some(t.bytes.clone());
            continue;
        }
        let data = as_f32(name, t)?;
        if name == "heads.centres" {
            centres = Some(data);
        } else if name == "heads.h_beta" {
            h_beta = data.first().copied();
        } else if let Some(k) = name.strip_prefix("heads.") {
            sd.push((k.to_string(), Tensor { shape: t.shape.clone(), data, dtype: "float16" }));
        } else if let Some(k) = name.strip_prefix("global.") {
            global.insert(k.to_string(), (t.shape.clone(), data));
        } else if let Some(k) = name.strip_prefix("structure.") {
            structure.insert(k.to_string(), (t.shape.clone(), data));
        }
    }
    let centres = centres.ok_or_else(|| bad("no heads.centres tensor".into()))?;
    let k = centres.len() / 3;
    let (key, shape) = if k > 1 { ("centers", vec![1, k, 3, 1, 1]) } else { ("mean", vec![1, 3, 1, 1]) };
    sd.push((key.to_string(), Tensor { shape, data: centres, dtype: "float32" }));
    if let Some(b) = h_beta {
        sd.push(("h_beta".into(), Tensor { shape: vec![1], data: vec![b], dtype: "float32" }));
    }
    let head = Head::from_state_dict(path, &sd)?;
    if head.config != info.head {
        return Err(bad(format!("tensors describe {:?} but the description says {:?}", head.config, info.head)));
    }
    let global = match info.global {
        GlobalSource::Builtin => {
            let (Some((cs, cb)), Some((_, mean)), Some((ps, proj))) =
                (global.remove("codebook"), global.remove("mean"), global.remove("projection"))
            else {
                return Err(bad("built-in global encoder tensors missing".into()));
            };
            let colour_dim = md.get("global_colour_dim").and_then(|v| v.parse().ok()).unwrap_or(0);
            let expected_len = |shape: &[usize]| shape.len() == 2 && shape[1] == cs[0] * cs[1] + colour_dim;
            if cs.len() != 2 || colour_dim != glace_nn::global::COLOUR_DIM || !expected_len(&ps) || mean.len() != ps[1]
            {
                return Err(bad(format!(
                    "built-in global encoder has inconsistent shapes (codebook {cs:?}, projection {ps:?}, colour {colour_dim})"
                )));
            }
            if cs[1] != info.local_encoder.dim || cb.len() != cs[0] * cs[1] || proj.len() != ps[0] * ps[1] {
                return Err(bad(format!(
                    "built-in global encoder: codebook {cs:?} for {}-d local features, projection {ps:?} with {} values",
                    info.local_encoder.dim,
                    proj.len()
                )));
            }
            Some(VladPca { codebook: cb, words: cs[0], dim: cs[1], colour_dim, mean, projection: proj, out_dim: ps[0] })
        }
        _ => None,
    };
    // The head takes [global | local]: its input width must be what the encoders give it.
    let local = info.local_encoder.dim;
    let global_dim = match (&info.global, &global) {
        (GlobalSource::None, _) => Some(0),
        (GlobalSource::Builtin, Some(g)) => Some(g.out_dim),
        _ => None, // features.npy or R2Former: checked against each descriptor at localization
    };
    let fits = match global_dim {
        Some(g) => head.config.c_in == g + local,
        None => head.config.c_in > local,
    };
    if !fits {
        return Err(bad(format!(
            "the head takes {} inputs, but the {} local features ({local}) and the global descriptor ({}) give {}",
            head.config.c_in,
            info.local_encoder.kind,
            global_dim.map_or("from outside".to_string(), |g| g.to_string()),
            global_dim.map_or("more".to_string(), |g| (g + local).to_string()),
        )));
    }
    let structure = if structure.is_empty() {
        None
    } else {
        let (
            Some((ps, points)),
            Some((fs, features)),
            Some((vs, views)),
            Some((cs, centres)),
            Some((ss, support)),
            Some((qs, score)),
        ) = (
            structure.remove("points"),
            structure.remove("features"),
            structure.remove("views"),
            structure.remove("centres"),
            structure.remove("support"),
            structure.remove("score"),
        )
        else {
            return Err(bad(
                "structure tensors incomplete (points, features, views, centres, support and score)".into()
            ));
        };
        if ps.len() != 2 || ps[1] != 3 || fs.len() != 2 || fs[0] != ps[0] || fs[1] != info.local_encoder.dim {
            return Err(bad(format!(
                "structure of points {ps:?} and features {fs:?} for {}-d local features",
                info.local_encoder.dim
            )));
        }
        let n = ps[0];
        // Every tensor's shape, not only its length: a file that merely adds up is refused too.
        let shaped = |name: &str, shape: &[usize], expected: &[usize]| {
            if shape == expected {
                Ok(())
            } else {
                Err(bad(format!("tensor 'structure.{name}' has shape {shape:?}; expected {expected:?}")))
            }
        };
        shaped("views", &vs, &[n])?;
        shaped("support", &ss, &[n])?;
        shaped("score", &qs, &[n])?;
        if cs.len() != 2 || cs[1] != 3 {
            return Err(bad(format!("tensor 'structure.centres' has shape {cs:?}; expected [views, 3]")));
        }
        let view_count = cs[0];
        if let Some((axes_shape, _)) = structure.get("pixel_axes") {
            if axes_shape.as_slice() != [view_count, 6] {
                return Err(bad(format!(
                    "tensor 'structure.pixel_axes' (which places the patches) has shape {axes_shape:?}; expected \
                     [{view_count}, 6]"
                )));
            }
        }
        if let Some(p) = &patches {
            if p.len() != n * Structure::PATCH_LEN {
                return Err(bad(format!(
                    "tensor 'structure.patches' holds {} patches for {n} points",
                    p.len() / Structure::PATCH_LEN
                )));
            }
        }
        if let Some((globals_shape, _)) = structure.get("view_globals") {
            if globals_shape.len() != 2 || globals_shape[0] != view_count {
                return Err(bad(format!(
                    "tensor 'structure.view_globals' has shape {globals_shape:?}; expected [{view_count}, width]"
                )));
            }
        }
        if let Some((height_shape, _)) = structure.get("height") {
            shaped("height", height_shape, &[1])?;
        }
        if views.iter().chain(&support).any(|v| !(*v >= 0.0 && v.fract() == 0.0)) {
            return Err(bad("structure view indices or support counts are not whole numbers ≥ 0".into()));
        }
        let image_height = match structure.remove("height").map(|(_, h)| h) {
            None => None,
            Some(h) if h.len() == 1 && h[0] == 0.0 => None,
            Some(h) if h.len() == 1 && h[0] > 0.0 && h[0].fract() == 0.0 => Some(h[0] as u32),
            Some(h) => return Err(bad(format!("structure.height {h:?}: expected one whole number of pixels"))),
        };
        let st = Structure {
            points_n3: points.chunks_exact(3).map(|x| [x[0], x[1], x[2]]).collect(),
            features_nd: features,
            dim: fs[1],
            view_of_point: views.iter().map(|&v| v.min(u32::MAX as f32) as u32).collect(),
            support: support.iter().map(|&s| s.min(u8::MAX as f32) as u8).collect(),
            score,
            centres_v3: centres.chunks_exact(3).map(|x| [x[0], x[1], x[2]]).collect(),
            image_height,
            patches_n: patches
                .unwrap_or_default()
                .chunks_exact(Structure::PATCH_LEN)
                .map(|p| p.try_into().expect("chunks of a patch"))
                .collect(),
            pixel_axes_v23: structure
                .remove("pixel_axes")
                .map(|(_, a)| a.chunks_exact(6).map(|a| [[a[0], a[1], a[2]], [a[3], a[4], a[5]]]).collect())
                .unwrap_or_default(),
            view_globals_vg: structure.remove("view_globals").map(|(_, g)| g).unwrap_or_default(),
        };
        st.check(glace_nn::MIN_IMAGE_HEIGHT..=glace_nn::MAX_IMAGE_HEIGHT)
            .map_err(|m| bad(format!("map structure: {m}")))?;
        Some(st)
    };
    let global_scale = info.expected_global_scale();
    Ok(GlaceMap { info, head, global, global_scale, structure })
}
