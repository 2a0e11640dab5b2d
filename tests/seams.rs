//! The seams of issue 13, exercised from outside the crate: a source read from a store that is
//! not the filesystem (`Node` over a zarrs `MemoryStore`), a source format the crate does not
//! know (a `MaskSource` of its own) computed by the pipeline and the feeder unchanged, and the
//! output seam (`MaskSink`) collecting a mask in memory.

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, Mutex};

use annomask::blocks::{Block, BlockGrid, Shard};
use annomask::engine::Engine;
use annomask::feeder::{Feeder, FeederConfig};
use annomask::geometry::VoxelRegion;
use annomask::node::Node;
use annomask::output::{MaskOutput, OutputOptions};
use annomask::pipeline::{self, RunOptions};
use annomask::sink::MaskSink;
use annomask::source::{MaskSource, SourceBlock, SourcePlan};
use annomask::volume::LabelVolume;
use annomask::{
    CropOptions, EngineChoice, LabelSource, MaskOptions, MissingAnnotationsMask, ZarrFormat,
    cellmap, synth,
};
use serde_json::{Map, Value};
use zarrs::storage::store::MemoryStore;
use zarrs::storage::{StoreKey, WritableStorageTraits};

fn cpu() -> MaskOptions {
    MaskOptions::default().engine(EngineChoice::Cpu)
}

/// Copies every file below `dir` into a memory store, keyed by its path relative to `dir`.
fn into_memory(dir: &Path) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let key = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&path).unwrap();
            store
                .set(&StoreKey::new(key).unwrap(), bytes.into())
                .unwrap();
        }
    }
    store
}

#[test]
fn a_label_array_and_a_crop_group_read_from_a_memory_store_equal_the_local_ones() {
    for format in [ZarrFormat::V2, ZarrFormat::V3] {
        let dir = tempfile::tempdir().unwrap();
        let labels = synth::write_demo_crop(dir.path(), 12, format).unwrap();
        let crop = cellmap::synth::write_demo_crop(dir.path(), 12, format).unwrap();
        let store = into_memory(dir.path());
        for (path, groupings) in [
            (
                &labels,
                annomask::ChannelGroupings::from(synth::demo_groupings()),
            ),
            (&crop, cellmap::synth::demo_groupings().into()),
        ] {
            let relative = path.strip_prefix(dir.path()).unwrap().to_string_lossy();
            let node = Node::new(store.clone(), &relative, format!("memory://{relative}"));
            let remote = MissingAnnotationsMask::open_node(
                &node,
                groupings.clone(),
                cpu(),
                &CropOptions::default(),
            )
            .unwrap();
            let local = MissingAnnotationsMask::open(path, groupings, cpu()).unwrap();
            assert_eq!(remote.source().format(), local.source().format());
            assert_eq!(remote.shape(), local.shape());
            assert_eq!(remote.voxel_size(), local.voxel_size());
            assert_eq!(remote.channels(), local.channels());
            assert_eq!(
                remote.get_with_targets(&remote.roi()).unwrap(),
                local.get_with_targets(&local.roi()).unwrap(),
                "{relative} ({format:?})"
            );
            // Messages name the node as it was given.
            assert!(
                remote
                    .volume()
                    .name()
                    .starts_with(&format!("memory://{relative}")),
                "{}",
                remote.volume().name()
            );
        }
    }
}

#[test]
fn a_missing_node_in_a_memory_store_is_a_typed_error_naming_it() {
    let store = Arc::new(MemoryStore::new());
    let node = Node::new(store, "nothing/here", "memory://nothing/here");
    let err = MissingAnnotationsMask::open_node(
        &node,
        synth::demo_groupings(),
        cpu(),
        &CropOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("memory://nothing/here"), "{err}");
}

/// A source format the crate does not know: a label array whose channels are read under other
/// names (its own `MaskSource`, delegating the work to a `LabelSource`).
#[derive(Debug)]
struct Renamed {
    inner: LabelSource,
    names: Vec<String>,
}

