//! Localizes every image of a folder with a map; prints `name qw qx qy qz tx ty tz inliers` per
//! image (world-to-camera, the reference's pose-file order).
//!
//! cargo run --release -p glace --example localize_folder -- MAP IMAGES fx fy cx cy [k1 k2 p1 p2 [k3]]
use glace::{Camera, Distortion, Error, Intrinsics, Localizer, LocalizerOptions, Map};

pub fn run(args: &[String]) -> glace::Result<Vec<String>> {
    let usage = || Error::usage("arguments", "MAP IMAGES fx fy cx cy [k1 k2 p1 p2 [k3]]");
    let [map, dir, k @ ..] = args else { return Err(usage()) };
    let number =
        |v: &String| v.parse::<f64>().map_err(|_| Error::usage("intrinsics", format!("'{v}' is not a number")));
    let k = k.iter().map(number).collect::<glace::Result<Vec<f64>>>()?;
    let (Some(f), d) = (k.get(..4), k.get(4..).filter(|d| !d.is_empty())) else { return Err(usage()) };
    let distortion = d.map(Distortion::from_coeffs).transpose()?;
    let camera = Camera { intrinsics: Intrinsics::new(f[0], f[1], f[2], f[3])?, distortion };
    let localizer = Localizer::new(&Map::open(map)?, LocalizerOptions::default())?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Input(format!("{dir}: {e}")))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    let mut lines = Vec::new();
    for path in paths {
        let found = localizer.localize((&glace::read_image(&path)?).into(), &camera)?;
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let (q, t) = match found.cam_from_world() {
            Some(pose) => pose.quaternion_translation(),
            None => ([f64::NAN; 4], [f64::NAN; 3]),
        };
        lines.push(format!(
            "{name} {} {} {} {} {} {} {} {}",
            q[0],
            q[1],
            q[2],
            q[3],
            t[0],
            t[1],
            t[2],
            found.inliers()
        ));
        println!("{}", lines.last().unwrap());
    }
    Ok(lines)
}

fn main() {
    if let Err(e) = run(&std::env::args().skip(1).collect::<Vec<_>>()) {
        eprintln!("error: {e}");
        std::process::exit(if e.is_input_error() { 2 } else { 1 });
    }
}
