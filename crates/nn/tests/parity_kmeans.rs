//! K-means++ on the reference's 500 camera centres: inertia within 1 % of scikit-learn's.

use glace_data::testing::shared_path;
use glace_nn::kmeans::kmeans;

#[test]
fn parity_kmeans_inertia() {
    let Some(fix) = shared_path("fixtures/glace_head_kmeans.npz", "parity_kmeans_inertia") else { return };
    let mut z = npyz::npz::NpzArchive::open(&fix).unwrap();
    let pts: Vec<f32> = z.by_name("camera_centers").unwrap().unwrap().into_vec().unwrap();
    let reference: Vec<f64> = z.by_name("kmeans_inertia").unwrap().unwrap().into_vec().unwrap();
    let points: Vec<[f64; 3]> = pts.chunks_exact(3).map(|p| [p[0] as f64, p[1] as f64, p[2] as f64]).collect();
    let ours = kmeans(&points, 50, 0, 300);
    let ratio = ours.inertia / reference[0];
    eprintln!("inertia ours {:.2} reference {:.2} ratio {ratio:.4}", ours.inertia, reference[0]);
    assert!(ratio < 1.01, "inertia {} vs scikit-learn {}", ours.inertia, reference[0]);
}
