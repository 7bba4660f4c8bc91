#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| colo_fuzzing::lab_proxy(data));
