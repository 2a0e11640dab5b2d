//! Where the output goes and how it is cut: the chunk shape (clipped to the array, split to the
//! memory budget), the dataset path of a multiscale input, and the refusal of an output that
//! overlaps an input.

use std::path::{Path, PathBuf};

use crate::budget::MemoryBudget;
use crate::geometry::VoxelRegion;
use crate::mask::MissingAnnotationsMask;

/// Channels per chunk and the spatial chunk shape: `--chunks` as given (spatial, or channel
/// first), else all channels and the label chunk shape; either clipped to the region (as zarr
/// clips a default chunk shape). Without `--chunks`, a block that would take more than an
/// eighth of the memory budget (`bytes_per_voxel` a voxel) is halved along its longest axis
/// until it does not: a label array stored in one huge chunk is then read in parts.
pub(super) fn chunk_layout(
    chunks: Option<&[u64]>,
    num_channels: u64,
    label_chunks: &[u64],
    region: &VoxelRegion,
    bytes_per_voxel: u64,
    budget: MemoryBudget,
) -> Result<(u64, Vec<u64>), String> {
    let dims = region.shape.len();
    let (channel_chunk, spatial) = match chunks {
        None => (num_channels, label_chunks.to_vec()),
        Some(c) if c.len() == dims => (num_channels, c.to_vec()),
        Some(c) if c.len() == dims + 1 => (c[0], c[1..].to_vec()),
        Some(c) => {
            return Err(format!(
                "--chunks has {} values; give {dims} (spatial) or {} (channel first)",
                c.len(),
                dims + 1
            ));
        }
    };
    if channel_chunk == 0 || spatial.contains(&0) {
        return Err("chunk sizes must be positive".into());
    }
    let channel_chunk = channel_chunk.min(num_channels);
    let mut spatial: Vec<u64> = spatial
        .iter()
        .zip(&region.shape)
        .map(|(&c, &s)| c.min(s).max(1))
        .collect();
    if chunks.is_none() {
        let target = budget.bytes() / 8;
        let bytes = |s: &[u64]| {
            s.iter()
                .fold(u128::from(bytes_per_voxel), |n, &c| n * u128::from(c))
        };
        while bytes(&spatial) > u128::from(target) {
            let (axis, &longest) = spatial
                .iter()
                .enumerate()
                .max_by_key(|&(_, &c)| c)
                .expect("at least one axis");
            if longest <= 1 {
                break;
            }
            spatial[axis] = longest.div_ceil(2);
        }
    }
    Ok((channel_chunk, spatial))
}

/// `path` made absolute and free of `.`/`..` and symbolic links as far as it exists (the rest
/// is appended as written, lexically normalised).
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return out;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Fails if the output at `root` is an input of `mask`, inside one, or holds one: the input is
/// never written to.
pub(super) fn check_apart_from_inputs(
    root: &Path,
    mask: &MissingAnnotationsMask,
) -> Result<(), String> {
    let text = root.to_string_lossy();
    if crate::remote::is_url(&text) {
        // URLs: the same store and key, or one below the other.
        let within = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
        let out = text.trim_end_matches('/');
        for input in mask.source().input_paths() {
            let input = input.to_string_lossy();
            let input = input.trim_end_matches('/');
            let problem = if out == input {
                "the output is the input".to_string()
            } else if within(out, input) {
                format!("the output is inside the input {input}")
            } else if within(input, out) {
                format!("the output contains the input {input}")
            } else {
                continue;
            };
            return Err(format!(
                "{problem}; the input is never written to: choose an output outside it"
            ));
        }
        return Ok(());
    }
    let out = resolved(root);
    for input in mask.source().input_paths() {
        let input_resolved = resolved(input);
        let problem = if out == input_resolved {
            "the output is the input".to_string()
        } else if out.starts_with(&input_resolved) {
            format!("the output is inside the input {}", input.display())
        } else if input_resolved.starts_with(&out) {
            format!("the output contains the input {}", input.display())
        } else {
            continue;
        };
        return Err(format!(
            "{problem}; the input is never written to: choose an output path outside it"
        ));
    }
    Ok(())
}

/// The input's dataset path within its parent group (its directory or key name), e.g. `s0`.
pub(super) fn dataset_path(input: &crate::node::Node) -> Option<String> {
    match input.local_path() {
        Some(path) => path
            .canonicalize()
            .ok()?
            .file_name()
            .map(|f| f.to_string_lossy().into_owned()),
        None => Some(input.last_name().to_string()).filter(|n| !n.is_empty()),
    }
}
