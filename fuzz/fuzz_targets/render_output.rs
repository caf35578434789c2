//! What a renderer prints (helm template with `# Source:` lines, a command's YAML or JSON):
//! no panic, every object or error named.
#![no_main]
use driftguard_core::model::Rendering;
use driftguard_core::render::{read_command_output, read_helm_output};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let rendering = Rendering {
        renderer: "helm".into(),
        source: "charts/shop".into(),
        ..Rendering::default()
    };
    if first & 1 == 0 {
        let _ = read_helm_output(text, "charts/shop", &rendering);
    } else {
        let _ = read_command_output(text, "out.yaml", &rendering);
    }
});
