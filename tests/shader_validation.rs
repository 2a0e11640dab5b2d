//! Every shader parses, validates, and specialises (pipeline constants of every label dtype)
//! into SPIR-V with naga, so a shader error fails `cargo test`, not a user's run. The crop-group
//! kernel has no pipeline constants (dtypes are per class, in its plan buffer): it is processed
//! with none, which also folds its constant expressions.

use annomask::LabelDtype;
use annomask::gpu::kernels::cellmap::CELLMAP_WGSL;
use annomask::gpu::kernels::mask::MASK_WGSL;
use annomask::gpu::layout::label_constants;

fn validate(name: &str, source: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    (module, info)
}

/// Applies `constants` to entry point `entry` and writes SPIR-V, as pipeline creation does.
fn specialise(
    what: &str,
    entry: &str,
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    constants: &naga::back::PipelineConstants,
) {
    let (specialised, spec_info) = naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, entry)),
        constants,
    )
    .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    naga::back::spv::write_vec(
        &specialised,
        &spec_info,
        &naga::back::spv::Options::default(),
        Some(&naga::back::spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: entry.into(),
        }),
    )
    .unwrap_or_else(|e| panic!("{what} to SPIR-V: {e:?}"));
}

#[test]
fn mask_wgsl_validates_and_specialises_for_every_dtype() {
    let (module, info) = validate("mask.wgsl", MASK_WGSL);
    for dtype in LabelDtype::ALL {
        let (bits, signed) = label_constants(dtype);
        let mut constants = naga::back::PipelineConstants::default();
        constants.insert("LABEL_BITS".to_string(), bits as f64);
        constants.insert("SIGNED".to_string(), signed as u8 as f64);
        for entry in ["main", "main_packed", "main_fused"] {
            let what = format!("mask.wgsl {entry} for {dtype}");
            specialise(&what, entry, &module, &info, &constants);
        }
    }
}

#[test]
fn cellmap_wgsl_validates_and_compiles() {
    let (module, info) = validate("cellmap.wgsl", CELLMAP_WGSL);
    assert!(
        module.overrides.is_empty(),
        "cellmap.wgsl takes no pipeline constants; the host passes none"
    );
    specialise(
        "cellmap.wgsl",
        "main",
        &module,
        &info,
        &naga::back::PipelineConstants::default(),
    );
}

#[test]
fn workgroup_sizes_match_the_host() {
    for (name, source) in [("mask.wgsl", MASK_WGSL), ("cellmap.wgsl", CELLMAP_WGSL)] {
        let (module, _) = validate(name, source);
        assert!(!module.entry_points.is_empty(), "{name} has entry points");
        for entry in &module.entry_points {
            assert_eq!(
                entry.workgroup_size,
                [annomask::gpu::layout::WORKGROUP_SIZE, 1, 1],
                "{name} {}",
                entry.name
            );
        }
    }
}

/// The constants of `cellmap.wgsl` equal those of the host layout (`src/gpu/layout/cellmap.rs`).
#[test]
fn cellmap_wgsl_constants_match_the_host() {
    use annomask::gpu::layout::cellmap as host;
    let (module, _) = validate("cellmap.wgsl", CELLMAP_WGSL);
    let value_of = |name: &str| -> u32 {
        let c = module
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("constant {name}"))
            .1;
        match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => v,
            ref other => panic!("{name} = {other:?}"),
        }
    };
    let expected = [
        ("CLASS_WORDS", host::CLASS_WORDS as u32),
        ("SIGNED", host::SIGNED),
        ("INSTANCE", host::INSTANCE),
        ("HAS_ABSENT", host::HAS_ABSENT),
        ("HAS_PRESENT", host::HAS_PRESENT),
        ("HAS_UNKNOWN", host::HAS_UNKNOWN),
    ];
    for (name, want) in expected {
        assert_eq!(value_of(name), want, "{name}");
    }
}
