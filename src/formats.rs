//! The source formats, in the order detection asks them ([`FORMATS`]), and [`detect`], which
//! walks that list once per source. A new format is its own folder (beside `src/labels/` and
//! `src/cellmap/`) implementing [`SourceFormat`] and [`crate::source::MaskSource`], and one line
//! here.
//!
//! ```
//! use annomask::{cellmap, formats, node::Node, synth, ZarrFormat};
//! let dir = tempfile::tempdir()?;
//! let labels = synth::write_demo_crop(dir.path(), 8, ZarrFormat::V3)?;
//! let crop = cellmap::synth::write_demo_crop(dir.path(), 8, ZarrFormat::V2)?;
//! assert_eq!(formats::detect(&Node::local(&labels)?).name(), "label array");
//! assert_eq!(formats::detect(&Node::local(&crop)?).name(), "CellMap crop group");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::cellmap::CropFormat;
use crate::labels::LabelFormat;
use crate::node::Node;
use crate::source::SourceFormat;

/// The formats a source may be, in the order detection asks them: the first that
/// [recognises](SourceFormat::recognises) a path opens it. The last is the fallback: it
/// recognises every path, and explains why it cannot open one that is no source at all.
pub static FORMATS: &[&dyn SourceFormat] = &[&CropFormat, &LabelFormat];

/// The format of the source at `node`: the first of [`FORMATS`] that recognises it.
pub fn detect(node: &Node) -> &'static dyn SourceFormat {
    FORMATS
        .iter()
        .copied()
        .find(|format| format.recognises(node))
        .expect("the last format recognises every node")
}
