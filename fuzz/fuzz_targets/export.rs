//! The exporters and the importer over arbitrary text: a stack file that validates
//! exports to Kubernetes and Terraform, and any text imports as Terraform, with every
//! warning inside the text and never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count().max(1);
    if let Ok(stack) = bellows_core::stack::parse(text) {
        let opts = bellows_export::kubernetes::Options {
            image: "x:1".to_owned(),
            gateway_class: "default".to_owned(),
            eks: data.len() % 2 == 0,
        };
        let k = bellows_export::kubernetes::export(&stack, text, &opts);
        let t = bellows_export::terraform::export(
            &stack,
            text,
            &bellows_export::terraform::Options { create_network: data.len() % 3 == 0 },
        );
        for w in k.warnings.iter().chain(&t.warnings) {
            assert!(w.line >= 1 && w.line <= lines, "{w:?} in {lines} lines");
        }
        // What export writes imports again.
        let tf = &t.files[0].1;
        let i = bellows_export::import::import(
            &[bellows_export::import::Source { name: "main.tf".into(), text: tf.clone() }],
            &stack.name,
        );
        assert!(i.is_ok(), "{i:?}\n{tf}");
    }
    let _ = bellows_export::import::import(
        &[bellows_export::import::Source { name: "main.tf".into(), text: text.to_owned() }],
        "x",
    );
});
