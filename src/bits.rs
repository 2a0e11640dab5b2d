//! The mask's layouts in memory ([`MaskLayout`]: one byte, or bit-packed at 1 bit per voxel per
//! channel, 8x less output) and the buffers one computation writes ([`Outputs`], the request of
//! [`crate::Engine::run`]).
//!
//! Layout: channel-major; each channel takes `packed_len(n) = ceil(n / 8)` bytes, voxel `i` at
//! bit `i % 8` (least significant first) of byte `i / 8` — numpy's
//! `np.packbits(mask, axis=-1, bitorder="little")` of the flattened channel. Padding bits past
//! `n` are 0.
//!
//! ```
//! use annomask::bits;
//! let mask = [1u8, 0, 1, 1, 0, 0, 0, 0, 1];
//! let mut packed = vec![0u8; bits::packed_len(mask.len())];
//! bits::pack_into(&mask, &mut packed);
//! assert_eq!(packed, [0b0000_1101, 0b0000_0001]);
//! assert_eq!(bits::unpack(&packed, mask.len()), mask);
//! ```

/// Where one request writes: the mask in `layout` and, when asked, the targets (one byte per
/// voxel per channel). Both are channel-major: channel `c` takes bytes
/// `c * layout.channel_len(n) ..` of `n` voxels.
#[derive(Debug)]
pub struct Outputs<'a> {
    /// The mask.
    pub mask: &'a mut [u8],
    /// One byte per voxel ([`MaskLayout::Bytes`]) or bit-packed ([`MaskLayout::Bits`], see
    /// [`crate::bits`]).
    pub layout: MaskLayout,
    /// The training targets (only with [`MaskLayout::Bytes`]).
    pub targets: Option<&'a mut [u8]>,
}

impl<'a> Outputs<'a> {
    /// A mask of one byte (0/1) per voxel per channel.
    pub fn bytes(mask: &'a mut [u8]) -> Self {
        Self::layout(mask, MaskLayout::Bytes)
    }

    /// A bit-packed mask: per channel `packed_len(n)` bytes, voxel `i` at bit `i % 8` of byte
    /// `i / 8`.
    pub fn bits(mask: &'a mut [u8]) -> Self {
        Self::layout(mask, MaskLayout::Bits)
    }

    /// A mask in `layout`.
    pub fn layout(mask: &'a mut [u8], layout: MaskLayout) -> Self {
        Self {
            mask,
            layout,
            targets: None,
        }
    }

    /// The same mask and the targets, computed in the same pass.
    pub fn with_targets(self, targets: &'a mut [u8]) -> Self {
        Self {
            targets: Some(targets),
            ..self
        }
    }

    /// The same outputs, borrowed for a shorter time.
    pub fn reborrow(&mut self) -> Outputs<'_> {
        Outputs {
            mask: self.mask,
            layout: self.layout,
            targets: self.targets.as_deref_mut(),
        }
    }
}

/// How a mask is laid out in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskLayout {
    /// One byte (0 or 1) per voxel per channel.
    #[default]
    Bytes,
    /// One bit per voxel per channel (see the module docs).
    Bits,
}

impl MaskLayout {
    /// Bytes one channel of `n` voxels takes.
    pub fn channel_len(self, n: usize) -> usize {
        match self {
            Self::Bytes => n,
            Self::Bits => packed_len(n),
        }
    }
}

/// Bytes of `n` packed voxels: `ceil(n / 8)`.
pub fn packed_len(n: usize) -> usize {
    n.div_ceil(8)
}

/// Packs 0/1 bytes into bits: `out[j]` bit `k` = `mask[8 j + k]`. `out` must be
/// `packed_len(mask.len())` bytes long; only the lowest bit of each mask byte is used.
pub fn pack_into(mask: &[u8], out: &mut [u8]) {
    assert_eq!(out.len(), packed_len(mask.len()), "packed output length");
    let whole = mask.len() / 8;
    for (o, eight) in out.iter_mut().zip(mask.chunks_exact(8)) {
        let x = u64::from_le_bytes(eight.try_into().expect("8 bytes")) & 0x0101_0101_0101_0101;
        // Byte k's low bit lands on bit 56 + k; every other product term falls below bit 56
        // or beyond bit 63, and none carries (each bit position receives at most one term).
        *o = (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8;
    }
    if whole < out.len() {
        out[whole] = mask[8 * whole..]
            .iter()
            .enumerate()
            .fold(0u8, |b, (k, &v)| b | (v & 1) << k);
    }
}

/// Unpacks `n` voxels of a packed channel into 0/1 bytes.
pub fn unpack(packed: &[u8], n: usize) -> Vec<u8> {
    (0..n).map(|i| (packed[i / 8] >> (i % 8)) & 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_matches_the_bit_by_bit_definition() {
        for n in 0..70 {
            for seed in 0..20u64 {
                let mask: Vec<u8> = (0..n)
                    .map(|i| ((crate::synth::splitmix64(seed * 100 + i as u64) >> 7) & 1) as u8)
                    .collect();
                let mut packed = vec![0xFFu8; packed_len(n)];
                pack_into(&mask, &mut packed);
                let mut want = vec![0u8; packed_len(n)];
                for (i, &m) in mask.iter().enumerate() {
                    want[i / 8] |= m << (i % 8);
                }
                assert_eq!(packed, want, "n {n} seed {seed}");
                assert_eq!(unpack(&packed, n), mask);
            }
        }
        let mut all = [0u8; 1];
        pack_into(&[1; 8], &mut all);
        assert_eq!(all, [0xFF]);
    }
}
