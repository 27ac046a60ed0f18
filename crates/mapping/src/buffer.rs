//! The training buffer (spec §5.2): augmented training images are encoded and
//! `samples_per_image` valid cells drawn uniformly with replacement from each, until the buffer
//! is full. Features are stored in fp16; each sample keeps its pixel, its view's world-to-camera
//! pose and intrinsics, and its image index (for the global feature).

use glace_data::{DataError, Frame};
use glace_geometry::{Camera, Distortion, Intrinsics};
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
    /// Triangulated depth of each sample's cell (NaN: none; empty: no targets at all).
    pub depth: Vec<f32>,
    /// Views.
    pub views: Vec<ViewGeometry>,
    /// Dataset passes started.
    pub passes: usize,
}

impl Buffer {
    /// `size` samples of random `dim`-wide features (N(0, 0.1²) from `seed`) at random pixels of
    /// one 640×480 view (K 525, centred, at the origin looking along z): a buffer of the real
    /// shape, for timing the training step.
    pub fn random(dim: usize, size: usize, seed: u64) -> Buffer {
        let mut rng = crate::rng::Rng::new(seed);
        let mut buf = Buffer { dim, ..Default::default() };
        buf.views.push(ViewGeometry {
            w2c: [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            k: [525.0, 525.0, 320.0, 240.0],
        });
        for _ in 0..size {
            buf.features.extend((0..dim).map(|_| f16::from_f32(rng.normal() as f32 * 0.1)));
            buf.pixels.push([rng.range(0.0, 640.0) as f32, rng.range(0.0, 480.0) as f32]);
            buf.view.push(0);
            buf.image.push(0);
        }
        buf
    }

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
        SampleGeometry { w2c: v.w2c, k: v.k, px: self.pixels[i], depth: self.depth.get(i).copied().unwrap_or(f32::NAN) }
    }
    /// Its first `n` samples (all when it holds fewer): the buffer a fill of size `n` with the
    /// same generator would have made, as fills draw the frames' visits in order.
    pub fn prefix(&self, n: usize) -> Buffer {
        let n = n.min(self.len());
        let views = self.view[..n].iter().map(|&v| v as usize + 1).max().unwrap_or(0);
        Buffer {
            dim: self.dim,
            features: self.features[..n * self.dim].to_vec(),
            pixels: self.pixels[..n].to_vec(),
            view: self.view[..n].to_vec(),
            image: self.image[..n].to_vec(),
            depth: self.depth[..n.min(self.depth.len())].to_vec(),
            views: self.views[..views].to_vec(),
            passes: self.passes,
        }
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.features.len() * 2 + self.len() * (8 + 4 + 4) + self.depth.len() * 4 + self.views.len() * 64
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

/// Where the ideal pinhole pixel `(u, v)` of an augmented view lies in the upright image at the
/// network's scale (`intrinsics`): the view's rotation about the optical axis undone, its scale
/// replaced.
fn upright_pixel(u: f64, v: f64, view_k: &Intrinsics, theta: f64, intrinsics: &Intrinsics) -> (f64, f64) {
    let (x, y) = ((u - view_k.cx) / view_k.fx, (v - view_k.cy) / view_k.fy);
    // The view's camera is the frame's turned by Rz(θ): its rays in the frame's camera.
    let (s, c) = theta.sin_cos();
    let (xo, yo) = (c * x - s * y, s * x + c * y);
    (intrinsics.fx * xo + intrinsics.cx, intrinsics.fy * yo + intrinsics.cy)
}

/// Fills a buffer from training frames (with the scene's lens distortion, if any).
/// `targets[frame]` are the frames' triangulated depths (empty: none). `on_image(images_done,
/// samples_filled)` reports progress and returns false to stop early (the buffer then holds what
/// was filled so far).
pub fn fill(
    frames: &[Frame],
    distortion: Option<Distortion>,
    encoder: &LocalEncoder,
    cfg: &BufferConfig,
    targets: &[glace_structure::DepthTargets],
    rng: &mut Rng,
    on_image: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Buffer, DataError> {
    let dim = encoder.dim();
    assert!(targets.is_empty() || targets.len() == frames.len(), "one depth-target grid per frame");
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
                if let Some(t) = targets.get(fi) {
                    let (ou, ov) = upright_pixel(u as f64, v as f64, &k, view.theta, &t.intrinsics);
                    buf.depth.push(t.at(ou, ov).unwrap_or(f32::NAN));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::{Rotation3, Vector3};

    #[test]
    fn augmented_pixels_map_back_to_the_upright_frame() {
        // A point seen by the frame's camera, and by an augmented view of it: scaled by 1.3 and
        // turned by θ about the optical axis (pose P·Rz(θ)).
        let upright = Intrinsics { fx: 500.0, fy: 510.0, cx: 320.0, cy: 240.0 };
        let view_k = Intrinsics { fx: 650.0, fy: 663.0, cx: 416.0, cy: 312.0 };
        let theta = 0.2f64;
        let x = Vector3::new(0.3, -0.2, 2.0);
        let xa = Rotation3::from_axis_angle(&Vector3::z_axis(), theta).inverse() * x;
        let (u, v) = (view_k.fx * xa.x / xa.z + view_k.cx, view_k.fy * xa.y / xa.z + view_k.cy);
        let (ou, ov) = upright_pixel(u, v, &view_k, theta, &upright);
        let (eu, ev) = (upright.fx * x.x / x.z + upright.cx, upright.fy * x.y / x.z + upright.cy);
        assert!((ou - eu).abs() < 1e-9 && (ov - ev).abs() < 1e-9, "({ou}, {ov}) vs ({eu}, {ev})");
        // The rotation leaves the depth alone: the target depth carries over as it is.
        assert!((xa.z - x.z).abs() < 1e-12);
    }
}
