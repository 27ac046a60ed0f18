//! Ray-cast rendering of a world through a pinhole camera, one ray through each pixel centre
//! (pixel k covers [k, k+1), the glace/reference convention), rows in parallel.

use glace_geometry::{CamToWorld, Intrinsics};
use image::RgbImage;
use rayon::prelude::*;

use crate::rng::{hash, unit};
use crate::texture::Texture;
use crate::world::{Hit, World};

/// A camera to render from.
#[derive(Clone, Copy, Debug)]
pub struct View {
    /// Camera-to-world pose (OpenCV axes).
    pub pose: CamToWorld,
    /// Intrinsics.
    pub intrinsics: Intrinsics,
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
}

/// A rendered frame.
pub struct Rendered {
    /// Colour image.
    pub rgb: RgbImage,
    /// Camera depth z per pixel in metres, 0 where nothing was hit.
    pub depth: Vec<f32>,
}

impl View {
    /// World-space ray (origin, direction with unit camera z) through pixel position (u, v).
    pub fn ray(&self, u: f64, v: f64) -> ([f64; 3], [f64; 3]) {
        let k = &self.intrinsics;
        let d_cam = nalgebra::Vector3::new((u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0);
        let d = self.pose.0.rotation * d_cam;
        let o = self.pose.center();
        ([o.x, o.y, o.z], [d.x, d.y, d.z])
    }

    /// What the ray through pixel position (u, v) hits.
    pub fn cast(&self, world: &World, u: f64, v: f64) -> Option<Hit> {
        let (o, d) = self.ray(u, v);
        world.cast(&o, &d)
    }
}

/// Texture coordinates (in tiles) of a hit.
pub fn texture_uv(world: &World, hit: &Hit) -> (usize, [f64; 2]) {
    let m = &world.objects[hit.object].faces[hit.face];
    (m.texture, [(hit.face_uv[0] + m.offset[0]) / m.tile, (hit.face_uv[1] + m.offset[1]) / m.tile])
}

fn shade(world: &World, textures: &[Texture], view: &View, hit: &Hit, d: &[f64; 3]) -> [f32; 3] {
    let m = &world.objects[hit.object].faces[hit.face];
    let (tex, uv) = texture_uv(world, hit);
    // Pixel footprint on the surface, in tiles: depth / focal, stretched by the viewing angle.
    let dn = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    let cos = ((d[0] * hit.normal[0] + d[1] * hit.normal[1] + d[2] * hit.normal[2]) / dn).abs().max(0.2);
    let footprint = hit.t / view.intrinsics.fx / cos / m.tile;
    let albedo = textures[tex].sample(uv[0], uv[1], footprint);
    let e = world.irradiance(&hit.point, &hit.normal) as f32;
    [albedo[0] * m.tint[0] * e, albedo[1] * m.tint[1] * e, albedo[2] * m.tint[2] * e]
}

/// Renders a view. `noise_seed` makes the sensor noise differ per frame yet stay reproducible.
pub fn render(world: &World, textures: &[Texture], view: &View, noise_seed: u64, noise_sigma: f32) -> Rendered {
    let (w, h) = (view.width as usize, view.height as usize);
    let mut rgb = vec![0u8; w * h * 3];
    let mut depth = vec![0f32; w * h];
    rgb.par_chunks_mut(w * 3).zip(depth.par_chunks_mut(w)).enumerate().for_each(|(y, (row, drow))| {
        for x in 0..w {
            let (o, d) = view.ray(x as f64 + 0.5, y as f64 + 0.5);
            let colour = match world.cast(&o, &d) {
                Some(hit) => {
                    drow[x] = hit.t as f32;
                    shade(world, textures, view, &hit, &d)
                }
                None => match world.sky {
                    Some((horizon, zenith)) => {
                        let dn = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
                        let t = (d[2] / dn).clamp(0.0, 1.0) as f32;
                        [0, 1, 2].map(|c| horizon[c] + (zenith[c] - horizon[c]) * t)
                    }
                    None => [0.0; 3],
                },
            };
            for c in 0..3 {
                // Sum of two uniforms: a cheap, bounded, roughly Gaussian sensor noise.
                let hsh = hash(&[noise_seed, (y * w + x) as u64, c as u64]);
                let n = (unit(hsh) + unit(hsh.rotate_left(32) ^ 0x5555)) as f32 - 1.0;
                let v = colour[c] * 255.0 + n * noise_sigma * 2.45;
                row[x * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    });
    Rendered { rgb: RgbImage::from_raw(view.width, view.height, rgb).expect("buffer size"), depth }
}
