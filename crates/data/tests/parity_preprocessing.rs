//! Parity of image preprocessing with the reference's `CamLocDataset`
//! (`shared/fixtures/image_preprocessing.npz`, fixtures README §8).

use std::path::Path;

use glace_data::imageio::load_rgb8;
use glace_data::testing::shared_path;
use glace_data::text::read_calibration;
use glace_data::{preprocess, Calibration};

struct Npz(npyz::npz::NpzArchive<std::io::BufReader<std::fs::File>>);

impl Npz {
    fn open(path: &Path) -> Self {
        Npz(npyz::npz::NpzArchive::open(path).expect("open npz"))
    }
    fn get<T: npyz::Deserialize>(&mut self, name: &str) -> (Vec<u64>, Vec<T>) {
        let npy = self.0.by_name(name).expect("read npz").unwrap_or_else(|| panic!("{name} missing"));
        let shape = npy.shape().to_vec();
        let fortran = npy.order() == npyz::Order::Fortran;
        let data: Vec<T> = npy.into_vec().expect("decode array");
        if fortran && shape.len() == 2 {
            // Column-major on disk (e.g. the output of torch.inverse): return row-major.
            let (rows, cols) = (shape[0] as usize, shape[1] as usize);
            let mut slots: Vec<Option<T>> = data.into_iter().map(Some).collect();
            let data = (0..rows * cols).map(|k| slots[(k % cols) * rows + k / cols].take().unwrap()).collect();
            return (shape, data);
        }
        assert!(!fortran || shape.len() < 2, "{name}: Fortran order with {} dimensions", shape.len());
        (shape, data)
    }
}

fn write_calibration(dir: &Path, text: &str) -> Calibration {
    let p = dir.join("calib.txt");
    std::fs::write(&p, text).unwrap();
    read_calibration(&p).unwrap()
}

fn check_case(name: &str, png: &str, calibration: &str, resized: bool) {
    let Some(fixtures) = shared_path("fixtures/image_preprocessing.npz", name) else { return };
    let dir = fixtures.parent().unwrap();
    let mut npz = Npz::open(&fixtures);
    let tmp = tempfile::tempdir().unwrap();
    let calib = write_calibration(tmp.path(), calibration);
    let rgb = load_rgb8(&dir.join(png)).unwrap();
    let p = preprocess(&rgb, &calib, 480);

    let (shape, gray) = npz.get::<u8>(&format!("{name}_gray_u8"));
    assert_eq!(shape, vec![p.height as u64, p.width as u64], "{name}: resized size");
    if resized {
        let (_, rgb_ref) = npz.get::<u8>(&format!("{name}_resized_rgb_u8"));
        let diff = rgb_ref.iter().zip(&p.rgb_hw3).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{name}: {diff} resized RGB values differ from Pillow");
    }
    let diff = gray.iter().zip(&p.gray_hw).filter(|(a, b)| a != b).count();
    assert_eq!(diff, 0, "{name}: {diff} gray values differ");
    let (_, image) = npz.get::<f32>(&format!("{name}_image"));
    let diff = image.iter().zip(&p.image_hw).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(diff, 0, "{name}: {diff} normalised values are not bit-exact");

    check_k(&mut npz, name, &p.intrinsics);
}

fn check_k(npz: &mut Npz, name: &str, k: &glace_geometry::Intrinsics) {
    let (_, k_ref) = npz.get::<f32>(&format!("{name}_K"));
    let ours = [k.fx as f32, 0.0, k.cx as f32, 0.0, k.fy as f32, k.cy as f32, 0.0, 0.0, 1.0];
    for (a, b) in k_ref.iter().zip(ours) {
        let ulp = (a.to_bits() as i64 - b.to_bits() as i64).abs();
        assert!(ulp <= 1, "{name}: K {k_ref:?} vs ours {ours:?}");
    }
    let (_, k_inv_ref) = npz.get::<f32>(&format!("{name}_K_inv"));
    let inv = k.inverse_matrix();
    for (a, b) in k_inv_ref.iter().zip(inv.transpose().iter()) {
        assert!((*a as f64 - b).abs() <= 4.0 * f32::EPSILON as f64 * b.abs(), "{name}: K⁻¹ {a} vs {b}");
    }
}

#[test]
fn parity_preprocessing_landscape_640x480() {
    check_case("landscape_640x480", "image_preprocessing_landscape_640x480.png", "525.0", false);
}

#[test]
fn parity_preprocessing_landscape_1296x968() {
    check_case("landscape_1296x968", "image_preprocessing_landscape_1296x968.png", "1160.0", true);
}

#[test]
fn parity_preprocessing_landscape_1296x968_full_k() {
    let name = "landscape_1296x968_K";
    let Some(fixtures) = shared_path("fixtures/image_preprocessing.npz", name) else { return };
    let mut npz = Npz::open(&fixtures);
    let tmp = tempfile::tempdir().unwrap();
    let calib = write_calibration(tmp.path(), "1160 0 650.2\n0 1158 481.7\n0 0 1\n");
    let rgb = image::RgbImage::new(1296, 968);
    let p = preprocess(&rgb, &calib, 480);
    let (shape, _) = npz.get::<i64>(&format!("{name}_image_shape"));
    assert_eq!(shape, vec![3]);
    check_k(&mut npz, name, &p.intrinsics);
}

/// Portrait: same pixels as the reference, but the focal is scaled by the factor actually
/// applied (1.0 here: the shorter side is already 480), not the reference's 480/640.
#[test]
fn parity_preprocessing_portrait_480x640_documented_difference() {
    let name = "portrait_480x640";
    let Some(fixtures) = shared_path("fixtures/image_preprocessing.npz", name) else { return };
    let dir = fixtures.parent().unwrap();
    let mut npz = Npz::open(&fixtures);
    let rgb = load_rgb8(&dir.join("image_preprocessing_portrait_480x640.png")).unwrap();
    let p = preprocess(&rgb, &Calibration::Focal(525.0), 480);
    let (_, image) = npz.get::<f32>(&format!("{name}_image"));
    assert!(image.iter().zip(&p.image_hw).all(|(a, b)| a.to_bits() == b.to_bits()));
    let (_, k_ref) = npz.get::<f32>(&format!("{name}_K"));
    assert_eq!(k_ref[0], 393.75, "the reference's portrait quirk");
    assert_eq!(p.intrinsics.fx, 525.0);
    assert_eq!((p.intrinsics.cx, p.intrinsics.cy), (k_ref[2] as f64, k_ref[5] as f64));
}
