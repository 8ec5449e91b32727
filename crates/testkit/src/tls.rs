//! A test certificate authority made with rcgen at test time: leaf certificates written as
//! PEM files a veza-lb configuration can name, and the client settings that trust them.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rustls::client::ClientConfig;
use rustls::crypto::aws_lc_rs;
use rustls::{RootCertStore, SupportedCipherSuite};
use rustls_pki_types::CertificateDer;

use crate::TempDir;

/// A certificate authority trusted by the clients it configures; its leaves are written to
/// a temporary directory of its own, removed with it.
pub struct TestCa {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: TempDir,
}

/// A leaf certificate as written to disk.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate then the CA's (a full chain), PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
}

/// A leaf's key algorithm.
#[derive(Debug, Clone, Copy)]
pub enum Key {
    /// ECDSA P-256.
    Ecdsa,
    /// RSA 2048.
    Rsa,
}

impl TestCa {
    /// A new CA, `CN=veza test CA`.
    ///
    /// # Panics
    /// When rcgen cannot make a key or a certificate.
    #[must_use]
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "veza test CA");
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            ca: CertifiedIssuer::self_signed(params, key).expect("CA"),
            dir: crate::temp_dir(),
        }
    }

    /// The CA as the only trusted root.
    ///
    /// # Panics
    /// Never for a CA made by [`TestCa::new`].
    #[must_use]
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.der().clone())
            .expect("CA is a valid root");
        roots
    }

    /// Issues a certificate for `names` with a `key` of its own, written as `file.pem` (full
    /// chain) and `file.key`.
    #[must_use]
    pub fn leaf(&self, file: &str, names: &[&str], key: Key) -> Leaf {
        self.leaf_with(file, names, key, |_| {})
    }

    /// The directory the leaves are written in (for a test's own files beside them).
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// [`TestCa::leaf`] with a key algorithm and a last edit of the certificate's fields
    /// (validity dates, say).
    ///
    /// # Panics
    /// When rcgen cannot sign or the files cannot be written.
    pub fn leaf_with(
        &self,
        file: &str,
        names: &[&str],
        key: Key,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let alg = match key {
            Key::Ecdsa => &PKCS_ECDSA_P256_SHA256,
            Key::Rsa => &PKCS_RSA_SHA256,
        };
        let key = KeyPair::generate_for(alg).expect("leaf key");
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        edit(&mut params);
        let issuer: &Issuer<'_, KeyPair> = &self.ca;
        let cert = params.signed_by(&key, issuer).expect("leaf");
        let leaf = Leaf {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, format!("{}{}", cert.pem(), self.ca.pem())).expect("write");
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write");
        leaf
    }

    /// Client settings trusting this CA and offering `alpn`, with every cipher suite of
    /// aws-lc-rs or only `suites`. Connections made with one settings value may resume
    /// sessions.
    ///
    /// # Panics
    /// When rustls refuses the default protocol versions (never with aws-lc-rs).
    #[must_use]
    pub fn client(
        &self,
        alpn: &[&[u8]],
        suites: Option<Vec<SupportedCipherSuite>>,
    ) -> Arc<ClientConfig> {
        let mut provider = aws_lc_rs::default_provider();
        if let Some(suites) = suites {
            provider.cipher_suites = suites;
        }
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
