//! How good are a map's scene coordinates? For every frame of a split, the reprojection error of
//! each cell's predicted world point under the frame's ground-truth pose: per-frame median and the
//! share of cells within 2, 5, 10 and 20 px, then the same over the whole split. Separates "the
//! network is wrong" from "RANSAC is wrong" when a map localizes badly, and training frames from test
//! frames (fit vs generalisation). The depths of the predicted points under the same poses show
//! a map that fits its views by pushing points far along their rays (an integrated-rooms map
//! trained with the reference's 1000 m depth bound: points hundreds of metres deep).
//!
//! `cargo run --release --example coord_errors -- <scene> <map> [train|test] [every-nth-frame] [errors.png]`
//!
//! Maps with the XFeat encoder and a built-in or absent global descriptor only. The optional PNG
//! shows the first frame's cells, white = 0 px, black ≥ 50 px.

use std::error::Error;
use std::path::Path;

use glace_data::{Scene, SceneOptions, SplitKind};
use glace_localize::pipeline::{predict_frame, Encoders, StageTimes};

fn summary(errors: &[f64]) -> String {
    let mut sorted = errors.to_vec();
    sorted.sort_by(f64::total_cmp);
    let share = |t: f64| 100.0 * errors.iter().filter(|&&e| e < t).count() as f64 / errors.len().max(1) as f64;
    format!(
        "median {:7.1} px   <2 px {:5.1} %   <5 px {:5.1} %   <10 px {:5.1} %   <20 px {:5.1} %",
        sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN),
        share(2.0),
        share(5.0),
        share(10.0),
        share(20.0)
    )
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        return Err("usage: coord_errors <scene> <map> [train|test] [every-nth-frame] [errors.png]".into());
    }
    let scene = Scene::open(Path::new(&args[0]), &SceneOptions { probe_images: false, ..Default::default() })?;
    let map = glace_formats::map_file::read(Path::new(&args[1]))?;
    let kind = if args.get(2).map(String::as_str) == Some("train") { SplitKind::Train } else { SplitKind::Test };
    let every: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1).max(1);
    let encoder = glace_formats::load_xfeat(&glace_formats::weights::xfeat_weights()?)?;
    let encoders = Encoders { local: &encoder, r2former: None, matmul: Default::default(), keypoints: false };
    let image_height = map.trained_image_height();

    let mut all = Vec::new();
    let mut depths = Vec::new();
    let mut first: Option<(usize, usize, Vec<f64>)> = None;
    for (n, frame) in scene.split(kind)?.frames.iter().enumerate().step_by(every) {
        let pred = predict_frame(&map, &encoders, frame, None, image_height, &mut StageTimes::default())?;
        let grid = &pred.encoded.features;
        let errors = pred.reprojection_errors(&frame.cam_to_world, scene.distortion);
        let w2c = frame.cam_to_world.inverse();
        depths.extend(
            pred.coords_n3
                .chunks_exact(3)
                .map(|p| w2c.transform_point(&nalgebra::Point3::new(p[0] as f64, p[1] as f64, p[2] as f64)).z),
        );
        println!("frame {n:5}  {}", summary(&errors));
        if first.is_none() {
            first = Some((grid.width, grid.height, errors.clone()));
        }
        all.extend(errors);
    }
    println!("all          {}", summary(&all));
    depths.sort_by(f64::total_cmp);
    let at = |q: f64| depths.get((q * depths.len() as f64) as usize).copied().unwrap_or(f64::NAN);
    println!("depth of the predicted points: median {:.2} m, 90th percentile {:.2} m", at(0.5), at(0.9));

    if let (Some(png), Some((w, h, errors))) = (args.get(4), first) {
        let img = image::GrayImage::from_fn(8 * w as u32, 8 * h as u32, |x, y| {
            let e = errors[(y as usize / 8) * w + x as usize / 8];
            image::Luma([(255.0 - e.min(50.0) * 5.1) as u8])
        });
        img.save(png)?;
        println!("first frame's cells: {png}");
    }
    Ok(())
}
