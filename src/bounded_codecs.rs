//! Decompression bounded by the chunk's size: gzip, zstd and blosc chunks whose data would
//! decode to more bytes than the chunk holds fail as soon as that is known, before the memory
//! is taken.
//!
//! `zarrs`' own codecs decode into a buffer as large as the compressed stream says (gzip reads
//! to the end, zstd trusts the frame's content size, blosc its header), so a 2 MB gzip chunk
//! that inflates to 4 GiB (a *decompression bomb*) takes 4 GiB before its size is checked.
//! [`register`] puts a wrapper in front of each of those codecs in `zarrs`' runtime codec
//! registry (which takes precedence over its built-in codecs): encoding, metadata and sizes are
//! the wrapped codec's, decoding stops one byte past the decoded size the chunk must have
//! (its shape times the data type's size), and the data type's codec then reports the wrong
//! size as for any other corrupt chunk.
//!
//! ```
//! use annomask::bounded_codecs::bounded_inflate;
//! use std::io::Write;
//! let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
//! gz.write_all(&vec![0u8; 1 << 20])?;
//! let bomb = gz.finish()?;
//! // a chunk of 4096 bytes cannot hold 1 MiB: decoding stops after 4097 bytes
//! assert_eq!(bounded_inflate(&bomb, 4096)?.len(), 4097);
//! assert_eq!(bounded_inflate(&bomb, 1 << 20)?.len(), 1 << 20);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::io::Read;
use std::sync::{Arc, Once};

use zarrs::array::ArrayBytesRaw;
use zarrs::array::codec::api::{
    BytesRepresentation, BytesToBytesCodecTraits, Codec, CodecError, CodecMetadataOptions,
    CodecOptions, CodecRuntimePluginV2, CodecRuntimePluginV3, CodecTraits, CodecTraitsV2,
    CodecTraitsV3, PartialDecoderCapability, PartialEncoderCapability, RecommendedConcurrency,
    register_codec_v2, register_codec_v3,
};
use zarrs::array::codec::{BloscCodec, GzipCodec, ZstdCodec};
use zarrs::metadata::Configuration;
use zarrs::plugin::{
    ExtensionAliases, ExtensionName, PluginCreateError, ZarrVersion, ZarrVersion2, ZarrVersion3,
};

/// The compressions whose decoding is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Gzip,
    Zstd,
    Blosc,
}

/// A bytes-to-bytes codec of `zarrs` whose decoding is bounded by the decoded size.
#[derive(Debug)]
struct Bounded {
    inner: Arc<dyn BytesToBytesCodecTraits>,
    kind: Kind,
}

/// Registers the bounded codecs with `zarrs` (once per process; later calls do nothing).
/// Arrays opened afterwards decode gzip, zstd and blosc chunks through them.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for kind in [Kind::Gzip, Kind::Zstd, Kind::Blosc] {
            register_codec_v3(CodecRuntimePluginV3::new(
                move |name| match kind {
                    Kind::Gzip => <GzipCodec as ExtensionAliases<ZarrVersion3>>::matches_name(name),
                    Kind::Zstd => <ZstdCodec as ExtensionAliases<ZarrVersion3>>::matches_name(name),
                    Kind::Blosc => {
                        <BloscCodec as ExtensionAliases<ZarrVersion3>>::matches_name(name)
                    }
                },
                move |metadata| {
                    let codec = match kind {
                        Kind::Gzip => <GzipCodec as CodecTraitsV3>::create(metadata)?,
                        Kind::Zstd => <ZstdCodec as CodecTraitsV3>::create(metadata)?,
                        Kind::Blosc => <BloscCodec as CodecTraitsV3>::create(metadata)?,
                    };
                    wrap(codec, kind)
                },
            ));
            register_codec_v2(CodecRuntimePluginV2::new(
                move |name| match kind {
                    Kind::Gzip => <GzipCodec as ExtensionAliases<ZarrVersion2>>::matches_name(name),
                    Kind::Zstd => <ZstdCodec as ExtensionAliases<ZarrVersion2>>::matches_name(name),
                    Kind::Blosc => {
                        <BloscCodec as ExtensionAliases<ZarrVersion2>>::matches_name(name)
                    }
                },
                move |metadata| {
                    let codec = match kind {
                        Kind::Gzip => <GzipCodec as CodecTraitsV2>::create(metadata)?,
                        Kind::Zstd => <ZstdCodec as CodecTraitsV2>::create(metadata)?,
                        Kind::Blosc => <BloscCodec as CodecTraitsV2>::create(metadata)?,
                    };
                    wrap(codec, kind)
                },
            ));
        }
    });
}

fn wrap(codec: Codec, kind: Kind) -> Result<Codec, PluginCreateError> {
    match codec {
        Codec::BytesToBytes(inner) => Ok(Codec::BytesToBytes(Arc::new(Bounded { inner, kind }))),
        other => Ok(other),
    }
}

