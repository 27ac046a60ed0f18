//! A bit-exact port of Pillow's `Image.resize(..., BILINEAR)` for 8-bit images, the filter the
//! reference's torchvision resize uses: a triangle filter whose support grows with the
//! downscale factor (antialiasing), fixed-point coefficients with 22 fractional bits, and a
//! horizontal pass then a vertical pass, each rounded and clamped to u8.

const PRECISION_BITS: u32 = 32 - 8 - 2;

struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the box [0, in_size).
fn precompute(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support is 1.0
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero; both values are clamped below anyway.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = (((center + support + 0.5) as i64).min(in_size as i64) as usize) - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bilinear((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..ksize {
            let w = if x < xmax && ww != 0.0 {
                k[x] / ww
            } else if x < xmax {
                k[x]
            } else {
                0.0
            };
            let scaled = w * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if w < 0.0 { (-0.5 + scaled) as i32 } else { (0.5 + scaled) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { ksize, bounds, weights }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Resizes an interleaved 8-bit image with `channels` channels from `w`×`h` to `out_w`×`out_h`
/// exactly as Pillow's bilinear resize does.
pub fn resize_bilinear_u8(src: &[u8], w: usize, h: usize, channels: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    assert_eq!(src.len(), w * h * channels, "buffer does not match its size");
    assert!(out_w > 0 && out_h > 0 && w > 0 && h > 0, "empty image");
    let need_h = out_w != w;
    let need_v = out_h != h;
    let vert = precompute(h, out_h);
    // Rows the vertical pass will read: Pillow runs the horizontal pass only on those.
    let (y_first, y_last) = (vert.bounds[0].0, vert.bounds[out_h - 1].0 + vert.bounds[out_h - 1].1);

    let (mut cur, cur_w, row_offset) = if need_h {
        let horiz = precompute(w, out_w);
        let rows = y_last - y_first;
        let mut tmp = vec![0u8; out_w * rows * channels];
        for y in 0..rows {
            let src_row = &src[(y + y_first) * w * channels..][..w * channels];
            let dst_row = &mut tmp[y * out_w * channels..][..out_w * channels];
            for xx in 0..out_w {
                let (xmin, xmax) = horiz.bounds[xx];
                let k = &horiz.weights[xx * horiz.ksize..][..xmax];
                for c in 0..channels {
                    let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                    for (x, &kx) in k.iter().enumerate() {
                        ss += src_row[(x + xmin) * channels + c] as i32 * kx;
                    }
                    dst_row[xx * channels + c] = clip8(ss);
                }
            }
        }
        (tmp, out_w, y_first)
    } else {
        (src.to_vec(), w, 0)
    };

    if need_v {
        let mut out = vec![0u8; cur_w * out_h * channels];
        let stride = cur_w * channels;
        for yy in 0..out_h {
            let (ymin, ymax) = vert.bounds[yy];
            let ymin = ymin - row_offset;
            let k = &vert.weights[yy * vert.ksize..][..ymax];
            let dst_row = &mut out[yy * stride..][..stride];
            for (i, d) in dst_row.iter_mut().enumerate() {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (y, &ky) in k.iter().enumerate() {
                    ss += cur[(y + ymin) * stride + i] as i32 * ky;
                }
                *d = clip8(ss);
            }
        }
        cur = out;
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_constant_images() {
        let src: Vec<u8> = (0..12 * 9 * 3).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(resize_bilinear_u8(&src, 12, 9, 3, 12, 9), src);
        let flat = vec![77u8; 40 * 30];
        assert!(resize_bilinear_u8(&flat, 40, 30, 1, 17, 11).iter().all(|&v| v == 77));
        assert!(resize_bilinear_u8(&flat, 40, 30, 1, 91, 64).iter().all(|&v| v == 77));
    }
}
