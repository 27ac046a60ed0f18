//! Reports: PNG plots drawn with plotters and a font compiled into the binary (DejaVu Sans,
//! licence in `assets/`), since a fresh machine has no system fonts.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Errors while drawing or writing a plot.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write plot: {message}", path.display())]
pub struct PlotError {
    /// Output file.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded font is known-good; failure here would be a build defect.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the embedded font does not parse: the build is broken");
        }
    });
}

fn err(path: &Path, e: impl std::fmt::Display) -> PlotError {
    PlotError { path: path.to_path_buf(), message: e.to_string() }
}

/// Empirical CDF points (x sorted, y in %) of finite values, over `total` frames.
fn cdf(values: &[f64], total: usize) -> Vec<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let mut pts = vec![(0.0, 0.0)];
    for (i, x) in v.iter().enumerate() {
        pts.push((*x, 100.0 * (i + 1) as f64 / total.max(1) as f64));
    }
    pts
}

/// One named series of errors for the CDF plot.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Rotation errors in degrees (infinite for failures).
    pub rot_deg: &'a [f64],
    /// Translation errors in centimetres (infinite for failures).
    pub trans_cm: &'a [f64],
}

/// Writes a PNG with the cumulative distributions of rotation and translation errors, side by
/// side, x axes up to `max_deg` and `max_cm`. The file is written under a temporary name first.
pub fn error_cdf_png(path: &Path, title: &str, series: &[Series], max_deg: f64, max_cm: f64) -> Result<(), PlotError> {
    register_font();
    let (w, h) = (1200u32, 520u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(path, e))?;
        let root = root.titled(title, ("sans-serif", 24)).map_err(|e| err(path, e))?;
        let (left, right) = root.split_horizontally(600);
        let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (area, what, max) in [(&left, "rotation error (°)", max_deg), (&right, "translation error (cm)", max_cm)] {
            let mut chart = ChartBuilder::on(area)
                .margin(16)
                .x_label_area_size(40)
                .y_label_area_size(50)
                .build_cartesian_2d(0.0..max, 0.0..100.0)
                .map_err(|e| err(path, e))?;
            chart
                .configure_mesh()
                .x_desc(what)
                .y_desc("frames (%)")
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| err(path, e))?;
            for (k, s) in series.iter().enumerate() {
                let values = if what.starts_with("rotation") { s.rot_deg } else { s.trans_cm };
                let mut pts = cdf(values, values.len());
                let last = pts.last().map(|p| p.1).unwrap_or(0.0);
                pts.push((max, last));
                let colour = colours[k % colours.len()];
                chart
                    .draw_series(LineSeries::new(pts.into_iter().map(|(x, y)| (x.min(max), y)), colour.stroke_width(2)))
                    .map_err(|e| err(path, e))?
                    .label(s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()
                .map_err(|e| err(path, e))?;
        }
        root.present().map_err(|e| err(path, e))?;
    }
    write_png(path, w, h, buf)
}

/// Encodes an RGB buffer as PNG under a temporary name, then renames it into place.
fn write_png(path: &Path, w: u32, h: u32, rgb: Vec<u8>) -> Result<(), PlotError> {
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| err(path, "buffer size"))?;
    let tmp = path.with_extension(format!("partial-{}", std::process::id()));
    img.save_with_format(&tmp, image::ImageFormat::Png).map_err(|e| err(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_plot_is_written_with_text() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("cdf.png");
        let rot = [0.1, 0.5, 1.0, f64::INFINITY];
        let trans = [0.5, 2.0, 4.0, f64::INFINITY];
        error_cdf_png(&p, "test plot", &[Series { label: "glace", rot_deg: &rot, trans_cm: &trans }], 5.0, 10.0)
            .unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1200, 520));
        // Text and curves leave many dark pixels; a blank canvas would have none.
        let dark = img.pixels().filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100).count();
        assert!(dark > 2000, "{dark} dark pixels");
        assert!(img.pixels().any(|p| p[2] > 200 && p[0] < 60), "no blue curve");
        assert_eq!(cdf(&rot, 4).last().unwrap().1, 75.0);
    }
}
