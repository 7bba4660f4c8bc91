#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| colo_fuzzing::config_toml(data));
