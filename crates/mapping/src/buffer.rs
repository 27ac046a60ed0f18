//! The training buffer (spec §5.2): augmented training images are encoded and
//! `samples_per_image` valid cells drawn uniformly with replacement from each, until the buffer
//! is full. Features are stored in fp16; each sample keeps its pixel, its view's world-to-camera
//! pose and intrinsics, and its image index (for the global feature).

use glace_data::{DataError, Frame};
use glace_geometry::{Camera, Distortion};
use glace_nn::LocalEncoder;
use half::f16;

use crate::augment::{augment, AugmentConfig};
use crate::loss::SampleGeometry;
use crate::rng::Rng;

/// Geometry of one augmented view.
#[derive(Clone, Copy, Debug)]
pub struct ViewGeometry {
    /// World-to-camera rows of [R | t].
    pub w2c: [f32; 12],
    /// fx, fy, cx, cy.
    pub k: [f32; 4],
}

/// The buffer.
#[derive(Clone, Debug, Default)]
pub struct Buffer {
    /// Local feature dimension.
    pub dim: usize,
    /// `len × dim` features.
    pub features: Vec<f16>,
    /// Pixel of each sample.
    pub pixels: Vec<[f32; 2]>,
    /// View of each sample.
    pub view: Vec<u32>,
    /// Training image of each sample (row of the global-feature table).
    pub image: Vec<u32>,
    /// Views.
    pub views: Vec<ViewGeometry>,
    /// Dataset passes started.
    pub passes: usize,
}

impl Buffer {
    /// Samples stored.
    pub fn len(&self) -> usize {
        self.pixels.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }
    /// Geometry of sample `i` for the loss.
    pub fn geometry(&self, i: usize) -> SampleGeometry {
        let v = &self.views[self.view[i] as usize];
        SampleGeometry { w2c: v.w2c, k: v.k, px: self.pixels[i] }
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.features.len() * 2 + self.len() * (8 + 4 + 4) + self.views.len() * 64
    }
}

/// Buffer parameters.
#[derive(Clone, Copy, Debug)]
pub struct BufferConfig {
    /// Samples to collect.
    pub size: usize,
    /// Cells drawn per image.
    pub samples_per_image: usize,
    /// Shorter image side before augmentation.
    pub image_height: u32,
    /// Augmentation.
    pub augment: AugmentConfig,
    /// How the local encoder's products are computed.
    pub matmul: glace_nn::linalg::Matmul,
}

/// Where the ideal pinhole camera sees a cell of a (rotated) augmented view: the rotation is
/// undone, the lens distortion removed with the view's scaled intrinsics, and the rotation redone.
fn undistorted_cell(u: f64, v: f64, view: &crate::augment::View, distortion: &Distortion) -> (f64, f64) {
    let (cx, cy) = (view.image.width as f64 / 2.0, view.image.height as f64 / 2.0);
    let (s, c) = view.theta.sin_cos();
    let (dx, dy) = (u - cx, v - cy);
    let p = nalgebra::Point2::new(cx + c * dx - s * dy, cy + s * dx + c * dy);
    let ideal = Camera { intrinsics: view.image.intrinsics, distortion: Some(*distortion) }.undistort_pixel(&p);
    let (ex, ey) = (ideal.x - cx, ideal.y - cy);
    (cx + c * ex + s * ey, cy - s * ex + c * ey)
}

/// Fills a buffer from training frames (with the scene's lens distortion, if any).
/// `on_image(images_done, samples_filled)` reports progress and returns false to stop early
/// (the buffer then holds what was filled so far).
pub fn fill(
    frames: &[Frame],
    distortion: Option<Distortion>,
    encoder: &LocalEncoder,
    cfg: &BufferConfig,
    rng: &mut Rng,
    on_image: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Buffer, DataError> {
    let dim = encoder.dim();
    let mut buf = Buffer { dim, ..Default::default() };
    buf.features.reserve(cfg.size * dim);
    let mut images_done = 0;
    let mut images_without_cells = 0;
    while buf.len() < cfg.size {
        buf.passes += 1;
        let order = rng.permutation(frames.len());
        for &fi in &order {
            if buf.len() >= cfg.size {
                break;
            }
            let frame = &frames[fi];
            let rgb = frame.load_rgb()?;
            let view = augment(&rgb, &frame.calibration, &frame.cam_to_world, cfg.image_height, &cfg.augment, rng);
            let (w, h) = (view.image.width, view.image.height);
            let enc = encoder.encode_with(cfg.matmul, &view.image.rgb_hw3, &view.image.image_hw, w, h);
            let f = &enc.features;
            // Valid cells: the pixel at the cell centre must lie inside the (rotated) image.
            let mut cells = Vec::with_capacity(f.height * f.width);
            for i in 0..f.height {
                for j in 0..f.width {
                    let (u, v) = enc.cell_pixel(i, j);
                    let (pu, pv) = (u.floor() as usize, v.floor() as usize);
                    if pu < w && pv < h && view.valid[pv * w + pu] {
                        let (iu, iv) = match &distortion {
                            Some(d) if !d.is_zero() => undistorted_cell(u, v, &view, d),
                            _ => (u, v),
                        };
                        cells.push((i, j, iu as f32, iv as f32));
                    }
                }
            }
            images_done += 1;
            if cells.is_empty() {
                images_without_cells += 1;
                continue;
            }
            let w2c = view.pose.inverse().to_matrix();
            let k = view.image.intrinsics;
            let v_index = buf.views.len() as u32;
            buf.views.push(ViewGeometry {
                w2c: [0, 1, 2]
                    .map(|r| [0, 1, 2, 3].map(|c| w2c[(r, c)] as f32))
                    .concat()
                    .try_into()
                    .expect("12 values"),
                k: [k.fx as f32, k.fy as f32, k.cx as f32, k.cy as f32],
            });
            let n = cfg.samples_per_image.min(cfg.size - buf.len());
            for _ in 0..n {
                let (i, j, u, v) = cells[rng.below(cells.len())];
                let row = &f.data[(i * f.width + j) * dim..(i * f.width + j + 1) * dim];
                buf.features.extend(row.iter().map(|&x| f16::from_f32(x)));
                buf.pixels.push([u, v]);
                buf.view.push(v_index);
                buf.image.push(frame.file_index as u32);
            }
            if !on_image(images_done, buf.len()) {
                return Ok(buf);
            }
        }
        if images_done == images_without_cells && images_done >= frames.len() {
            break; // no image gives samples: avoid looping forever
        }
    }
    Ok(buf)
}
