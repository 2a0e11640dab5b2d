//! Every shader parses, validates, and specialises (pipeline constants of every label dtype)
//! into SPIR-V with naga, so a shader error fails `cargo test`, not a user's run.

use annomask::LabelDtype;
use annomask::gpu::layout::label_constants;
use annomask::gpu::pipeline::MASK_WGSL;

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

#[test]
fn mask_wgsl_validates_and_specialises_for_every_dtype() {
    let (module, info) = validate("mask.wgsl", MASK_WGSL);
    for (dtype, entry) in LabelDtype::ALL
        .into_iter()
        .flat_map(|d| ["main", "main_packed"].map(|e| (d, e)))
    {
        let (bits, signed) = label_constants(dtype);
        let mut constants = naga::back::PipelineConstants::default();
        constants.insert("LABEL_BITS".to_string(), bits as f64);
        constants.insert("SIGNED".to_string(), signed as u8 as f64);
        let (specialised, spec_info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((naga::ShaderStage::Compute, entry)),
            &constants,
        )
        .unwrap_or_else(|e| panic!("mask.wgsl {entry} for {dtype}: {e:?}"));
        naga::back::spv::write_vec(
            &specialised,
            &spec_info,
            &naga::back::spv::Options::default(),
            Some(&naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: entry.into(),
            }),
        )
        .unwrap_or_else(|e| panic!("mask.wgsl {entry} for {dtype} to SPIR-V: {e:?}"));
    }
}

#[test]
fn mask_wgsl_workgroup_size_matches_the_host() {
    let (module, _) = validate("mask.wgsl", MASK_WGSL);
    let main = module
        .entry_points
        .iter()
        .find(|e| e.name == "main")
        .expect("entry point main");
    assert_eq!(
        main.workgroup_size,
        [annomask::gpu::layout::WORKGROUP_SIZE, 1, 1]
    );
}
