//! Every entry point of every shader through naga's validator and its SPIR-V, MSL, HLSL and GLSL
//! back ends, and within the limits every WebGPU adapter offers.

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use wgml::kernels::matmul::{SUBGROUP_SHADER, SUBGROUP_STORAGE_BUFFERS};
use wgml::kernels::{small_head, SHADERS};

/// Limits every adapter offers (WebGPU's defaults; Metal reserves one of its storage slots).
const MAX_INVOCATIONS: u32 = 256;
const MAX_WORKGROUP_BYTES: u32 = 16 * 1024;
const MAX_STORAGE_BUFFERS: usize = 8;

#[test]
fn every_entry_point_validates_and_translates_to_all_four_back_ends() {
    let mut checked = 0;
    let mut with_glsl = 0;
    for shader in SHADERS {
        let module = naga::front::wgsl::parse_str(shader.source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        let info = Validator::new(
            ValidationFlags::all(),
            Capabilities::SUBGROUP | Capabilities::SHADER_INT64,
        )
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        // Override constants take their defaults, as a pipeline that sets none would.
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            None,
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("{}: overrides: {e}", shader.name));
        let (module, info) = (module.as_ref(), info.as_ref());
        assert!(
            !module.entry_points.is_empty(),
            "{} has no entry point",
            shader.name
        );

        for (index, ep) in module.entry_points.iter().enumerate() {
            let at = format!("{}::{}", shader.name, ep.name);
            let [x, y, z] = ep.workgroup_size;
            assert!(
                x * y * z <= MAX_INVOCATIONS,
                "{at}: {} invocations per workgroup",
                x * y * z
            );

            let usage = info.get_entry_point(index);
            let mut storage = 0;
            let mut workgroup_bytes = 0;
            for (handle, var) in module.global_variables.iter() {
                if usage[handle].is_empty() {
                    continue;
                }
                match var.space {
                    naga::AddressSpace::Storage { .. } => storage += 1,
                    naga::AddressSpace::WorkGroup => {
                        workgroup_bytes += module.types[var.ty].inner.size(module.to_ctx())
                    }
                    _ => {}
                }
            }
            // The subgroup matmul, for CPU adapters, needs more; the host checks the device.
            let max_storage = if shader.name == SUBGROUP_SHADER.name {
                SUBGROUP_STORAGE_BUFFERS as usize
            } else if [small_head::SHADER.name, small_head::LANES_SHADER.name]
                .contains(&shader.name)
            {
                small_head::STORAGE_BUFFERS as usize
            } else {
                MAX_STORAGE_BUFFERS
            };
            assert!(storage <= max_storage, "{at}: {storage} storage buffers");
            assert!(
                workgroup_bytes <= MAX_WORKGROUP_BYTES,
                "{at}: {workgroup_bytes} bytes of workgroup memory"
            );

            let stage = naga::ShaderStage::Compute;
            let spv_pipeline = spv::PipelineOptions {
                shader_stage: stage,
                entry_point: ep.name.clone(),
            };
            spv::write_vec(module, info, &spv::Options::default(), Some(&spv_pipeline))
                .unwrap_or_else(|e| panic!("{at}: SPIR-V: {e}"));

            let msl_options = msl::Options {
                lang_version: (2, 0),
                ..Default::default()
            };
            let msl_pipeline = msl::PipelineOptions {
                entry_point: Some((stage, ep.name.clone())),
                ..Default::default()
            };
            msl::write_string(module, info, &msl_options, &msl_pipeline)
                .unwrap_or_else(|e| panic!("{at}: MSL: {e}"));

            let hlsl_options = hlsl::Options::default();
            let hlsl_pipeline = hlsl::PipelineOptions {
                entry_point: Some((stage, ep.name.clone())),
            };
            let mut hlsl_out = String::new();
            hlsl::Writer::new(&mut hlsl_out, &hlsl_options, &hlsl_pipeline)
                .write(module, info, None)
                .unwrap_or_else(|e| panic!("{at}: HLSL: {e}"));

            // naga's GLSL back end has no 64-bit integers, and wgpu's GL back end never offers
            // SHADER_INT64: the kernels that need them (CPU-adapter variants of portable ones)
            // stop at the other three.
            checked += 1;
            if uses_int64(module) {
                continue;
            }
            let glsl_options = glsl::Options::default();
            let glsl_pipeline = glsl::PipelineOptions {
                shader_stage: stage,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            let mut glsl_out = String::new();
            glsl::Writer::new(
                &mut glsl_out,
                module,
                info,
                &glsl_options,
                &glsl_pipeline,
                Default::default(),
            )
            .and_then(|mut w| w.write())
            .unwrap_or_else(|e| panic!("{at}: GLSL: {e}"));
            with_glsl += 1;
        }
    }
    println!(
        "validated {checked} entry points for SPIR-V, MSL and HLSL, {with_glsl} of them for GLSL"
    );
    assert!(checked >= 11, "only {checked} entry points found");
}

/// Whether any type of `module` holds 64-bit integers.
fn uses_int64(module: &naga::Module) -> bool {
    module.types.iter().any(|(_, ty)| match ty.inner {
        naga::TypeInner::Scalar(s) | naga::TypeInner::Vector { scalar: s, .. } => {
            s.width == 8 && matches!(s.kind, naga::ScalarKind::Uint | naga::ScalarKind::Sint)
        }
        _ => false,
    })
}

/// Every uniform block the host writes has the size, field names and field offsets of the WGSL
/// struct the shader reads it as, and every shader with a uniform block is covered.
#[test]
fn every_uniform_block_matches_its_wgsl_struct() {
    let layouts = wgml::kernels::uniform_layouts();
    for shader in SHADERS {
        let module = naga::front::wgsl::parse_str(shader.source).unwrap();
        let uniform = module
            .global_variables
            .iter()
            .find(|(_, v)| v.space == naga::AddressSpace::Uniform);
        let Some((_, var)) = uniform else {
            assert!(
                !layouts.iter().any(|l| l.shader.name == shader.name),
                "{} has no uniform block",
                shader.name
            );
            continue;
        };
        let layout = (layouts.iter().find(|l| l.shader.name == shader.name))
            .unwrap_or_else(|| panic!("{}: no host layout for its uniform block", shader.name));
        let naga::TypeInner::Struct { members, span } = &module.types[var.ty].inner else {
            panic!("{}: the uniform block is not a struct", shader.name)
        };
        let wgsl: Vec<(&str, usize)> = members
            .iter()
            .map(|m| (m.name.as_deref().unwrap_or(""), m.offset as usize))
            .collect();
        assert_eq!(wgsl, layout.fields, "{}: fields and offsets", shader.name);
        assert_eq!(*span as usize, layout.size, "{}: size", shader.name);
    }
    // Every layout belongs to a shader of SHADERS, once.
    for layout in &layouts {
        let named = |l: &&wgml::kernels::UniformLayout| l.shader.name == layout.shader.name;
        assert!(SHADERS.iter().any(|s| s.name == layout.shader.name));
        assert_eq!(
            layouts.iter().filter(named).count(),
            1,
            "{}",
            layout.shader.name
        );
    }
}

/// The codes the host writes into uniforms and override constants (reductions, flag bits,
/// matmul read modes) equal the WGSL constants the shaders compare them with.
#[test]
fn host_codes_equal_the_wgsl_constants() {
    let constants = wgml::kernels::shader_constants();
    assert!(constants.len() >= 12);
    for (shader, name, host) in constants {
        let module = naga::front::wgsl::parse_str(shader.source).unwrap();
        let (_, constant) = (module.constants.iter())
            .find(|(_, c)| c.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{}: no constant {name}", shader.name));
        let value = match module.global_expressions[constant.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => v,
            ref other => panic!("{}::{name} is {other:?}", shader.name),
        };
        assert_eq!(value, host, "{}::{name}", shader.name);
    }
}