/// Reads at most `limit + 1` bytes from `reader`: one more than a valid chunk can hold, so an
/// oversized stream is seen as such without decoding the rest of it.
fn read_bounded(reader: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(usize::try_from(limit.min(1 << 26)).unwrap_or(1 << 26));
    reader.take(limit.saturating_add(1)).read_to_end(&mut out)?;
    Ok(out)
}

/// Inflates a gzip stream, stopping after `limit + 1` bytes.
pub fn bounded_inflate(encoded: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    read_bounded(flate2::bufread::MultiGzDecoder::new(encoded), limit)
}

/// Decompresses a zstd stream, stopping after `limit + 1` bytes.
pub fn bounded_unzstd(encoded: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    read_bounded(zstd::stream::read::Decoder::new(encoded)?, limit)
}

/// The decoded size a blosc (v1) header declares: bytes 4..8, little endian.
fn blosc_declared_size(encoded: &[u8]) -> Option<u64> {
    let nbytes: [u8; 4] = encoded.get(4..8)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(nbytes)))
}

impl ExtensionName for Bounded {
    fn name(&self, version: ZarrVersion) -> Option<Cow<'static, str>> {
        self.inner.name(version)
    }
}

impl CodecTraits for Bounded {
    fn as_any(&self) -> &dyn std::any::Any {
        self.inner.as_any()
    }

    fn configuration(
        &self,
        version: ZarrVersion,
        options: &CodecMetadataOptions,
    ) -> Option<Configuration> {
        self.inner.configuration(version, options)
    }

    fn partial_decoder_capability(&self) -> PartialDecoderCapability {
        // Always decode whole (through `decode`, so bounded).
        PartialDecoderCapability {
            partial_read: false,
            partial_decode: false,
        }
    }

    fn partial_encoder_capability(&self) -> PartialEncoderCapability {
        self.inner.partial_encoder_capability()
    }
}

impl BytesToBytesCodecTraits for Bounded {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn BytesToBytesCodecTraits> {
        self as Arc<dyn BytesToBytesCodecTraits>
    }

    fn recommended_concurrency(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> Result<RecommendedConcurrency, CodecError> {
        self.inner.recommended_concurrency(decoded_representation)
    }

    fn encoded_representation(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> BytesRepresentation {
        self.inner.encoded_representation(decoded_representation)
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        self.inner.encode(decoded_value, options)
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        decoded_representation: &BytesRepresentation,
        options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        let Some(limit) = decoded_representation.size() else {
            return self
                .inner
                .decode(encoded_value, decoded_representation, options);
        };
        let too_large = |declared: u64| {
            CodecError::Other(format!(
                "the compressed data decodes to {declared} bytes or more, the chunk holds {limit}"
            ))
        };
        let decoded = match self.kind {
            Kind::Gzip => bounded_inflate(&encoded_value, limit)?,
            Kind::Zstd => bounded_unzstd(&encoded_value, limit)?,
            Kind::Blosc => {
                // The header says how large the buffer is that blosc fills: check it first.
                match blosc_declared_size(&encoded_value) {
                    Some(declared) if declared > limit => return Err(too_large(declared)),
                    _ => {
                        return self
                            .inner
                            .decode(encoded_value, decoded_representation, options);
                    }
                }
            }
        };
        if decoded.len() as u64 > limit {
            return Err(too_large(decoded.len() as u64));
        }
        Ok(Cow::Owned(decoded))
    }
    // `partial_decoder` and `partial_encoder`: the defaults, which decode the whole value
    // through `decode` above.
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn decoding_stops_one_byte_past_the_chunk() {
        let bomb = gzip(&vec![7u8; 1 << 22]);
        assert_eq!(bounded_inflate(&bomb, 100).unwrap().len(), 101);
        let z = zstd::encode_all(&vec![7u8; 1 << 22][..], 3).unwrap();
        assert_eq!(bounded_unzstd(&z, 100).unwrap().len(), 101);
        assert_eq!(bounded_unzstd(&z, 1 << 22).unwrap().len(), 1 << 22);
    }

    #[test]
    fn wrapped_codecs_decode_what_they_encode_and_refuse_more() {
        register();
        let data: Vec<u8> = (0..4096u32).flat_map(|v| v.to_le_bytes()).collect();
        let size = BytesRepresentation::FixedSize(data.len() as u64);
        let options = CodecOptions::default();
        let codecs = [
            (
                Kind::Gzip,
                Arc::new(GzipCodec::new(5).unwrap()) as Arc<dyn BytesToBytesCodecTraits>,
            ),
            (Kind::Zstd, Arc::new(ZstdCodec::new(3, false))),
        ];
        for (kind, inner) in codecs {
            let codec = Bounded { inner, kind };
            let encoded = codec.encode(Cow::Borrowed(&data), &options).unwrap();
            let decoded = codec.decode(encoded.clone(), &size, &options).unwrap();
            assert_eq!(decoded.as_ref(), data.as_slice(), "{kind:?}");
            let small = BytesRepresentation::FixedSize(100);
            let err = codec
                .decode(encoded, &small, &options)
                .unwrap_err()
                .to_string();
            assert!(err.contains("the chunk holds 100"), "{kind:?}: {err}");
        }
    }
}
