//! TLS for every HTTP client colo builds (its own and the ones opendal builds inside the S3 and
//! WebDAV backends): rustls with ring as its one crypto provider. reqwest's default provider,
//! aws-lc-rs, is a C library whose build takes minutes on a small machine; ring is in the build
//! anyway (the FTP client's TLS uses it). reqwest is built without a provider of its own, so the
//! process-wide default must be installed before any client is built: [`install_crypto_provider`]
//! does it once, and [`http_client_builder`] and [`crate::open_volume`] call it first.

use std::sync::Once;

/// Installs ring as rustls' process-wide crypto provider (once; later calls do nothing).
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder whose TLS works: use it for every HTTP client.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_build_with_the_installed_provider() {
        let client = http_client_builder().build();
        assert!(client.is_ok(), "{client:?}");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
