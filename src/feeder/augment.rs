//! Spatial augmentations of a sample: mirrored axes, then a permutation of axes (a 90-degree
//! rotation is a transpose and a mirror), applied alike to the raw data, the targets and the
//! mask, so they stay voxel for voxel together.
//!
//! ```
//! use ndarray::{arr2, ArrayD};
//! use annomask::feeder::augment::transform;
//! let a: ArrayD<u8> = arr2(&[[1, 2], [3, 4]]).into_dyn();
//! // Mirror axis 0, then swap the axes: a 90-degree rotation.
//! let r = transform(a.view(), 0, &[true, false], &[1, 0]);
//! assert_eq!(r, arr2(&[[3, 1], [4, 2]]).into_dyn());
//! ```

use ndarray::{ArrayD, ArrayViewD, Axis};

use super::sampler::Draw;
use crate::label::LabelArray;
use crate::with_labels;

/// `array` with its spatial axes (those after the first `lead` axes) mirrored where `flips`
/// says, then permuted (output axis `k` is input axis `order[k]`), in C order.
pub fn transform<T: Clone>(
    array: ArrayViewD<'_, T>,
    lead: usize,
    flips: &[bool],
    order: &[usize],
) -> ArrayD<T> {
    let mut view = array;
    for (axis, _) in flips.iter().enumerate().filter(|(_, f)| **f) {
        view.invert_axis(Axis(lead + axis));
    }
    let axes: Vec<usize> = (0..lead).chain(order.iter().map(|&o| lead + o)).collect();
    view.permuted_axes(axes).as_standard_layout().into_owned()
}

/// A channel-major sample (`channels * voxels` bytes of `shape`) transformed by `draw`, in place.
pub fn transform_channels(values: &mut [u8], channels: usize, shape: &[usize], draw: &Draw) {
    let mut full = vec![channels];
    full.extend_from_slice(shape);
    let view = ArrayViewD::from_shape(full, values).expect("sample buffer of its shape");
    let out = transform(view, 1, &draw.flips, &draw.order);
    values.copy_from_slice(out.as_slice().expect("standard layout"));
}

/// A raw block transformed by `draw`.
pub fn transform_raw(raw: LabelArray, draw: &Draw) -> LabelArray {
    with_labels!(raw, LabelArray, a => transform(a.view(), 0, &draw.flips, &draw.order).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, IxDyn};

    #[test]
    fn mirror_and_permute_match_index_arithmetic() {
        let a =
            Array3::from_shape_fn((2, 3, 4), |(z, y, x)| (z * 100 + y * 10 + x) as u32).into_dyn();
        let t = transform(a.view(), 0, &[true, false, true], &[2, 0, 1]);
        assert_eq!(t.shape(), &[4, 2, 3]);
        for ((x, z, y), &v) in t
            .view()
            .into_dimensionality::<ndarray::Ix3>()
            .unwrap()
            .indexed_iter()
        {
            // Output axes (x, z, y) of the mirrored input.
            let (iz, iy, ix) = (1 - z, y, 3 - x);
            assert_eq!(v, a[IxDyn(&[iz, iy, ix])]);
        }
    }

    #[test]
    fn channels_move_together() {
        let mut values: Vec<u8> = (0..2 * 2 * 3).map(|v| v as u8).collect();
        let draw = Draw {
            crop: 0,
            start: vec![0, 0],
            flips: vec![false, true],
            order: vec![0, 1],
        };
        transform_channels(&mut values, 2, &[2, 3], &draw);
        assert_eq!(values, [2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9]);
    }
}