impl MaskSource for Renamed {
    fn format(&self) -> &'static str {
        "renamed label array"
    }
    fn path(&self) -> &Path {
        self.inner.path()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn input_paths(&self) -> Vec<&Path> {
        self.inner.input_paths()
    }
    fn volume(&self) -> &LabelVolume {
        self.inner.volume()
    }
    fn channels(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }
    fn plan(&self) -> &dyn SourcePlan {
        self.inner.plan()
    }
    fn attrs(&self) -> &Map<String, Value> {
        self.inner.attrs()
    }
    fn read_block(&self, region: &VoxelRegion) -> annomask::Result<SourceBlock> {
        self.inner.read_block(region)
    }
    fn compute_block(
        &self,
        engine: &Engine,
        block: &SourceBlock,
        mask: &mut [u8],
        targets: Option<&mut [u8]>,
        verify: bool,
    ) -> annomask::Result<()> {
        self.inner
            .compute_block(engine, block, mask, targets, verify)
    }
    fn output_attributes(&self) -> Map<String, Value> {
        let mut attrs = self.inner.output_attributes();
        attrs.insert("renamed".into(), Value::Bool(true));
        attrs
    }
    fn channel_rules(&self) -> (&'static str, Vec<(String, String)>) {
        self.inner.channel_rules()
    }
    fn source_bytes_per_voxel(&self) -> u64 {
        self.inner.source_bytes_per_voxel()
    }
    fn cache_chunks(&self, bytes: u64) {
        self.inner.cache_chunks(bytes);
    }
    fn set_chunk_limit(&mut self, bytes: u64) {
        self.inner.set_chunk_limit(bytes);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn renamed(path: &Path) -> MissingAnnotationsMask {
    let volume = LabelVolume::open(path).unwrap();
    let inner = LabelSource::new(volume, synth::demo_groupings(), &cpu()).unwrap();
    let names = (0..inner.plan().num_channels())
        .map(|c| format!("channel{c}"))
        .collect();
    MissingAnnotationsMask::from_source(Box::new(Renamed { inner, names }), cpu(), Engine::cpu())
}

#[test]
fn a_source_format_of_its_own_runs_through_the_pipeline_output_and_feeder_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = synth::write_demo_crop(dir.path(), 16, ZarrFormat::V3).unwrap();
    let mask = renamed(&path);
    let plain = MissingAnnotationsMask::open(&path, synth::demo_groupings(), cpu()).unwrap();
    assert_eq!(mask.channels()[0], "channel0");
    assert_eq!(
        mask.get(&mask.roi()).unwrap(),
        plain.get(&plain.roi()).unwrap()
    );

    // The pipeline and the zarr output: the source's own attributes are written.
    let out_path = dir.path().join("renamed_mask.zarr");
    let out = MaskOutput::new(&out_path, &mask, None, &OutputOptions::default()).unwrap();
    let summary = pipeline::run(&mask, &out, &RunOptions::default(), &|_| {}).unwrap();
    assert_eq!(summary.blocks_written, out.grid().num_blocks());
    let attrs = Node::local(&out_path).unwrap().attributes().unwrap();
    assert_eq!(attrs["renamed"], Value::Bool(true));
    assert_eq!(attrs["channels"][0], "channel0");

    // The feeder.
    let config = FeederConfig::new(vec![8, 8, 8]).seed(7).batch_size(2);
    let mut feeder = Feeder::new(vec![Arc::new(mask)], config).unwrap();
    let batch = feeder.next().unwrap().unwrap();
    assert_eq!(batch.mask.shape(), &[2, 5, 8, 8, 8]);
}

/// An output form of its own: the mask collected in memory.
struct Collect {
    grid: BlockGrid,
    channels: usize,
    shape: Vec<usize>,
    data: Mutex<Vec<u8>>,
}

impl MaskSink for Collect {
    fn grid(&self) -> &BlockGrid {
        &self.grid
    }
    fn source_region(&self, block: &Block) -> VoxelRegion {
        VoxelRegion {
            start: block.start.clone(),
            shape: block.shape.clone(),
        }
    }
    fn check_memory(&self, _blocks: u64) -> annomask::Result<()> {
        Ok(())
    }
    fn prepare(&self, _shard: Shard, _start: std::time::SystemTime) -> annomask::Result<usize> {
        Ok(0)
    }
    fn is_complete(&self, _block: &Block) -> annomask::Result<bool> {
        Ok(false)
    }
    fn write_block(&self, block: &Block, data: &[u8]) -> annomask::Result<()> {
        let voxels = block.num_voxels() as usize;
        let mut all = self.data.lock().unwrap();
        let total: usize = self.shape.iter().product();
        let (sy, sx) = (self.shape[1], self.shape[2]);
        for c in 0..self.channels {
            let (by, bx) = (block.shape[1] as usize, block.shape[2] as usize);
            for i in 0..voxels {
                let (z, y, x) = (i / (by * bx), (i / bx) % by, i % bx);
                let at = (block.start[0] as usize + z) * sy * sx
                    + (block.start[1] as usize + y) * sx
                    + block.start[2] as usize
                    + x;
                all[c * total + at] = data[c * voxels + i];
            }
        }
        Ok(())
    }
}

#[test]
fn an_output_form_of_its_own_receives_every_block_and_equals_the_mask() {
    let dir = tempfile::tempdir().unwrap();
    let path = synth::write_demo_crop(dir.path(), 20, ZarrFormat::V2).unwrap();
    let mask = MissingAnnotationsMask::open(&path, synth::demo_groupings(), cpu()).unwrap();
    let channels = mask.num_channels();
    let sink = Collect {
        grid: BlockGrid::try_new(vec![20, 20, 20], vec![8, 8, 8]).unwrap(),
        channels,
        shape: vec![20, 20, 20],
        data: Mutex::new(vec![9; channels * 8000]),
    };
    let summary = pipeline::run(&mask, &sink, &RunOptions::default(), &|_| {}).unwrap();
    assert_eq!(summary.blocks_written, 27);
    let want = mask.get(&mask.roi()).unwrap();
    assert_eq!(
        sink.data.lock().unwrap().as_slice(),
        want.as_slice().unwrap()
    );
}
